"""Batched image ops for the on-device augmentation path, one random parameter per sample.

Every function takes a batch `x` of shape [B, C, H, W] (C = 1 or 3) and per-sample parameter
tensors of shape [B] on the same device, and runs as a fixed number of tensor ops: no Python loop
over samples, no `.item()`, no boolean indexing (whose output size would need a host sync), so a
CUDA caller never waits on the GPU. Parameter sampling (`sample_*`) is separate from application so
tests can fix parameters.

Semantics follow torchvision's tensor implementations (torchvision.transforms._functional_tensor),
so each op here equals the torchvision op applied image by image; see tests/test_batched_augment.py.
In particular uint8 blends truncate (`.to(uint8)`), not round, exactly as torchvision's `_blend`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def check_image_batch(x: Tensor, dtype: torch.dtype | None = torch.uint8) -> None:
    """Raise ValueError unless x is [B, C, H, W] with C in {1, 3} (and of `dtype` when given)."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected an image batch [B, C in (1, 3), H, W], got shape {tuple(x.shape)}")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(f"expected dtype {dtype}, got {x.dtype}")


def _check_param(p: Tensor, x: Tensor, name: str) -> None:
    if p.shape != (x.shape[0],):
        raise ValueError(f"{name} must have shape [B]=[{x.shape[0]}], got {tuple(p.shape)}")


# ----------------------------------------------------------------------------------- sampling
def sample_crop_params(
    n: int, generator: torch.Generator | None, device: torch.device | str, padding: int = 4
) -> tuple[Tensor, Tensor]:
    """Offsets (dy, dx), each [n] int64 uniform in [0, 2*padding], of the crop window in the padded image.

    As torchvision RandomCrop(size=H, padding): top = randint(0, H + 2p - H + 1).
    """
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    return dy, dx


def sample_flip_params(n: int, generator: torch.Generator | None, device: torch.device | str) -> Tensor:
    """Flip mask [n] bool, True with probability 0.5 (torchvision: `torch.rand(1) < p`)."""
    return torch.rand(n, generator=generator, device=device) < 0.5


def sample_cutout_params(
    n: int, height: int, width: int, generator: torch.Generator | None, device: torch.device | str
) -> tuple[Tensor, Tensor]:
    """Centres (cy, cx), each [n] int64, uniform over the pixel grid (Cutout: np.random.randint(h))."""
    cy = torch.randint(0, height, (n,), generator=generator, device=device)
    cx = torch.randint(0, width, (n,), generator=generator, device=device)
    return cy, cx


# ---------------------------------------------------------------------- crop / flip / cutout
def batched_crop(x: Tensor, dy: Tensor, dx: Tensor, padding: int) -> Tensor:
    """Zero-pad x [B,C,H,W] by `padding` on every side, then take the HxW window at (dy, dx) [B] each.

    Equals torchvision F.crop(F.pad(img, padding), dy, dx, H, W) per sample. Works on any dtype.
    """
    check_image_batch(x, dtype=None)
    _check_param(dy, x, "dy")
    _check_param(dx, x, "dx")
    b, c, h, w = x.shape
    hp, wp = h + 2 * padding, w + 2 * padding
    padded = F.pad(x, (padding, padding, padding, padding))  # [B,C,Hp,Wp], zeros
    rows = dy[:, None] + torch.arange(h, device=x.device)  # [B,H]
    cols = dx[:, None] + torch.arange(w, device=x.device)  # [B,W]
    index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w)  # [B,1,HW]
    out = padded.reshape(b, c, hp * wp).gather(2, index.expand(b, c, h * w))
    return out.reshape(b, c, h, w)


