"""The registry of raw data sources: one entry per source says everything the suite needs of it, and
the entry point `load_source(name, root)`, returning a `RawDataset`.

Adding a source is one entry here plus its module in this package (how its files are read and
fingerprinted): the dataset names (`<source>` and `<source>-lt`, data/preparation/run_data.py), the
recipe `data.recipe=auto` picks, the prepared set's signature of the files (signature.py) and the
inference-cost shapes all read it (tests/test_registries.py). Only what prepares or reads raw data
imports this module, so a source's code is no dependency of the stages that only read runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rescom.data.sources import cifar, folder, idx, lists
from rescom.data.sources.base import DataUnavailableError, RawDataset


@dataclass(frozen=True)
class LoadOptions:
    download: bool = False  # cifar: fetch the archive
    train_list: str | Path | None = None  # split lists: other lists than the standard ones
    test_list: str | Path | None = None
    image_size: int | None = None  # folder: bring every image to N x N


@dataclass(frozen=True)
class Source:
    load: Callable[[str, str | Path | None, LoadOptions], RawDataset]  # load(name, root, options)
    fingerprint: Callable  # fingerprint(sha256, name, root): what identifies its files (signature.py)
    recipe: str  # the augmentation recipe of data.recipe=auto
    long_tailed: bool = False  # long-tailed as published: "-lt" is part of its name, no subsampling
    shape: tuple[int, int, int] | None = None  # (classes, channels, evaluation side), known without the data


def _cifar(name, root, options: LoadOptions) -> RawDataset:
    return cifar.load_cifar(name, root, download=options.download)


def _lists(name, root, options: LoadOptions) -> RawDataset:
    return lists.load_split_lists(name, root, train_list=options.train_list, test_list=options.test_list)


_LARGE = dict(load=_lists, fingerprint=lists.fingerprint, long_tailed=True)
SOURCES: dict[str, Source] = {
    "cifar10": Source(_cifar, cifar.fingerprint, "cifar", shape=(10, 3, 32)),
    "cifar100": Source(_cifar, cifar.fingerprint, "cifar", shape=(100, 3, 32)),
    "fashion-mnist": Source(lambda name, root, options: idx.load_fashion_mnist(root), idx.fingerprint, "fashion-mnist",
                            shape=(10, 1, 28)),
    "folder": Source(lambda name, root, options: folder.load_folder(root, options.image_size), folder.fingerprint, "none"),
    "imagenet-lt": Source(**_LARGE, recipe="large", shape=(1000, 3, 224)),
    "places-lt": Source(**_LARGE, recipe="large", shape=(365, 3, 224)),
    "inat2018": Source(**_LARGE, recipe="large-inat", shape=(8142, 3, 224)),
}


def source(name: str) -> Source:
    """The registry entry of source `name`; ValueError naming the sources there are."""
    if name not in SOURCES:
        raise ValueError(f"unknown data source {name!r}; valid names: {', '.join(SOURCES)}")
    return SOURCES[name]


def check_root(root: str | Path | None, name: str | None = None) -> None:
    """A root that is given must be an existing directory; None means the source's default place.
    For a set that cannot be downloaded (lists.WHERE_TO_GET) the error says where to get it."""
    if root is not None and not Path(root).expanduser().is_dir():
        what = "is not a directory" if Path(root).expanduser().exists() else "does not exist"
        where = f"; where to get {name}: {lists.WHERE_TO_GET[name]}" if name in lists.WHERE_TO_GET else ""
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
    """Read dataset `name` from `root` (what each source expects there, and where root None looks:
    see its module); the options are LoadOptions'.

    A root that is given must exist (for every source): falling back to a default copy would train
    on other data than the config records.
    Raises ValueError for an unknown name (one without a `SOURCES` entry), DataUnavailableError when
    files are missing.
    """
    entry = source(name)
    if not download:
        check_root(root, name)
    return entry.load(name, root, LoadOptions(download, train_list, test_list, image_size))
