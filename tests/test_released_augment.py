"""The released code's augmentation policies (fidelity note 11): the PIL CIFAR10Policy op by op,
timm's rand-n2-m10-mstd0.5 for the large recipes, and the config switches that pick them."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps
from torchvision.transforms import AutoAugment, RandAugment

from rescom.config import ConfigError, DataConfig, apply_overrides, validate
from rescom.config import TrainConfig
from rescom.data.augmentation.pil import released_autoaugment as ra
from rescom.data.augmentation.pil.transforms import train_transform


def _image(mode: str, side: int = 8, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (side, side) if mode == "L" else (side, side, 3)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(int)


@pytest.fixture(params=[-1, 1], ids=["minus", "plus"])
def sign(request, monkeypatch):
    """Fix the signed ops' random sign (they look random_sign up in the module at call time)."""
    monkeypatch.setattr(ra, "random_sign", lambda: request.param)
    return request.param


# ---------------------------------------------------------------- the table


def test_policy_table_has_the_released_25_subpolicies():
    assert len(ra.POLICY) == 25
    for sub in ra.POLICY:
        assert len(sub) == 2
        for name, probability, level in sub:
            assert name in ra.OPS and name in ra.MAGNITUDES
            assert 0.0 <= probability <= 1.0 and level in range(10)
    assert ra.POLICY[0] == (("invert", 0.1, 7), ("contrast", 0.2, 6))
    assert ra.POLICY[24] == (("translateY", 0.7, 9), ("autocontrast", 0.9, 1))
    assert set(ra.OPS) == set(ra.MAGNITUDES)


def test_magnitude_ranges_are_the_released_linspaces():
    for name, (start, stop) in {"shearX": (0, 0.3), "translateY": (0, 150 / 331), "rotate": (0, 30),
                                "color": (0, 0.9), "solarize": (256, 0), "brightness": (0, 0.9)}.items():
        np.testing.assert_allclose(ra.MAGNITUDES[name], np.linspace(start, stop, 10), rtol=0, atol=1e-12)
    assert ra.MAGNITUDES["posterize"] == tuple(np.round(np.linspace(8, 4, 10), 0).astype(int))
    assert ra.MAGNITUDES["solarize"][0] == 256  # thresholds from 256: level 0 changes nothing
    assert all(len(v) == 10 for v in ra.MAGNITUDES.values())


# ---------------------------------------------------------------- each op on a fixed image


def test_translate_x_by_one_pixel_fills_grey(sign):
    img = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4) * 10, "L")
    out = _pixels(ra.translate_x(img, 0.25))  # 0.25 of 4 px = 1 px
    src = _pixels(img)
    if sign > 0:  # output(x) = input(x + 1): content moves left, grey enters on the right
        assert (out[:, :3] == src[:, 1:]).all() and (out[:, 3] == 128).all()
    else:
        assert (out[:, 1:] == src[:, :3]).all() and (out[:, 0] == 128).all()


def test_translate_y_by_one_pixel_fills_grey_rgb(sign):
    img = _image("RGB", 4)
    out = _pixels(ra.translate_y(img, 0.25))
    src = _pixels(img)
    if sign > 0:
        assert (out[:3] == src[1:]).all() and (out[3] == 128).all()
    else:
        assert (out[1:] == src[:3]).all() and (out[0] == 128).all()


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_shear_is_bicubic_with_grey_fill(mode, sign):
    img = _image(mode, 8)
    fill = 128 if mode == "L" else (128, 128, 128)
    for op, coeffs in ((ra.shear_x, (1, 0.3 * sign, 0, 0, 1, 0)), (ra.shear_y, (1, 0, 0, 0.3 * sign, 1, 0))):
        expected = img.transform(img.size, Image.AFFINE, coeffs, Image.BICUBIC, fillcolor=fill)
        assert np.array_equal(_pixels(op(img, 0.3)), _pixels(expected))
    white = Image.new(mode, (8, 8), 255 if mode == "L" else (255, 255, 255))
    out = _pixels(ra.shear_x(white, 0.3))
    corner = out[7, 7] if sign > 0 else out[7, 0]  # sampled from outside the image (x + 0.3 y)
    assert np.all(corner == 128)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_rotate_equals_the_released_rgba_composite(mode):
    img = _image(mode, 9)
    for degrees in ra.MAGNITUDES["rotate"]:
        rot = img.convert("RGBA").rotate(degrees)
        released = Image.composite(rot, Image.new("RGBA", rot.size, (128,) * 4), rot).convert(img.mode)
        assert np.array_equal(_pixels(ra.rotate(img, degrees)), _pixels(released))
    corner = _pixels(ra.rotate(img, 30.0))[0, 0]
    assert np.all(corner == 128)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_enhance_ops_are_one_plus_signed_magnitude(mode, sign):
    img = _image(mode, 8)
    for name, kind in (("color", ImageEnhance.Color), ("contrast", ImageEnhance.Contrast),
                       ("sharpness", ImageEnhance.Sharpness), ("brightness", ImageEnhance.Brightness)):
        expected = kind(img).enhance(1 + 0.5 * sign)
        assert np.array_equal(_pixels(ra.OPS[name](img, 0.5)), _pixels(expected)), name


