"""What the analyses of trained checkpoints share (gradients.py: Fig. 1 right, similarity.py: Fig. 5,
inference_cost.py: Tables 5 and 8): a run's trained network, its embeddings, its MLflow run.

The analyses embed images with a run's trained network in eval mode with the evaluation transform,
write a CSV and a PNG, and log them to the run's MLflow run under ``analysis/`` when it has one.

Embeddings: the projection head's z (l2-normalised, as in training) when the run has one; runs
without a projection head (ce, bs) fall back to the l2-normalised encoder feature f / ||f||, and
every output says which was used (``embedding`` column / key).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rescom.errors import UsageError

PROJECTION = "projection"
ENCODER = "encoder (l2-normalised; run has no projection head)"


def as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def load_run_state(checkpoint_path, device: str | torch.device | None = None):
    """(config, data, model, state): the resolved config, prepared data, trained ResComNet (eval mode).

    ``device``: None uses the run's ``run.device``. ``state`` is the raw checkpoint dict.
    """
    from rescom.config import TrainConfig, apply_overrides, flatten
    from rescom.data.preparation import run_data
    from rescom.engine.checkpoint import load_checkpoint
    from rescom.engine.components import build_components
    from rescom.engine.hardware import select_device

    state = load_checkpoint(checkpoint_path)
    config = apply_overrides(TrainConfig(), flatten(state["config"]))
    run_data.check_trained_rule(state, config.data, checkpoint_path)
    # Read-only: a missing prepared set is built in memory, and one of other content is refused.
    data = run_data.get_data(config.data, persist=False, expected_fingerprint=state.get("data_fingerprint"))
    device = select_device(config.run.device if device is None else str(device))
    parts = build_components(config, data.class_counts, data.channels, device)
    parts.model.load_state_dict(state["components"]["model"])
    parts.model.eval()
    return config, data, parts.model, state


@torch.no_grad()
def embed(model, loader, limit: int | None = None,
          channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(embeddings [N, D] float32 CPU, labels [N], which embedding) of a loader's images, eval mode, on
    the model's device.

    ``limit``: stop after this many batches.
    """
    model.eval()
    device = next(model.parameters()).device
    out, labels = [], []
    kind = PROJECTION if model.projection is not None else ENCODER
    for n, (images, target) in enumerate(loader):
        if limit is not None and n >= limit:
            break
        images = images.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        feature = model.encoder(images)
        z = model.projection(feature) if model.projection is not None else F.normalize(feature, dim=1)
        out.append(z.float().cpu())
        labels.append(target)
    return torch.cat(out), torch.cat(labels), kind


def mlflow_run_id(checkpoint_path, state: dict | None = None) -> str | None:
    """The run's MLflow id: from run_log.json beside the checkpoint; for runs written before the run
    log existed, from the checkpoint state or metrics.json. None if the run was not tracked."""
    from rescom.engine.outputs import RUN_LOG_NAME, read_run_log

    run_dir = Path(checkpoint_path).parent
    logged = read_run_log(run_dir / RUN_LOG_NAME).get("mlflow_run_id")
    if logged:
        return logged
    if state is not None and state.get("mlflow_run_id"):
        return state["mlflow_run_id"]
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        return json.loads(metrics.read_text()).get("mlflow_run_id")
    return None


def log_analysis_artifacts(run_id: str | None, paths: list[Path]) -> str:
    """Log paths to the MLflow run under ``analysis/``; returns what happened, in words.

    A run without an id (trained with run.track=false) is skipped; an id the store does not know is a
    ValueError naming the store (the files are written either way).
    """
    if not run_id:
        return "skipped: the run has no MLflow run id (trained with run.track=false)"
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        return "skipped: mlflow is not installed"
    from rescom.tracking import artifact_repository, default_tracking_uri

    uri = default_tracking_uri()
    client = MlflowClient(uri)
    try:
        client.get_run(run_id)
    except MlflowException as err:
        raise UsageError(f"MLflow run {run_id} is not in the store {uri} (set MLFLOW_TRACKING_URI to the "
                         f"store the run was trained with); the analysis files are written") from err
    repository = artifact_repository(client, run_id)
    for path in paths:
        repository.log_artifact(str(path), "analysis")
    return f"logged to MLflow run {run_id} under analysis/"
