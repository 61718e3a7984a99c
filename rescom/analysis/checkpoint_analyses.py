"""Analyses of trained checkpoints: vanishing gradients (Fig. 1 right), similarity distributions (Fig. 5).

Both embed images with a run's trained network in eval mode with the evaluation transform, write a
CSV and a PNG, and log them to the run's MLflow run under ``analysis/`` when it has one.

Embeddings: the projection head's z (l2-normalised, as in training) when the run has one; runs
without a projection head (ce, bs) fall back to the l2-normalised encoder feature f / ||f||, and
every output says which was used (``embedding`` column / key).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from rescom.analysis.gradients import gradient_by_similarity_rank
from rescom.analysis.similarity import GROUPS, positive_pair_similarities

PROJECTION = "projection"
ENCODER = "encoder (l2-normalised; run has no projection head)"
QUEUE_SOURCES = ("auto", "queue", "batch")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


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
    device = select_device(config.run.device) if device is None else torch.device(device)
    parts = build_components(config, data.class_counts, data.channels, device)
    parts.model.load_state_dict(state["components"]["model"])
    parts.model.eval()
    return config, data, parts.model, state


@torch.no_grad()
def embed(model, loader, device: torch.device, limit: int | None = None,
          channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(embeddings [N, D] float32 CPU, labels [N], which embedding) of a loader's images, eval mode.

    ``limit``: stop after this many batches.
    """
    model.eval()
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


def _train_eval_loader(config, data, batch_size: int, seed: int):
    """Training images under the *evaluation* transform, in a seeded shuffled order, drop_last."""
    from torch.utils.data import DataLoader

    from rescom.data.loading.datasets import SingleViewDataset
    from rescom.data.augmentation.pil.transforms import eval_transform
    from rescom.data.preparation.run_data import recipe_for

    dataset = SingleViewDataset(data.train, eval_transform(recipe_for(config.data), data.channels), data.channels)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed), num_workers=config.data.workers)


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


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
        raise ValueError(f"MLflow run {run_id} is not in the store {uri} (set MLFLOW_TRACKING_URI to the "
                         f"store the run was trained with); the analysis files are written") from err
    repository = artifact_repository(client, run_id)
    for path in paths:
        repository.log_artifact(str(path), "analysis")
    return f"logged to MLflow run {run_id} under analysis/"


def _merge_rank_results(results: list[dict]) -> dict:
    """Count-weighted mean of several gradient_by_similarity_rank results, rank by rank."""
    out: dict = {}
    for name in ("positive", "negative"):
        n = max((r[f"{name}_count"].size for r in results), default=0)
        count, grad, sim = np.zeros(n), np.zeros(n), np.zeros(n)
        for r in results:
            c = r[f"{name}_count"]
            count[: c.size] += c
            grad[: c.size] += r[name] * c
            sim[: c.size] += r[f"{name}_similarity"] * c
        safe = np.maximum(count, 1)
        out[name], out[f"{name}_similarity"] = grad / safe, sim / safe
        out[f"{name}_count"] = count.astype(np.int64)
    return out


def _write_gradient_csv(path: Path, result: dict, embedding: str, source: str) -> Path:
    n = max(result["positive"].size, result["negative"].size)
    keys = ("positive", "negative", "positive_similarity", "negative_similarity", "positive_count",
            "negative_count")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)  # the mean |grad| columns are positive_grad and negative_grad
        writer.writerow(("rank", *(f"{k}_grad" if k in ("positive", "negative") else k for k in keys), "embedding",
                         "keys"))
        for rank in range(n):  # a shorter column (fewer ranks of that kind) leaves its cells empty
            cells = ("" if rank >= result[k].size else int(result[k][rank]) if k.endswith("count")
                     else f"{result[k][rank]:.6g}" for k in keys)
            writer.writerow([rank, *cells, embedding, source])
    return path


