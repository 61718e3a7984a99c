"""The lean data path: the whole (in-memory) training set as one uint8 tensor on the device, batches
augmented with batched per-sample tensor ops (rescom.data.augmentation.batched.recipes). No DataLoader, no PIL.

On the CPU this is several times faster than per-image PIL augmentation; on a GPU the set stays
resident and no step waits for the host. The PIL path (datasets.py) stays as the reference.
"""

from __future__ import annotations

import torch

from rescom.config import ConfigError
from rescom.data.augmentation.batched.recipes import BatchedAugment
from rescom.data.sources.base import Split
from rescom.data.augmentation.stats import normalize_stats

# Recipe -> (Cutout side, crop padding, AutoAugment, flip); the PIL recipes in rescom.data.augmentation.pil.transforms.
_RECIPES = {"cifar": (16, 4, True, True), "fashion-mnist": (8, 4, True, True),
            "fashion-mnist-basic": (0, 4, False, True), "none": (0, 0, False, False)}
TENSOR_RECIPES = tuple(_RECIPES)


def batched_recipe(recipe: str, channels: int, autoaugment: str = "released") -> BatchedAugment:
    """The tensor form of a PIL recipe; 'large' (RandomResizedCrop on files) has none.

    autoaugment is data.autoaugment: "released" (the released code's CIFAR10Policy, as the PIL path's
    ReleasedCifar10Policy computes it) or "torchvision" (torchvision's CIFAR10 policy).
    """
    if recipe not in _RECIPES:
        raise ConfigError(f"data.pipeline=tensor supports recipes {', '.join(_RECIPES)}, not {recipe!r}; "
                         "use data.pipeline=pil")
    cutout, padding, use_autoaugment, flip = _RECIPES[recipe]
    mean, std = normalize_stats(recipe, channels)
    return BatchedAugment(mean, std, cutout=cutout, padding=padding, autoaugment=use_autoaugment, flip=flip,
                           policy=autoaugment)


def images_as_tensor(split: Split, device: torch.device) -> torch.Tensor:
    """uint8 [N, C, H, W] on the device (channels-first copy of the split's [N, H, W, C] images)."""
    if split.images is None:
        raise ConfigError("data.pipeline=tensor needs the images in memory; this dataset keeps file paths "
                         "(use data.pipeline=pil)")
    return torch.from_numpy(split.images).permute(0, 3, 1, 2).contiguous().to(device)


class GraphedAugment:
    """A batched recipe whose application replays as a CUDA graph; the random draws stay eager.

    The draws are a few dozen small kernels on the epoch's generator (the same draws, in the same
    order, as the eager recipe); the application is hundreds of kernels, replayed as one graph.
    Each call returns its own tensor (a copy of the graph's output), since a batch has two views.
    """

    def __init__(self, augment: BatchedAugment):
        from rescom.engine.cuda_graph import CapturedCall

        self.augment = augment
        self.captured = CapturedCall(augment.apply, name="augmentation")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        params = self.augment.sample_params(x.shape, generator, x.device)
        return self.captured(x, params).clone()


class TensorTrainBatches:
    """Shuffled, drop_last batches (view_1, ..., view_V, labels) from a resident uint8 tensor.

    The permutation and the augmentation draws come from one generator seeded per epoch, so an
    epoch is a pure function of (seed, epoch), as on the PIL path.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: BatchedAugment | GraphedAugment,
                 batch_size: int, views: int, seed: int, rank: int = 0, world_size: int = 1):
        self.images, self.labels, self.augment = images, labels, augment
        self.batch_size, self.views = batch_size, views
        self.rank, self.world_size = rank, world_size
        # The shuffle is the same on every rank; augmentation draws differ per rank under torchrun.
        self.order_generator = torch.Generator(device=images.device).manual_seed(seed)
        self.generator = torch.Generator(device=images.device).manual_seed(seed + 7919 * rank + 1)

    def __len__(self) -> int:
        return self.images.shape[0] // self.batch_size

    def __iter__(self):
        order = torch.randperm(self.images.shape[0], generator=self.order_generator, device=self.images.device)
        local = self.batch_size // self.world_size  # under torchrun each rank takes its slice of the global batch
        for step in range(len(self)):
            start = step * self.batch_size + self.rank * local
            index = order[start:start + local]
            batch = self.images[index]  # [B, C, H, W] uint8
            yield (*(self.augment(batch, self.generator) for _ in range(self.views)), self.labels[index])


def tensor_test_batches(split: Split, recipe: str, channels: int, batch_size: int,
                        device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The test set, normalised once, as a list of (images float [B, C, H, W], labels [B]) on the device."""
    mean, std = (torch.tensor(v, device=device).view(1, -1, 1, 1) for v in normalize_stats(recipe, channels))
    images = (images_as_tensor(split, device).float() / 255.0 - mean) / std
    labels = torch.as_tensor(split.labels, device=device)
    return [(images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(labels), batch_size)]
