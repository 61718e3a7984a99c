"""Long-tailed subsampling with an exponential class profile (as LDAM-DRW, PaCo and ResCom)."""

from __future__ import annotations

import numpy as np

from rescom.errors import UsageError


def exponential_counts(num_classes: int, max_count: int, imbalance_factor: float) -> list[int]:
    """Per-class counts n_i = int(n_max * (1/IF)^(i/(K-1))), i = 0..K-1.

    Class 0 is the head (n_max images), class K-1 the tail (n_max / IF images).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if max_count < 1:
        raise UsageError(f"max_count must be >= 1, got {max_count}")
    if not imbalance_factor >= 1:
        raise UsageError(f"imbalance factor must be >= 1, got {imbalance_factor}")
    if num_classes == 1:
        return [int(max_count)]
    counts = [
        int(max_count * (1.0 / imbalance_factor) ** (i / (num_classes - 1)))
        for i in range(num_classes)
    ]
    if min(counts) < 1:
        raise UsageError(
            f"imbalance factor {imbalance_factor} with max_count {max_count} leaves a class empty"
        )
    return counts


# The one subsampling rule of every source: LDAM-DRW's split, which the released code and PaCo share
# (docs/design.md, "Long-tailed subsets: one rule"). Prepared sets and checkpoints record it.
SUBSAMPLE_RULE = "ldam"


def longtail_indices(labels: np.ndarray, counts: list[int], seed: int) -> np.ndarray:
    """Indices of a subset: the first counts[c] indices of class c after LDAM's seeded shuffle.

    labels: int array [N]; counts: [K]. Returns sorted int64 indices into labels.
    The released code's and LDAM-DRW's split: `np.random.seed(seed)` once, then for each class in
    label order `np.random.shuffle` of its indices (a private RandomState draws the same numbers
    without touching NumPy's global generator).
    """
    labels = np.asarray(labels)
    legacy = np.random.RandomState(seed)
    keep = []
    for c, n_c in enumerate(counts):
        idx = np.flatnonzero(labels == c)
        if len(idx) < n_c:
            raise ValueError(f"class {c} has {len(idx)} images, {n_c} requested")
        if n_c < 1:
            raise ValueError(f"class {c} would be empty")
        legacy.shuffle(idx)  # in place, as np.random.shuffle in the released code
        keep.append(idx[:n_c])
    return np.sort(np.concatenate(keep)).astype(np.int64)
