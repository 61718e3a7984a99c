"""A run's named state (epochs done, history, MLflow run, epoch seconds) and its directory's files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rescom.engine.outputs import RUN_LOG_NAME


@dataclass
class RunState:
    """Where a run stands: the checkpoint's epoch and history, plus what the run log keeps beside it
    (MLflow run id, each epoch's seconds), which the checkpoint does not hold so that its bytes are
    the same every time the run is repeated."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    mlflow_run_id: str | None = None
    epoch_seconds: list[float] = field(default_factory=list)


@dataclass
class RunPaths:
    """A run directory's files; run_log (wall-clock seconds, hardware, MLflow run id) is no DVC output
    (outputs.run_log)."""

    root: Path

    def __post_init__(self) -> None:
        self.checkpoint, self.metrics, self.run_log = (self.root / name for name in
                                                       ("checkpoint.pt", "metrics.json", RUN_LOG_NAME))
