"""What every stage entry shares: a small argument parser and expected errors as one line, exit 2."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys


def stage_parser(kind: str, doc: str | None, params: bool = True) -> argparse.ArgumentParser:
    """The parser of `python -m rescom.stages.<kind>`, with the profile's --params file unless params=False."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    parser = argparse.ArgumentParser(prog=f"python -m rescom.stages.{kind}", description=(doc or "").strip())
    if params:
        parser.add_argument("--params", default="params.yaml", help="The profile's params file.")
    return parser


@contextlib.contextmanager
def one_line_errors():
    """A bad config, missing data or file, existing run or NaN loss ends the stage with one line, exit 2
    (what `rescom` prints for the same errors; rescom/cli/common.py)."""
    from rescom.config import ConfigError
    from rescom.data.sources.base import DataUnavailableError
    from rescom.errors import NonFiniteLossError, RunExistsError

    try:
        yield
    except (ConfigError, DataUnavailableError, RunExistsError, NonFiniteLossError, FileNotFoundError,
            ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
