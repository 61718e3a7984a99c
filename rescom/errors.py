"""The errors a user can cause and fix, under one base class: `ExpectedError`.

`rescom` (rescom/cli/common.py) and the stage entries (rescom/stages/entry.py) catch ExpectedError
only: its message becomes one red line and exit status 2. Any other exception is a bug and keeps its
traceback, a ValueError from a loss or from pandas included. So raise a subclass where the cause is
known, with a message that names the key, option or file to fix.

Subclasses beside the code that knows the cause: `ConfigError` (rescom/config.py), `CheckpointError`
(engine/checkpoint.py), `DataUnavailableError` and `BadFileError` (data/sources/base.py). Each
subclass also derives from the builtin error it is a case of (ValueError, FileNotFoundError,
RuntimeError), for code that calls the library directly. This module imports nothing, so any module
may import it.
"""

from __future__ import annotations


class ExpectedError(Exception):
    """An error the user can cause and fix: printed as one line, exit status 2."""


class UsageError(ExpectedError, ValueError):
    """A bad command-line argument or option, or a setting the command cannot use (an entry of a user's
    file, a DVC remote); the message names it."""


class MissingFileError(ExpectedError, FileNotFoundError):
    """An input file or folder that is not there; the message names it and what would make it."""


class NonFiniteLossError(ExpectedError, RuntimeError):
    """The loss became NaN or inf; the run stops and keeps its last good checkpoint."""


class RunExistsError(ExpectedError, RuntimeError):
    """A run directory already holds a checkpoint and neither resume nor overwrite was asked for."""


class TrackingUnavailableError(ExpectedError, RuntimeError):
    """The MLflow tracking server does not answer (before a run starts, or gone during one)."""
