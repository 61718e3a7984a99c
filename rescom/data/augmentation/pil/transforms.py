"""Augmentation recipes (torchvision v1 transforms on PIL images) and Cutout.

Recipes (train_transform spells out each one's transforms):
  cifar          the released ResCom CIFAR recipe (DESIGN note 6); fashion-mnist the same on 28 px grey.
  fashion-mnist-basic  no AutoAugment or Cutout: strong augmentation pays off over hundreds of
                 epochs; a run of a few dozen epochs converges further without it (the default
                 profile's choice, docs/results.md, "Default profile settings").
  large          paper supplementary B; large-inat the same with iNaturalist's statistics.
  none           ToTensor + Normalize(0.5, 0.5) only, for fast tests.
AutoAugment / RandAugment: "released" (default) is the released code's own (released_autoaugment.py,
released_randaugment.py), "torchvision" torchvision's AutoAugment(CIFAR10) / RandAugment(2, 10).

Every transform maps a PIL image (mode 'L' for channels=1, 'RGB' for 3) to float32 [C, H, W].

Randomness: torchvision's transforms, Cutout and the released CIFAR policy draw from torch's global
RNG; the released RandAugment (timm's, which draws from Python's and NumPy's) is seeded from it per
image. DataLoader gives each worker its own torch seed (base_seed + worker_id) every epoch, so views
differ across workers and runs are repeatable given torch.manual_seed; nothing here seeds on its own.
"""

from __future__ import annotations

import torch
from torchvision import transforms as T
from torchvision.transforms import AutoAugment, AutoAugmentPolicy, RandAugment

from rescom.data.augmentation.stats import normalize_stats

RECIPES = ("cifar", "fashion-mnist", "fashion-mnist-basic", "large", "large-inat", "none")
# Which implementation of the recipes' AutoAugment / RandAugment (config data.autoaugment / data.randaugment).
IMPLEMENTATIONS = ("released", "torchvision")


class Cutout:
    """Zero one size x size square at a uniformly random centre, clipped at the border.

    Acts on a tensor [C, H, W]; the centre (y, x) is drawn uniformly over all H x W pixels, so
    near the border only part of the square falls inside the image (DeVries & Taylor 2017).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"Cutout size must be >= 1, got {size}")
        self.size = int(size)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        y = int(torch.randint(h, ()).item())
        x = int(torch.randint(w, ()).item())
        half = self.size // 2
        y1, y2 = max(y - half, 0), min(y + self.size - half, h)
        x1, x2 = max(x - half, 0), min(x + self.size - half, w)
        out = img.clone()
        out[..., y1:y2, x1:x2] = 0
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


def _normalize(recipe: str, channels: int) -> T.Normalize:
    return T.Normalize(*normalize_stats(recipe, channels))


def _autoaugment(kind: str):
    """The CIFAR AutoAugment: the released code's PIL policy or torchvision's."""
    if kind == "released":
        from rescom.data.augmentation.pil.released_autoaugment import ReleasedCifar10Policy

        return ReleasedCifar10Policy()
    return AutoAugment(AutoAugmentPolicy.CIFAR10)


def _randaugment(kind: str):
    """The large-data RandAugment: timm's rand-n2-m10-mstd0.5 (released) or torchvision's RandAugment(2, 10)."""
    if kind == "released":
        from rescom.data.augmentation.pil.released_randaugment import TorchSeededRandAugment  # imports timm

        return TorchSeededRandAugment()
    return RandAugment(num_ops=2, magnitude=10)


def _check(recipe: str, channels: int, *kinds: str) -> None:
    for kind in kinds:
        if kind not in IMPLEMENTATIONS:
            raise ValueError(f"unknown augmentation implementation {kind!r}; valid: {', '.join(IMPLEMENTATIONS)}")
    if recipe not in RECIPES:
        raise ValueError(f"unknown augmentation recipe {recipe!r}; valid recipes: {', '.join(RECIPES)}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")


def train_transform(recipe: str, channels: int, autoaugment: str = "released",
                    randaugment: str = "released") -> T.Compose:
    """Training augmentation: PIL image -> float32 [C, H, W]. Called once per view.

    autoaugment picks the cifar / fashion-mnist recipes' AutoAugment, randaugment the large
    recipes' RandAugment: "released" (the released code's) or "torchvision".
    """
    _check(recipe, channels, autoaugment, randaugment)
    norm = _normalize(recipe, channels)
    if recipe in ("cifar", "fashion-mnist"):
        # Fashion-MNIST's hole is 8, not 16 or 14: an item fills most of its 28 px frame on a black
        # background (CIFAR objects sit in clutter), so a 14-16 px hole (up to a third of the
        # image) often erases the part that separates Shirt/T-shirt/Pullover/Coat. 8 px
        # (8% of the area) still occludes a part. A choice, not a tuned value.
        side, hole = (32, 16) if recipe == "cifar" else (28, 8)
        return T.Compose([
            T.RandomCrop(side, padding=4),
            T.RandomHorizontalFlip(),
            # both AutoAugments handle mode 'L' images directly (every op, checked in
            # tests/test_data_transforms.py), so no RGB round trip is needed.
            _autoaugment(autoaugment),
            T.ToTensor(),
            # Cutout before Normalize, as in the released code: the hole is black in pixel
            # space, i.e. -mean/std after normalisation, not the dataset mean.
            Cutout(hole),
            norm,
        ])
    if recipe == "fashion-mnist-basic":
        return T.Compose([T.RandomCrop(28, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    if recipe in ("large", "large-inat"):  # large-inat: iNaturalist's normalisation (fidelity note 12)
        return T.Compose([
            T.RandomResizedCrop(224, scale=(0.08, 1.0)),
            T.RandomHorizontalFlip(),
            T.ColorJitter(0.4, 0.4, 0.4, 0.0),
            T.RandomGrayscale(p=0.2),
            _randaugment(randaugment),
            T.ToTensor(),
            norm,
        ])
    return T.Compose([T.ToTensor(), norm])


def eval_transform(recipe: str, channels: int) -> T.Compose:
    """Evaluation transform (deterministic): PIL image -> float32 [C, H, W]."""
    _check(recipe, channels)
    norm = _normalize(recipe, channels)
    if recipe in ("large", "large-inat"):
        return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])
    return T.Compose([T.ToTensor(), norm])
