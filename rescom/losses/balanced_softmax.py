"""Balanced Softmax (Ren et al., NeurIPS 2020) and its Siamese form (ResCom Eq. 6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _log_prior(class_counts: torch.Tensor | list[int], like: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """log(n_c / sum n) as a [K] tensor on like's device and dtype.

    validate=False skips the empty-class check, whose `.any()` is a host sync (and a graph break):
    the training step passes counts that were checked once when the data was loaded.
    """
    counts = torch.as_tensor(class_counts, device=like.device, dtype=like.dtype)
    if counts.ndim != 1:
        raise ValueError(f"class_counts must be 1-D [K], got shape {tuple(counts.shape)}")
    if validate and (counts <= 0).any():
        empty = torch.nonzero(counts <= 0).flatten().tolist()
        raise ValueError(f"class_counts has empty classes {empty}: Balanced Softmax needs n_c >= 1")
    return counts.log() - counts.sum().log()


def balanced_softmax_loss(
    logits: torch.Tensor, target: torch.Tensor, class_counts: torch.Tensor | list[int], *, validate: bool = True
) -> torch.Tensor:
    """Cross-entropy of (s + log n_c / sum n) against y, averaged over the batch.

    logits: s, [B, K]; target: y, [B] int64; class_counts: n, [K] training images per class.
    With equal counts the prior is uniform and this is plain cross-entropy. validate: see _log_prior.
    """
    if logits.ndim != 2 or target.ndim != 1 or logits.shape[0] != target.shape[0]:
        raise ValueError(
            f"logits must be [B, K] and target [B]; got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    prior = _log_prior(class_counts, logits, validate)
    if prior.shape[0] != logits.shape[1]:
        raise ValueError(f"class_counts has {prior.shape[0]} classes, logits have {logits.shape[1]}")
    return F.cross_entropy(logits + prior, target)


def siamese_balanced_softmax_loss(
    logits1: torch.Tensor,
    logits2: torch.Tensor,
    target: torch.Tensor,
    class_counts: torch.Tensor | list[int],
    *,
    validate: bool = True,
) -> torch.Tensor:
    """Siamese Balanced Softmax, Eq. 6: the mean of the Balanced Softmax loss of the two views.

    logits1, logits2: [B, K] logits of view 1 and view 2 of the same images; target: [B].
    Equal to Balanced Softmax over the 2B concatenated logits (fidelity note 5).
    """
    if logits1.shape != logits2.shape:
        raise ValueError(f"the two views' logits differ in shape: {tuple(logits1.shape)} vs {tuple(logits2.shape)}")
    return balanced_softmax_loss(
        torch.cat([logits1, logits2]), torch.cat([target, target]), class_counts, validate=validate
    )
