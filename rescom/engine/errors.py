"""The training loop's expected failures, in a module of their own: the CLI's error handler
(`rescom.cli.common`) catches them in every command without importing the training code."""

from __future__ import annotations


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stops and keeps its last good checkpoint."""


class RunExistsError(RuntimeError):
    """A run directory already holds a checkpoint and neither resume nor overwrite was asked for."""
