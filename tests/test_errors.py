"""Expected errors against bugs: an ExpectedError (rescom/errors.py) is one line and exit 2
(tests/cli_errors.py for each command's bad input); any other exception, a ValueError from inside
training included, keeps its traceback and exits with another status."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from rescom.config import ConfigError
from rescom.errors import ExpectedError, MissingFileError


def test_a_value_error_inside_training_is_a_bug_with_a_traceback_and_not_exit_2(workdir, tiny_folder):
    from test_train_cli import tiny_args

    # `rescom train` as the console script runs it, with a loss that fails as a programming error would.
    script = textwrap.dedent("""
        import sys
        import rescom.engine.step as step

        def broken_loss(*args, **kwargs):
            raise ValueError("logits [8, 4] and target [7] differ: planted bug")

        step.classifier_loss = broken_loss
        from rescom.cli import app
        sys.argv = ["rescom", *sys.argv[1:]]
        app()
    """)
    args = [str(a) for a in tiny_args(tiny_folder, epochs=1, extra=["--no-track"])]
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=workdir, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode not in (0, 2), done.stderr
    assert "Traceback (most recent call last)" in done.stderr, done.stderr
    assert "in broken_loss" in done.stderr and "ValueError: logits [8, 4] and target [7] differ" in done.stderr
    assert "error: logits" not in done.stderr  # not dressed up as the user's mistake


def test_a_stage_entry_prints_an_expected_error_as_one_line_and_lets_a_bug_through(capsys):
    from rescom.stages.entry import one_line_errors

    for error in (ConfigError("optim.lr: must be > 0, got 0"), MissingFileError("no checkpoint at x.pt")):
        with pytest.raises(SystemExit) as stopped, one_line_errors():
            raise error
        assert stopped.value.code == 2 and capsys.readouterr().err == f"error: {error}\n"
    for bug in (ValueError("a shape mismatch"), FileNotFoundError("an internal path"), KeyError("k")):
        with pytest.raises(type(bug)), one_line_errors():
            raise bug


def test_expected_errors_are_also_the_builtin_error_they_are_a_case_of():
    # Library callers may still catch ValueError / FileNotFoundError; the CLI catches ExpectedError only.
    from rescom.data.sources.base import BadFileError, DataUnavailableError
    from rescom.engine.checkpoint import CheckpointError

    for error, builtin in ((ConfigError, ValueError), (CheckpointError, ValueError), (BadFileError, ValueError),
                           (DataUnavailableError, RuntimeError), (MissingFileError, FileNotFoundError)):
        assert issubclass(error, ExpectedError) and issubclass(error, builtin), error
    assert not issubclass(ValueError, ExpectedError)
