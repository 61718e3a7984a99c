"""The released code's CIFAR AutoAugment as batched tensor ops (fidelity note 11 of docs/design.md).

The batched twin of rescom.data.augmentation.pil.released_autoaugment, not of torchvision's policy:
the same 25 sub-policies, probabilities and magnitudes (imported from the PIL port, so there is one
table), and each op reproduces what Pillow computes for it, per image: the shears Pillow's bicubic
affine (libImaging/Geometry.c), translate and rotate its nearest paths, fill grey 128, the enhance
ops its float32 Image.blend with its degenerate images, the rest its ImageOps look-up tables; each
function below names the Pillow arithmetic it follows. tests/test_batched_augment.py measures every
op at every magnitude the policy uses against the PIL port, and feeds both the same draws.

Draws per image: the sub-policy (uniform over 25), one uniform per op compared with its probability
(`u < p`, as the port), one sign per op (+-1; rotate ignores it, as the port). The port draws a sign
only for an op that applies, from torch's global stream; here every sign is drawn, from the epoch's
generator, so the distribution is the port's and the stream is not.

Application runs as a fixed set of batched kernels per op slot, picked per sample by torch.where:
no Python loop over samples, no host sync, shapes fixed by the input, so it compiles with
fullgraph=True and replays as a CUDA graph like torchvision's batched policy (batched/autoaugment.py).
Every tensor is made on the input's device.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from rescom.data.augmentation.batched import ops
from rescom.data.augmentation.pil.released_autoaugment import FILL, MAGNITUDES, POLICY


RELEASED_OPS: tuple[str, ...] = (
    "identity", "shearX", "shearY", "translateX", "translateY", "rotate",
    "color", "contrast", "sharpness", "brightness",
    "posterize", "solarize", "autocontrast", "equalize", "invert",
)
OP_INDEX = {name: i for i, name in enumerate(RELEASED_OPS)}
# The ops each slot of the 25 sub-policies can hold: the shears and rotate occur in the first slot
# only, so the second slot's application skips the bicubic (a static fact of the table, not a
# data-dependent branch: the graph keeps its fixed shape).
SLOT_OPS: tuple[frozenset[str], frozenset[str]] = tuple(
    frozenset({"identity"} | {sub[slot][0] for sub in POLICY}) for slot in range(2))
# ops whose magnitude takes the drawn sign (the port's random_sign() calls); rotate turns by +m only
SIGNED = ("shearX", "shearY", "translateX", "translateY", "color", "contrast", "sharpness", "brightness")


@functools.lru_cache(maxsize=8)
def _device_tables(device: torch.device) -> tuple[Tensor, ...]:
    """(op [25,2] int64, probability [25,2] float64, magnitude [25,2] float64, signed [len(OPS)] bool),
    copied to the device once, not per batch (a pageable host-to-device copy would sync).

    Probabilities stay float64 so `u < p` compares as the port's `torch.rand(()).item() < p` does.
    """
    op = torch.tensor([[OP_INDEX[name] for name, _, _ in sub] for sub in POLICY], dtype=torch.long)
    prob = torch.tensor([[p for _, p, _ in sub] for sub in POLICY], dtype=torch.float64)
    mag = torch.tensor([[float(MAGNITUDES[name][level]) for name, _, level in sub] for sub in POLICY],
                       dtype=torch.float64)
    signed = torch.tensor([name in SIGNED for name in RELEASED_OPS])
    return tuple(t.to(device) for t in (op, prob, mag, signed))


def sample_released_params(n: int, generator: torch.Generator | None, device: torch.device | str) -> dict[str, Tensor]:
    """The policy's draws for n images, as tensors on `device`.

      policy [n] int64   sub-policy index, uniform over the 25
      apply [n,2] bool   uniform < the op's probability (the port's test)
      sign [n,2] int64   -1 or +1 for each op (used by the signed ops only)
    """
    _, prob, _, _ = _device_tables(torch.device(device))
    policy = torch.randint(0, len(POLICY), (n,), generator=generator, device=device)
    uniform = torch.rand(n, 2, generator=generator, device=device)
    sign = torch.randint(0, 2, (n, 2), generator=generator, device=device) * 2 - 1
    return {"policy": policy, "apply": uniform.double() < prob[policy], "sign": sign}


def released_slot_ops(params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(op [n,2] int64 into RELEASED_OPS, identity where not applied; signed magnitude [n,2] float64)."""
    op_t, _, mag_t, signed = _device_tables(params["policy"].device)
    op = op_t[params["policy"]]
    magnitude = mag_t[params["policy"]]
    magnitude = torch.where(signed[op], magnitude * params["sign"].to(magnitude.dtype), magnitude)
    op = torch.where(params["apply"], op, torch.zeros_like(op))
    return op, magnitude