def gradient_analysis(checkpoint, *, num_batches: int = 8, batch_size: int = 128, queue_source: str = "auto",
                      out_dir=None, seed: int = 0, device: str | None = None) -> dict:
    """Mean |dL/ds| of Eq. 1 by similarity rank for a trained run (paper Fig. 1 right).

    Queries: ``num_batches`` batches of ``batch_size`` training images (seeded shuffle, evaluation
    transform), embedded by the trained network. Keys, by ``queue_source``:
      queue  the run's queue as checkpointed (queue_keys / queue_labels; FIFO slots never written
             keep label -1 and count as negatives, as in training);
      batch  for each query batch, the embeddings of the other sampled batches (needs num_batches >= 2);
      auto   queue when the run has one, else batch.
    Temperature: the run's method.temperature.

    Writes ``gradient_by_rank.csv`` and ``gradient_by_rank.png`` in ``out_dir`` (default: an
    ``analysis`` folder beside the checkpoint). Returns {"result", "paths", "embedding", "keys",
    "num_queries", "num_keys", "temperature", "mlflow"}.
    """
    if queue_source not in QUEUE_SOURCES:
        raise ValueError(f"queue_source must be one of {', '.join(QUEUE_SOURCES)}, got {queue_source!r}")
    if num_batches < 1 or batch_size < 1:
        raise ValueError(f"num_batches and batch_size must be >= 1, got {num_batches}, {batch_size}")
    config, data, model, state = load_run_state(checkpoint, device)
    queue_state = state["components"].get("queue")
    source = ("queue" if queue_state is not None else "batch") if queue_source == "auto" else queue_source
    if source == "queue" and queue_state is None:
        raise ValueError(f"{checkpoint}: the run ({config.method_name}) has no queue; use queue_source batch")
    if source == "batch" and num_batches < 2:
        raise ValueError("queue_source batch takes the keys from the other sampled batches: num_batches must be >= 2")
    if batch_size > len(data.train.labels):
        raise ValueError(f"batch_size {batch_size} is larger than the {len(data.train.labels)} training images")
    loader = _train_eval_loader(config, data, batch_size, seed)
    z, y, embedding = embed(model, loader, _device_of(model), num_batches, config.run.channels_last)
    tau = config.method.temperature
    if source == "queue":
        keys, key_labels = queue_state["queue_keys"].float(), queue_state["queue_labels"]
        if embedding != PROJECTION or keys.shape[1] != z.shape[1]:
            raise ValueError(f"queue keys [{keys.shape[1]}] and embeddings [{z.shape[1]}] do not match")
        result = gradient_by_similarity_rank(z, y, keys, key_labels, tau)
        num_keys = keys.shape[0]
    else:
        b = batch_size
        batches = z.shape[0] // b
        if batches < 2:
            raise ValueError(f"queue_source batch needs >= 2 batches of {b}; the training set gave {batches}")
        parts = []
        for i in range(batches):
            others = torch.cat([z[: i * b], z[(i + 1) * b :]]), torch.cat([y[: i * b], y[(i + 1) * b :]])
            parts.append(gradient_by_similarity_rank(z[i * b : (i + 1) * b], y[i * b : (i + 1) * b], *others, tau))
        result = _merge_rank_results(parts)
        num_keys = (batches - 1) * b
    out = Path(out_dir) if out_dir is not None else Path(checkpoint).parent / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    from rescom.analysis.figures import plot_gradient_by_rank, run_context

    keys_text = "the run's queue" if source == "queue" else "other training images"
    title = (f"{config.method_name} ({run_context(config)}): |dL/ds| by similarity rank\n(tau {tau:g}, {z.shape[0]} queries, "
             f"{num_keys} keys from {keys_text}, {'z' if embedding == PROJECTION else 'f/|f|'})")
    paths = [_write_gradient_csv(out / "gradient_by_rank.csv", result, embedding, source),
             plot_gradient_by_rank(result, out / "gradient_by_rank.png", title=title)]
    return {"result": result, "paths": paths, "embedding": embedding, "keys": source,
            "num_queries": int(z.shape[0]), "num_keys": int(num_keys), "temperature": tau,
            "mlflow": log_analysis_artifacts(mlflow_run_id(checkpoint, state), paths)}


def similarity_summary(label: str, embedding: str, groups: Mapping[str, np.ndarray]) -> list[dict]:
    """One row per shot group: method, embedding, group, n_pairs, mean, std and quantiles (empty if no pair)."""
    rows = []
    for group in GROUPS:
        values = np.asarray(groups.get(group, []), dtype=np.float64)
        row = {"method": label, "embedding": embedding, "group": group, "n_pairs": int(values.size)}
        stats = {"mean": values.mean(), "std": values.std()} if values.size else {"mean": None, "std": None}
        stats |= {f"q{round(q * 100):02d}": float(np.quantile(values, q)) if values.size else None for q in QUANTILES}
        row.update({k: (None if v is None else round(float(v), 6)) for k, v in stats.items()})
        rows.append(row)
    return rows


def similarity_analysis(checkpoints: Mapping[str, str | Path], out_dir, *, many: int = 100, few: int = 20,
                        device: str | None = None) -> dict:
    """Positive-pair cosine similarity of test images by shot group, per run (paper Fig. 5).

    ``checkpoints``: label -> checkpoint path. Each run's test set is embedded (see the module
    docstring) and its same-class pairs are grouped by that run's training class counts (many >
    ``many`` images, few < ``few``). Writes ``similarity_summary.csv`` and ``similarity_hist.png`` in
    ``out_dir``; logs both to every run that has an MLflow id. Returns {"paths", "summary" (rows),
    "embedding" (label -> which), "mlflow" (label -> what happened)}.
    """
    from rescom.data.loading.loaders import test_loader

    if not checkpoints:
        raise ValueError("similarity_analysis needs at least one LABEL=CHECKPOINT")
    groups, rows, embeddings, run_ids = {}, [], {}, {}
    for label, checkpoint in checkpoints.items():
        config, data, model, state = load_run_state(checkpoint, device)
        z, y, kind = embed(model, test_loader(data, config.data, 256), _device_of(model),
                           channels_last=config.run.channels_last)
        groups[label] = positive_pair_similarities(z, y, data.class_counts, many=many, few=few)
        rows += similarity_summary(label, kind, groups[label])
        embeddings[label] = kind
        run_ids[label] = mlflow_run_id(checkpoint, state)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "similarity_summary.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    from rescom.analysis.figures import plot_similarity_histograms, run_context

    encoder_runs = [label for label, kind in embeddings.items() if kind != PROJECTION]
    title = f"Positive-pair cosine similarity on the test set, {run_context(config)} (projection z"
    title += f"; f/|f| for {', '.join(encoder_runs)})" if encoder_runs else ")"
    present = {label: {g: v for g, v in per.items() if v.size} for label, per in groups.items()}
    paths = [csv_path, plot_similarity_histograms(present, out / "similarity_hist.png", title=title)]
    logged = {label: log_analysis_artifacts(run_id, paths) for label, run_id in run_ids.items()}
    return {"paths": paths, "summary": rows, "embedding": embeddings, "mlflow": logged}
