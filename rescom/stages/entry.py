"""What every stage entry shares: a small argument parser and expected errors as one line, exit 2."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys


def stage_main(kind: str, doc: str | None, run, argv: list[str] | None, *arguments, params: bool = True) -> None:
    """`python -m rescom.stages.<kind>`: parse the profile's --params (unless params=False) and each
    (flags, argparse options) of `arguments`, call run(**parsed) and print the line it returns."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    parser = argparse.ArgumentParser(prog=f"python -m rescom.stages.{kind}", description=(doc or "").strip())
    if params:
        parser.add_argument("--params", default="params.yaml", help="The profile's params file.")
    for flags, options in arguments:
        parser.add_argument(*flags, **options)
    parsed = parser.parse_args(argv)
    with one_line_errors():
        print(run(**vars(parsed)))


@contextlib.contextmanager
def one_line_errors():
    """A bad config, missing data or file, existing run or NaN loss ends the stage with one line, exit 2
    (what `rescom` prints for the same errors; rescom/cli/common.py)."""
    from rescom.config import ConfigError
    from rescom.data.sources.base import DataUnavailableError
    from rescom.errors import NonFiniteLossError, RunExistsError, TrackingUnavailableError

    try:
        yield
    except (ConfigError, DataUnavailableError, RunExistsError, NonFiniteLossError, TrackingUnavailableError, FileNotFoundError,
            ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
