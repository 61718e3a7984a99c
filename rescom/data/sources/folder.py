"""Any image folder laid out as root/train/<class>/* and root/test/<class>/*.

Classes are the train sub-folder names sorted by name (label = position). Images are loaded into
memory as uint8 [N,H,W,C] when they all share one size and fit IN_MEMORY_LIMIT_BYTES; otherwise
the split keeps absolute paths and images are decoded on access. With image_size N every image is
brought to N x N when read (shorter side to N, then the centre N x N: no stretching), so a folder
of mixed sizes becomes one in-memory array (config data.image_size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from rescom.config import ConfigError
from rescom.data.sources.base import DataUnavailableError, RawDataset, Split, unreadable_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

# Above this the decoded arrays would crowd a laptop's RAM; paths are cheap.
IN_MEMORY_LIMIT_BYTES = 4 * 1024**3


def _list_split(root: Path, split: str, classes: list[str] | None) -> tuple[list[str], list[str], list[int]]:
    """(class names, absolute file paths, labels) of root/split, files sorted within each class."""
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataUnavailableError(
            f"{split_dir} not found: a folder dataset needs {root}/train/<class>/* and {root}/test/<class>/*"
        )
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if classes is None:
        classes = found
        if not classes:
            raise DataUnavailableError(f"{split_dir} has no class sub-folders")
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise DataUnavailableError(f"{split_dir} has classes not in train/: {extra}")
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if class_dir.is_dir() else []
        if split == "train" and not files:
            raise DataUnavailableError(f"class folder {class_dir} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        paths += [str(p.resolve()) for p in files]
        labels += [label] * len(files)
    return classes, paths, labels


def image_headers(paths: list[str]) -> tuple[set[tuple[int, int]], set[str]]:
    """Sizes (W, H) and modes of the images; PIL reads only the headers here."""
    sizes, modes = set(), set()
    for p in paths:
        try:
            with Image.open(p) as im:
                sizes.add(im.size)
                modes.add(im.mode)
        except (OSError, ValueError, SyntaxError) as err:  # PIL's ways of saying "not an image"
            raise unreadable_image(p, err) from None
    return sizes, modes


def _decode(path: str, mode: str) -> Image.Image:
    """The whole image in mode; a file whose header is fine but whose data is cut short fails here."""
    try:
        with Image.open(path) as im:
            return im.convert(mode)
    except (OSError, ValueError, SyntaxError) as err:
        raise unreadable_image(path, err) from None


def _fitted(path: str, mode: str, side: int) -> np.ndarray:
    """The image in mode, its shorter side scaled to `side` (bicubic, antialiased) and centre-cropped
    to side x side: uint8 [side, side, C]."""
    image = ImageOps.fit(_decode(path, mode), (side, side), method=Image.Resampling.BICUBIC)
    return np.asarray(image).reshape(side, side, 1 if mode == "L" else 3)


def _make_split(paths: list[str], labels: list[int], mode: str, sizes: set[tuple[int, int]],
                image_size: int | None = None) -> Split:
    labels_arr = np.asarray(labels, dtype=np.int64)
    channels = 1 if mode == "L" else 3
    if image_size is not None:
        if len(paths) * image_size * image_size * channels > IN_MEMORY_LIMIT_BYTES:
            raise ConfigError(f"data.image_size: {len(paths)} images of {image_size} x {image_size} exceed the "
                             f"{IN_MEMORY_LIMIT_BYTES // 1024**3} GiB held in memory; choose a smaller side")
        images = np.empty((len(paths), image_size, image_size, channels), dtype=np.uint8)
        for i, p in enumerate(paths):
            images[i] = _fitted(p, mode, image_size)
        return Split(labels=labels_arr, images=images)
    if len(sizes) == 1:
        (w, h), = sizes
        if len(paths) * h * w * channels <= IN_MEMORY_LIMIT_BYTES:
            images = np.empty((len(paths), h, w, channels), dtype=np.uint8)
            for i, p in enumerate(paths):
                images[i] = np.asarray(_decode(p, mode)).reshape(h, w, channels)
            return Split(labels=labels_arr, images=images)
    return Split(labels=labels_arr, paths=paths)


def load_folder(root: str | Path | None, image_size: int | None = None) -> RawDataset:
    """Read root/train/<class>/* and root/test/<class>/*; RGB unless every image is mode 'L'.

    image_size N: every image brought to N x N (see the module docstring); None keeps them as stored.
    """
    if root is None:
        raise DataUnavailableError("the folder source needs root=<dir with train/<class>/* and test/<class>/*>")
    root = Path(root).expanduser().resolve()
    classes, train_paths, train_labels = _list_split(root, "train", None)
    _, test_paths, test_labels = _list_split(root, "test", classes)
    train_sizes, train_modes = image_headers(train_paths)
    test_sizes, test_modes = image_headers(test_paths)
    # One mode for both splits: the model's input channels must not change between them.
    mode = "L" if (train_modes | test_modes) == {"L"} else "RGB"
    return RawDataset(
        name=root.name,
        classes=classes,
        channels=1 if mode == "L" else 3,
        train=_make_split(train_paths, train_labels, mode, train_sizes, image_size),
        test=_make_split(test_paths, test_labels, mode, test_sizes, image_size),
    )


def fingerprint(digest, source: str, root) -> None:
    """Relative path, size and modification time of every image (no image is read)."""
    if root is None:
        raise DataUnavailableError("the folder source needs root=<dir with train/<class>/* and test/<class>/*>")
    base = Path(root).expanduser().resolve()
    for split in ("train", "test"):
        if not (base / split).is_dir():
            raise DataUnavailableError(f"{base / split} not found: a folder dataset needs train/<class>/* and test/<class>/*")
        for path in sorted((base / split).rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                stat = path.stat()
                digest.update(f"{path.relative_to(base).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
