"""Which pipeline stages may train in one process, and the command that trains them as one pack.

The interface of the pipeline executor (`rescom repro --pack K`): `pack_key(cmd)` groups stage
commands (the interpolated `cmd` strings of dvc.yaml) that may share a process; `pack_command(cmds,
results_path)` is the argv of that process. It runs `rescom pipeline train-pack`, which trains every
stage's run as its training stage (rescom.stages.train) would (resuming an interrupted checkpoint of the same config
and code) and writes `{cmd: {"ok": bool, "error": str}}` to results_path, rewritten as each run
ends, so a pack stopped midway still records the stages that finished. One failed run does not stop
the others. Exit status: 0 when every stage is ok, 1 when one failed (the results say which), 2 for
bad arguments (no results written).
"""

from __future__ import annotations

import json
import shlex
import traceback
from dataclasses import dataclass
from pathlib import Path

@dataclass(frozen=True)
class TrainStage:
    """A parsed `python -m rescom.stages.train --params P --table T --item axis=value ...` command."""

    params: str
    table: str
    item: dict[str, str]


def parse_train_command(cmd: str) -> TrainStage | None:
    """The training stage a dvc.yaml cmd runs, or None for any other command (or one it cannot read)."""
    from rescom.pipeline.dvcfile import stage_command

    entry = shlex.split(stage_command("train", ""))  # the training stage's cmd, as dvc.yaml writes it
    try:
        words = shlex.split(cmd)
    except ValueError:
        return None
    if words[:len(entry)] != entry:
        return None
    params, table, item = "params.yaml", None, {}
    rest = words[len(entry):]
    while rest:
        option, *rest = rest
        name, equals, inline = option.partition("=")
        if equals:
            value = inline
        elif rest:
            value, *rest = rest
        else:
            return None
        if name == "--params":
            params = value
        elif name == "--table":
            table = value
        elif name == "--item" and "=" in value:
            axis, _, axis_value = value.partition("=")
            item[axis] = axis_value
        else:
            return None
    return TrainStage(params, table, item) if table else None


def pack_key(cmd: str) -> str | None:
    """Stages with the same non-None key may train in one process: training stages of the same params
    file whose runs ask for the same device (engine.pack: interleaved runs may differ in any other key:
    method, beta, Q_p/Q_n, queue, seed, dataset). None for prepare, analysis and report stages."""
    stage = parse_train_command(cmd)
    if stage is None:
        return None
    try:
        from rescom.pipeline.catalogue import find_run, load_profile
        from rescom.pipeline.runner import run_config

        profile = load_profile(stage.params)
        device = run_config(profile, find_run(profile, stage.table, stage.item)).run.device
    except Exception:  # noqa: BLE001  (a stage that cannot be read runs alone and reports its own error)
        return None
    return f"rescom-train-pack|{Path(stage.params).as_posix()}|device={device}"


def pack_command(cmds: list[str], results_path: str) -> list[str]:
    """argv of one process training the stages of cmds (all of one pack_key) as one pack."""
    stages = [parse_train_command(cmd) for cmd in cmds]
    if not cmds or any(stage is None for stage in stages):
        raise ValueError("pack_command: every command must be a training stage (python -m rescom.stages.train)")
    if len({stage.params for stage in stages}) != 1:
        raise ValueError("pack_command: the stages of a pack share one params file (see pack_key)")
    argv = ["rescom", "pipeline", "train-pack", "--params", stages[0].params, "--results", results_path]
    for cmd in cmds:
        argv += ["--stage", cmd]
    return argv


def train_stages(params_path: str, cmds: list[str], results_path: str | Path) -> dict[str, dict]:
    """Train the stages' runs as one pack; {cmd: {"ok", "error"}}, also written to results_path."""
    from rescom.config import ConfigError
    from rescom.engine.train import train_pack
    from rescom.pipeline.runner import table_run_start

    results_path = Path(results_path)
    results: dict[str, dict] = {}
    configs, starts, owners = [], [], []
    for cmd in cmds:
        stage = parse_train_command(cmd)
        if stage is None or stage.params != params_path:
            raise ConfigError(f"--stage {cmd!r}: not a `python -m rescom.stages.train --params {params_path}` command")
        try:
            config, start = table_run_start(stage.params, stage.table, stage.item)
        except Exception as error:  # noqa: BLE001  (this stage fails; the others train)
            results[cmd] = {"ok": False, "error": _failure(error)}
            continue
        configs.append(config)
        starts.append(start)
        owners.append(cmd)
    _write_results(results_path, results)
    if not configs:
        return results
    def record(run, outcome) -> None:
        cmd = next(c for c, config in zip(owners, configs, strict=True) if _run_dir(config) == outcome.run_dir)
        error = outcome.error
        results[cmd] = {"ok": error is None, "error": "" if error is None else _failure(error)}
        _write_results(results_path, results)

    try:
        train_pack(configs, starts, setup_errors_stop_all=False, on_outcome=record)
    except Exception as error:  # noqa: BLE001  (the pack as a whole cannot train: too large, two devices)
        for cmd in owners:
            results.setdefault(cmd, {"ok": False, "error": _failure(error)})
        _write_results(results_path, results)
    return results


def _failure(error: BaseException) -> str:
    """A failed stage's one-line error for the results file; a bug (not an ExpectedError) also prints its
    traceback to the stage's log (stderr), as a solo stage would."""
    from rescom.errors import ExpectedError

    if not isinstance(error, ExpectedError):
        traceback.print_exception(error)
    return f"{type(error).__name__}: {error}"


def _run_dir(config) -> Path:
    from rescom.engine.run import run_name

    return Path(config.run.runs_dir) / run_name(config)


def _write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
