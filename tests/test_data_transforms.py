"""Augmentation recipes, Cutout, and the two-view / single-view datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from rescom.data.loading.datasets import SingleViewDataset, TwoViewDataset
from rescom.data.sources.base import Split
from rescom.data.augmentation.pil.transforms import RECIPES, Cutout, eval_transform, train_transform

# input side per recipe, and the output side it must produce
SIZES = {"cifar": (32, 32), "fashion-mnist": (28, 28), "fashion-mnist-basic": (28, 28), "large": (40, 224), "large-inat": (40, 224), "none": (20, 20)}


def _pil(side: int, channels: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    if channels == 1:
        return Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8), "L")
    return Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("channels", [1, 3])
def test_recipe_shapes_and_determinism(recipe, channels):
    side_in, side_out = SIZES[recipe]
    img = _pil(side_in, channels)
    for make in (train_transform, eval_transform):
        t = make(recipe, channels)
        torch.manual_seed(0)
        a = t(img)
        torch.manual_seed(0)
        b = t(img)
        assert a.shape == (channels, side_out, side_out) and a.dtype == torch.float32
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # torch's global RNG drives every draw


@pytest.mark.parametrize("autoaugment", ["released", "torchvision"])
@pytest.mark.parametrize("recipe", ["cifar", "fashion-mnist"])
def test_autoaugment_on_grayscale_over_many_draws(recipe, autoaugment):
    """Every AutoAugment sub-policy (both implementations) must accept a mode 'L' image; 200 draws cover all 25."""
    side = SIZES[recipe][0]
    t = train_transform(recipe, 1, autoaugment=autoaugment)
    img = _pil(side, 1)
    torch.manual_seed(1)
    for _ in range(200):
        assert t(img).shape == (1, side, side)


def test_train_views_differ():
    t = train_transform("cifar", 3)
    img = _pil(32, 3)
    torch.manual_seed(0)
    assert not torch.equal(t(img), t(img))


def test_normalisation_statistics():
    grey = Image.fromarray(np.full((28, 28), 51, np.uint8), "L")  # 51/255 = 0.2
    out = eval_transform("fashion-mnist", 1)(grey)
    torch.testing.assert_close(out, torch.full_like(out, (0.2 - 0.2860) / 0.3530))
    rgb = Image.fromarray(np.full((32, 32, 3), 51, np.uint8), "RGB")
    out = eval_transform("cifar", 3)(rgb)
    for c, (m, s) in enumerate(zip((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), strict=True)):
        torch.testing.assert_close(out[c], torch.full_like(out[c], (0.2 - m) / s))


def test_unknown_recipe_and_channels():
    with pytest.raises(ValueError, match="cifar, fashion-mnist, fashion-mnist-basic, large, large-inat, none"):
        train_transform("imagenet", 3)
    with pytest.raises(ValueError, match="channels"):
        eval_transform("cifar", 4)


@pytest.mark.parametrize("size", [16, 5])
def test_cutout_zeroes_exactly_the_clipped_square(size):
    h, w = 20, 40
    img = torch.rand(3, h, w) + 1  # strictly positive, so zeros come only from Cutout
    cut = Cutout(size)
    saw_clipped = saw_full = False
    for seed in range(60):
        torch.manual_seed(seed)
        y, x = int(torch.randint(h, ())), int(torch.randint(w, ()))  # the draws Cutout makes
        torch.manual_seed(seed)
        out = cut(img)
        ys = [r for r in range(h) if y - size // 2 <= r < y - size // 2 + size]
        xs = [c for c in range(w) if x - size // 2 <= c < x - size // 2 + size]
        mask = torch.zeros(h, w, dtype=torch.bool)
        mask[np.ix_(ys, xs)] = True
        assert torch.equal(out == 0, mask.expand(3, h, w))
        torch.testing.assert_close(out[:, ~mask], img[:, ~mask], rtol=0, atol=0)
        saw_full |= len(ys) == size and len(xs) == size
        saw_clipped |= len(ys) < size or len(xs) < size
    assert saw_clipped and saw_full
    assert img.min() >= 1  # input untouched


def test_cutout_rejects_bad_size():
    with pytest.raises(ValueError):
        Cutout(0)


# ---------------------------------------------------------------- datasets


def _split(channels: int, n: int = 4, side: int = 32) -> Split:
    rng = np.random.default_rng(0)
    return Split(labels=np.arange(n) % 2, images=rng.integers(0, 256, (n, side, side, channels), dtype=np.uint8))


@pytest.mark.parametrize("channels", [1, 3])
def test_two_view_dataset_in_memory(channels):
    ds = TwoViewDataset(_split(channels), train_transform("cifar", channels), channels)
    assert len(ds) == 4
    torch.manual_seed(0)
    v1, v2, y = ds[1]
    assert v1.shape == v2.shape == (channels, 32, 32) and y == 1 and isinstance(y, int)
    assert not torch.equal(v1, v2)
    x1, x2, ys = next(iter(DataLoader(ds, batch_size=4)))
    assert x1.shape == x2.shape == (4, channels, 32, 32) and ys.dtype == torch.int64


def test_single_view_dataset_matches_pixels():
    split = _split(1)
    ds = SingleViewDataset(split, eval_transform("none", 1), channels=1)
    x, y = ds[2]
    expected = (torch.from_numpy(split.images[2, :, :, 0]).float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(x[0], expected)
    assert y == 0


def test_datasets_from_paths_convert_mode(tmp_path):
    paths = []
    for i, mode in enumerate(["L", "RGB", "RGBA"]):
        arr = np.full((10, 12) + ((len(mode),) if mode != "L" else ()), 30 * i, np.uint8)
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(arr, mode).save(paths[-1])
    split = Split(labels=np.array([0, 1, 2]), paths=paths)
    rgb = SingleViewDataset(split, eval_transform("none", 3), channels=3)
    assert all(rgb[i][0].shape == (3, 10, 12) for i in range(3))
    grey = TwoViewDataset(split, eval_transform("none", 1), channels=1)
    v1, v2, y = grey[1]
    assert v1.shape == (1, 10, 12) and torch.equal(v1, v2) and y == 1
    # an RGB in-memory split read as 1 channel goes through PIL's luma conversion
    mem = SingleViewDataset(_split(3), eval_transform("none", 1), channels=1)
    assert mem[0][0].shape == (1, 32, 32)


def test_inaturalist_uses_its_own_normalisation():
    """The released code normalises iNaturalist 2018 with mean (0.466, 0.471, 0.380), std (0.195, 0.194, 0.192)."""
    from rescom.config import DataConfig
    from rescom.data.augmentation.stats import normalize_stats
    from rescom.data.augmentation.pil.transforms import eval_transform
    from rescom.data.preparation.run_data import recipe_for

    assert recipe_for(DataConfig(dataset="inat2018", imbalance=None)) == "large-inat"
    assert recipe_for(DataConfig(dataset="imagenet-lt", imbalance=None)) == "large"
    assert normalize_stats("large-inat", 3) == ((0.466, 0.471, 0.380), (0.195, 0.194, 0.192))
    norm = eval_transform("large-inat", 3).transforms[-1]
    assert tuple(norm.mean) == (0.466, 0.471, 0.380) and tuple(norm.std) == (0.195, 0.194, 0.192)
