"""CIFAR-10 / CIFAR-100 from the official python archive, read through torchvision.

The archive's md5 is checked (torchvision's published checksums) before it is unpacked.
No network is touched unless download=True, and then every step is bounded by a short timeout
so an offline machine fails in seconds instead of hanging.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from rescom.data.source_base import DataUnavailableError, RawDataset, Split

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
        try:
            with socket.create_connection((parsed.hostname, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


def _download(cls, root: Path) -> None:
    from torchvision.datasets.utils import download_url

    if not _reachable(cls.url, NETWORK_TIMEOUT_S):
        raise DataUnavailableError(
            _missing_message(cls, root, f"download failed: {urlparse(cls.url).hostname} is not reachable")
        )
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NETWORK_TIMEOUT_S)
    try:
        root.mkdir(parents=True, exist_ok=True)
        download_url(cls.url, str(root), cls.filename, cls.tgz_md5)
    except Exception as err:  # any network / checksum failure means the same thing to the user
        raise DataUnavailableError(_missing_message(cls, root, f"download failed ({err})")) from err
    finally:
        socket.setdefaulttimeout(previous)


def _ensure_extracted(cls, root: Path, download: bool) -> None:
    from torchvision.datasets.utils import check_integrity, extract_archive

    if (root / cls.base_folder).is_dir() and _extracted_ok(cls, root):
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
    extract_archive(str(archive), str(root))
    if not _extracted_ok(cls, root):
        raise DataUnavailableError(_missing_message(cls, root, f"{archive} did not unpack to {cls.base_folder}/"))


def _extracted_ok(cls, root: Path) -> bool:
    """Every batch file of the extracted folder is present with its published md5."""
    from torchvision.datasets.utils import check_integrity

    return all(
        check_integrity(str(root / cls.base_folder / fname), md5)
        for fname, md5 in cls.train_list + cls.test_list
    )


def load_cifar(name: str, root: str | Path | None, *, download: bool = False) -> RawDataset:
    """CIFAR-10 or CIFAR-100: images uint8 [50000|10000, 32, 32, 3], fine labels.

    root None means data/raw/<name> under the working directory.
    """
    cls = _dataset_class(name)
    root = Path(root) if root is not None else Path("data") / "raw" / name
    root = root.expanduser().resolve()
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
