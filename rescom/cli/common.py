"""Error handling shared by the command modules of rescom.cli: an expected error becomes one red line and exit status 2.

Every other module of the package may import this one; it imports none of them.
"""

from __future__ import annotations

from functools import wraps

import typer


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def expected_errors(fn):
    """Run fn; a bad config, missing data or file, existing run or NaN loss exits 2 with one line."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        from rescom.config import ConfigError
        from rescom.data.sources.base import DataUnavailableError
        from rescom.errors import NonFiniteLossError, RunExistsError, TrackingUnavailableError

        try:
            return fn(*args, **kwargs)
        except (ConfigError, DataUnavailableError, RunExistsError, NonFiniteLossError, TrackingUnavailableError, FileNotFoundError,
                ValueError) as err:
            fail(str(err))
    return wrapper
