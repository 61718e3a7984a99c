"""Positive-pair similarity distributions by shot group (ResCom, arXiv 2203.11506, Fig. 5)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rescom.analysis.gradients import as_numpy

GROUPS = ("many", "medium", "few")


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
