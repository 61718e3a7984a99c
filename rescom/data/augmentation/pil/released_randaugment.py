"""The released ResCom code's large-data RandAugment: timm's `rand-n2-m10-mstd0.5` (fidelity note 11).

The released main_rescom.py builds it with its copy of timm's auto_augment.py:
`rand_augment_transform('rand-n2-m10-mstd0.5', dict(translate_const=100, img_mean=(124, 116, 104)))`
for every large dataset (ImageNet's mean as the fill colour, iNaturalist included). Per image:
2 ops drawn with replacement from 15 (AutoContrast, Equalize, Invert, Rotate, Posterize, Solarize,
SolarizeAdd, Color, Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateXRel, TranslateYRel),
each applied with probability 0.5 at a magnitude drawn from N(10, 0.5) clipped to [0, 10].
timm 1.x's default (non-"inc") op set and level functions equal that copy's.

timm draws from Python's `random` and NumPy's global generator. The suite's PIL path seeds only
torch's RNG per epoch (DataLoader workers seed all three, but the default runs without workers), so
`TorchSeededRandAugment` seeds both from one torch draw per image and restores them afterwards:
an epoch stays a pure function of (seed, epoch), as with every other transform here.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image

from rescom.data.augmentation.stats import IMAGENET_MEAN

CONFIG = "rand-n2-m10-mstd0.5"
# The released hparams: translate_const = int(224 * 0.45) (unused by the Rel translations of the
# rand op set), fill = ImageNet's mean in 0..255.
HPARAMS = {"translate_const": int(224 * 0.45), "img_mean": tuple(min(255, round(255 * x)) for x in IMAGENET_MEAN)}
# For mode 'L' images (the large recipes on 1 channel; the released code only sees RGB): the fill
# colour's luma, as PIL's RGB -> L conversion computes it. PIL refuses a colour triple for 'L'.
GREY_FILL = round(sum(c * w for c, w in zip(HPARAMS["img_mean"], (0.299, 0.587, 0.114), strict=True)))


def timm_rand_augment(config: str = CONFIG, hparams: dict | None = None):
    """timm's RandAugment transform for `config` (timm imported here: only the large recipes need it)."""
    try:
        from timm.data.auto_augment import rand_augment_transform
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the released large-data RandAugment needs timm (pip install timm), "
                          "or set data.randaugment=torchvision") from err
    return rand_augment_transform(config, dict(HPARAMS if hparams is None else hparams))


class TorchSeededRandAugment:
    """PIL image -> PIL image: timm's rand-n2-m10-mstd0.5 with its draws seeded from torch's RNG."""

    def __init__(self, config: str = CONFIG) -> None:
        self.config = config
        self.transform = timm_rand_augment(config)
        self.grey_transform = timm_rand_augment(config, {**HPARAMS, "img_mean": GREY_FILL})

    def __call__(self, img: Image.Image) -> Image.Image:
        seed = int(torch.randint(2**31 - 1, ()).item())
        saved_random, saved_numpy = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(seed)
        try:
            return (self.grey_transform if img.mode == "L" else self.transform)(img)
        finally:  # leave the global generators as we found them
            random.setstate(saved_random)
            np.random.set_state(saved_numpy)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r}, hparams={HPARAMS})"
