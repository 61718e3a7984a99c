"""Error handling shared by the command modules of rescom.cli: an expected error becomes one red line and exit status 2.

Every other module of the package may import this one; it imports only rescom.errors, which imports nothing.
"""

from __future__ import annotations

from functools import wraps

import typer

from rescom.errors import ExpectedError


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def expected_errors(fn):
    """Run fn; an ExpectedError (rescom/errors.py) exits 2 with one line, anything else keeps its traceback."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ExpectedError as err:
            fail(str(err))
    return wrapper
