"""Normalisation statistics of each augmentation recipe (no torchvision import: the tensor path uses them)."""

from __future__ import annotations

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
FMNIST_MEAN, FMNIST_STD = (0.2860,), (0.3530,)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# The released code normalises iNaturalist 2018 with its own statistics (fidelity note 12).
INAT_MEAN, INAT_STD = (0.466, 0.471, 0.380), (0.195, 0.194, 0.192)
PLAIN_MEAN, PLAIN_STD = (0.5,), (0.5,)

# ITU-R 601 luma weights: the same ones PIL uses for RGB -> 'L', so the 1-channel statistics
# match what a grayscale copy of the 3-channel data would have (mean exactly, std approximately).
_LUMA = (0.299, 0.587, 0.114)

_RECIPE_STATS = {
    "cifar": (CIFAR_MEAN, CIFAR_STD),
    "fashion-mnist": (FMNIST_MEAN, FMNIST_STD),
    "fashion-mnist-basic": (FMNIST_MEAN, FMNIST_STD),
    "large": (IMAGENET_MEAN, IMAGENET_STD),
    "large-inat": (INAT_MEAN, INAT_STD),
    "none": (PLAIN_MEAN, PLAIN_STD),
}


def normalize_stats(recipe: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel that the recipe normalises with: RGB stats collapse by luma, 1-channel stats repeat."""
    mean, std = _RECIPE_STATS[recipe]
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if len(mean) == channels:
        return mean, std
    if channels == 1:
        return tuple((sum(a * v for a, v in zip(_LUMA, values, strict=True)),) for values in (mean, std))
    return mean * 3, std * 3
