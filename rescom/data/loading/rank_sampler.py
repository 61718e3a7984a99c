"""Under torchrun, each rank's share of the training batches: its slice of every global batch of
one seeded shuffle (so the slices in rank order are the single-process batches), and per-rank seeds."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import RandomSampler, Sampler

from rescom.config import ConfigError


def rank_seed(seed: int, rank: int) -> int:
    """A distinct seed per rank (rank 0 keeps `seed`): ranks must not draw identical augmentations."""
    return (seed + rank * 0x9E3779B97F4A7C15) % (2**63) if rank else seed


class RankSliceBatchSampler(Sampler[list[int]]):
    """Rank r's contiguous slice of every global batch of a seeded shuffle, drop_last.

    It consumes `generator` exactly as DataLoader(shuffle=True, drop_last=True) does, so with the
    same generator state the slices of ranks 0..N-1, concatenated, are the single-process batches.
    """

    def __init__(self, dataset, global_batch: int, rank: int, world_size: int, generator: torch.Generator):
        if global_batch % world_size:
            raise ConfigError(f"optim.batch_size: the global batch {global_batch} must be divisible by the "
                              f"{world_size} training processes (WORLD_SIZE)")
        self.sampler = RandomSampler(dataset, generator=generator)
        self.global_batch = global_batch
        per_rank = global_batch // world_size
        self.slice = slice(rank * per_rank, (rank + 1) * per_rank)

    def __iter__(self):
        batch: list[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.global_batch:
                yield batch[self.slice]
                batch = []

    def __len__(self) -> int:
        return len(self.sampler) // self.global_batch


def seed_worker(rank: int, worker_id: int) -> None:
    """Worker seeds differ per rank too (DataLoader derives them from a base seed every rank shares)."""
    seed = rank_seed(torch.initial_seed(), rank)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
