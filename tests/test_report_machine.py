"""Report trees made on different kinds of machine: compared by structure, not by number."""

from __future__ import annotations

import json

import pytest

from typer.testing import CliRunner

from rescom.cli import app
from rescom.engine.hardware import NUMERIC_FLAGS
from rescom.report.machine import machine_fingerprint

runner = CliRunner()


def _tree(root, value, columns=("method", "last_test_all_mean", "best_epoch"), best_epoch=1):
    (root / "tables").mkdir(parents=True)
    rows = [",".join(columns), ",".join(["bs", str(value), str(best_epoch), "1"][:len(columns)])]
    (root / "tables" / "main.csv").write_text("\n".join(rows) + "\n")
    return root


def test_fingerprint_names_what_decides_cpu_float_results():
    fingerprint = machine_fingerprint()
    assert set(fingerprint) == {"torch", "cpu_capability", "cpu_flags", "threads"}
    assert set(fingerprint["cpu_flags"]) <= set(NUMERIC_FLAGS)
    json.dumps(fingerprint)  # written as tables/machine.json


def test_structure_only_ignores_numbers_but_not_missing_columns(tmp_path):
    a, b = _tree(tmp_path / "a", 10.0), _tree(tmp_path / "b", 12.5, best_epoch=2)  # integer cells too
    strict = runner.invoke(app, ["report", "diff", str(a), str(b), "--tolerance", "0.01"])
    assert strict.exit_code == 1 and "10.0 -> 12.5" in strict.output
    loose = runner.invoke(app, ["report", "diff", str(a), str(b), "--structure-only"])
    assert loose.exit_code == 0, loose.output
    c = _tree(tmp_path / "c", 10.0, columns=("method", "last_test_all_mean", "best_epoch", "n_seeds"))
    changed = runner.invoke(app, ["report", "diff", str(a), str(c), "--structure-only"])
    assert changed.exit_code == 1 and "columns differ" in changed.output


def test_diff_never_compares_the_wall_clock_timings_folder(tmp_path):
    a, b = _tree(tmp_path / "a", 10.0), _tree(tmp_path / "b", 10.0)
    (a / "timings" / "inference-cost").mkdir(parents=True)  # only one tree has it: the committed smoke tree has none
    (a / "timings" / "inference-cost" / "inference_cost.csv").write_text("model,ms_median\ninference,1.5\n")
    result = runner.invoke(app, ["report", "diff", str(a), str(b), "--tolerance", "0.01"])
    assert result.exit_code == 0 and "not compared: timings/" in result.output, result.output
    (b / "analysis").mkdir()  # an analysis CSV in one tree only is a difference
    (b / "analysis" / "pairs.csv").write_text("a\n1\n")
    result = runner.invoke(app, ["report", "diff", str(a), str(b), "--tolerance", "0.01"])
    assert result.exit_code == 1 and "only in" in result.output, result.output


@pytest.mark.parametrize(("flags", "bf16", "machine", "warned"), [
    ("fpu avx avx2", True, "x86_64", True),           # AVX2 only: torch emulates bf16
    ("fpu avx2 avx512f avx512_bf16", True, "x86_64", False),
    ("fpu avx2 amx_bf16 amx_tile", True, "x86_64", False),
    ("fpu avx avx2", False, "x86_64", False),         # fp32 runs are not concerned
    ("fp asimd bf16", True, "aarch64", False),        # the flags above are x86's: nothing to tell elsewhere
])
def test_bf16_training_warns_only_where_the_cpu_lacks_bf16_instructions(tmp_path, monkeypatch, flags, bf16, machine,
                                                                       warned):
    from rescom.config import TrainConfig
    from rescom.engine import hardware

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(hardware, "CPUINFO", cpuinfo)
    monkeypatch.setattr(hardware.platform, "machine", lambda: machine)
    config = TrainConfig()
    config.run.bf16, config.run.device = bf16, "cpu"
    message = hardware.emulated_bf16_warning(config)
    assert (message is not None) == warned
    if warned:
        assert "run.bf16" in message and "avx512_bf16" in message
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "absent")  # no /proc/cpuinfo: nothing is known
    assert hardware.emulated_bf16_warning(config) is None
