"""Every file a user hands the suite is untrusted: bad ones end in exit 2 and one line naming the file.

Each kind of file (checkpoint, config, image, split list, params file) is fed a garbage, a truncated
and an empty version; a checkpoint that pickles a callable must be refused before the callable runs.
"""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from rescom.cli import app
from rescom.engine.checkpoint import save_checkpoint

runner = CliRunner()


def invoke(args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *needles):
    """Exit 2, no traceback, a single `error:` line that contains every needle."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


def _bad_versions(good: bytes) -> dict[str, bytes]:
    return {"garbage": b"\x00\xffnot a file of this kind\n" * 20, "truncated": good[: len(good) // 2], "empty": b""}


# ---------------------------------------------------------------- checkpoints


class _WritesMarker:
    """Unpickling this opens (creates) a file: the side effect a crafted checkpoint would have."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _valid_checkpoint_bytes(tmp_path) -> bytes:
    path = tmp_path / "valid.pt"
    save_checkpoint({"config": {}, "components": {"model": {"w": torch.zeros(64, 64)}}, "epoch": 1,
                     "history": [], "mlflow_run_id": None}, path)
    return path.read_bytes()


def test_checkpoint_with_pickled_callable_is_refused_without_running_it(workdir):
    marker = workdir / "side-effect-ran"
    crafted = workdir / "crafted.pt"
    torch.save({"config": {}, "components": {}, "epoch": 1, "history": [], "payload": _WritesMarker(marker)}, crafted)
    result = invoke(["evaluate", crafted])
    assert_one_line_error(result, crafted, "refused")
    assert not marker.exists()
    assert not (workdir / "data").exists()


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_bad_checkpoint_is_one_line_for_evaluate_and_analyze(workdir, kind):
    path = workdir / f"{kind}.pt"
    path.write_bytes(_bad_versions(_valid_checkpoint_bytes(workdir))[kind])
    assert_one_line_error(invoke(["evaluate", path]), path)
    assert_one_line_error(invoke(["analyze", "gradients", path]), path)
    assert_one_line_error(invoke(["analyze", "similarity", "--run", f"a={path}", "--out", workdir / "sim"]), path)


def test_torch_file_that_is_not_a_run_checkpoint(workdir):
    path = workdir / "tensor.pt"
    torch.save(torch.zeros(3), path)
    assert_one_line_error(invoke(["evaluate", path]), path, "not a rescom checkpoint")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_bad_checkpoint_under_resume_names_the_file(workdir, tiny_folder, kind):
    from test_train_cli import tiny_args

    checkpoint = workdir / "runs" / "broken" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(_bad_versions(_valid_checkpoint_bytes(workdir))[kind])
    result = invoke(tiny_args(tiny_folder, epochs=1, extra=["--set", "run.run_name=broken", "--resume"]))
    assert_one_line_error(result, "runs/broken/checkpoint.pt")
