"""The released ResCom code's CIFAR AutoAugment, on PIL images (fidelity note 11 of docs/design.md).

The released code does not use torchvision's AutoAugment: its augment/autoaugment.py has its own
`CIFAR10Policy` (the widely copied PIL policy of the AutoAugment paper's CIFAR-10 table). What
differs from torchvision's AutoAugment(CIFAR10):

  * fill colour grey 128 (torchvision: black 0) for shear, translate and rotate;
  * shear resamples bicubically (torchvision: nearest);
  * translate shifts by a fraction of the side (up to 150/331) without rounding to whole pixels,
    rotate turns by +m degrees only (torchvision: a random sign);
  * solarize thresholds run from 256 down to 0 (torchvision: 255 down to 0).
The sub-policy table, the enhance factors 1 +- m (m up to 0.9) and the posterize bits are the same.

Every random draw (sub-policy, apply-or-not, sign) comes from torch's global RNG, as in the rest of
rescom.data.augmentation.pil.transforms, so a run is repeatable given torch.manual_seed (the released code draws
from Python's `random`; the distribution is the same, the stream is not). `apply_drawn` takes the
draws as arguments instead; the batched twin (rescom.data.augmentation.batched.released_autoaugment)
is tested against it image by image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image, ImageEnhance, ImageOps

FILL = 128  # the released policy's fill colour, (128, 128, 128) for RGB images


def _linspace(start: float, stop: float, num: int = 10) -> tuple[float, ...]:
    """numpy.linspace(start, stop, num) as a tuple of floats (the released ranges are linspaces)."""
    return tuple(start + (stop - start) * i / (num - 1) for i in range(num))


# Magnitude of each op at level 0..9 (the released `ranges` table).
MAGNITUDES: dict[str, tuple] = {
    "shearX": _linspace(0.0, 0.3),
    "shearY": _linspace(0.0, 0.3),
    "translateX": _linspace(0.0, 150 / 331),
    "translateY": _linspace(0.0, 150 / 331),
    "rotate": _linspace(0.0, 30.0),
    "color": _linspace(0.0, 0.9),
    # np.round(np.linspace(8, 4, 10)).astype(int): rounding half to even, as numpy does
    "posterize": (8, 8, 7, 7, 6, 6, 5, 5, 4, 4),
    "solarize": _linspace(256.0, 0.0),
    "contrast": _linspace(0.0, 0.9),
    "sharpness": _linspace(0.0, 0.9),
    "brightness": _linspace(0.0, 0.9),
    "autocontrast": (0,) * 10,
    "equalize": (0,) * 10,
    "invert": (0,) * 10,
}

# The 25 sub-policies: ((op, probability, level), (op, probability, level)), in the released order.
POLICY: tuple[tuple[tuple[str, float, int], tuple[str, float, int]], ...] = (
    (("invert", 0.1, 7), ("contrast", 0.2, 6)),
    (("rotate", 0.7, 2), ("translateX", 0.3, 9)),
    (("sharpness", 0.8, 1), ("sharpness", 0.9, 3)),
    (("shearY", 0.5, 8), ("translateY", 0.7, 9)),
    (("autocontrast", 0.5, 8), ("equalize", 0.9, 2)),
    (("shearY", 0.2, 7), ("posterize", 0.3, 7)),
    (("color", 0.4, 3), ("brightness", 0.6, 7)),
    (("sharpness", 0.3, 9), ("brightness", 0.7, 9)),
    (("equalize", 0.6, 5), ("equalize", 0.5, 1)),
    (("contrast", 0.6, 7), ("sharpness", 0.6, 5)),
    (("color", 0.7, 7), ("translateX", 0.5, 8)),
    (("equalize", 0.3, 7), ("autocontrast", 0.4, 8)),
    (("translateY", 0.4, 3), ("sharpness", 0.2, 6)),
    (("brightness", 0.9, 6), ("color", 0.2, 8)),
    (("solarize", 0.5, 2), ("invert", 0.0, 3)),
    (("equalize", 0.2, 0), ("autocontrast", 0.6, 0)),
    (("equalize", 0.2, 8), ("equalize", 0.6, 4)),
    (("color", 0.9, 9), ("equalize", 0.6, 6)),
    (("autocontrast", 0.8, 4), ("solarize", 0.2, 8)),
    (("brightness", 0.1, 3), ("color", 0.7, 0)),
    (("solarize", 0.4, 5), ("autocontrast", 0.9, 3)),
    (("translateY", 0.9, 9), ("translateY", 0.7, 9)),
    (("autocontrast", 0.9, 2), ("solarize", 0.8, 3)),
    (("equalize", 0.8, 8), ("invert", 0.1, 3)),
    (("translateY", 0.7, 9), ("autocontrast", 0.9, 1)),
)


def random_sign() -> int:
    """-1 or +1 with equal probability, from torch's global RNG (the released random.choice([-1, 1]))."""
    return 1 if int(torch.randint(2, ()).item()) else -1


def fill_for(img: Image.Image, fill: int = FILL) -> int | tuple[int, ...]:
    """The fill colour in img's mode: an int for 'L', a triple for 'RGB'."""
    return fill if img.mode == "L" else (fill,) * len(img.getbands())


