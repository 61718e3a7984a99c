"""Prepare a long-tailed training set from a RawDataset and persist it (one DVC stage's output).

out_dir holds train.npz and test.npz (labels + images or paths) and meta.json. It is written into
a temporary directory beside out_dir and renamed into place, so a failure leaves nothing half-done.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rescom.config import ConfigError
from rescom.data.preparation.longtail import SUBSAMPLE_RULE, exponential_counts, longtail_indices
from rescom.data.sources.base import BadFileError, RawDataset, Split
from rescom.errors import MissingFileError

FILES = ("train.npz", "test.npz", "meta.json")


@dataclass
class PreparedData:
    """A prepared dataset: long-tailed train split, balanced test split, class_counts [K] of train."""

    name: str
    classes: list[str]
    channels: int
    train: Split
    test: Split
    class_counts: list[int]
    meta: dict = field(default_factory=dict)


def _arrays(split: Split) -> dict[str, np.ndarray]:
    """The arrays a split is stored as: labels int64 [N] and images uint8 [N,H,W,C] or paths str [N]."""
    if split.images is not None:
        return {"labels": split.labels, "images": split.images}
    return {"labels": split.labels, "paths": np.asarray(split.paths, dtype=str)}


def fingerprint(train: Split, test: Split) -> str:
    """sha256 over the stored arrays (key, dtype, shape, bytes), independent of npz zip timestamps."""
    h = hashlib.sha256()
    for split_name, split in (("train", train), ("test", test)):
        for key, arr in sorted(_arrays(split).items()):
            arr = np.ascontiguousarray(arr)
            h.update(f"{split_name}/{key}/{arr.dtype.str}/{arr.shape}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def _write_split(path: Path, split: Split) -> None:
    # Uncompressed: CIFAR-LT is ~40 MB and loads in milliseconds; compression would cost seconds.
    with open(path, "wb") as f:
        np.savez(f, **_arrays(split))


def _write_meta(path: Path, meta: dict) -> None:
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def longtail_train(raw: RawDataset, imbalance_factor: float | None, max_count: int | None, seed: int):
    """(train split, max_count used) after exponential subsampling (LDAM's rule); unchanged when IF is None."""
    if imbalance_factor is None:
        if max_count is not None:
            raise ConfigError("max_count applies only with an imbalance_factor; set imbalance_factor or drop max_count")
        return raw.train, None
    raw_counts = np.bincount(raw.train.labels, minlength=len(raw.classes))
    if max_count is None:
        max_count = int(raw_counts.min())
    counts = exponential_counts(len(raw.classes), int(max_count), float(imbalance_factor))
    short = [(c, int(have), want) for c, (have, want) in enumerate(zip(raw_counts, counts, strict=True)) if have < want]
    if short:
        c, have, want = short[0]
        raise ConfigError(f"max_count {max_count}: class {c} ({raw.classes[c]}) has {have} training images, the "
                          f"long tail of imbalance factor {imbalance_factor} asks for {want}; lower max_count")
    return raw.train.subset(longtail_indices(raw.train.labels, counts, seed)), int(max_count)


def prepare(
    raw: RawDataset,
    out_dir: str | Path,
    *,
    imbalance_factor: float | None,
    max_count: int | None,
    seed: int,
    test_per_class: int | None = None,
    request: dict | None = None,
) -> PreparedData:
    """Subsample raw.train to an exponential long tail (class 0 = head) and write it to out_dir.

    imbalance_factor None keeps the train split as is (already long-tailed, e.g. ImageNet-LT).
    Otherwise n_k = exponential_counts(K, max_count or the smallest raw class size, IF); pass
    max_count=5000 for CIFAR-10 (IF 100 -> 12,406 images). The test split stays balanced; with
    test_per_class it keeps the first test_per_class images of each class after a seeded shuffle
    (small CPU profiles evaluate often, and Fashion-MNIST's 10,000 test images would dominate).
    request (what was asked for, with the source's signature) is stored in meta.json so a later
    run can tell whether this set answers its own request. An existing out_dir is replaced only
    once the new one is complete.
    """
    data = build(raw, imbalance_factor=imbalance_factor, max_count=max_count, seed=seed,
                 test_per_class=test_per_class, request=request)
    write(data, out_dir)
    return data


def build(raw: RawDataset, *, imbalance_factor: float | None, max_count: int | None, seed: int,
          test_per_class: int | None = None, request: dict | None = None) -> PreparedData:
    """The prepared set in memory (what `prepare` writes); see prepare for the arguments."""
    if raw.train.labels.size and (raw.train.labels.min() < 0 or raw.train.labels.max() >= len(raw.classes)):
        raise BadFileError(f"train labels must lie in [0, {len(raw.classes)}), got {raw.train.labels.min()}..{raw.train.labels.max()}")
    train, used_max = longtail_train(raw, imbalance_factor, max_count, seed)
    class_counts = np.bincount(train.labels, minlength=len(raw.classes)).astype(int).tolist()
    test = raw.test
    if test_per_class is not None:
        test_counts = [min(test_per_class, int(n)) for n in np.bincount(test.labels, minlength=len(raw.classes))]
        test = test.subset(longtail_indices(test.labels, test_counts, seed))
    meta = {
        "dataset": raw.name,
        "classes": list(raw.classes),
        "channels": int(raw.channels),
        "imbalance_factor": None if imbalance_factor is None else float(imbalance_factor),
        "max_count": used_max,
        "seed": int(seed),
        "subsample_rule": None if imbalance_factor is None else SUBSAMPLE_RULE,
        "test_subsample_rule": None if test_per_class is None else SUBSAMPLE_RULE,
        "class_counts": class_counts,
        "num_train": len(train),
        "num_test": len(test),
        "test_per_class": test_per_class,
        "storage": {"train": "images" if train.images is not None else "paths",
                    "test": "images" if test.images is not None else "paths"},
        "fingerprint": fingerprint(train, test),
    }
    if request is not None:
        meta["request"] = request
    return PreparedData(
        name=raw.name, classes=list(raw.classes), channels=raw.channels,
        train=train, test=test, class_counts=class_counts, meta=meta,
    )


def write(data: PreparedData, out_dir: str | Path) -> None:
    """Write train.npz, test.npz and meta.json into out_dir, all at once (temporary dir, then rename)."""
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write_split(tmp / "train.npz", data.train)
        _write_split(tmp / "test.npz", data.test)
        _write_meta(tmp / "meta.json", data.meta)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished src to dst; an old dst is set aside first and removed only after."""
    os.chmod(src, 0o755)  # mkdtemp makes it 0700; a prepared set is ordinary shared output
    if not dst.exists():
        os.replace(src, dst)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
    os.replace(dst, old / dst.name)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(old / dst.name, dst)  # put the previous version back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _read_split(path: Path) -> Split:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "labels" in z.files and "images" in z.files:
                return Split(labels=z["labels"], images=z["images"])
            if "labels" in z.files and "paths" in z.files:
                return Split(labels=z["labels"], paths=z["paths"].tolist())
            files = z.files
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise BadFileError(f"prepared split {path} cannot be read ({str(err).splitlines()[0] if str(err) else 'empty'}); "
                           "prepare again") from None
    raise BadFileError(f"prepared split {path} holds neither labels with 'images' nor with 'paths' (keys: {files})")


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadFileError(f"{path} is not JSON ({str(err).splitlines()[0]}); prepare again") from None
    if not isinstance(meta, dict):
        raise BadFileError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


class OldSubsampleRuleError(BadFileError):
    """A prepared set drawn with a subsampling rule rescom no longer uses."""


def check_subsample_rule(out_dir: Path, meta: dict) -> None:
    """Refuse a set whose long tail or test cap was drawn with another rule than SUBSAMPLE_RULE.

    Sets made before the one rule record the train rule ("permutation" for every source but CIFAR)
    and no test rule (their test cap was a permutation for every source).
    """
    old = []
    if meta.get("imbalance_factor") is not None and meta.get("subsample_rule") != SUBSAMPLE_RULE:
        old.append(f"its long tail with the {meta.get('subsample_rule') or 'unrecorded'!r} rule")
    if meta.get("test_per_class") is not None and meta.get("test_subsample_rule") != SUBSAMPLE_RULE:
        old.append(f"its test cap with the {meta.get('test_subsample_rule') or 'permutation'!r} rule")
    if old:
        raise OldSubsampleRuleError(
            f"prepared data {out_dir} was drawn ({' and '.join(old)}) before rescom used one rule, LDAM's, for "
            "every source; prepare it again (`rescom prepare`, or the profile's prepare stage with dvc repro)")


def load_prepared(out_dir: str | Path, *, verify: bool = True) -> PreparedData:
    """Read what `prepare` wrote. verify=True recomputes the fingerprint and rejects a mismatch."""
    out_dir = Path(out_dir)
    for name in FILES:
        if not (out_dir / name).is_file():
            raise MissingFileError(f"prepared data incomplete: {out_dir / name} is missing; run the prepare stage first")
    meta = _read_meta(out_dir / "meta.json")
    missing = [k for k in ("dataset", "classes", "channels", "class_counts", "fingerprint") if k not in meta]
    if missing:
        raise BadFileError(f"{out_dir / 'meta.json'} lacks keys {missing}")
    check_subsample_rule(out_dir, meta)
    train = _read_split(out_dir / "train.npz")
    test = _read_split(out_dir / "test.npz")
    if verify and fingerprint(train, test) != meta["fingerprint"]:
        raise BadFileError(f"{out_dir}: train/test arrays do not match the fingerprint in meta.json; prepare again")
    return PreparedData(
        name=meta["dataset"], classes=list(meta["classes"]), channels=int(meta["channels"]),
        train=train, test=test, class_counts=[int(c) for c in meta["class_counts"]], meta=meta,
    )
