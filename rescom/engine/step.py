"""One training step of any method variant: Eq. 7, L = L_cls + lambda * L_con, then the queue update."""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F

from rescom.config import CLASSIFIER_LOSSES, TrainConfig
from rescom.engine import distributed
from rescom.engine.components import Components
from rescom.losses import balanced_softmax_loss, spm_contrastive_loss


def classifier_loss(kind: str, logits: torch.Tensor, target: torch.Tensor, counts: torch.Tensor,
                    batch: int) -> torch.Tensor:
    """The loss of config.CLASSIFIER_LOSSES[kind] on logits [V*B, K] (view-major) and target [B]: over
    both views the Balanced Softmax of the 2B rows is Eq. 6 (losses.siamese_balanced_softmax_loss).

    counts were checked (every n_c >= 1) when the data was loaded, so the losses skip that check's sync.
    """
    if kind not in CLASSIFIER_LOSSES:  # the config refuses it; a caller that bypassed the config is a bug
        raise ValueError(f"unknown classifier loss {kind!r}; kinds: {', '.join(CLASSIFIER_LOSSES)}")
    loss = CLASSIFIER_LOSSES[kind]
    rows = logits[:loss.views * batch]  # [views*B, K]
    targets = target if loss.views == 1 else target.repeat(loss.views)  # [views*B]
    if loss.balanced:
        return balanced_softmax_loss(rows, targets, counts, validate=False)
    return F.cross_entropy(rows, targets)


def contrastive_loss(config: TrainConfig, parts: Components, z: torch.Tensor, target: torch.Tensor,
                     keys_from_encoder: torch.Tensor | None) -> torch.Tensor:
    """The SupCon / SPM term for z [2B, D] (shared encoder) or [B, D] (momentum encoder).

    Shared encoder: method.anchors=both makes all 2B rows queries (released code); view1 makes the
    first B rows queries and the last B keys (Algorithm 1). The momentum path's queries are always
    view 1, its keys the momentum encoder's view 2 (fidelity note 14), whatever method.anchors says.
    """
    m = config.method
    num_pos, num_neg = parts.mining_sizes  # host ints (or None, None): no sync to size the mining
    loss = functools.partial(spm_contrastive_loss, num_pos=num_pos, num_neg=num_neg, temperature=m.temperature,
                             class_weights=parts.class_weights, validate=False)
    queue_keys = parts.queue.keys if parts.queue is not None else z.new_zeros(0, z.shape[1])
    queue_labels = parts.queue.labels if parts.queue is not None else target.new_zeros(0)
    if keys_from_encoder is not None:
        # MoCo: the momentum keys of this batch join the queue as candidates (own view-2 key is a positive).
        return loss(z, target, torch.cat([keys_from_encoder, queue_keys]), torch.cat([target, queue_labels]))
    if m.anchors == "view1":
        # Algorithm 1 (fidelity note 2b): view-1 queries; the batch's view-2 embeddings are keys (all
        # candidates, with gradient: one shared encoder) beside the mined queue. Rows are view-major.
        rows = target.shape[0]
        return loss(z[:rows], target, queue_keys, queue_labels, batch_keys=z[rows:], batch_key_labels=target)
    # both views are queries (fidelity note 2)
    return loss(z, torch.cat([target, target]), queue_keys, queue_labels, in_batch=m.in_batch)


