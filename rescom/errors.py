"""The training loop's expected failures, outside the engine: the CLI's error handler
(`rescom.cli.common`) and the stage entries (`rescom.stages.entry`) catch them in every command
without importing the training code."""

from __future__ import annotations


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stops and keeps its last good checkpoint."""


class RunExistsError(RuntimeError):
    """A run directory already holds a checkpoint and neither resume nor overwrite was asked for."""


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking server does not answer (before a run starts, or gone during one)."""
