"""Data for a run: locate or build the prepared long-tailed set (its loaders: data/loading/loaders.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from rescom.config import ConfigError, DataConfig, flatten
from rescom.data.preparation.longtail import SUBSAMPLE_RULE
from rescom.data.preparation.prepared import (OldSubsampleRuleError, PreparedData, build, load_prepared, longtail_train,
                                              write)
from rescom.data.sources.base import BadFileError, DataUnavailableError
from rescom.data.sources.folder import image_headers
from rescom.data.sources.registry import SOURCES, load_source
from rescom.data.sources.signature import source_signature
from rescom.errors import MissingFileError
from rescom.progress import console


def parse_dataset(name: str) -> tuple[str, bool]:
    """'cifar10-lt' -> ('cifar10', True): the raw source and whether to subsample it to a long tail
    (a source long-tailed as published, e.g. imagenet-lt, has its "-lt" in its name: never subsampled)."""
    if name in SOURCES:
        return name, False
    if name.endswith("-lt") and name[:-3] in SOURCES and not SOURCES[name[:-3]].long_tailed:
        return name[:-3], True
    valid = [f"{s}-lt" for s, entry in SOURCES.items() if not entry.long_tailed] + list(SOURCES)
    raise ConfigError(f"data.dataset: unknown dataset {name!r}; choose one of {', '.join(valid)}")


def prepared_dir(cfg: DataConfig) -> Path:
    """Where the prepared set of this data config lives (data/prepared/<dataset>-if<IF>-n<max>-s<seed>)."""
    if cfg.prepared_dir:
        return Path(cfg.prepared_dir)
    _, longtail = parse_dataset(cfg.dataset)
    factor = f"-if{cfg.imbalance:g}" if longtail and cfg.imbalance is not None else ""
    cap = f"-n{cfg.max_count}" if longtail and cfg.max_count else ""
    return Path("data/prepared") / f"{cfg.dataset}{factor}{cap}-s{cfg.subsample_seed}{_root_tag(cfg.root)}"


def _root_tag(root: str | None) -> str:
    """'-<folder name>-<8 hex of its absolute path>' for a set read from its own root ('' for the
    source's default location): two image folders never share (and overwrite) one prepared set."""
    if not root:
        return ""
    path = Path(root).expanduser().resolve()
    return f"-{path.name}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


class DataMismatchError(ConfigError):
    """The prepared set differs from the one a checkpoint was trained on."""


def data_request(cfg: DataConfig) -> dict:
    """Everything that decides a prepared set's content: the source and its files' signature, the
    subsampling rule and the test cap. A cached set answers a run only if its request is equal."""
    source, longtail = parse_dataset(cfg.dataset)
    return {
        "source": source,
        "source_signature": source_signature(source, cfg.root),
        "imbalance_factor": float(cfg.imbalance) if longtail and cfg.imbalance is not None else None,
        "max_count": cfg.max_count if longtail else None,
        "seed": int(cfg.subsample_seed),
        "subsample_rule": SUBSAMPLE_RULE if longtail else None,
        "test_per_class": cfg.test_per_class,
        "image_size": folder_image_size(cfg),
    }


def subsample_rule_of(cfg: DataConfig) -> str | None:
    """The rule that draws this config's subsets (long tail, test cap); None when nothing is drawn."""
    _, longtail = parse_dataset(cfg.dataset)
    drawn = (longtail and cfg.imbalance is not None) or cfg.test_per_class is not None
    return SUBSAMPLE_RULE if drawn else None


def checkpoint_subsample_rule(checkpoint: dict) -> str | None:
    """The rule a checkpoint's training set was drawn with. Checkpoints from before the one rule do not
    record it: that code drew CIFAR's long tail with LDAM's rule and every other subset (other
    sources' long tails, any test cap) with a `default_rng` permutation."""
    if "subsample_rule" in checkpoint:
        return checkpoint["subsample_rule"]
    data = flatten(checkpoint["config"]).get
    source, longtail = parse_dataset(data("data.dataset"))
    longtail = longtail and data("data.imbalance") is not None
    if data("data.test_per_class") is not None or (longtail and source not in ("cifar10", "cifar100")):
        return "permutation"
    return SUBSAMPLE_RULE if longtail else None


def check_trained_rule(checkpoint: dict, cfg: DataConfig, path) -> None:
    """Refuse a checkpoint whose training set was drawn with another rule than this config's sets are:
    its data can no longer be prepared, so it can be neither continued nor evaluated on its own data."""
    rule = checkpoint_subsample_rule(checkpoint)
    if rule != subsample_rule_of(cfg):
        raise DataMismatchError(f"{path} was trained on a subset drawn with the {rule!r} rule, which rescom no longer "
                                "uses (one rule now, LDAM's, for every source); train the run afresh (--overwrite)")


def prepare_data(cfg: DataConfig) -> PreparedData:
    """Build the prepared set from the raw source (always rewrites it)."""
    return _build(cfg, data_request(cfg), None, persist=True)


def _build(cfg: DataConfig, request: dict, check_counts, persist: bool) -> PreparedData:
    source, longtail = parse_dataset(cfg.dataset)
    console.log(f"preparing {cfg.dataset} from its raw files ({cfg.root or 'default location'})")
    raw = load_source(source, cfg.root, image_size=folder_image_size(cfg))
    factor, cap = (cfg.imbalance, cfg.max_count) if longtail else (None, None)
    if check_counts is not None:
        train, _ = longtail_train(raw, factor, cap, cfg.subsample_seed)
        check_counts(np.bincount(train.labels, minlength=len(raw.classes)).tolist())
    data = build(raw, imbalance_factor=factor, max_count=cap, seed=cfg.subsample_seed,
                 test_per_class=cfg.test_per_class, request=request)
    check_one_size(data, cfg)  # before anything is written
    if persist:
        write(data, prepared_dir(cfg))
        console.log(f"prepared {prepared_dir(cfg)}: {sum(data.class_counts)} training, {len(data.test)} test images")
    return data


def get_data(cfg: DataConfig, check_counts: Callable[[list[int]], object] | None = None, *,
             persist: bool = True, expected_fingerprint: str | None = None) -> PreparedData:
    """The prepared set of this data config: the cached one when it answers the same request, else
    prepared anew from the raw source (and written, unless persist=False: read-only commands).

    check_counts(class_counts) runs before anything is written, so a config that cannot train on this
    data (batch larger than the set, Q_n too large) fails without leaving a half-made prepared set.
    expected_fingerprint (a checkpoint's) makes a set of other content a DataMismatchError.
    """
    directory = prepared_dir(cfg)
    if cfg.prepared_dir:
        # An explicit prepared set is used as it is (a DVC prepare stage's output, a synthetic set,
        # one made elsewhere): no raw source is needed, and a checkpoint's fingerprint still guards it.
        data = _explicit(directory)
        check_one_size(data, cfg)
    else:
        request = data_request(cfg)  # also checks that the source (and a given root) exists
        data = _cached(directory, request)
        if data is not None:
            check_one_size(data, cfg)
        else:
            data = _build(cfg, request, check_counts, persist)
            check_counts = None  # _build checked them before writing anything
    if check_counts is not None:
        check_counts(data.class_counts)
    if expected_fingerprint and data.meta.get("fingerprint") != expected_fingerprint:
        raise DataMismatchError(
            f"the prepared data {directory} (fingerprint {data.meta.get('fingerprint', '?')[:12]}) is not the set "
            f"the checkpoint was trained on (fingerprint {expected_fingerprint[:12]}); check data.root and the raw files")
    return data


def _explicit(directory: Path) -> PreparedData:
    """The prepared set at data.prepared_dir; DataUnavailableError naming the folder when there is none."""
    if not (directory / "meta.json").is_file():
        raise DataUnavailableError(f"data.prepared_dir: {directory} holds no prepared set (no meta.json); "
                                   "make one with `rescom prepare --out` or drop data.prepared_dir")
    return load_prepared(directory)


def _cached(directory: Path, request: dict) -> PreparedData | None:
    """The prepared set in directory if it is readable and made for this request; None otherwise (says why)."""
    if not (directory / "meta.json").is_file():
        return None
    try:
        data = load_prepared(directory)
    except OldSubsampleRuleError:
        raise  # refused, not silently replaced: runs trained on it would no longer match their data
    except (BadFileError, MissingFileError) as err:
        console.log(f"prepared data {directory} is unreadable ({err}); preparing it again")
        return None
    saved = data.meta.get("request") or {}
    changed = sorted(k for k in request if saved.get(k) != request[k])
    if changed:
        console.log(f"prepared data {directory} was made from other input ({', '.join(changed)} differ); "
                    "preparing it again")
        return None
    return data


# The side a recipe trains on as given (its crop, and no resize at evaluation); the other recipes
# take any size (large: random resized crops of 224) or one size as stored (none).
RECIPE_SIDE = {"cifar": 32, "fashion-mnist": 28, "fashion-mnist-basic": 28}
ANY_SIZE_RECIPES = ("large", "large-inat")


def folder_image_size(cfg: DataConfig) -> int | None:
    """The side N of the N x N images the folder source is brought to at preparation; None: as stored.

    data.image_size auto chooses the recipe's side (cifar 32, fashion-mnist 28) and keeps the images
    as stored for large (any size) and none (one size needed, checked by check_one_size). Other
    sources have fixed sizes: there the key must stay auto.
    """
    source, _ = parse_dataset(cfg.dataset)
    if source != "folder":
        if cfg.image_size != "auto":
            raise ConfigError(f"data.image_size: applies to the folder source only ({source} images come at one size)")
        return None
    recipe = recipe_for(cfg)
    side = RECIPE_SIDE.get(recipe)
    if cfg.image_size == "auto":
        return side
    if side is not None and cfg.image_size != side:
        raise ConfigError(f"data.image_size: recipe {recipe} trains on {side} x {side} images (its crop, no resize at "
                          f"evaluation); set data.image_size={side} or auto, got {cfg.image_size}")
    return cfg.image_size


def check_one_size(data: PreparedData, cfg: DataConfig) -> None:
    """Refuse, before training, a set whose images differ in size when the recipe needs one size."""
    recipe = recipe_for(cfg)
    if recipe in ANY_SIZE_RECIPES:
        return
    paths = [*(data.train.paths or []), *(data.test.paths or [])]
    if not paths:  # in-memory splits: one array, one size
        return
    sizes = sorted(image_headers(paths)[0])
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sizes[:6]) + (", ..." if len(sizes) > 6 else "")
        raise ConfigError(f"data.image_size: the images come in {len(sizes)} sizes (W x H: {shown}) and recipe "
                          f"{recipe} needs one; set data.image_size=<side> (e.g. 32) to bring a folder's images to "
                          "it when preparing, or data.recipe=large")


def recipe_for(cfg: DataConfig) -> str:
    return SOURCES[parse_dataset(cfg.dataset)[0]].recipe if cfg.recipe == "auto" else cfg.recipe
