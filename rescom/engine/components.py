"""Build the trainable pieces of a run from its resolved config: model, key encoder, queue, optimizer."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from rescom.config import TrainConfig
from rescom.losses import class_balanced_weights
from rescom.models import ResComNet, build_model
from rescom.queue import ClassBalancedQueue, FifoQueue, ReversedQueue


@dataclass
class Components:
    model: ResComNet
    key_encoder: ResComNet | None      # momentum copy of the model (moco_bs), else None
    queue: nn.Module | None
    class_counts: torch.Tensor         # [K] n_c, on the device
    class_weights: torch.Tensor | None # [K] w_c of Eq. 2, None when beta = 0
    optimizer: torch.optim.Optimizer
    # Multi-GPU hook: the DDP wrapper of `model` under torchrun (engine.distributed.prepare_components);
    # train_step calls it instead of `model`. None in a single process. Not part of the state.
    forward_model: nn.Module | None = None

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "key_encoder": self.key_encoder.state_dict() if self.key_encoder is not None else None,
            "queue": self.queue.state_dict() if self.queue is not None else None,
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.key_encoder is not None:
            self.key_encoder.load_state_dict(state["key_encoder"])
        if self.queue is not None:
            self.queue.load_state_dict(state["queue"])
        self.optimizer.load_state_dict(state["optimizer"])


def build_queue(config: TrainConfig, class_counts: list[int], dim: int) -> nn.Module | None:
    m = config.method
    if m.contrastive == "none" or m.queue == "none":
        return None
    if m.queue == "balanced":
        return ClassBalancedQueue(len(class_counts), m.queue_size, dim)
    if m.queue == "reversed":
        return ReversedQueue(class_counts, m.queue_size, dim)
    return FifoQueue(m.queue_size, dim)


def build_components(config: TrainConfig, class_counts: list[int], in_channels: int,
                     device: torch.device) -> Components:
    """Everything a run trains or updates, initialised from the run's seed (model first, then queue)."""
    torch.manual_seed(config.run.seed)
    cfg_m = config.model
    with_projection = config.method.contrastive != "none"
    model = build_model(cfg_m.backbone, len(class_counts), in_channels, cfg_m.width,
                        cfg_m.proj_hidden, cfg_m.proj_dim, with_projection)
    queue = build_queue(config, class_counts, cfg_m.proj_dim)
    key_encoder = None
    if config.method.key_encoder == "momentum":
        key_encoder = copy.deepcopy(model)
        key_encoder.requires_grad_(False)
    model.to(device)
    if config.run.channels_last:
        model.to(memory_format=torch.channels_last)
    if key_encoder is not None:
        key_encoder.to(device)
    if queue is not None:
        queue.to(device)
    weights = None
    if config.method.contrastive != "none" and config.method.beta > 0:
        weights = class_balanced_weights(class_counts, config.method.beta).to(device, torch.float32)
    o = config.optim
    optimizer = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    counts = torch.as_tensor(class_counts, dtype=torch.float32, device=device)
    return Components(model, key_encoder, queue, counts, weights, optimizer)


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """Learning rate of 0-based `epoch` (fidelity note 7): constant, warmup + multistep, or cosine."""
    o = config.optim
    if o.schedule == "constant":
        return o.lr
    if o.schedule == "cosine":
        return 0.5 * o.lr * (1.0 + math.cos(math.pi * epoch / o.epochs))
    if epoch < o.warmup_epochs:
        return o.lr * (epoch + 1) / o.warmup_epochs
    passed = sum(1 for milestone in o.milestones if epoch >= milestone)
    return o.lr * o.gamma ** passed
