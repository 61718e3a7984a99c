"""How a run begins (RunStart), with the checks that make continuing safe: same config but for
RESUME_CHANGEABLE keys, same data, same training code, same subsample rule."""

from __future__ import annotations

from dataclasses import dataclass

from rescom.config import RESUME_CHANGEABLE, ConfigError, TrainConfig, differing_keys, flatten
from rescom.data.preparation import run_data
from rescom.data.preparation.prepared import PreparedData
from rescom.engine.checkpoint import load_checkpoint, training_code_identity
from rescom.engine.components import Components
from rescom.errors import RunExistsError
from rescom.engine.outputs import read_run_log
from rescom.engine.run_state import RunPaths, RunState
from rescom.progress import console


@dataclass(frozen=True)
class RunStart:
    """How a run begins: continue its checkpoint (resume), replace it (overwrite), or neither."""

    resume: bool = False
    overwrite: bool = False
    allow_change: tuple[str, ...] = ()


def refuse_existing_run(paths: RunPaths, start: RunStart) -> None:
    """A run directory that holds a run is refused unless resumed or overwritten: before any data is
    read or prepared, so a refused run writes nothing."""
    if not start.resume and not start.overwrite and paths.checkpoint.exists():
        raise RunExistsError(f"{paths.root} already holds a run; pass --resume to continue it or --overwrite")


def initial_state(config: TrainConfig, paths: RunPaths, parts: Components, start: RunStart,
                  data: PreparedData) -> tuple[RunState, str]:
    """(state to continue from, the allowed changes made on resume in words, '' if none); on resume
    the components are loaded from the checkpoint."""
    if not start.resume:  # Run refused an existing run directory already
        return RunState(), ""
    checkpoint = load_checkpoint(paths.checkpoint)
    if checkpoint.get("code") != training_code_identity():
        raise ConfigError(f"--resume: {paths.checkpoint} was written by other training code (rescom/engine, "
                          "losses, models, data or config changed since); --overwrite trains the run again")
    saved = checkpoint["config"]
    differing = differing_keys(config, saved, start.allow_change)
    if differing:
        changeable = [k for k in differing if k in RESUME_CHANGEABLE]
        hint = f" (to change them on purpose: --allow-change {' --allow-change '.join(changeable)})" if changeable else ""
        raise ConfigError(f"--resume: the config differs from the checkpoint's at {', '.join(differing)}{hint}")
    run_data.check_trained_rule(checkpoint, config.data, f"--resume: {paths.checkpoint}")
    trained_on = checkpoint.get("data_fingerprint")
    if trained_on and trained_on != data.meta.get("fingerprint"):
        raise run_data.DataMismatchError(
            f"--resume: the prepared data {run_data.prepared_dir(config.data)} is not the set {paths.checkpoint} "
            "was trained on (dataset fingerprints differ); check data.root and the raw files")
    parts.load_state_dict(checkpoint["components"])
    saved_flat, now = flatten(saved), config.flat()
    changes = "; ".join(f"{k}: {saved_flat.get(k)} -> {now[k]}" for k in start.allow_change
                        if saved_flat.get(k) != now[k])
    if changes:
        console.log(f"resuming {paths.root} after epoch {checkpoint['epoch']} with {changes}")
        changes = f"after epoch {checkpoint['epoch']}: {changes}"
    log = read_run_log(paths.run_log)
    seconds = list(log.get("epoch_seconds", []))[:checkpoint["epoch"]]
    return RunState(checkpoint["epoch"], checkpoint["history"], log.get("mlflow_run_id"), seconds), changes