def _affine(img: Image.Image, coeffs: tuple, resample: int, fill: int) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, coeffs, resample, fillcolor=fill_for(img, fill))


def _sign(sign: int | None) -> int:
    # a supplied sign (the batched twin's draw, in tests) or the port's own draw
    return random_sign() if sign is None else int(sign)


def shear_x(img: Image.Image, magnitude: float, fill: int = FILL, sign: int | None = None) -> Image.Image:
    # bicubic, as released (torchvision's AutoAugment shears with nearest)
    return _affine(img, (1, magnitude * _sign(sign), 0, 0, 1, 0), Image.BICUBIC, fill)


def shear_y(img: Image.Image, magnitude: float, fill: int = FILL, sign: int | None = None) -> Image.Image:
    return _affine(img, (1, 0, 0, magnitude * _sign(sign), 1, 0), Image.BICUBIC, fill)


def translate_x(img: Image.Image, magnitude: float, fill: int = FILL, sign: int | None = None) -> Image.Image:
    # magnitude is a fraction of the width; PIL's default (nearest) resampling, as released
    return _affine(img, (1, 0, magnitude * img.size[0] * _sign(sign), 0, 1, 0), Image.NEAREST, fill)


def translate_y(img: Image.Image, magnitude: float, fill: int = FILL, sign: int | None = None) -> Image.Image:
    return _affine(img, (1, 0, 0, 0, 1, magnitude * img.size[1] * _sign(sign)), Image.NEAREST, fill)


def rotate(img: Image.Image, magnitude: float, fill: int = FILL, sign: int | None = None) -> Image.Image:
    # +magnitude degrees only (the released op has no random sign). The released code rotates an
    # RGBA copy and composites it over grey; with nearest resampling that is exactly this call
    # (tests/test_released_autoaugment.py checks the two agree).
    return img.rotate(magnitude, resample=Image.NEAREST, fillcolor=fill_for(img, fill))


def _enhance(kind: type) -> Callable[..., Image.Image]:
    def op(img: Image.Image, magnitude: float, fill: int = FILL, sign: int | None = None) -> Image.Image:
        return kind(img).enhance(1 + magnitude * _sign(sign))
    op.__name__ = kind.__name__.lower()
    return op


def posterize(img: Image.Image, magnitude: int, fill: int = FILL, sign: int | None = None) -> Image.Image:
    return ImageOps.posterize(img, int(magnitude))


def solarize(img: Image.Image, magnitude: float, fill: int = FILL, sign: int | None = None) -> Image.Image:
    # pixels >= threshold are inverted; threshold 256 (level 0) leaves the image as it is
    return ImageOps.solarize(img, magnitude)


def autocontrast(img: Image.Image, magnitude: float = 0, fill: int = FILL, sign: int | None = None) -> Image.Image:
    return ImageOps.autocontrast(img)


def equalize(img: Image.Image, magnitude: float = 0, fill: int = FILL, sign: int | None = None) -> Image.Image:
    return ImageOps.equalize(img)


def invert(img: Image.Image, magnitude: float = 0, fill: int = FILL, sign: int | None = None) -> Image.Image:
    return ImageOps.invert(img)


# Each op is (image, magnitude, fill, sign=None); unsigned ops ignore the sign, signed ones draw it when None.
OPS: dict[str, Callable[..., Image.Image]] = {
    "shearX": shear_x, "shearY": shear_y, "translateX": translate_x, "translateY": translate_y,
    "rotate": rotate, "color": _enhance(ImageEnhance.Color), "posterize": posterize, "solarize": solarize,
    "contrast": _enhance(ImageEnhance.Contrast), "sharpness": _enhance(ImageEnhance.Sharpness),
    "brightness": _enhance(ImageEnhance.Brightness), "autocontrast": autocontrast, "equalize": equalize,
    "invert": invert,
}


class ReleasedCifar10Policy:
    """PIL image ('L' or 'RGB') -> PIL image: one of the 25 sub-policies, uniformly at random.

    Each of its two ops is applied with its probability, at its fixed level's magnitude (signed ops
    draw their sign when applied). Draw order: sub-policy, then per op apply-or-not and, if
    applied, the sign, as in the released code.
    """

    def __init__(self, fill: int = FILL) -> None:
        self.fill = int(fill)

    def __call__(self, img: Image.Image) -> Image.Image:
        index = int(torch.randint(len(POLICY), ()).item())
        for name, probability, level in POLICY[index]:
            if torch.rand(()).item() < probability:
                img = OPS[name](img, MAGNITUDES[name][level], self.fill)
        return img

    def apply_drawn(self, img: Image.Image, index: int, applied: tuple[bool, bool],
                    signs: tuple[int, int]) -> Image.Image:
        """Sub-policy `index` with supplied draws: applied[k] says whether its op k runs, signs[k] (+-1)
        its sign. What __call__ does with its own draws; the batched twin is tested against this."""
        for (name, _, level), on, sign in zip(POLICY[index], applied, signs, strict=True):
            if on:
                img = OPS[name](img, MAGNITUDES[name][level], self.fill, sign=sign)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fill={self.fill})"