def test_solarize_thresholds_from_256():
    img = Image.fromarray(np.array([[0, 100, 200, 255]], np.uint8), "L")
    assert _pixels(ra.solarize(img, 256.0)).tolist() == [[0, 100, 200, 255]]     # level 0: unchanged
    assert _pixels(ra.solarize(img, ra.MAGNITUDES["solarize"][2])).tolist() == [[0, 100, 55, 0]]  # 199.1
    assert _pixels(ra.solarize(img, 0.0)).tolist() == [[255, 155, 55, 0]]        # level 9: all inverted


def test_posterize_keeps_the_top_bits():
    img = Image.fromarray(np.array([[0b10110111, 255, 15]], np.uint8), "L")
    assert _pixels(ra.posterize(img, 4)).tolist() == [[0b10110000, 0b11110000, 0]]
    assert _pixels(ra.posterize(img, 8)).tolist() == _pixels(img).tolist()


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_unsigned_ops_are_the_imageops_calls(mode):
    img = _image(mode, 8)
    assert np.array_equal(_pixels(ra.invert(img)), 255 - _pixels(img))
    assert np.array_equal(_pixels(ra.equalize(img)), _pixels(ImageOps.equalize(img)))
    assert np.array_equal(_pixels(ra.autocontrast(img)), _pixels(ImageOps.autocontrast(img)))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_every_op_at_every_level_keeps_mode_and_size(mode):
    img = _image(mode, 12)
    for name, op in ra.OPS.items():
        for magnitude in ra.MAGNITUDES[name]:
            out = op(img, magnitude)
            assert out.mode == mode and out.size == img.size, name


# ---------------------------------------------------------------- the policy's draws


def test_policy_draws_subpolicy_then_apply_flags_from_torch():
    """Draw order: the sub-policy index, then one uniform per op (as released)."""
    policy, img = ra.ReleasedCifar10Policy(), _image("RGB", 8)
    seed = next(s for s in range(1000) if torch.manual_seed(s) and int(torch.randint(25, ())) == 8)
    assert ra.POLICY[8] == (("equalize", 0.6, 5), ("equalize", 0.5, 1))  # unsigned: no sign draws
    torch.manual_seed(seed)
    torch.randint(25, ())
    expected = img
    for p in (0.6, 0.5):
        if torch.rand(()).item() < p:
            expected = ImageOps.equalize(expected)
    torch.manual_seed(seed)
    assert np.array_equal(_pixels(policy(img)), _pixels(expected))


def test_policy_is_seedable_and_covers_every_subpolicy(monkeypatch):
    policy, img = ra.ReleasedCifar10Policy(), _image("L", 8)
    torch.manual_seed(3)
    first = [_pixels(policy(img)) for _ in range(5)]
    torch.manual_seed(3)
    assert all(np.array_equal(a, _pixels(policy(img))) for a in first)
    seen = []
    monkeypatch.setattr(ra, "POLICY", tuple((("invert", 0.0, 0), ("invert", 0.0, i % 10)) for i in range(25)))
    real_randint = torch.randint
    monkeypatch.setattr(torch, "randint", lambda *a, **k: seen.append(int(real_randint(*a, **k))) or torch.tensor(seen[-1]))
    torch.manual_seed(0)
    for _ in range(400):
        policy(img)
    assert set(seen) == set(range(25))


# ---------------------------------------------------------------- recipes and switches


def _stage(transform, kind):
    return [t for t in transform.transforms if isinstance(t, kind)]


