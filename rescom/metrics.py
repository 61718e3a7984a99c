"""Evaluation metrics: shot-group accuracy (Many / Medium / Few) and expected calibration error.

The device rule: metrics take CPU tensors (or anything torch.as_tensor takes). A model's outputs
cross from the device to the metrics in one place, `rescom.engine.evaluate.predict`; `host_tensors`
below is the one check, and it refuses device tensors instead of mixing devices mid-computation.
"""

from __future__ import annotations

import math

import torch


def host_tensors(*values, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, ...]:
    """The values as CPU tensors; ValueError for a tensor on another device (see the module note)."""
    for value in values:
        if isinstance(value, torch.Tensor) and value.device.type != "cpu":
            raise ValueError(f"metrics take CPU tensors, got one on {value.device}: move model outputs with "
                             "rescom.engine.evaluate.predict (or .cpu()) before computing metrics")
    return tuple(torch.as_tensor(value, dtype=dtype) for value in values)


def shot_groups(train_counts, many: int = 100, few: int = 20) -> dict[str, torch.Tensor]:
    """Class masks [K]: many (> many images), medium (few..many inclusive), few (< few images)."""
    (counts,) = host_tensors(train_counts)
    return {"many": counts > many, "medium": (counts >= few) & (counts <= many), "few": counts < few}


def shot_accuracy(preds, targets, train_counts, many: int = 100, few: int = 20) -> dict[str, float]:
    """Top-1 accuracy (%) over all test images and over those of Many / Medium / Few-shot classes.

    preds, targets: [N] class indices; train_counts: [K] training images per class. A group with no
    class gets NaN: there is nothing to measure.
    """
    preds, targets = host_tensors(preds, targets)
    if preds.shape != targets.shape or preds.ndim != 1:
        raise ValueError(f"preds and targets must both be [N]; got {tuple(preds.shape)} and {tuple(targets.shape)}")
    correct = (preds == targets).double()
    result = {"all": 100.0 * correct.mean().item() if len(correct) else math.nan}
    for name, class_mask in shot_groups(train_counts, many, few).items():
        in_group = class_mask[targets]
        result[name] = 100.0 * correct[in_group].mean().item() if in_group.any() else math.nan
    return result


def per_class_accuracy(preds, targets, num_classes: int) -> torch.Tensor:
    """[K] accuracy (%) per class; NaN for a class absent from targets."""
    preds, targets = host_tensors(preds, targets)
    total = torch.bincount(targets, minlength=num_classes).double()
    hits = torch.bincount(targets[preds == targets], minlength=num_classes).double()
    return 100.0 * hits / total  # 0/0 -> NaN for absent classes


def expected_calibration_error(probs, targets, n_bins: int = 15) -> float:
    """ECE (%): sum over equal-width confidence bins of |accuracy - confidence| weighted by bin size.

    probs: [N, K] predicted probabilities; targets: [N].
    """
    (probs,) = host_tensors(probs, dtype=torch.float64)
    (targets,) = host_tensors(targets)
    if probs.ndim != 2 or probs.shape[0] != targets.shape[0]:
        raise ValueError(f"probs must be [N, K] matching targets [N]; got {tuple(probs.shape)} and {tuple(targets.shape)}")
    confidence, predicted = probs.max(1)
    correct = (predicted == targets).double()
    # Bins (lo, hi]; confidence 0 cannot occur for a max over a distribution of K >= 1 classes.
    bin_index = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)
    conf_sum = torch.bincount(bin_index, confidence, minlength=n_bins)
    acc_sum = torch.bincount(bin_index, correct, minlength=n_bins)
    gap = (acc_sum - conf_sum).abs()  # |acc - conf| * count, per bin
    return 100.0 * (gap.sum() / max(len(targets), 1)).item()


def misleading_data_warnings(train_counts, test_labels, many: int = 100, few: int = 20) -> list[str]:
    """Lines that say when this data makes some reported numbers meaningless (NaN or empty groups).

    A class without test images has no accuracy (NaN per class, absent from the group means); a shot
    group (Many > many, Few < few training images, Medium between) without any class reports NaN.
    """
    (counts, labels) = host_tensors(train_counts, test_labels)
    warnings = []
    tested = torch.zeros(len(counts), dtype=torch.bool)
    tested[labels.long()] = True
    if not tested.all():
        missing = torch.nonzero(~tested).flatten().tolist()
        warnings.append(f"classes {missing} have no test image: their accuracy is NaN and they count in no shot group")
    for name, mask in shot_groups(counts, many, few).items():
        if not mask.any():
            warnings.append(f"no {name}-shot class (Many > {many}, Few < {few} training images): test_{name} is NaN")
    return warnings
