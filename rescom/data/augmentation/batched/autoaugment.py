"""Batched AutoAugment (Cubuk et al. 2019) with torchvision's CIFAR10 policy, per-sample draws.

Each sample draws one of the 25 sub-policies uniformly; each of its two ops applies with the
sub-policy's probability; magnitudes come from torchvision's bins for num_bins = 10, and signed ops
are negated when a fair coin shows 0 -- the sampling of torchvision.transforms.AutoAugment.forward,
done for the whole batch at once. Interpolation is nearest and the fill 0 (torchvision's defaults).

`sample_autoaugment_params` draws; `apply_autoaugment` applies; `apply_ops` applies one op per
sample and is what the tests compare, op by op, against torchvision's own `_apply_op`.

One op per sample per slot is computed without selecting subsets (a subset's size is data and
would cost a host sync on CUDA): every slot runs a few batched kernels over the whole batch (a
grid_sample, a table gather, two blends) and picks per sample with `torch.where`.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from rescom.data.augmentation.batched import ops
from rescom.data.augmentation.pil.released_autoaugment import POLICY


OPS: tuple[str, ...] = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
    "Brightness", "Color", "Contrast", "Sharpness",
    "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert",
)
OP_INDEX = {name: i for i, name in enumerate(OPS)}
NUM_BINS = 10

# torchvision's AutoAugmentPolicy.CIFAR10 is the released code's table (the AutoAugment paper's) in
# torchvision's op names, with no magnitude bin for the ops that take none (tests/test_batched_augment.py
# checks it against torchvision's): ((op, probability, magnitude bin or None), (...)) x 25
_TORCHVISION_NAME = {name.lower(): name for name in OPS}  # "shearX" -> "ShearX", "autocontrast" -> "AutoContrast"
CIFAR10_POLICY: tuple[tuple[tuple[str, float, int | None], tuple[str, float, int | None]], ...] = tuple(
    tuple((_TORCHVISION_NAME[op.lower()], p, None if op in ("autocontrast", "equalize", "invert") else level)
          for op, p, level in sub)
    for sub in POLICY)


def magnitude_bins(image_size: tuple[int, int], num_bins: int = NUM_BINS) -> tuple[Tensor, Tensor]:
    """(bins [len(OPS), num_bins] float32, signed [len(OPS)] bool), as AutoAugment._augmentation_space.

    Built on the CPU with the same torch calls as torchvision so the float32 values agree bit for
    bit (linspace on another device may round its last bit differently). Ops without a magnitude
    get zeros. image_size is (H, W).
    """
    h, w = image_size
    space = {
        "ShearX": (torch.linspace(0.0, 0.3, num_bins), True),
        "ShearY": (torch.linspace(0.0, 0.3, num_bins), True),
        "TranslateX": (torch.linspace(0.0, 150.0 / 331.0 * w, num_bins), True),
        "TranslateY": (torch.linspace(0.0, 150.0 / 331.0 * h, num_bins), True),
        "Rotate": (torch.linspace(0.0, 30.0, num_bins), True),
        "Brightness": (torch.linspace(0.0, 0.9, num_bins), True),
        "Color": (torch.linspace(0.0, 0.9, num_bins), True),
        "Contrast": (torch.linspace(0.0, 0.9, num_bins), True),
        "Sharpness": (torch.linspace(0.0, 0.9, num_bins), True),
        "Posterize": ((8 - (torch.arange(num_bins) / ((num_bins - 1) / 4)).round().int()).float(), False),
        "Solarize": (torch.linspace(255.0, 0.0, num_bins), False),
    }
    bins = torch.zeros(len(OPS), num_bins, dtype=torch.float32)
    signed = torch.zeros(len(OPS), dtype=torch.bool)
    for name, (values, is_signed) in space.items():
        bins[OP_INDEX[name]] = values
        signed[OP_INDEX[name]] = is_signed
    return bins, signed


@functools.lru_cache(maxsize=16)
def _device_tables(device: torch.device, image_size: tuple[int, int]) -> tuple[Tensor, ...]:
    """(op [25,2] int64, probability [25,2] float32, magnitude bin [25,2] int64 with -1 for none,
    *magnitude_bins) on the device, copied once: a host-to-device copy from pageable memory on every
    batch would make each step wait for the GPU."""
    op = torch.tensor([[OP_INDEX[name] for name, _, _ in sub] for sub in CIFAR10_POLICY], dtype=torch.long)
    prob = torch.tensor([[p for _, p, _ in sub] for sub in CIFAR10_POLICY], dtype=torch.float32)
    mag = torch.tensor([[-1 if m is None else m for _, _, m in sub] for sub in CIFAR10_POLICY], dtype=torch.long)
    return tuple(t.to(device) for t in (op, prob, mag, *magnitude_bins(image_size)))


def sample_autoaugment_params(
    n: int,
    generator: torch.Generator | None,
    device: torch.device | str,
    image_size: tuple[int, int] = (32, 32),
) -> dict[str, Tensor]:
    """Draw AutoAugment parameters for n samples, as torchvision's AutoAugment.get_params per image.

    Returns tensors on `device`:
      policy [n] int64      sub-policy index, uniform over the 25
      op [n,2] int64        index into OPS of each of the two ops
      apply [n,2] bool      rand() <= probability (torchvision's test)
      sign [n,2] int64      coin; 0 negates a signed op's magnitude
      magnitude [n,2] f32   signed magnitude as passed to torchvision's _apply_op (0 for unused)
    """
    op_t, prob_t, mag_t, bins, signed = _device_tables(torch.device(device), tuple(image_size))
    sub = torch.randint(0, len(CIFAR10_POLICY), (n,), generator=generator, device=device)  # [n]
    probs = torch.rand(n, 2, generator=generator, device=device)
    sign = torch.randint(0, 2, (n, 2), generator=generator, device=device)
    op = op_t[sub]  # [n,2]
    apply = probs <= prob_t[sub]
    mag_id = mag_t[sub]
    magnitude = torch.where(mag_id >= 0, bins[op, mag_id.clamp(min=0)], torch.zeros((), device=device))
    magnitude = torch.where(signed[op] & (sign == 0), -magnitude, magnitude)
    return {"policy": sub, "op": op, "apply": apply, "sign": sign, "magnitude": magnitude}


def _geometric_matrices(op: Tensor, magnitude: Tensor, height: int, width: int) -> Tensor:
    """Per-sample inverse matrices [B,2,3] for the geometric ops (identity for the others).

    Mirrors torchvision's _apply_op: shears use F.affine(center=[0, 0]) -- the top-left corner,
    i.e. (-W/2, -H/2) in the centred tensor convention -- with shear angle degrees(atan(m));
    translations use int(m) pixels about the centre; Rotate is F.rotate(m), which passes -m to
    the matrix helper.
    """
    m = magnitude.double()
    zero = torch.zeros_like(m)
    is_op = {name: op == OP_INDEX[name] for name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")}
    shear = torch.deg2rad(torch.rad2deg(torch.atan(m)))
    shear_x = torch.where(is_op["ShearX"], shear, zero)
    shear_y = torch.where(is_op["ShearY"], shear, zero)
    translate_x = torch.where(is_op["TranslateX"], m.trunc(), zero)
    translate_y = torch.where(is_op["TranslateY"], m.trunc(), zero)
    angle = torch.where(is_op["Rotate"], torch.deg2rad(-m), zero)
    sheared = is_op["ShearX"] | is_op["ShearY"]
    center_x = torch.where(sheared, torch.full_like(m, -0.5 * width), zero)
    center_y = torch.where(sheared, torch.full_like(m, -0.5 * height), zero)
    return ops.inverse_affine_matrices(angle, translate_x, translate_y, shear_x, shear_y, center_x, center_y)


def apply_ops(x: Tensor, op: Tensor, magnitude: Tensor) -> Tensor:
    """Apply op[b] (index into OPS) with magnitude[b] to sample b of x uint8 [B,C,H,W].

    op [B] int64, magnitude [B] float32 (signed, as torchvision's _apply_op takes it).
    """
    ops.check_image_batch(x)
    if op.shape != (x.shape[0],) or magnitude.shape != (x.shape[0],):
        raise ValueError(f"op and magnitude must be [B]=[{x.shape[0]}], got {tuple(op.shape)}, "
                         f"{tuple(magnitude.shape)}")
    _, _, h, w = x.shape

    def sel(name: str) -> torch.Tensor:  # [B,1,1]: the samples whose op is `name`
        return (op == OP_INDEX[name]).view(-1, 1, 1)

    # point-wise ops: one table per sample and channel, [B,C,256]
    lut = ops.identity_lut(x)
    lut = torch.where(sel("Brightness"), ops.brightness_lut(x, magnitude), lut)
    lut = torch.where(sel("Contrast"), ops.contrast_lut(x, magnitude), lut)
    lut = torch.where(sel("Posterize"), ops.posterize_lut(x, magnitude), lut)
    lut = torch.where(sel("Solarize"), ops.solarize_lut(x, magnitude), lut)
    lut = torch.where(sel("AutoContrast"), ops.autocontrast_lut(x), lut)
    lut = torch.where(sel("Equalize"), ops.equalize_lut(x), lut)
    lut = torch.where(sel("Invert"), ops.invert_lut(x), lut)
    out = ops.apply_lut(x, lut)

    geometric = (op >= OP_INDEX["ShearX"]) & (op <= OP_INDEX["Rotate"])
    warped = ops.batched_affine(x, _geometric_matrices(op, magnitude, h, w))
    out = torch.where(geometric.view(-1, 1, 1, 1), warped, out)
    out = torch.where(sel("Color").unsqueeze(-1), ops.batched_color(x, magnitude), out)
    out = torch.where(sel("Sharpness").unsqueeze(-1), ops.batched_sharpness(x, magnitude), out)
    return out


def apply_autoaugment(x: Tensor, params: dict[str, Tensor]) -> Tensor:
    """Apply sampled AutoAugment parameters (see sample_autoaugment_params) to x uint8 [B,C,H,W]."""
    identity = torch.zeros_like(params["op"][:, 0])
    for slot in range(2):
        op = torch.where(params["apply"][:, slot], params["op"][:, slot], identity)
        x = apply_ops(x, op, params["magnitude"][:, slot])
    return x
