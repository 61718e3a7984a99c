"""Long-tailed subsampling with an exponential class profile (as LDAM-DRW, PaCo and ResCom)."""

from __future__ import annotations

import numpy as np


def exponential_counts(num_classes: int, max_count: int, imbalance_factor: float) -> list[int]:
    """Per-class counts n_i = int(n_max * (1/IF)^(i/(K-1))), i = 0..K-1.

    Class 0 is the head (n_max images), class K-1 the tail (n_max / IF images).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if max_count < 1:
        raise ValueError(f"max_count must be >= 1, got {max_count}")
    if not imbalance_factor >= 1:
        raise ValueError(f"imbalance factor must be >= 1, got {imbalance_factor}")
    if num_classes == 1:
        return [int(max_count)]
    counts = [
        int(max_count * (1.0 / imbalance_factor) ** (i / (num_classes - 1)))
        for i in range(num_classes)
    ]
    if min(counts) < 1:
        raise ValueError(
            f"imbalance factor {imbalance_factor} with max_count {max_count} leaves a class empty"
        )
    return counts


SUBSAMPLE_RULES = ("ldam", "permutation")
# Sources whose published long-tailed split is LDAM's (LDAM-DRW, PaCo and ResCom share it).
LDAM_SOURCES = ("cifar10", "cifar100")


def default_rule(source: str) -> str:
    """The subsampling rule of a source: LDAM's for CIFAR (the split papers compare on), else permutation."""
    return "ldam" if source in LDAM_SOURCES else "permutation"


def longtail_indices(
    labels: np.ndarray, counts: list[int], seed: int, rule: str = "permutation"
) -> np.ndarray:
    """Indices of a long-tailed subset: the first counts[c] indices of class c after a seeded shuffle.

    labels: int array [N]; counts: [K]. Returns sorted int64 indices into labels.
    rule "ldam": the released code's and LDAM-DRW's split, `np.random.seed(seed)` once, then for each
    class in label order `np.random.shuffle` of its indices (a private RandomState draws the same
    numbers without touching NumPy's global generator). rule "permutation": `default_rng(seed)`,
    one permutation per class: the same counts, other images (kept for the Fashion-MNIST profiles
    whose committed reports were made with it).
    """
    if rule not in SUBSAMPLE_RULES:
        raise ValueError(f"subsampling rule must be one of {', '.join(SUBSAMPLE_RULES)}, got {rule!r}")
    labels = np.asarray(labels)
    legacy = np.random.RandomState(seed) if rule == "ldam" else None
    rng = np.random.default_rng(seed) if rule == "permutation" else None
    keep = []
    for c, n_c in enumerate(counts):
        idx = np.flatnonzero(labels == c)
        if len(idx) < n_c:
            raise ValueError(f"class {c} has {len(idx)} images, {n_c} requested")
        if n_c < 1:
            raise ValueError(f"class {c} would be empty")
        if legacy is not None:
            legacy.shuffle(idx)  # in place, as np.random.shuffle in the released code
            keep.append(idx[:n_c])
        else:
            keep.append(rng.permutation(idx)[:n_c])
    return np.sort(np.concatenate(keep)).astype(np.int64)
