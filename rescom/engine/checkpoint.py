"""Atomic checkpoints (a temporary file beside the target, renamed over it), read safely (load_checkpoint)."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

import torch

from rescom.errors import ExpectedError, MissingFileError

# What every checkpoint written by the training loop holds, and the type each must have.
REQUIRED_KEYS = {"config": dict, "components": dict, "epoch": int, "history": list}


class CheckpointError(ExpectedError, ValueError):
    """A checkpoint file that cannot be read: empty, truncated, not a torch file, or holding code."""


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write state to path so that a crash at any moment leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(unshared(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by save_checkpoint.

    A missing file is a MissingFileError naming it; an empty, truncated or foreign file, or one that
    pickles anything beyond tensors and plain containers, is a CheckpointError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty")
    try:
        # weights_only=True: a pickled callable is refused before it can run.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CheckpointError(f"checkpoint {path} cannot be read: {_load_failure(err)}") from None
    _check_structure(path, state)
    return state


def _load_failure(err: Exception) -> str:
    """One line saying why torch.load failed, without torch's multi-paragraph advice."""
    text = str(err)
    global_refused = next((line.strip() for line in text.splitlines() if "global" in line.lower()), None)
    if global_refused:  # a pickled class or function: what a crafted checkpoint uses to run code
        return (f"it pickles objects other than tensors and plain containers ({global_refused.rstrip('.')}); "
                "refused, loading them could run code")
    if "Weights only load failed" in text:
        return "not a torch checkpoint (unreadable pickle data)"
    if isinstance(err, EOFError):
        return "the file ends early (truncated)"
    if "zip archive" in text or "central directory" in text:
        return "not a complete torch file (truncated or another format)"
    first_line = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return first_line[:200]


def _check_structure(path: Path, state) -> None:
    """A file torch can read is still not a run checkpoint unless it has the training loop's keys."""
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is not a rescom checkpoint (holds {type(state).__name__}, not a dict)")
    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(state.get(key), kind):
            raise CheckpointError(f"checkpoint {path} is not a rescom checkpoint: "
                                  f"{key!r} is missing or not a {kind.__name__}")


def unshared(tree):
    """A copy of a checkpoint's state in which no object appears twice, so its pickle has one form.

    pickle writes a second reference to an object as a back-reference to the first: a live run's
    history rows hold equal key strings as separate objects, the same rows read back from a
    checkpoint share one, so a resumed run's file would have other bytes (equal tensors, other memo
    and serialization id). Rebuilt containers, fresh strings and cloned tensors pickle the same either way.
    """
    if isinstance(tree, dict):
        return {unshared(key): unshared(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(unshared(value) for value in tree)
    if isinstance(tree, str):
        return tree.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")  # a new object
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    return tree


@functools.cache
def training_code_identity() -> str:
    """sha256 of the code a training stage runs (its DVC code deps, rescom/stages/train.py's walk):
    a checkpoint is continued only by the training code that wrote it, and an edit elsewhere (CLI,
    report, executor) changes neither this nor the checkpoint's bytes."""
    from rescom.pipeline.code_deps import PACKAGE_ROOT, code_files

    repo, digest = PACKAGE_ROOT.parent, hashlib.sha256()
    for dep in code_files([("rescom.stages.train", "main")]):
        path = repo / dep
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(repo).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()