# ------------------------------------------------------------------------------- geometry
def _pil_affine(op: Tensor, value: Tensor, height: int, width: int) -> Tensor:
    """The coefficients [B,6] (a0..a5, float64) that the port passes to Image.transform per sample.

    Output pixel (x, y) reads input (a0 x + a1 y + a2, a3 x + a4 y + a5). Rotate builds its matrix as
    Image.rotate does (cos and sin rounded to 15 decimals, about the centre (W/2, H/2)).
    """
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    is_op = {name: op == OP_INDEX[name] for name in ("shearX", "shearY", "translateX", "translateY", "rotate")}
    angle = torch.where(is_op["rotate"], -torch.deg2rad(value), zero)
    cos = torch.round(torch.cos(angle) * 1e15) / 1e15
    sin = torch.round(torch.sin(angle) * 1e15) / 1e15
    cx, cy = 0.5 * width, 0.5 * height
    a0 = torch.where(is_op["rotate"], cos, one)
    a1 = torch.where(is_op["rotate"], sin, torch.where(is_op["shearX"], value, zero))
    a3 = torch.where(is_op["rotate"], -sin, torch.where(is_op["shearY"], value, zero))
    a4 = a0
    a2 = torch.where(is_op["translateX"], value * width, zero)
    a5 = torch.where(is_op["translateY"], value * height, zero)
    a2 = torch.where(is_op["rotate"], cos * -cx + sin * -cy + 0.0 + cx, a2)
    a5 = torch.where(is_op["rotate"], -sin * -cx + cos * -cy + 0.0 + cy, a5)
    return torch.stack([a0, a1, a2, a3, a4, a5], dim=1)


def _pixel_grid(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(x, y) integer pixel coordinates [1,H,W] as float64."""
    y = torch.arange(height, device=device, dtype=torch.float64).view(1, height, 1).expand(1, height, width)
    x = torch.arange(width, device=device, dtype=torch.float64).view(1, 1, width).expand(1, height, width)
    return x, y


def _gather_pixels(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """x [B,C,H,W] read at in-range integer indices rows, cols [B,H,W] -> [B,C,H,W]."""
    b, c, h, w = x.shape
    index = (rows * w + cols).view(b, 1, h * w).expand(b, c, h * w)
    return x.reshape(b, c, h * w).gather(2, index).view(b, c, h, w)


def _nearest(x: Tensor, op: Tensor, coeffs: Tensor, fill: int) -> Tensor:
    """Pillow's nearest affine: float 'scale' path for translations, 16.16 fixed point for rotate."""
    b, _, h, w = x.shape
    px, py = _pixel_grid(h, w, x.device)
    a = coeffs.view(b, 6, 1, 1).unbind(1)
    # translations (a1 = a3 = 0): ImagingScaleAffine, index COORD(a2 + 0.5 + x)
    float_col = torch.floor(a[2] + a[0] * 0.5 + a[0] * px)
    float_row = torch.floor(a[5] + a[4] * 0.5 + a[4] * py)
    # rotate: affine_fixed, FIX(v) = floor(v * 65536 + 0.5); index = (a2 + y a1 + x a0) >> 16

    def fix(v: torch.Tensor) -> torch.Tensor:
        return torch.floor(v * 65536.0 + 0.5).long()

    f0, f1, f3, f4 = fix(a[0]), fix(a[1]), fix(a[3]), fix(a[4])
    f2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5)
    f5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5)
    ix, iy = px.long(), py.long()
    fixed_col = torch.div(f2 + iy * f1 + ix * f0, 65536, rounding_mode="floor")
    fixed_row = torch.div(f5 + iy * f4 + ix * f3, 65536, rounding_mode="floor")
    rotated = (op == OP_INDEX["rotate"]).view(b, 1, 1)
    col = torch.where(rotated, fixed_col, float_col.long())
    row = torch.where(rotated, fixed_row, float_row.long())
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    out = _gather_pixels(x, row.clamp(0, h - 1), col.clamp(0, w - 1))
    return torch.where(inside.unsqueeze(1), out, torch.full_like(out, fill))


def _cubic(v1: Tensor, v2: Tensor, v3: Tensor, v4: Tensor, d: Tensor) -> Tensor:
    """Pillow's BICUBIC macro (a = -1, its transform kernel; its resize uses a = -0.5):
    v2 + d (p2 + d (p3 + d p4)), the polynomial in float64.

    The taps are integers, so p2, p3, p4 are exact in any order and are formed in int16 (cheaper
    than float64); only the polynomial in d rounds, and it keeps Pillow's order of operations.
    """
    p2 = (v3 - v1).double()
    p3 = (2 * (v1 - v2) + v3 - v4).double()
    p4 = (v2 - v1 - v3 + v4).double()
    return v2.double() + d * (p2 + d * (p3 + d * p4))


