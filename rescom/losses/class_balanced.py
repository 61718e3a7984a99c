"""Class-balanced weights from the effective number of samples (Cui et al. 2019; ResCom Eq. 2)."""

from __future__ import annotations

import math

import torch


def class_balanced_weights(class_counts, beta: float) -> torch.Tensor:
    """w_c = mean_k(E_k) / E_c with E_k = (1 - beta^{n_k}) / (1 - beta) (Eq. 2, released-code normalisation).

    class_counts: n, [K]. Returns float64 [K] weights with mean_k(E_k)/E_c, so beta = 0 gives all ones
    and the tail gets weights above one. Computed as -expm1(n log1p(beta - 1)) so that the released
    value beta = 0.999999 keeps full precision.
    """
    if not (isinstance(beta, (int, float)) and 0.0 <= beta < 1.0):
        raise ValueError(f"beta must lie in [0, 1), got {beta!r}")
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(f"class_counts must be a non-empty 1-D [K], got shape {tuple(counts.shape)}")
    if (counts <= 0).any():
        raise ValueError(f"class_counts has empty classes {torch.nonzero(counts <= 0).flatten().tolist()}")
    if beta == 0.0:
        return torch.ones_like(counts)
    # 1 - beta^n; the common factor 1 / (1 - beta) of E_k cancels in mean(E) / E_c.
    effective = -torch.expm1(counts * math.log1p(beta - 1.0))
    return effective.mean() / effective
