"""A cheap signature of a raw source's files, so a prepared set can be checked against its source.

A prepared set is reused across runs; without this, a run with another --data-root (or changed raw
files) would silently train on the set made from the old ones. The signature reads no image: it is
built from what identifies the data without decoding it, and it names no absolute path where the
content alone decides, so identical data on two machines gives one signature.

  cifar10 / cifar100: the published archive md5 (the loader accepts no other content).
  fashion-mnist:      sha256 of the four IDX files (about 30 MB).
  folder:             relative path, size and modification time of every image.
  split lists:        sha256 of both lists plus the image root (stored paths start with it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from rescom.data.sources.base import DataUnavailableError
from rescom.data.sources import check_root


def source_signature(source: str, root: str | Path | None) -> str:
    """sha256 hex identifying what load_source(source, root) would read; DataUnavailableError if absent."""
    check_root(root, source)
    digest = hashlib.sha256(source.encode())
    if source in ("cifar10", "cifar100"):
        _cifar(digest, source, root)
    elif source == "fashion-mnist":
        _fashion_mnist(digest, root)
    elif source == "folder":
        _folder(digest, root)
    else:
        _split_lists(digest, source, root)
    return digest.hexdigest()


def _cifar(digest, source: str, root) -> None:
    from rescom.data.sources.cifar import _dataset_class

    cls = _dataset_class(source)
    base = (Path(root) if root is not None else Path("data") / "raw" / source).expanduser().resolve()
    if not ((base / cls.base_folder).is_dir() or (base / cls.filename).is_file()):
        raise DataUnavailableError(f"{source}: neither {base / cls.filename} nor {base / cls.base_folder}/ exists")
    digest.update(cls.tgz_md5.encode())


def _fashion_mnist(digest, root) -> None:
    from rescom.data.sources.idx import FILES, _find_dir

    directory = _find_dir(root)
    for name in sorted(FILES.values()):
        digest.update(name.encode())
        digest.update((directory / name).read_bytes())


def _folder(digest, root) -> None:
    from rescom.data.sources.folder import IMAGE_SUFFIXES

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


def _split_lists(digest, source: str, root) -> None:
    from rescom.data.sources.lists import STANDARD_LISTS, _resolve_list

    if source not in STANDARD_LISTS:
        raise ValueError(f"unknown data source {source!r}")
    if root is None:
        raise DataUnavailableError(f"{source} needs root=<image root holding {' and '.join(STANDARD_LISTS[source])}>")
    base = Path(root).expanduser().resolve()
    digest.update(str(base).encode())
    for default, which in zip(STANDARD_LISTS[source], ("train", "test"), strict=True):
        digest.update(_resolve_list(source, base, None, default, which).read_bytes())
