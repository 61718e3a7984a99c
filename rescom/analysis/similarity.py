"""Positive-pair similarity distributions by shot group (ResCom, arXiv 2203.11506, Fig. 5).

`similarity_analysis` measures them on trained runs (checkpoint_analyses.py); `run_stage` is the
pipeline's analysis stage.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from rescom.analysis.checkpoint_analyses import (PROJECTION, as_numpy, embed, load_run_state,
                                                 log_analysis_artifacts, mlflow_run_id)

GROUPS = ("many", "medium", "few")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def shot_group(train_count: int, many: int = 100, few: int = 20) -> str:
    """many: > ``many`` training images; few: < ``few``; medium: the rest (few .. many inclusive)."""
    return "many" if train_count > many else "few" if train_count < few else "medium"


def positive_pair_similarities(embeddings, labels, class_counts: Sequence[int], many: int = 100, few: int = 20,
                               block: int = 2048) -> dict[str, np.ndarray]:
    """Cosine similarities of all same-class pairs (i < j), grouped by the class's training count.

    Args:
        embeddings: [N, D] features of the (test) images; l2-normalised here.
        labels: [N] int class of each image.
        class_counts: training images per class [K], which decides a class's group (see
            :func:`shot_group`).
        block: rows per matrix product; memory stays O(block * n_c) per class besides the output.

    Returns:
        {"many": [P_many], "medium": [P_medium], "few": [P_few]} float32 arrays (empty if a group has
        no class with >= 2 images).
    """
    emb = as_numpy(embeddings).astype(np.float32)
    y = as_numpy(labels).astype(np.int64).ravel()
    counts = np.asarray(class_counts)
    if emb.ndim != 2 or emb.shape[0] != y.shape[0]:
        raise ValueError(f"embeddings [N, D] and labels [N] disagree: {emb.shape} vs {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= counts.size):
        raise ValueError(f"labels must lie in [0, {counts.size}), got {y.min()}..{y.max()}")
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    parts: dict[str, list[np.ndarray]] = {g: [] for g in GROUPS}
    for c in np.unique(y):
        e = emb[y == c]  # [n_c, D]
        n = e.shape[0]
        group = shot_group(int(counts[c]), many, few)
        for start in range(0, n - 1, block):
            rows = e[start : start + block]  # [b, D]
            s = rows @ e[start + 1 :].T  # [b, n - start - 1]: column j is image start + 1 + j
            # keep pairs (start + r, start + 1 + j) with j >= r, i.e. i < j
            r = np.arange(rows.shape[0])[:, None]
            j = np.arange(s.shape[1])[None, :]
            parts[group].append(s[j >= r])
    return {g: (np.concatenate(v).astype(np.float32) if v else np.zeros(0, np.float32)) for g, v in parts.items()}


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
        z, y, kind = embed(model, test_loader(data, config.data, 256), channels_last=config.run.channels_last)
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


def run_stage(profile, settings: dict, out_dir: Path) -> dict:
    """The pipeline's stage: the params file's `analysis.similarity` (runs: label -> run)."""
    return similarity_analysis({label: profile.checkpoint(run) for label, run in settings["runs"].items()}, out_dir)
