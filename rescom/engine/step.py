"""One training step of any method variant: Eq. 7, L = L_cls + lambda * L_con, then the queue update."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from rescom.config import TrainConfig
from rescom.engine import distributed
from rescom.engine.components import Components
from rescom.losses import balanced_softmax_loss, siamese_balanced_softmax_loss, spm_contrastive_loss


def classifier_loss(kind: str, logits: torch.Tensor, target: torch.Tensor, counts: torch.Tensor,
                    batch: int) -> torch.Tensor:
    """ce / bs on view 1 (logits[:B]); siambs on both views (Eq. 6). logits: [V*B, K]."""
    if kind == "ce":
        return F.cross_entropy(logits[:batch], target)
    if kind == "bs":
        return balanced_softmax_loss(logits[:batch], target, counts)
    return siamese_balanced_softmax_loss(logits[:batch], logits[batch:], target, counts)


def contrastive_loss(config: TrainConfig, parts: Components, z: torch.Tensor, target: torch.Tensor,
                     keys_from_encoder: torch.Tensor | None) -> torch.Tensor:
    """The SupCon / SPM term for queries z [2B, D] (shared encoder) or [B, D] (momentum encoder)."""
    m = config.method
    queue_keys = parts.queue.keys if parts.queue is not None else z.new_zeros(0, z.shape[1])
    queue_labels = parts.queue.labels if parts.queue is not None else target.new_zeros(0)
    if keys_from_encoder is not None:
        # MoCo: the momentum keys of this batch join the queue as candidates (own view-2 key is a positive).
        keys = torch.cat([keys_from_encoder, queue_keys])
        key_labels = torch.cat([target, queue_labels])
        return spm_contrastive_loss(z, target, keys, key_labels, num_pos=m.num_pos, num_neg=m.num_neg,
                                    temperature=m.temperature, class_weights=parts.class_weights, validate=False)
    labels = torch.cat([target, target])  # both views are queries (fidelity note 2)
    return spm_contrastive_loss(z, labels, queue_keys, queue_labels, num_pos=m.num_pos, num_neg=m.num_neg,
                                temperature=m.temperature, class_weights=parts.class_weights,
                                in_batch=m.in_batch, validate=False)


def train_step(config: TrainConfig, parts: Components, views: list[torch.Tensor],
               target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward, backward and SGD step on one batch; returns detached loss terms (no host sync).

    views: V tensors [B, C, H, W] (V = 1 for single-view baselines, 2 otherwise); target: [B].
    """
    m = config.method
    batch = target.shape[0]
    momentum_encoder = parts.key_encoder is not None
    # With a momentum encoder only view 1 goes through the model; view 2 makes the keys.
    x = views[0] if momentum_encoder else torch.cat(views)
    if config.run.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = (torch.autocast(x.device.type, dtype=torch.bfloat16) if config.run.bf16
                else contextlib.nullcontext())
    model = parts.model if parts.forward_model is None else parts.forward_model  # DDP under torchrun
    with autocast:
        logits, z = model(x)  # [V*B, K], [V*B, D]
    logits = logits.float()
    loss_cls = classifier_loss(m.classifier_loss, logits, target, parts.class_counts, batch)
    losses = {"loss_cls": loss_cls}
    loss = loss_cls
    momentum_keys = None
    z_target = target  # labels of z's rows
    if m.contrastive != "none":
        z = z.float()
        if momentum_encoder:
            with torch.no_grad(), autocast:
                momentum_keys = parts.key_encoder(views[1])[1].float()  # [B, D]
        # Multi-GPU hook: all ranks' embeddings (with gradient), labels and keys in single-process order,
        # so the contrastive term and the queue see the global batch. Identity in one process.
        z, z_target, momentum_keys = distributed.gather_batch(z, target, momentum_keys)
        loss_con = contrastive_loss(config, parts, z, z_target, momentum_keys)
        losses["loss_con"] = loss_con
        loss = loss_cls + m.contrastive_weight * loss_con
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.optimizer.step()
    with torch.no_grad():
        if momentum_encoder:
            update_momentum_encoder(parts, m.momentum)
        if parts.queue is not None:
            # Released code writes view-1 embeddings after the loss (note 3); Algorithm 1 writes view 2.
            if momentum_keys is not None:
                new_keys = momentum_keys
            else:
                rows = z_target.shape[0]  # the global batch under torchrun
                new_keys = z[:rows] if m.enqueue_view == 1 else z[rows:]
            parts.queue.enqueue(new_keys.detach(), z_target)
        losses["loss"] = loss.detach()
        losses["correct"] = (logits[:batch].argmax(1) == target).sum()
    return {k: v.detach() for k, v in losses.items()}


@torch.no_grad()
def update_momentum_encoder(parts: Components, momentum: float) -> None:
    """theta_k <- m theta_k + (1 - m) theta_q (MoCo); buffers (BN statistics) copied."""
    for k, q in zip(parts.key_encoder.parameters(), parts.model.parameters()):
        k.mul_(momentum).add_(q.detach(), alpha=1.0 - momentum)
    for k, q in zip(parts.key_encoder.buffers(), parts.model.buffers()):
        k.copy_(q)