def train_step(config: TrainConfig, parts: Components, views: list[torch.Tensor],
               target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward, backward and SGD step on one batch; returns detached loss terms.

    views: V tensors [B, C, H, W] (V = 1 for single-view baselines, 2 otherwise); target: [B].
    No host sync and no data-dependent shape anywhere (mining sizes are host ints, the queue write
    is masked), so the whole step can be captured as one CUDA graph (make_train_step); its two halves
    around backward() each compile with fullgraph=True (tests/test_graph_ready.py).
    """
    loss, losses, new_keys, key_labels = forward_losses(config, parts, views, target)
    parts.optimizer.zero_grad()
    loss.backward()
    apply_updates(config, parts, new_keys, key_labels)
    return losses


def forward_losses(config: TrainConfig, parts: Components, views: list[torch.Tensor], target: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor]:
    """Eq. 7 on one batch: (loss with graph, detached terms, keys to enqueue [B', D] or None, their labels [B'])."""
    m = config.method
    batch = target.shape[0]
    momentum_encoder = parts.key_encoder is not None
    # With a momentum encoder only view 1 goes through the model; view 2 makes the keys.
    x = views[0] if momentum_encoder else torch.cat(views)
    if config.run.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    # No autocast weight cache: each weight is cast once per step anyway, and CUDA graphs need it off.
    autocast = (torch.autocast(x.device.type, dtype=torch.bfloat16, cache_enabled=False) if config.run.bf16
                else contextlib.nullcontext())
    model = parts.model if parts.forward_model is None else parts.forward_model  # DDP under torchrun
    with autocast:
        logits, z = model(x)  # [V*B, K], [V*B, D]
    logits = logits.float()
    loss_cls = classifier_loss(m.classifier_loss, logits, target, parts.class_counts, batch)
    losses = {"loss_cls": loss_cls.detach()}
    loss = loss_cls
    new_keys, key_labels = None, target
    if m.contrastive != "none":
        z = z.float()
        momentum_keys = None
        if momentum_encoder:
            with torch.no_grad(), autocast:
                momentum_keys = parts.key_encoder(views[1])[1].float()  # [B, D]
        global_contrast = config.run.ddp_contrast == "global"
        if global_contrast:
            # Multi-GPU, ours: all ranks' embeddings (with gradient), labels and keys in single-process
            # order, so the contrastive term and the queue see the global batch. Identity in one process.
            z, key_labels, momentum_keys = distributed.gather_batch(z, target, momentum_keys)
        loss_con = contrastive_loss(config, parts, z, key_labels, momentum_keys)
        losses["loss_con"] = loss_con.detach()
        loss = loss_cls + m.contrastive_weight * loss_con
        # Released code writes view-1 embeddings after the loss (note 3); Algorithm 1 writes view 2.
        rows = key_labels.shape[0]  # the global batch under torchrun with global contrast
        if momentum_keys is not None:
            new_keys = momentum_keys
        else:
            new_keys = z[:rows] if m.enqueue_view == 1 else z[rows:]
        new_keys = new_keys.detach()
        if not global_contrast:
            # Multi-GPU, released (note 13): the loss saw this rank's batch only, but the queue takes
            # every rank's keys in rank order, so all ranks keep the same queue. Identity in one process.
            new_keys, key_labels = distributed.gather_keys(new_keys, key_labels)
    losses["loss"] = loss.detach()
    losses["correct"] = (logits[:batch].detach().argmax(1) == target).sum()
    return loss, losses, new_keys, key_labels


@torch.no_grad()
def apply_updates(config: TrainConfig, parts: Components, new_keys: torch.Tensor | None,
                  key_labels: torch.Tensor) -> None:
    """Everything after backward: the SGD update, the momentum encoder, the queue write (no grad)."""
    parts.optimizer.step()
    if parts.key_encoder is not None:
        update_momentum_encoder(parts, config.method.momentum)
    if parts.queue is not None and new_keys is not None:
        parts.queue.enqueue(new_keys, key_labels)


@torch.no_grad()
def update_momentum_encoder(parts: Components, momentum: float) -> None:
    """theta_k <- m theta_k + (1 - m) theta_q (MoCo); buffers (BN statistics) copied.

    Multi-tensor (foreach) kernels: a handful of launches instead of three per parameter.
    """
    key_params = list(parts.key_encoder.parameters())
    torch._foreach_mul_(key_params, momentum)
    torch._foreach_add_(key_params, [q.detach() for q in parts.model.parameters()], alpha=1.0 - momentum)
    torch._foreach_copy_(list(parts.key_encoder.buffers()), list(parts.model.buffers()))


def use_cuda_graphs(config: TrainConfig, device: torch.device) -> bool:
    """Capture the step on a GPU in one process (under torchrun DDP's collectives stay eager)."""
    return config.run.cuda_graphs and device.type == "cuda" and not distributed.active()


def make_train_step(config: TrainConfig, parts: Components, device: torch.device):
    """train_step of this run, called with (views, target): eager, or replayed as a CUDA graph.

    The graph's outputs are overwritten by its next replay; the loop only adds them into its sums.
    """
    step = functools.partial(train_step, config, parts)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the step's shapes never change: autotune cuDNN once
    if not use_cuda_graphs(config, device):
        return step
    from rescom.engine.cuda_graph import CapturedCall

    return CapturedCall(step, name="train step")
