"""The tensor (fast) data path against the per-image torchvision reference, up to the training loss."""

from __future__ import annotations

import copy

import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import _apply_op

from rescom.config import apply_overrides, resolve_for_data
from rescom.data.augmentation.batched.recipes import (OPS, apply_autoaugment, batched_crop, batched_cutout, batched_hflip,
                                         batched_normalize, sample_autoaugment_params, sample_crop_params,
                                         sample_cutout_params, sample_flip_params)
from rescom.data.augmentation.stats import normalize_stats
from rescom.engine.components import build_components
from rescom.engine.step import train_step
from rescom.methods import preset_config

MEAN, STD = normalize_stats("cifar", 3)


def _params(n: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"crop": sample_crop_params(n, g, torch.device("cpu"), 4), "flip": sample_flip_params(n, g, torch.device("cpu")),
            "aa": sample_autoaugment_params(n, g, torch.device("cpu"), image_size=(32, 32)),
            "hole": sample_cutout_params(n, 32, 32, g, torch.device("cpu"))}


def fast_path(x: torch.Tensor, p: dict) -> torch.Tensor:
    x = batched_hflip(batched_crop(x, *p["crop"], 4), p["flip"])
    x = apply_autoaugment(x, p["aa"]).float() / 255.0
    return batched_normalize(batched_cutout(x, *p["hole"], 16), torch.tensor(MEAN), torch.tensor(STD))


def reference_path(x: torch.Tensor, p: dict) -> torch.Tensor:
    """torchvision, one image at a time, with the same parameters (the released recipe's order)."""
    out = []
    for i, img in enumerate(x):
        img = TF.crop(TF.pad(img, [4]), int(p["crop"][0][i]), int(p["crop"][1][i]), 32, 32)
        if p["flip"][i]:
            img = TF.hflip(img)
        for j in range(2):
            if p["aa"]["apply"][i, j]:
                img = _apply_op(img, OPS[int(p["aa"]["op"][i, j])], float(p["aa"]["magnitude"][i, j]),
                                interpolation=InterpolationMode.NEAREST, fill=None)
        img = img.float() / 255.0
        cy, cx = int(p["hole"][0][i]), int(p["hole"][1][i])
        img[:, max(cy - 8, 0):max(cy + 8, 0), max(cx - 8, 0):max(cx + 8, 0)] = 0
        out.append(TF.normalize(img, MEAN, STD))
    return torch.stack(out)


def test_fast_and_reference_paths_give_the_same_views_and_loss():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g)
    target = torch.tensor([0, 1, 2, 3, 0, 1, 2, 0])
    p1, p2 = _params(8, 1), _params(8, 2)
    fast = [fast_path(images, p1), fast_path(images, p2)]
    reference = [reference_path(images, p1), reference_path(images, p2)]
    assert torch.equal(fast[0], reference[0]) and torch.equal(fast[1], reference[1])

    counts = [20, 10, 5, 3]
    config = resolve_for_data(apply_overrides(preset_config("rescom"), {"model.width": 4, "method.queue_size": 3, "optim.batch_size": 8}), counts)
    parts = build_components(config, counts, 3, torch.device("cpu"))
    twin = copy.deepcopy(parts)
    loss_fast = train_step(config, parts, fast, target)
    loss_reference = train_step(config, twin, reference, target)
    for key in ("loss", "loss_cls", "loss_con"):
        assert torch.equal(loss_fast[key], loss_reference[key]), key
    assert torch.equal(parts.queue.keys, twin.queue.keys)
