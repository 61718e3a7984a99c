"""Key queues for contrastive learning: class-balanced (ResCom Eq. 3), long-tailed FIFO (MoCo), reversed.

State lives in buffers, so queues are checkpointed with the model and move with `.to()`.
Enqueue is vectorised: no Python loop over samples.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _random_unit_keys(num: int, dim: int) -> torch.Tensor:
    """[num, dim] random unit vectors: the released code's queue start (fidelity note 3)."""
    return F.normalize(torch.randn(num, dim), dim=1)


def _rank_within_class(labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For labels [B]: each sample's 0-based order of appearance within its class, and the counts [K]."""
    # A one-hot sum, not bincount: CUDA bincount reads max(labels) on the host to size its output,
    # a sync that would also forbid CUDA-graph capture. [B, K] booleans are small (B*K <= a few M).
    classes = torch.arange(num_classes, device=labels.device)
    counts = (labels[:, None] == classes[None, :]).sum(0)  # [K]
    order = torch.sort(labels, stable=True).indices
    first_of_class = torch.cumsum(counts, 0) - counts  # [K] start of each class in sorted order
    rank = torch.empty_like(labels)
    rank[order] = torch.arange(labels.numel(), device=labels.device) - first_of_class[labels[order]]
    return rank, counts


class _KeyQueue(nn.Module):
    """What every queue offers the loss: keys [M, D] and their labels [M], held in buffers."""

    @property
    def keys(self) -> torch.Tensor:
        """[M, D] queue contents."""
        return self.queue_keys

    @property
    def labels(self) -> torch.Tensor:
        """[M] class of each slot (-1: a FIFO slot not yet written)."""
        return self.queue_labels

    def _check_batch(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        if keys.ndim != 2 or keys.shape[1] != self.dim or labels.shape != (keys.shape[0],):
            raise ValueError(f"enqueue expects keys [B, {self.dim}] and labels [B]; got {tuple(keys.shape)}, {tuple(labels.shape)}")


class PerClassQueue(_KeyQueue):
    """K class-major FIFO queues; class c owns slots offsets[c] .. offsets[c] + capacities[c] - 1.

    Slot labels are fixed by this layout. A batch holding more keys of class c than its capacity
    keeps the last capacities[c] of them, in order.
    """

    def __init__(self, capacities: list[int], dim: int):
        super().__init__()
        if len(capacities) == 0 or min(capacities) < 1:
            raise ValueError(f"every class needs a queue capacity >= 1, got {capacities}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        caps = torch.as_tensor(capacities, dtype=torch.long)
        self.num_classes = len(capacities)
        self.dim = dim
        self.register_buffer("capacities", caps)
        self.register_buffer("offsets", torch.cumsum(caps, 0) - caps)
        self.register_buffer("queue_keys", _random_unit_keys(int(caps.sum()), dim))
        self.register_buffer("queue_labels", torch.repeat_interleave(torch.arange(len(capacities)), caps))
        self.register_buffer("pointers", torch.zeros(len(capacities), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        """Write keys [B, D] of classes labels [B] into their classes' queues, oldest slots first."""
        self._check_batch(keys, labels)
        labels = labels.to(self.pointers.device, torch.long)
        rank, counts = _rank_within_class(labels, self.num_classes)
        caps = self.capacities
        dropped = (counts - caps).clamp(min=0)  # [K] oldest batch keys that would be overwritten at once
        keep = rank >= dropped[labels]
        slot_in_class = (self.pointers[labels] + rank - dropped[labels]) % caps[labels]
        slots = self.offsets[labels] + slot_in_class  # [B]
        # Fixed shapes, no boolean indexing (its size would be a host sync): dropped keys are written
        # to a spare row past the end, which is then cut off; kept keys have distinct slots.
        total = self.queue_keys.shape[0]
        slots = torch.where(keep, slots, torch.full_like(slots, total))
        padded = torch.cat([self.queue_keys, self.queue_keys.new_zeros(1, self.dim)])  # [M + 1, D]
        padded.index_copy_(0, slots, keys.detach().to(self.queue_keys.dtype))
        self.queue_keys.copy_(padded[:total])
        self.pointers.copy_((self.pointers + torch.minimum(counts, caps)) % caps)


class ClassBalancedQueue(PerClassQueue):
    """ResCom's class-balanced queue (Eq. 3): K per-class FIFO queues of Q keys each, KQ slots."""

    def __init__(self, num_classes: int, size_per_class: int, dim: int):
        if num_classes < 1 or size_per_class < 1:
            raise ValueError(f"num_classes and size_per_class must be >= 1, got {num_classes}, {size_per_class}")
        super().__init__([size_per_class] * num_classes, dim)
        self.size_per_class = size_per_class


def reversed_capacities(class_counts: list[int], size: int) -> list[int]:
    """Per-class capacities summing to size, proportional to the reversed class distribution.

    The class with the most training images gets the share of the class with the fewest, and so on
    (Fig. 3 "reversed queue"); every class keeps at least one slot. Largest-remainder rounding.
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    num_classes = counts.numel()
    if size < num_classes:
        raise ValueError(f"a reversed queue of {num_classes} classes needs size >= {num_classes}, got {size}")
    order = torch.argsort(counts, descending=True, stable=True)  # head first
    reversed_counts = torch.empty_like(counts)
    reversed_counts[order] = counts[order].flip(0)
    share = reversed_counts / reversed_counts.sum() * (size - num_classes)
    caps = share.floor().long() + 1
    remainder = size - int(caps.sum())
    caps[torch.argsort(share - share.floor(), descending=True, stable=True)[:remainder]] += 1
    return caps.tolist()


class ReversedQueue(PerClassQueue):
    """Per-class queues whose capacities follow the reversed class distribution (Fig. 3)."""

    def __init__(self, class_counts: list[int], size: int, dim: int):
        super().__init__(reversed_capacities(class_counts, size), dim)


class FifoQueue(_KeyQueue):
    """MoCo's queue: one FIFO of `size` keys whose class mix follows the long-tailed data.

    Slots not yet written hold random unit keys with label -1: negatives to every query, as in MoCo.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"size and dim must be >= 1, got {size}, {dim}")
        self.size, self.dim = size, dim
        self.register_buffer("queue_keys", _random_unit_keys(size, dim))
        self.register_buffer("queue_labels", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        """Write keys [B, D] and labels [B] at the pointer, wrapping; a batch over `size` keeps its last keys."""
        self._check_batch(keys, labels)
        keys, labels = keys[-self.size :], labels[-self.size :]
        slots = (self.pointer + torch.arange(keys.shape[0], device=self.pointer.device)) % self.size
        self.queue_keys[slots] = keys.detach().to(self.queue_keys.dtype)
        self.queue_labels[slots] = labels.to(self.queue_labels.device, torch.long)
        self.pointer.copy_((self.pointer + keys.shape[0]) % self.size)
