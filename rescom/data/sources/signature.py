"""A cheap signature of a raw source's files, so a prepared set can be checked against its source.

A prepared set is reused across runs; without this, a run with another --data-root (or changed raw
files) would silently train on the set made from the old ones. The signature reads no image: it is
built from what identifies the data without decoding it (each source's `fingerprint`, named by its
registry entry), and it names no absolute path where the content alone decides, so identical data
on two machines gives one signature.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from rescom.data.sources.registry import check_root, source


def source_signature(name: str, root: str | Path | None) -> str:
    """sha256 hex identifying what load_source(name, root) would read; DataUnavailableError if absent."""
    entry = source(name)
    check_root(root, name)
    digest = hashlib.sha256(name.encode())
    entry.fingerprint(digest, name, root)
    return digest.hexdigest()