def _bicubic_shear(x: Tensor, op: Tensor, coeffs: Tensor, fill: int) -> Tensor:
    """Pillow's affine transform with BICUBIC resampling (ImagingGenericTransform + bicubic_filter),
    for the shears: ShearY where op is shearY, ShearX elsewhere.

    Pillow takes 4 x 4 taps: a cubic along x in each of 4 rows, then one along y. A shear moves
    pixels along one axis only, so the source point's fraction across it is exactly 0 and Pillow's
    second cubic returns its second input unchanged (v2 + 0 * (...)); the 4 taps along the shear's
    axis give the same value bit for bit, at a quarter of the reads.
    """
    b, c, h, w = x.shape
    px, py = _pixel_grid(h, w, x.device)
    a = coeffs.view(b, 6, 1, 1).unbind(1)
    xin = a[0] * (px + 0.5) + a[1] * (py + 0.5) + a[2]  # [B,H,W], Pillow's affine_transform
    yin = a[3] * (px + 0.5) + a[4] * (py + 0.5) + a[5]
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    along_y = (op == OP_INDEX["shearY"]).view(b, 1, 1)
    source = torch.where(along_y, yin, xin) - 0.5
    start = torch.floor(source)
    fraction = (source - start).unsqueeze(1)  # [B,1,H,W]
    last = torch.where(along_y, h - 1, w - 1)
    row, col = py.long(), px.long()
    flat = x.reshape(b, c, h * w)
    taps = []
    for k in (-1, 0, 1, 2):
        t = torch.minimum((start.long() + k).clamp(min=0), last)  # XCLIP / YCLIP
        index = torch.where(along_y, t * w + col, row * w + t).view(b, 1, h * w).expand(b, c, h * w)
        taps.append(flat.gather(2, index).view(b, c, h, w).to(torch.int16))
    # clamped to [0, 255], then truncated by the conversion (Pillow: (UINT8) v)
    value = _cubic(*taps, fraction).clamp(0.0, 255.0).to(x.dtype)
    return torch.where(inside.unsqueeze(1), value, torch.full_like(value, fill))


# --------------------------------------------------------------------------------- colour
def _blend(degenerate: Tensor, image: Tensor, factor: Tensor) -> Tensor:
    """Image.blend(degenerate, image, factor): degenerate + factor * (image - degenerate), float32,
    clamped to [0, 255] and truncated (Pillow's Blend.c). factor broadcasts against the images."""
    return (degenerate + factor * (image - degenerate)).clamp(0.0, 255.0).to(torch.uint8)


def _factor(value: Tensor, ndim: int) -> Tensor:
    # 1 + m * sign in Python's double, handed to Pillow's C as a float
    return (1.0 + value).float().view(-1, *([1] * (ndim - 1)))


def _pil_grey(x: Tensor) -> Tensor:
    """convert('L') of uint8 [B,C,H,W]: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16; C = 1 as is."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.int().unbind(dim=1)  # at most 255 * 65536 + 0x8000: int32 suffices
    grey = torch.div(19595 * r + 38470 * g + 7471 * b + 0x8000, 65536, rounding_mode="floor")
    return grey.to(torch.uint8).unsqueeze(1)


def _brightness_lut(x: Tensor, value: Tensor) -> Tensor:
    """Brightness: blend with black. [B,1,256]."""
    return _blend(torch.zeros((), device=x.device), ops.all_levels(x), _factor(value, 3))


def _contrast_lut(x: Tensor, value: Tensor) -> Tensor:
    """Contrast: blend with the grey image's mean, rounded half up (int(mean + 0.5)). [B,1,256]."""
    grey = _pil_grey(x)
    mean = torch.floor(grey.double().mean(dim=(1, 2, 3)) + 0.5).float().view(-1, 1, 1)
    return _blend(mean, ops.all_levels(x), _factor(value, 3))


def _color(x: Tensor, value: Tensor) -> Tensor:
    """Color: blend with the grey image (identity for a grey image, whose degenerate is itself)."""
    return _blend(_pil_grey(x).float(), x.float(), _factor(value, 4))


def _sharpness(x: Tensor, value: Tensor) -> Tensor:
    return _blend(ops.smooth(x), x.float(), _factor(value, 4))


