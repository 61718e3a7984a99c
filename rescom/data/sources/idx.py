"""Fashion-MNIST from its four official gzip IDX files, parsed with numpy (no torchvision).

IDX layout (LeCun's MNIST format): two zero bytes, a type byte (0x08 = uint8), the number of
dimensions, then each dimension as a big-endian uint32, then the data in C order.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from rescom.data.sources.base import BadFileError, DataUnavailableError, RawDataset, Split

# Debian's `dataset-fashion-mnist` ships the official files under their official names here.
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (gzip-compressed when the name ends in .gz) into an array of its shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:  # gzip: BadGzipFile for garbage, EOFError when cut short
        reason = "truncated" if isinstance(err, EOFError) else (str(err) or type(err).__name__)
        raise BadFileError(f"{path}: not a readable gzip IDX file ({reason})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise BadFileError(f"{path}: not an IDX file (bad magic {data[:4].hex()})")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise BadFileError(f"{path}: unknown IDX type code 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise BadFileError(f"{path}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise BadFileError(f"{path}: truncated or padded: shape {shape} needs {expected} data bytes, file has {len(data) - header}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_dir(root: str | Path | None) -> Path:
    """root when given (it alone: the config records it), else DEBIAN_DIR; it must hold all four files."""
    d = Path(root).expanduser().resolve() if root is not None else DEBIAN_DIR
    missing = [f for f in FILES.values() if not (d / f).is_file()]
    if not missing:
        return d
    alternative = ("" if root is None else
                   f", or drop the root to use Debian's copy in {DEBIAN_DIR}")
    raise DataUnavailableError(
        f"Fashion-MNIST not found in {d} (missing {', '.join(missing)}). Supply the four official files "
        f"{', '.join(FILES.values())} (https://github.com/zalandoresearch/fashion-mnist) in "
        f"{d}{alternative}, or install Debian's package: apt-get install dataset-fashion-mnist"
    )


def _split(d: Path, which: str) -> Split:
    images = read_idx(d / FILES[f"{which}_images"])
    labels = read_idx(d / FILES[f"{which}_labels"])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise BadFileError(f"{d / FILES[f'{which}_images']}: expected uint8 [N,H,W], got {images.dtype} {images.shape}")
    if labels.shape != (len(images),):
        raise BadFileError(f"{d / FILES[f'{which}_labels']}: {labels.shape} labels for {len(images)} images")
    return Split(labels=labels.astype(np.int64), images=np.ascontiguousarray(images[..., None]))


def load_fashion_mnist(root: str | Path | None = None) -> RawDataset:
    """Fashion-MNIST: images uint8 [60000|10000, 28, 28, 1], 10 classes."""
    d = _find_dir(root)
    return RawDataset(
        name="fashion-mnist", classes=list(CLASSES), channels=1,
        train=_split(d, "train"), test=_split(d, "test"),
    )


def fingerprint(digest, source: str, root) -> None:
    """sha256 of the four IDX files (about 30 MB)."""
    directory = _find_dir(root)
    for name in sorted(FILES.values()):
        digest.update(name.encode())
        digest.update((directory / name).read_bytes())
