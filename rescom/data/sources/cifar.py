"""CIFAR-10 / CIFAR-100 from the official python archive, read through torchvision.

The archive's md5 is checked (torchvision's published checksums) before it is unpacked.
No network is touched unless download=True, and then every step is bounded by a short timeout
so an offline machine fails in seconds instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from rescom.data.sources.base import DataUnavailableError, RawDataset, Split

# The official archives' file names (torchvision's CIFAR10/CIFAR100.filename), without importing torchvision.
ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
# Seconds allowed for the DNS + TCP probe and for each socket operation of the download.
NETWORK_TIMEOUT_S = 5.0


def _dataset_class(name: str):
    from torchvision.datasets import CIFAR10, CIFAR100

    return {"cifar10": CIFAR10, "cifar100": CIFAR100}[name]


def _missing_message(cls, root: Path, why: str, suggest_download: bool = False) -> str:
    hint = ", or call with download=True on a machine with internet access" if suggest_download else ""
    return (
        f"{why}. Put the official archive {cls.filename} (md5 {cls.tgz_md5}) from {cls.url} "
        f"into {root}/ (or its extracted folder {cls.base_folder}/){hint}."
    )


def _reachable(url: str, timeout: float) -> bool:
    """True when the URL's host answers a TCP connect within `timeout` seconds.

    Runs in a daemon thread because name resolution (getaddrinfo) ignores socket timeouts and
    can block for much longer on a machine without DNS.
    """
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    ok: list[bool] = []

    def probe() -> None:
        with contextlib.suppress(OSError), socket.create_connection((parsed.hostname, port), timeout=timeout):
            ok.append(True)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


def _download(cls, root: Path, url: str | None = None) -> None:
    """Fetch the archive into root atomically: into a hidden temporary name, md5-checked, then renamed.

    A killed or failed download leaves no file under the archive's name, so it never looks complete.
    """
    from torchvision.datasets.utils import check_integrity, download_url

    url = url or cls.url
    if not _reachable(url, NETWORK_TIMEOUT_S):
        raise DataUnavailableError(
            _missing_message(cls, root, f"download failed: {urlparse(url).hostname} is not reachable")
        )
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NETWORK_TIMEOUT_S)
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{cls.filename}.part-", dir=root))
    try:
        download_url(url, str(partial), cls.filename)  # md5 checked below, with our own message
        if not check_integrity(str(partial / cls.filename), cls.tgz_md5):
            raise DataUnavailableError(_missing_message(
                cls, root, f"the download from {url} is corrupt (md5 differs from {cls.tgz_md5})"))
        os.replace(partial / cls.filename, root / cls.filename)
    except DataUnavailableError:
        raise
    except Exception as err:  # any network failure means the same thing to the user
        raise DataUnavailableError(_missing_message(cls, root, f"download failed ({err})")) from err
    finally:
        socket.setdefaulttimeout(previous)
        shutil.rmtree(partial, ignore_errors=True)


def _extract(cls, archive: Path, root: Path) -> None:
    """Unpack into a temporary folder, check every batch's md5, then rename the folder into place."""
    from torchvision.datasets.utils import extract_archive

    staging = Path(tempfile.mkdtemp(prefix=f".{cls.base_folder}.unpack-", dir=root))
    try:
        extract_archive(str(archive), str(staging))
        if not _extracted_ok(cls, staging):
            raise DataUnavailableError(_missing_message(cls, root, f"{archive} did not unpack to {cls.base_folder}/"))
        target = root / cls.base_folder
        if target.exists():
            shutil.rmtree(target)  # an incomplete or corrupt earlier folder (_extracted_ok failed on it)
        os.replace(staging / cls.base_folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_cifar(name: str, root: str | Path | None = None, url: str | None = None) -> Path:
    """`rescom data download`: the official archive of cifar10 / cifar100 in root, md5-checked and unpacked.

    Nothing is fetched when a valid archive is already there. Offline, fails within seconds
    (DataUnavailableError naming the archive, its URL and where to put it). url: a mirror.
    Returns the archive's path.
    """
    cls = _dataset_class(name)
    root = (Path(root) if root is not None else Path("data") / "raw" / name).expanduser().resolve()
    from torchvision.datasets.utils import check_integrity

    archive = root / cls.filename
    if not check_integrity(str(archive), cls.tgz_md5):
        _download(cls, root, url)
    if not _extracted_ok(cls, root):
        _extract(cls, archive, root)
    return archive


def _ensure_extracted(cls, root: Path, download: bool) -> None:
    from torchvision.datasets.utils import check_integrity

    if _extracted_ok(cls, root):
        return
    archive = root / cls.filename
    if not archive.is_file():
        if not download:
            raise DataUnavailableError(_missing_message(cls, root, f"{archive} not found", suggest_download=True))
        _download(cls, root)
    if not check_integrity(str(archive), cls.tgz_md5):
        raise DataUnavailableError(
            _missing_message(cls, root, f"{archive} is corrupt (md5 differs from {cls.tgz_md5})")
        )
    _extract(cls, archive, root)


def _extracted_ok(cls, root: Path) -> bool:
    """Every batch file of the extracted folder is present with its published md5."""
    from torchvision.datasets.utils import check_integrity

    if not (root / cls.base_folder).is_dir():
        return False
    return all(
        check_integrity(str(root / cls.base_folder / fname), md5)
        for fname, md5 in cls.train_list + cls.test_list
    )


def load_cifar(name: str, root: str | Path | None, *, download: bool = False) -> RawDataset:
    """CIFAR-10 or CIFAR-100: images uint8 [50000|10000, 32, 32, 3], fine labels.

    root None means data/raw/<name> under the working directory.
    """
    cls = _dataset_class(name)
    root = (Path(root) if root is not None else Path("data") / "raw" / name).expanduser().resolve()
    _ensure_extracted(cls, root, download)
    train = cls(str(root), train=True, download=False)
    test = cls(str(root), train=False, download=False)
    return RawDataset(
        name=name,
        classes=list(train.classes),
        channels=3,
        train=Split(labels=np.asarray(train.targets, dtype=np.int64), images=np.ascontiguousarray(train.data)),
        test=Split(labels=np.asarray(test.targets, dtype=np.int64), images=np.ascontiguousarray(test.data)),
    )


def fingerprint(digest, source: str, root) -> None:
    """The published archive md5 (the loader accepts no other content), once the archive or its folder is there."""
    cls = _dataset_class(source)
    base = (Path(root) if root is not None else Path("data") / "raw" / source).expanduser().resolve()
    if not ((base / cls.base_folder).is_dir() or (base / cls.filename).is_file()):
        raise DataUnavailableError(f"{source}: neither {base / cls.filename} nor {base / cls.base_folder}/ exists")
    digest.update(cls.tgz_md5.encode())