def batched_hflip(x: Tensor, flip: Tensor) -> Tensor:
    """Mirror left-right the samples of x [B,C,H,W] where flip [B] (bool) is True."""
    _check_param(flip, x, "flip")
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def batched_cutout(x: Tensor, cy: Tensor, cx: Tensor, size: int) -> Tensor:
    """Zero a size x size square centred at (cy, cx) [B] each, clipped at the border.

    As the Cutout of DeVries & Taylor (2017) used by the released code: rows
    [clip(cy - size//2), clip(cy + size//2)) and the same for columns; applied to float images.
    """
    check_image_batch(x, dtype=None)
    _check_param(cy, x, "cy")
    _check_param(cx, x, "cx")
    _, _, h, w = x.shape
    half = size // 2
    r = torch.arange(h, device=x.device)
    c = torch.arange(w, device=x.device)
    # clipping is implicit: rows outside [0, H) do not exist
    in_rows = (r[None, :] >= cy[:, None] - half) & (r[None, :] < cy[:, None] + half)  # [B,H]
    in_cols = (c[None, :] >= cx[:, None] - half) & (c[None, :] < cx[:, None] + half)  # [B,W]
    hole = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # [B,1,H,W]
    return x.masked_fill(hole, 0)


def batched_normalize(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """(x - mean) / std per channel; mean, std [C] (torchvision F.normalize: sub then div)."""
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


# ------------------------------------------------------------------------------------ affine
def inverse_affine_matrices(
    angle: Tensor, translate_x: Tensor, translate_y: Tensor, shear_x: Tensor, shear_y: Tensor,
    center_x: Tensor, center_y: Tensor,
) -> Tensor:
    """Per-sample inverse affine matrices [B,2,3] (float64), scale 1.

    A batched transcription of torchvision.transforms.functional._get_inverse_affine_matrix:
    angles and shears in radians, translation and centre in pixels with (0, 0) at the image centre
    (torchvision's tensor convention). All arguments [B].
    """
    rot, sx, sy = angle, shear_x, shear_y
    # RSS without scaling: R(a) * SHy(sy) * SHx(sx)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    m0, m1, m3, m4 = d, -b, -c, a  # inverse of [[a, b], [c, d]], det = 1
    m2 = m0 * (-center_x - translate_x) + m1 * (-center_y - translate_y) + center_x
    m5 = m3 * (-center_x - translate_x) + m4 * (-center_y - translate_y) + center_y
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=1).view(-1, 2, 3)


