"""Raw data sources: one entry point, `load_source(name, root)`, returning a `RawDataset`.

Each source lives in its own small module of this package (`cifar`, `idx`, `folder`, `lists`;
`base` the shared types, `signature` what a prepared set records of its files); this module only
dispatches and re-exports the shared types.
"""

from __future__ import annotations

from pathlib import Path

from rescom.data.sources.base import DataUnavailableError, RawDataset, Split

__all__ = ["DataUnavailableError", "RawDataset", "Split", "SOURCES", "check_root", "load_source"]

SOURCES = ("cifar10", "cifar100", "fashion-mnist", "folder", "imagenet-lt", "places-lt", "inat2018")


def check_root(root: str | Path | None, source: str | None = None) -> None:
    """A root that is given must be an existing directory; None means the source's default place.
    For a set that cannot be downloaded (lists.WHERE_TO_GET) the error says where to get it."""
    if root is not None and not Path(root).expanduser().is_dir():
        from rescom.data.sources.lists import WHERE_TO_GET

        what = "is not a directory" if Path(root).expanduser().exists() else "does not exist"
        where = f"; where to get {source}: {WHERE_TO_GET[source]}" if source in WHERE_TO_GET else ""
        raise DataUnavailableError(f"data root {root} {what} (data.root / --data-root){where}")


def load_source(
    name: str,
    root: str | Path | None = None,
    *,
    download: bool = False,
    train_list: str | Path | None = None,
    test_list: str | Path | None = None,
    image_size: int | None = None,
) -> RawDataset:
    """Read dataset `name` from `root`.

    cifar10 / cifar100: root holds the official archive or its extracted folder
        (root None: data/raw/<name> under the working directory); download=True fetches the
        archive with a short network timeout.
    fashion-mnist: the four official gzip IDX files in root, else Debian's
        /usr/share/datasets/fashion-mnist.
    folder: root/train/<class>/* and root/test/<class>/*; image_size N brings every image to N x N.
    imagenet-lt / places-lt / inat2018: txt split lists (`relative/path label` per line), images
        under root; train_list / test_list override the standard list names (absolute, or
        relative to root).
    A root that is given must exist (for every source): falling back to a default copy would train
    on other data than the config records.
    Raises ValueError for an unknown name, DataUnavailableError when files are missing.
    """
    if not download:
        check_root(root, name)
    if name in ("cifar10", "cifar100"):
        from rescom.data.sources.cifar import load_cifar

        return load_cifar(name, root, download=download)
    if name == "fashion-mnist":
        from rescom.data.sources.idx import load_fashion_mnist

        return load_fashion_mnist(root)
    if name == "folder":
        from rescom.data.sources.folder import load_folder

        return load_folder(root, image_size)
    if name in ("imagenet-lt", "places-lt", "inat2018"):
        from rescom.data.sources.lists import load_split_lists

        return load_split_lists(name, root, train_list=train_list, test_list=test_list)
    raise ValueError(f"unknown data source {name!r}; valid names: {', '.join(SOURCES)}")
