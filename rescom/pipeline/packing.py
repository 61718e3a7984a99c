"""Which pipeline stages may train in one process, and the command that trains them as one pack.

The interface of the pipeline executor (`rescom repro --pack K`), in terms of each DVC stage's
record (its `meta` in dvc.yaml as DVC interpolated it, stage_record.py), never its command:
`pack_key(meta)` groups the stages that may share a process; `pack_command({stage name: meta},
results_path)` is the argv of that process. It runs `rescom pipeline train-pack`, which trains every
stage's run as its training stage (rescom.stages.train) would (resuming an interrupted checkpoint of
the same config and code) and writes `{stage name: {"ok": bool, "error": str}}` to results_path,
rewritten as each run ends, so a pack stopped midway still records the stages that finished. One
failed run does not stop the others. Exit status: 0 when every stage is ok, 1 when one failed (the
results say which), 2 for bad arguments (no results written).
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from pathlib import Path

from rescom.pipeline.stage_record import StageRecord


@dataclass(frozen=True)
class TrainStage:
    """One training stage: its DVC stage name and its record's params file, table and axis values."""

    name: str
    params: str
    table: str
    item: dict

    @classmethod
    def from_json(cls, text: str, params: str) -> TrainStage:
        """The stage of a `rescom pipeline train-pack --stage` (written by `pack_command`)."""
        from rescom.config import ConfigError

        try:
            stage = json.loads(text)
            return cls(stage["name"], params, stage["table"], dict(stage["item"]))
        except (ValueError, TypeError, KeyError) as error:
            raise ConfigError(f"--stage {text!r}: expected {{\"name\": ..., \"table\": ..., \"item\": {{...}}}} "
                              f"({type(error).__name__}: {error})") from None


def train_stage(name: str, meta) -> TrainStage | None:
    """The training stage a DVC stage's record describes; None for any other stage (or one without a record)."""
    record = StageRecord.from_meta(meta)
    if record is None or record.kind != "train":
        return None
    arguments = record.arguments
    return TrainStage(name, arguments["params"], arguments["table"], dict(arguments.get("item") or {}))


def pack_key(meta) -> str | None:
    """Stages with the same non-None key may train in one process: training stages of the same params
    file whose runs ask for the same device (engine.pack: interleaved runs may differ in any other key:
    method, beta, Q_p/Q_n, queue, seed, dataset). None for prepare, analysis and report stages."""
    stage = train_stage("", meta)
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


def pack_command(metas: dict[str, dict], results_path: str) -> list[str]:
    """argv of one process training the stages of metas (stage name -> record, all of one pack_key) as one pack."""
    stages = [train_stage(name, meta) for name, meta in metas.items()]
    if not stages or any(stage is None for stage in stages):
        raise ValueError("pack_command: every stage must be a training stage (its record's kind: train)")
    if len({stage.params for stage in stages}) != 1:
        raise ValueError("pack_command: the stages of a pack share one params file (see pack_key)")
    argv = ["rescom", "pipeline", "train-pack", "--params", stages[0].params, "--results", results_path]
    for stage in stages:
        argv += ["--stage", json.dumps({"name": stage.name, "table": stage.table, "item": stage.item})]
    return argv


def train_stages(stages: list[TrainStage], results_path: str | Path) -> dict[str, dict]:
    """Train the stages' runs as one pack; {stage name: {"ok", "error"}}, also written to results_path."""
    from rescom.engine.train import train_pack
    from rescom.pipeline.runner import table_run_start

    results_path = Path(results_path)
    results: dict[str, dict] = {}
    configs, starts, owners = [], [], []
    for stage in stages:
        try:
            config, start = table_run_start(stage.params, stage.table, stage.item)
        except Exception as error:  # noqa: BLE001  (this stage fails; the others train)
            results[stage.name] = {"ok": False, "error": _failure(error)}
            continue
        configs.append(config)
        starts.append(start)
        owners.append(stage.name)
    _write_results(results_path, results)
    if not configs:
        return results
    def record(run, outcome) -> None:
        name = next(n for n, config in zip(owners, configs, strict=True) if _run_dir(config) == outcome.run_dir)
        error = outcome.error
        results[name] = {"ok": error is None, "error": "" if error is None else _failure(error)}
        _write_results(results_path, results)

    try:
        train_pack(configs, starts, setup_errors_stop_all=False, on_outcome=record)
    except Exception as error:  # noqa: BLE001  (the pack as a whole cannot train: too large, two devices)
        for name in owners:
            results.setdefault(name, {"ok": False, "error": _failure(error)})
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