def _solarize_lut(x: Tensor, value: Tensor) -> Tensor:
    """ImageOps.solarize: values >= threshold (256 at level 0: none) inverted. [B,1,256]."""
    levels = torch.arange(256, device=x.device, dtype=torch.float64).view(1, 1, 256)
    return torch.where(levels >= value.view(-1, 1, 1), 255.0 - levels, levels).to(torch.uint8)


def _autocontrast_lut(x: Tensor) -> Tensor:
    """ImageOps.autocontrast(cutoff=0): int(v * scale - lo * scale), scale = 255 / (hi - lo) in float64,
    clamped; a channel with hi <= lo unchanged. [B,C,256]."""
    lo = x.amin(dim=(2, 3)).double().unsqueeze(-1)  # [B,C,1]
    hi = x.amax(dim=(2, 3)).double().unsqueeze(-1)
    flat = hi <= lo
    scale = 255.0 / torch.where(flat, torch.ones_like(hi), hi - lo)
    levels = torch.arange(256, device=x.device, dtype=torch.float64).view(1, 1, 256)
    lut = (levels * scale + -lo * scale).trunc().clamp(0, 255)
    return torch.where(flat, levels, lut).to(torch.uint8)


def apply_released_ops(x: Tensor, op: Tensor, value: Tensor, fill: int = FILL,
                       present: frozenset[str] = frozenset(RELEASED_OPS)) -> Tensor:
    """Apply op[b] (index into RELEASED_OPS) with signed magnitude value[b] to image b of x uint8 [B,C,H,W].

    value [B] float64 is what the port's op receives times its sign (shear factor, translate fraction
    of the side, rotate degrees, enhance m, posterize bits, solarize threshold). `present` names the
    ops op may hold; the kernels of the others are not run (an op outside it would be left as identity).
    """
    ops.check_image_batch(x)
    if op.shape != (x.shape[0],) or value.shape != (x.shape[0],):
        raise ValueError(f"op and value must be [B]=[{x.shape[0]}], got {tuple(op.shape)}, {tuple(value.shape)}")
    b, _, h, w = x.shape
    value = value.double()

    def sel(*names: str) -> torch.Tensor:  # [B,1,1]: the samples whose op is one of `names`
        return functools.reduce(torch.logical_or, [(op == OP_INDEX[name]).view(-1, 1, 1) for name in names])

    def has(*names: str) -> bool:
        return not present.isdisjoint(names)

    tables = {  # the point-wise ops: one 256-entry table per sample (and channel), one gather for all
        "brightness": lambda: _brightness_lut(x, value), "contrast": lambda: _contrast_lut(x, value),
        "posterize": lambda: ops.posterize_lut(x, value), "solarize": lambda: _solarize_lut(x, value),
        "autocontrast": lambda: _autocontrast_lut(x), "equalize": lambda: ops.equalize_lut(x),
        "invert": lambda: ops.invert_lut(x)}
    lut = ops.identity_lut(x)
    for name, table in tables.items():
        if has(name):
            lut = torch.where(sel(name), table(), lut)
    out = ops.apply_lut(x, lut)

    coeffs = _pil_affine(op, value, h, w)
    nearest_ops = [name for name in ("translateX", "translateY", "rotate") if has(name)]
    if nearest_ops:
        out = torch.where(sel(*nearest_ops).unsqueeze(-1), _nearest(x, op, coeffs, fill), out)
    shear_ops = [name for name in ("shearX", "shearY") if has(name)]
    if shear_ops:
        out = torch.where(sel(*shear_ops).unsqueeze(-1), _bicubic_shear(x, op, coeffs, fill), out)
    if has("color"):
        out = torch.where(sel("color").unsqueeze(-1), _color(x, value), out)
    if has("sharpness"):
        out = torch.where(sel("sharpness").unsqueeze(-1), _sharpness(x, value), out)
    return out


def apply_released_slots(x: Tensor, op: Tensor, value: Tensor, fill: int = FILL) -> Tensor:
    """The two op slots (op, value [B,2] from released_slot_ops) on x uint8 [B,C,H,W], in order.

    A pure function of its tensors (the tables are read when drawing, not here), so it is what the
    recipe compiles and captures as a graph.
    """
    for slot in range(2):
        x = apply_released_ops(x, op[:, slot], value[:, slot], fill, present=SLOT_OPS[slot])
    return x


def apply_released_autoaugment(x: Tensor, params: dict[str, Tensor], fill: int = FILL) -> Tensor:
    """The drawn sub-policies (see sample_released_params) on x uint8 [B,C,H,W]."""
    return apply_released_slots(x, *released_slot_ops(params), fill)

