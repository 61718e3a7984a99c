"""Evaluation with the inference model (encoder + classifier): accuracy by shot group, ECE, per class."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from rescom.metrics import expected_calibration_error, per_class_accuracy, shot_accuracy


@torch.no_grad()
def predict(model: torch.nn.Module, loader: DataLoader, device: torch.device,
            channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities [N, K] float32, targets [N] int64), both on the CPU, of the encoder + classifier.

    The one place where evaluation outputs leave the device (rescom.metrics: metrics take CPU
    tensors); batches stay on the device until one copy at the end, so the loop never syncs.
    """
    was_training = model.training
    model.eval()
    probs, targets = [], []
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = model(images)
        probs.append(torch.softmax(logits.float(), dim=1))
        targets.append(labels)
    model.train(was_training)
    return torch.cat(probs).cpu(), torch.cat([t.to(device) for t in targets]).long().cpu()


def evaluation_metrics(probs: torch.Tensor, targets: torch.Tensor, class_counts: list[int]) -> dict:
    """{'all','many','medium','few' (top-1 %), 'ece' (%)} and per-class accuracy [K] under 'per_class'."""
    preds = probs.argmax(1)
    result = {f"test_{k}": v for k, v in shot_accuracy(preds, targets, class_counts).items()}
    result["test_ece"] = expected_calibration_error(probs, targets)
    result["per_class"] = per_class_accuracy(preds, targets, len(class_counts)).tolist()
    return result