@pytest.mark.parametrize("recipe", ["cifar", "fashion-mnist"])
def test_recipes_default_to_the_released_autoaugment(recipe):
    assert _stage(train_transform(recipe, 3), ra.ReleasedCifar10Policy)
    assert not _stage(train_transform(recipe, 3), AutoAugment)
    chosen = train_transform(recipe, 3, autoaugment="torchvision")
    assert _stage(chosen, AutoAugment) and not _stage(chosen, ra.ReleasedCifar10Policy)
    with pytest.raises(ValueError, match="released, torchvision"):
        train_transform(recipe, 3, autoaugment="timm")


@pytest.mark.parametrize("recipe", ["large", "large-inat"])
def test_large_recipes_default_to_timm_rand_n2_m10_mstd05(recipe):
    from rescom.data.augmentation.pil.released_randaugment import TorchSeededRandAugment

    (stage,) = _stage(train_transform(recipe, 3), TorchSeededRandAugment)
    assert stage.config == "rand-n2-m10-mstd0.5"
    timm_ra = stage.transform
    assert timm_ra.num_layers == 2 and timm_ra.choice_weights is None
    assert [op.name for op in timm_ra.ops] == [
        "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
        "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"]
    for op in timm_ra.ops:
        assert op.prob == 0.5 and op.magnitude == 10 and op.magnitude_std == 0.5
        assert op.kwargs["fillcolor"] == (124, 116, 104)  # the released fill: ImageNet's mean, also for iNat
    assert _stage(train_transform(recipe, 3, randaugment="torchvision"), RandAugment)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_released_randaugment_runs_seeded_by_torch_and_leaves_global_rngs(mode):
    from rescom.data.augmentation.pil.released_randaugment import TorchSeededRandAugment

    aug, img = TorchSeededRandAugment(), _image(mode, 32)
    random.seed(5)
    np.random.seed(5)
    before = (random.random(), np.random.rand())
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(0)
    outs = [aug(img) for _ in range(20)]
    assert (random.random(), np.random.rand()) == before  # the global generators are restored
    assert all(isinstance(o, Image.Image) and o.mode == mode and o.size == img.size for o in outs)
    torch.manual_seed(0)
    assert all(np.array_equal(_pixels(o), _pixels(aug(img))) for o in outs)
    assert any(not np.array_equal(_pixels(o), _pixels(img)) for o in outs)


def test_config_switches_default_released_and_refuse_other_values():
    cfg = TrainConfig()
    assert cfg.data.autoaugment == "released" and cfg.data.randaugment == "released"
    for key in ("data.autoaugment", "data.randaugment"):
        validate(apply_overrides(cfg, {key: "torchvision"}))
        with pytest.raises(ConfigError, match=key):
            validate(apply_overrides(cfg, {key: "timm"}))


def _resolve(**data_keys):
    from rescom.data.loading.loaders import resolve_pipeline

    in_memory = SimpleNamespace(train=SimpleNamespace(images=np.zeros(1)), test=SimpleNamespace(images=np.zeros(1)))
    return resolve_pipeline(DataConfig(**data_keys), in_memory)


def test_pipeline_auto_runs_either_policy_batched():
    """Both policies have a batched form: the policy no longer decides the pipeline (issue 20)."""
    for autoaugment in ("released", "torchvision"):
        assert _resolve(dataset="cifar10-lt", recipe="auto", autoaugment=autoaugment) == "tensor"
        assert _resolve(dataset="fashion-mnist-lt", recipe="fashion-mnist", autoaugment=autoaugment) == "tensor"
        assert _resolve(dataset="cifar10-lt", pipeline="pil", autoaugment=autoaugment) == "pil"
    assert _resolve(dataset="fashion-mnist-lt", recipe="fashion-mnist-basic") == "tensor"
    assert _resolve(dataset="fashion-mnist-lt", recipe="none") == "tensor"


def test_pipeline_tensor_with_the_released_policy_uses_the_released_batched_policy():
    from rescom.data.loading.tensor_data import batched_recipe

    assert _resolve(dataset="cifar10-lt", recipe="cifar", pipeline="tensor") == "tensor"
    assert batched_recipe("cifar", 3).policy == "released"  # data.autoaugment's default
    assert batched_recipe("cifar", 3, "torchvision").policy == "torchvision"
    with pytest.raises(ConfigError, match="data.pipeline: tensor needs"):
        _resolve(dataset="cifar10-lt", recipe="large", pipeline="tensor")
