"""The loaders of a run over its prepared set: the PIL path's DataLoaders and the batched path's
resident tensors, each seeded per epoch; under torchrun each rank takes its slice (rank_sampler.py)."""

from __future__ import annotations

from functools import partial

import torch
from torch.utils.data import DataLoader

from rescom.config import ConfigError, DataConfig
from rescom.data.loading.datasets import SingleViewDataset, TwoViewDataset
from rescom.data.loading.rank_sampler import RankSliceBatchSampler, seed_worker
from rescom.data.preparation.prepared import PreparedData
from rescom.data.preparation.run_data import recipe_for


def train_loader(data: PreparedData, cfg: DataConfig, batch_size: int, two_views: bool,
                 generator: torch.Generator) -> DataLoader:
    """Shuffled, drop_last (fidelity note 6) loader of (view1, view2, y) or (view, y) batches.

    The generator drives both the shuffle and the workers' seeds, so an epoch is a pure function of it.
    """
    from rescom.data.augmentation.pil.transforms import train_transform  # torchvision: only the PIL path needs it
    from rescom.engine.distributed import world  # here, not at the top: the test loader needs no engine

    transform = train_transform(recipe_for(cfg), data.channels, autoaugment=cfg.autoaugment,
                                randaugment=cfg.randaugment)
    dataset_cls = TwoViewDataset if two_views else SingleViewDataset
    dataset = dataset_cls(data.train, transform, data.channels)
    processes = world()
    if processes.size > 1:  # this rank's slice of each global batch of the same seeded shuffle
        batching = {"batch_sampler": RankSliceBatchSampler(dataset, batch_size, processes.rank, processes.size, generator),
                    "worker_init_fn": partial(seed_worker, processes.rank)}
    else:
        batching = dict(batch_size=batch_size, shuffle=True, drop_last=True)
    return DataLoader(dataset, num_workers=cfg.workers, generator=generator, persistent_workers=False,
                      pin_memory=torch.cuda.is_available(), **batching)


def test_loader(data: PreparedData, cfg: DataConfig, batch_size: int) -> DataLoader:
    from rescom.data.augmentation.pil.transforms import eval_transform

    transform = eval_transform(recipe_for(cfg), data.channels)
    return DataLoader(SingleViewDataset(data.test, transform, data.channels), batch_size=batch_size,
                      shuffle=False, num_workers=cfg.workers)


def resolve_pipeline(cfg: DataConfig, data: PreparedData) -> str:
    """data.pipeline=auto -> 'tensor' for in-memory sets with a batched recipe, else 'pil'.

    Both AutoAugment policies (data.autoaugment) have a batched form, so the policy does not
    decide the pipeline.
    """
    from rescom.data.loading.tensor_data import TENSOR_RECIPES

    recipe = recipe_for(cfg)
    tensor_ok = data.train.images is not None and data.test.images is not None and recipe in TENSOR_RECIPES
    if cfg.pipeline == "auto":
        return "tensor" if tensor_ok else "pil"
    if cfg.pipeline == "tensor" and not tensor_ok:
        raise ConfigError(f"data.pipeline: tensor needs in-memory images and a recipe in {', '.join(TENSOR_RECIPES)}; "
                          f"this dataset/recipe ({recipe}) needs data.pipeline=pil")
    return cfg.pipeline


def epoch_batches(data: PreparedData, cfg: DataConfig, batch_size: int, two_views: bool, seed: int,
                  device: torch.device, resident: dict, graphs: bool = False):
    """The epoch's training batches (view_1[, view_2], labels) on either pipeline, seeded by `seed`.

    resident caches the tensor path's device copy of the training set across epochs; graphs replays
    the tensor augmentation as a CUDA graph (same draws, same images).
    """
    if cfg.pipeline == "pil":
        return train_loader(data, cfg, batch_size, two_views, torch.Generator().manual_seed(seed))
    from rescom.data.loading.tensor_data import GraphedAugment, TensorTrainBatches, batched_recipe, images_as_tensor
    from rescom.engine.distributed import world

    if "images" not in resident:
        resident["images"] = images_as_tensor(data.train, device)
        resident["labels"] = torch.as_tensor(data.train.labels, device=device)
        resident["augment"] = batched_recipe(recipe_for(cfg), data.channels, cfg.autoaugment)
        if graphs:
            resident["augment"] = GraphedAugment(resident["augment"])
    processes = world()
    return TensorTrainBatches(resident["images"], resident["labels"], resident["augment"], batch_size,
                              2 if two_views else 1, seed, rank=processes.rank, world_size=processes.size)


def evaluation_batches(data: PreparedData, cfg: DataConfig, batch_size: int, device: torch.device):
    """Test batches (images, labels): a DataLoader on the PIL path, a resident normalised tensor otherwise."""
    if cfg.pipeline == "pil":
        return test_loader(data, cfg, batch_size)
    from rescom.data.loading.tensor_data import tensor_test_batches

    return tensor_test_batches(data.test, recipe_for(cfg), data.channels, batch_size, device)