def batched_affine(x: Tensor, matrix: Tensor) -> Tensor:
    """Warp x [B,C,H,W] by per-sample inverse matrices [B,2,3] with nearest sampling and fill 0.

    The sampling grid is built as torchvision's `_gen_affine_grid` builds it (pixel-centred
    coordinates times theta, then divided by the half size), not with F.affine_grid, whose
    normalised-coordinate algebra rounds differently and moves a few nearest-neighbour picks;
    the same grid gives pixel-exact agreement with torchvision's F.affine / F.rotate.
    """
    check_image_batch(x, dtype=None)
    b, _, h, w = x.shape
    if matrix.shape != (b, 2, 3):
        raise ValueError(f"matrix must be [B,2,3]=[{b},2,3], got {tuple(matrix.shape)}")
    dtype = x.dtype if x.is_floating_point() else torch.float32
    theta = matrix.to(dtype)
    base = torch.empty(1, h, w, 3, dtype=dtype, device=x.device)
    base[..., 0].copy_(torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, steps=w, device=x.device))
    base[..., 1].copy_(torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, steps=h, device=x.device).unsqueeze(-1))
    base[..., 2].fill_(1)
    # theta^T / [W/2, H/2] column by column; Python scalars, so no host-to-device copy
    rescaled = torch.stack([theta[:, 0] / (0.5 * w), theta[:, 1] / (0.5 * h)], dim=2)  # [B,3,2]
    grid = base.view(1, h * w, 3).expand(b, h * w, 3).bmm(rescaled).view(b, h, w, 2)
    out = F.grid_sample(x.to(dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if not x.is_floating_point():
        out = out.round().to(x.dtype)
    return out


# --------------------------------------------------------------------- per-channel lookup tables
# Every point-wise uint8 op of AutoAugment is a per-sample, per-channel table of 256 entries; tables
# are [B, C or 1, 256] uint8 and `apply_lut` applies any mix of them with one gather.

def all_levels(x: Tensor) -> Tensor:
    """The 256 uint8 values as float32 [1,1,256] on x's device."""
    return torch.arange(256, device=x.device, dtype=torch.float32).view(1, 1, 256)


def identity_lut(x: Tensor) -> Tensor:
    """[B,C,256] uint8 table that maps every value to itself."""
    b, c = x.shape[:2]
    return torch.arange(256, device=x.device, dtype=torch.uint8).view(1, 1, 256).expand(b, c, 256)


def apply_lut(x: Tensor, lut: Tensor) -> Tensor:
    """out[b,c,i,j] = lut[b,c,x[b,c,i,j]]; x uint8 [B,C,H,W], lut uint8 [B,C,256]."""
    b, c, h, w = x.shape
    return lut.gather(2, x.reshape(b, c, h * w).long()).view(b, c, h, w)


def _blend_levels(levels: Tensor, ratio: Tensor, one_minus_ratio: Tensor, other: Tensor | float) -> Tensor:
    # torchvision _blend: (ratio * img1 + (1 - ratio) * img2).clamp(0, 255).to(uint8) -- truncates
    return (ratio * levels + one_minus_ratio * other).clamp(0, 255).to(torch.uint8)


def brightness_lut(x: Tensor, magnitude: Tensor) -> Tensor:
    """adjust_brightness(img, 1 + m): blend with black. magnitude [B] float32; returns [B,1,256]."""
    m = magnitude.view(-1, 1, 1).float()
    # (1 - ratio) is -m exactly in torchvision (Python double arithmetic), not 1 - float32(1 + m)
    return _blend_levels(all_levels(x), 1.0 + m, -m, 0.0)


def _grayscale(x: Tensor) -> Tensor:
    """torchvision rgb_to_grayscale on uint8 [B,3,H,W] -> [B,1,H,W] uint8 (truncated)."""
    r, g, b = x.unbind(dim=1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(torch.uint8).unsqueeze(1)


def contrast_lut(x: Tensor, magnitude: Tensor) -> Tensor:
    """adjust_contrast(img, 1 + m): blend with the mean grey level (mean of the channel if C=1)."""
    grey = _grayscale(x) if x.shape[1] == 3 else x
    mean = grey.float().mean(dim=(1, 2, 3)).view(-1, 1, 1)  # [B,1,1]; integer sum, exact in fp32
    m = magnitude.view(-1, 1, 1).float()
    return _blend_levels(all_levels(x), 1.0 + m, -m, mean)


def posterize_lut(x: Tensor, magnitude: Tensor) -> Tensor:
    """posterize(img, int(m)): keep the top int(m) bits. Returns [B,1,256]."""
    bits = magnitude.trunc().long().view(-1, 1, 1)
    mask = 256 - (1 << (8 - bits))  # ~(2**(8-bits) - 1) within 8 bits
    return (torch.arange(256, device=x.device).view(1, 1, 256) & mask).to(torch.uint8)


def solarize_lut(x: Tensor, magnitude: Tensor) -> Tensor:
    """solarize(img, m): invert values >= m (compared in float32, as torchvision). Returns [B,1,256]."""
    levels = all_levels(x)
    return torch.where(levels >= magnitude.view(-1, 1, 1).float(), 255.0 - levels, levels).to(torch.uint8)


def invert_lut(x: Tensor) -> Tensor:
    """invert(img): 255 - v. Returns [1,1,256] (broadcasts)."""
    return (255 - torch.arange(256, device=x.device)).to(torch.uint8).view(1, 1, 256)


def autocontrast_lut(x: Tensor) -> Tensor:
    """autocontrast(img): stretch each channel to [0, 255]; constant channels unchanged. [B,C,256]."""
    lo = x.amin(dim=(2, 3)).float().unsqueeze(-1)  # [B,C,1]
    hi = x.amax(dim=(2, 3)).float().unsqueeze(-1)
    scale = 255.0 / (hi - lo)
    flat = ~torch.isfinite(scale)  # hi == lo
    lo = torch.where(flat, torch.zeros_like(lo), lo)
    scale = torch.where(flat, torch.ones_like(scale), scale)
    return ((all_levels(x) - lo) * scale).clamp(0, 255).to(torch.uint8)


def equalize_lut(x: Tensor) -> Tensor:
    """equalize(img): per-channel histogram equalisation (PIL's algorithm, as torchvision). [B,C,256].

    Histograms by scatter_add into a fixed [B*C, 256] buffer (bincount would size its output from
    the data, a host sync on CUDA).
    """
    b, c, h, w = x.shape
    flat = x.reshape(b * c, h * w).long()
    hist = torch.zeros(b * c, 256, dtype=torch.long, device=x.device)
    hist.scatter_add_(1, flat, torch.ones(1, 1, dtype=torch.long, device=x.device).expand_as(flat))
    # step = (sum of all non-empty bins but the last) // 255; the last non-empty bin is the maximum
    top = hist.gather(1, flat.amax(dim=1, keepdim=True))  # [B*C,1]
    step = torch.div(h * w - top, 255, rounding_mode="floor")
    lut = torch.div(hist.cumsum(1) + torch.div(step, 2, rounding_mode="floor"), step.clamp(min=1),
                    rounding_mode="floor")
    lut = F.pad(lut, (1, 0))[:, :-1].clamp(0, 255)  # value v maps to the mass strictly below v
    ident = torch.arange(256, device=x.device).expand(b * c, 256)
    lut = torch.where(step == 0, ident, lut)  # step 0: torchvision returns the channel unchanged
    return lut.to(torch.uint8).view(b, c, 256)


# ----------------------------------------------------------------- blends that are not point-wise
def batched_color(x: Tensor, magnitude: Tensor) -> Tensor:
    """adjust_saturation(img, 1 + m) per sample: blend with the grey image; identity when C = 1."""
    if x.shape[1] == 1:
        return x
    m = magnitude.view(-1, 1, 1, 1).float()
    return _blend_levels(x.float(), 1.0 + m, -m, _grayscale(x).float())


def smooth(x: Tensor) -> Tensor:
    """x [B,C,H,W] convolved with [[1,1,1],[1,5,1],[1,1,1]] / 13 and rounded, border pixels kept:
    float32 [B,C,H,W]. Both torchvision's sharpness and Pillow's ImageFilter.SMOOTH.

    torchvision convolves in float32 and rounds. Here the integer neighbourhood sum S is formed
    exactly (int16 shifted adds; cheaper than a grouped conv on CPU) and rounded as (2S + 13) // 26:
    S / 13 is never within 1/26 of a .5 tie, so both roundings give the same uint8 value.
    """
    h, w = x.shape[-2:]
    blurred = x.float()  # a copy: the border keeps the original pixels
    if h <= 2 or w <= 2:
        return blurred
    xi = x.to(torch.int16)
    rows = xi[..., :, :-2] + xi[..., :, 1:-1] + xi[..., :, 2:]  # [B,C,H,W-2] horizontal 3-sums
    s = rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :] + 4 * xi[..., 1:-1, 1:-1]  # centre x5
    blurred[..., 1:-1, 1:-1] = torch.div(2 * s + 13, 26, rounding_mode="floor").float()
    return blurred


def batched_sharpness(x: Tensor, magnitude: Tensor) -> Tensor:
    """adjust_sharpness(img, 1 + m) per sample: blend with a 3x3 smoothed copy (border kept)."""
    h, w = x.shape[-2:]
    if h <= 2 or w <= 2:
        return x
    m = magnitude.view(-1, 1, 1, 1).float()
    return _blend_levels(x.float(), 1.0 + m, -m, smooth(x))
