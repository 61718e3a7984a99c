"""Contrastive gradients per key similarity (ResCom, arXiv 2203.11506, Fig. 1 right).

SupCon over a queue (Eq. 1), per anchor i with positives P_i among the keys, s_ij = z_i . k_j:

    L_i = -1/|P_i| sum_{p in P_i} log( exp(s_ip / tau) / sum_a exp(s_ia / tau) )

Its gradient with respect to one similarity decouples into positives and negatives
(p_ij = softmax_j(s_i / tau)):

    dL_i/ds_ij = (p_ij - 1/|P_i|) / tau   for a positive j,
    dL_i/ds_ij =  p_ij / tau              for a negative j.

Easy positives (high similarity) and easy negatives (low similarity) carry almost no gradient:
summed over a queue dominated by them, the useful signal vanishes, which motivates hard pair
mining (Eq. 5). Keys only: an anchor is not contrasted with itself or the other queries.

`gradient_analysis` measures it on a trained run (its queries embedded by the trained network,
checkpoint_analyses.py); `run_stage` is the pipeline's analysis stage.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from rescom.analysis.checkpoint_analyses import (PROJECTION, as_numpy, embed, load_run_state,
                                                 log_analysis_artifacts, mlflow_run_id)
from rescom.errors import UsageError

QUEUE_SOURCES = ("auto", "queue", "batch")


def similarity_gradients(query, labels, keys, key_labels, temperature: float):
    """Closed-form dL_i/ds_ij of Eq. 1 for every anchor i and key j.

    Args:
        query: z [B, D] (the caller normalises; used as given).
        labels: y [B] int.
        keys: k [M, D].
        key_labels: [M] int.
        temperature: tau > 0.

    Returns:
        sim [B, M] (s_ij), grad [B, M] (dL_i/ds_ij, float64), is_pos [B, M] (bool, y_i == label_j).
        Rows of anchors without a positive key are zero in grad: L_i is undefined and such anchors are
        left out of the loss (as SupCon does).
    """
    z = as_numpy(query).astype(np.float64)
    k = as_numpy(keys).astype(np.float64)
    y = as_numpy(labels).astype(np.int64).ravel()
    yk = as_numpy(key_labels).astype(np.int64).ravel()
    if z.ndim != 2 or k.ndim != 2 or z.shape[1] != k.shape[1]:
        raise ValueError(f"query [B, D] and keys [M, D] must share D, got {z.shape} and {k.shape}")
    if y.shape[0] != z.shape[0] or yk.shape[0] != k.shape[0]:
        raise ValueError(f"labels {y.shape} / key_labels {yk.shape} must match query {z.shape} / keys {k.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    sim = z @ k.T  # [B, M]
    logits = sim / temperature
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)  # softmax over the keys: [B, M]
    is_pos = y[:, None] == yk[None, :]
    num_pos = is_pos.sum(axis=1, keepdims=True)  # |P_i|: [B, 1]
    inv = np.divide(1.0, num_pos, out=np.zeros(num_pos.shape), where=num_pos > 0)
    grad = (p - is_pos * inv) / temperature
    grad[num_pos[:, 0] == 0] = 0.0  # anchor without positives: no loss term, no gradient
    return sim, grad, is_pos


def gradient_by_similarity_rank(query, labels, keys, key_labels, temperature: float) -> dict:
    """Mean |dL_i/ds_ij| over anchors as a function of a key's similarity rank.

    For each anchor, its positive keys are ranked by similarity (rank 0 = most similar) and so are its
    negative keys, separately. Entry r of ``positive`` is the mean |grad| of the rank-r positive over
    the anchors that have at least r+1 positives (likewise ``negative``). Anchors without a positive
    are skipped.

    Returns a dict of 1-D float arrays, indexed by rank: ``positive`` and ``negative`` (mean |grad|),
    ``positive_similarity`` and ``negative_similarity`` (mean s_ij at that rank), ``positive_count``
    and ``negative_count`` (how many anchors contributed; int).
    """
    sim, grad, is_pos = similarity_gradients(query, labels, keys, key_labels, temperature)
    keep = is_pos.any(axis=1)
    sim, grad, is_pos = sim[keep], grad[keep], is_pos[keep]
    m = sim.shape[1]
    order = np.argsort(-sim, axis=1, kind="stable")  # descending similarity
    sim_s = np.take_along_axis(sim, order, axis=1)
    grad_s = np.abs(np.take_along_axis(grad, order, axis=1))
    pos_s = np.take_along_axis(is_pos, order, axis=1)
    out: dict = {}
    for name, mask in (("positive", pos_s), ("negative", ~pos_s)):
        rank = np.cumsum(mask, axis=1) - 1  # rank among keys of the same kind, in similarity order
        r = rank[mask]
        count = np.bincount(r, minlength=m)
        grad_sum = np.bincount(r, weights=grad_s[mask], minlength=m)
        sim_sum = np.bincount(r, weights=sim_s[mask], minlength=m)
        n = int(count.nonzero()[0].max()) + 1 if count.any() else 0
        out[name] = grad_sum[:n] / count[:n]
        out[f"{name}_similarity"] = sim_sum[:n] / count[:n]
        out[f"{name}_count"] = count[:n]
    return out


def _train_eval_loader(config, data, batch_size: int, seed: int):
    """Training images under the *evaluation* transform, in a seeded shuffled order, drop_last."""
    from torch.utils.data import DataLoader

    from rescom.data.loading.datasets import SingleViewDataset
    from rescom.data.augmentation.pil.transforms import eval_transform
    from rescom.data.preparation.run_data import recipe_for

    dataset = SingleViewDataset(data.train, eval_transform(recipe_for(config.data), data.channels), data.channels)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed), num_workers=config.data.workers)


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
        raise UsageError(f"queue_source must be one of {', '.join(QUEUE_SOURCES)}, got {queue_source!r}")
    if num_batches < 1 or batch_size < 1:
        raise UsageError(f"num_batches and batch_size must be >= 1, got {num_batches}, {batch_size}")
    config, data, model, state = load_run_state(checkpoint, device)
    queue_state = state["components"].get("queue")
    source = ("queue" if queue_state is not None else "batch") if queue_source == "auto" else queue_source
    if source == "queue" and queue_state is None:
        raise UsageError(f"{checkpoint}: the run ({config.method_name}) has no queue; use queue_source batch")
    if source == "batch" and num_batches < 2:
        raise UsageError("queue_source batch takes the keys from the other sampled batches: num_batches must be >= 2")
    if batch_size > len(data.train.labels):
        raise UsageError(f"batch_size {batch_size} is larger than the {len(data.train.labels)} training images")
    loader = _train_eval_loader(config, data, batch_size, seed)
    z, y, embedding = embed(model, loader, num_batches, config.run.channels_last)
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
            raise UsageError(f"queue_source batch needs >= 2 batches of {b}; the training set gave {batches}")
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


def run_stage(profile, settings: dict, out_dir: Path) -> dict:
    """The pipeline's stage: the params file's `analysis.gradients` (run, num_batches, batch_size, seed)."""
    return gradient_analysis(profile.checkpoint(settings["run"]), num_batches=settings["num_batches"],
                             batch_size=settings["batch_size"], out_dir=out_dir, seed=settings.get("seed", 0))
