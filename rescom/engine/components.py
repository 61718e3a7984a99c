"""Build the trainable pieces of a run from its resolved config: model, key encoder, queue, optimizer."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from rescom.config import TrainConfig
from rescom.engine.optimizer import MomentumSGD, build_optimizer
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
    optimizer: MomentumSGD
    # Multi-GPU hook: the DDP wrapper of `model` under torchrun (engine.distributed.prepare_components);
    # train_step calls it instead of `model`. None in a single process. Not part of the state.
    forward_model: nn.Module | None = None
    mining_sizes: tuple[int | None, int | None] = (None, None)  # (Q_p, Q_n) for the step, see mining_sizes()

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "key_encoder": self.key_encoder.state_dict() if self.key_encoder is not None else None,
            "queue": self.queue.state_dict() if self.queue is not None else None,
            "optimizer": _plain_lr(self.optimizer.state_dict()),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.key_encoder is not None:
            self.key_encoder.load_state_dict(state["key_encoder"])
        if self.queue is not None:
            self.queue.load_state_dict(state["queue"])
        lr_tensors = [group["lr"] for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, lr in zip(self.optimizer.param_groups, lr_tensors, strict=True):
            if isinstance(lr, torch.Tensor):  # keep the device lr tensor (set_learning_rate fills it)
                lr.fill_(float(group["lr"]))
                group["lr"] = lr


def _plain_lr(optimizer_state: dict) -> dict:
    """The optimizer state with a float lr: checkpoints are the same whether a GPU trained them or not."""
    for group in optimizer_state["param_groups"]:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"] = float(group["lr"])
    return optimizer_state


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
                        cfg_m.proj_hidden, cfg_m.proj_dim, with_projection, pretrained=cfg_m.pretrained)
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
    optimizer = build_optimizer(config, model, device)
    counts = torch.as_tensor(class_counts, dtype=torch.float32, device=device)
    return Components(model, key_encoder, queue, counts, weights, optimizer, mining_sizes=mining_sizes(config, queue))


def mining_sizes(config: TrainConfig, queue: nn.Module | None) -> tuple[int | None, int | None]:
    """(Q_p, Q_n) as the step passes them to the SPM loss: fixed numbers, never read from the GPU.

    With both null there is no mining (the full-queue softmax, static shapes). With one of them null
    on a per-class queue, "all" is the smallest class's slot count (positives) or the slots outside
    the largest class (negatives): the layout's bound, known on the host, rather than a minimum over
    the batch's classes, which would cost a host sync every step.
    """
    m = config.method
    if (m.num_pos is None and m.num_neg is None) or not hasattr(queue, "capacities"):  # no mining, or a FIFO queue
        return m.num_pos, m.num_neg
    capacities = queue.capacities.tolist()
    num_pos = min(capacities) if m.num_pos is None else m.num_pos
    num_neg = sum(capacities) - max(capacities) if m.num_neg is None else m.num_neg
    return num_pos, num_neg


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """Learning rate of 0-based `epoch` (fidelity notes 7 and 12): constant, warmup + multistep, or cosine."""
    o = config.optim
    if o.schedule == "constant":
        return o.lr
    if o.schedule == "cosine":
        return cosine_learning_rate(o.lr, epoch, o.epochs, o.cosine_warmup_epochs, o.cosine_final_ratio,
                                    o.schedule_version)
    if epoch < o.warmup_epochs:
        return o.lr * (epoch + 1) / o.warmup_epochs
    passed = sum(1 for milestone in o.milestones if epoch >= milestone)
    return o.lr * o.gamma ** passed


def cosine_learning_rate(lr: float, epoch: int, epochs: int, warmup: int, final_ratio: float,
                         version: int = 2) -> float:
    """Warmup + cosine of 0-based `epoch` of `epochs` (fidelity note 12).

    The released large-data code counts epochs t = 1..E: lr t / W while t < W, then
    floor + (lr - floor)(1 + cos(pi (t - W) / (E - W))) / 2 with floor = lr * final_ratio (released:
    W 10, final_ratio 1e-5; the paper's "cosine to 0": W 0, final_ratio 0). Our epoch e is its t = e + 1,
    so the peak comes once (e = W - 1; with W 0 the first epoch is already one step down, as in the
    released loop) and the last epoch sits at the floor. version 1 (optim.schedule_version) is one
    epoch behind: position (e - W) / (E - W), the peak held for two epochs, the floor never reached;
    it stays so that checkpoints trained with it resume on their own schedule.
    """
    position = epoch + 1 if version == 2 else epoch  # the released t, or version 1's t - 1
    warming = epoch + 1 < warmup if version == 2 else epoch < warmup
    if warming:
        return lr * (epoch + 1) / warmup  # the same value in both versions
    floor = lr * final_ratio
    return floor + 0.5 * (lr - floor) * (1.0 + math.cos(math.pi * (position - warmup) / (epochs - warmup)))
