"""ImageNet-LT, Places-LT and iNaturalist 2018 from their standard txt split lists.

Each list line is `relative/path label`; images live under root and are not loaded here (the
splits keep absolute paths). Class names are the integer labels as strings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rescom.data.sources.base import BadFileError, DataUnavailableError, RawDataset, Split

# (train list, test list) as distributed with the OLTR / decoupling benchmarks.
STANDARD_LISTS = {
    "imagenet-lt": ("ImageNet_LT_train.txt", "ImageNet_LT_test.txt"),
    "places-lt": ("Places_LT_train.txt", "Places_LT_test.txt"),
    "inat2018": ("iNaturalist18_train.txt", "iNaturalist18_val.txt"),
}

# None of these can be fetched freely (licence or registration), so a missing piece names its source.
WHERE_TO_GET = {
    "imagenet-lt": (
        "images: ILSVRC 2012 (ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, after registering at "
        "https://image-net.org/download), unpacked so that root/train/<wnid>/*.JPEG and root/val/<wnid>/*.JPEG "
        "match the list lines; split lists ImageNet_LT_train.txt and ImageNet_LT_test.txt: the OLTR release "
        "(Liu et al. 2019, https://github.com/zhmiao/OpenLongTailRecognition-OLTR, linked from its README)"),
    "places-lt": (
        "images: Places365-Standard, 256x256 (http://places2.csail.mit.edu/download.html), unpacked so that the "
        "list lines' relative paths exist under root; split lists Places_LT_train.txt and Places_LT_test.txt: the "
        "OLTR release (https://github.com/zhmiao/OpenLongTailRecognition-OLTR, linked from its README)"),
    "inat2018": (
        "images: iNaturalist 2018 train_val2018.tar.gz (https://github.com/visipedia/inat_comp/tree/master/2018), "
        "unpacked so that root/train_val2018/<super>/<class>/*.jpg exists; split lists iNaturalist18_train.txt "
        "and iNaturalist18_val.txt: the decoupling release (Kang et al. 2020, "
        "https://github.com/facebookresearch/classifier-balancing)"),
}


def read_split_list(list_path: str | Path, root: str | Path) -> tuple[list[str], np.ndarray]:
    """Parse a split list into (absolute paths [N], int64 labels [N]).

    The label is the last whitespace-separated field, so paths may contain spaces.
    """
    list_path, root = Path(list_path), Path(root)
    paths: list[str] = []
    labels: list[int] = []
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise BadFileError(f"split list {list_path} is not UTF-8 text (byte {err.start}); "
                           "expected lines 'relative/path label'") from None
    for line_no, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(maxsplit=1)
        try:
            rel, label = parts[0], int(parts[1])
        except (IndexError, ValueError):
            raise BadFileError(f"split list {list_path}:{line_no}: expected 'relative/path label', got {line!r}") from None
        if label < 0:
            raise BadFileError(f"split list {list_path}:{line_no}: negative label {label}")
        paths.append(str(root / rel))
        labels.append(label)
    if not paths:
        raise BadFileError(f"split list {list_path} lists no images (empty file?)")
    return paths, np.asarray(labels, dtype=np.int64)


def _resolve_list(name: str, root: Path, given: str | Path | None, default: str, which: str) -> Path:
    path = Path(given).expanduser() if given is not None else Path(default)
    if not path.is_absolute():
        path = root / path
    if not path.is_file():
        raise DataUnavailableError(
            f"{name}: {which} split list {path} not found. Put {path.name} in {root} "
            f"(or pass {which}_list=<path>); each line reads 'relative/path label'. Where to get it: {WHERE_TO_GET[name]}"
        )
    return path


def load_split_lists(
    name: str,
    root: str | Path | None,
    *,
    train_list: str | Path | None = None,
    test_list: str | Path | None = None,
) -> RawDataset:
    """Read `name` (imagenet-lt, places-lt, inat2018); K = 1 + the largest label in either list."""
    if name not in STANDARD_LISTS:
        raise ValueError(f"no standard split lists for {name!r}; valid: {', '.join(STANDARD_LISTS)}")
    if root is None:
        raise DataUnavailableError(f"{name} needs root=<image root holding {' and '.join(STANDARD_LISTS[name])}>; "
                                   f"where to get them: {WHERE_TO_GET[name]}")
    root = Path(root).expanduser().resolve()
    default_train, default_test = STANDARD_LISTS[name]
    train_path = _resolve_list(name, root, train_list, default_train, "train")
    test_path = _resolve_list(name, root, test_list, default_test, "test")
    train_paths, train_labels = read_split_list(train_path, root)
    test_paths, test_labels = read_split_list(test_path, root)
    # A wrong root shows up here, once, instead of as a failed read deep in training.
    first = Path(train_paths[0])
    if not first.is_file():
        raise DataUnavailableError(
            f"{name}: first image of {train_path.name} not found at {first}; root must be the image root the "
            f"list's paths start from. Where to get the images: {WHERE_TO_GET[name]}"
        )
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    return RawDataset(
        name=name,
        classes=[str(k) for k in range(num_classes)],
        channels=3,
        train=Split(labels=train_labels, paths=train_paths),
        test=Split(labels=test_labels, paths=test_paths),
    )


def fingerprint(digest, source: str, root) -> None:
    """sha256 of both lists plus the image root (the stored paths start with it)."""
    if root is None:
        raise DataUnavailableError(f"{source} needs root=<image root holding {' and '.join(STANDARD_LISTS[source])}>")
    base = Path(root).expanduser().resolve()
    digest.update(str(base).encode())
    for default, which in zip(STANDARD_LISTS[source], ("train", "test"), strict=True):
        digest.update(_resolve_list(source, base, None, default, which).read_bytes())
