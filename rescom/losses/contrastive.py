"""Supervised contrastive loss over a queue: Eq. 1 (SupCon), Eq. 2 (class-balanced), Eq. 3 (balanced
queue) and Eq. 5 (Siamese Balanced Contrastive Mining, SPM) as one function."""

from __future__ import annotations

import torch

from rescom.mining import mine_hard_pairs


def supcon_loss_from_logits(
    logits: torch.Tensor,
    pos_mask: torch.Tensor,
    valid_mask: torch.Tensor | None = None,
    anchor_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """-1/|P_i| sum_{p in P_i} log softmax_p(logits_i), weighted and averaged over anchors.

    logits: [B, C] candidate similarities / tau; pos_mask: [B, C] bool, positives P_i;
    valid_mask: [B, C] bool, candidates in the softmax denominator (default all);
    anchor_weights: [B] per-anchor weight w_{y_i} (default ones).
    Anchors without any positive contribute nothing and are left out of the mean, as in SupCon;
    if no anchor has a positive the loss is a zero that still carries the graph. A masked sum over
    a count rather than boolean indexing: no data-dependent shape, so no host sync per step.
    """
    if valid_mask is not None:
        logits = logits.masked_fill(~valid_mask, float("-inf"))
        pos_mask = pos_mask & valid_mask
    log_prob = torch.log_softmax(logits, dim=1)
    # where(), not multiplication: 0 * -inf would be NaN at masked entries.
    pos_log_prob = torch.where(pos_mask, log_prob, torch.zeros_like(log_prob)).sum(1)
    num_pos = pos_mask.sum(1)
    has_pos = num_pos > 0
    per_anchor = -pos_log_prob / num_pos.clamp(min=1)  # [B]
    if anchor_weights is not None:
        per_anchor = per_anchor * anchor_weights.to(per_anchor.dtype)
    kept = has_pos.to(per_anchor.dtype)
    return (per_anchor * kept).sum() / kept.sum().clamp(min=1.0)


def spm_contrastive_loss(
    query: torch.Tensor,
    labels: torch.Tensor,
    keys: torch.Tensor,
    key_labels: torch.Tensor,
    *,
    num_pos: int | None,
    num_neg: int | None,
    temperature: float,
    class_weights: torch.Tensor | None = None,
    in_batch: bool = False,
    batch_keys: torch.Tensor | None = None,
    batch_key_labels: torch.Tensor | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """Eq. 5: per query z_i, softmax over its Q_p hardest positives and Q_n hardest negatives in the queue.

    query: z, [B, D] l2-normalised embeddings; labels: y, [B]; keys: queue contents, [M, D];
    key_labels: [M]; num_pos: Q_p (None = all positives, no mining); num_neg: Q_n (None = all
    negatives); temperature: tau; class_weights: w, [K] (Eq. 2), each query weighted by w_{y_i};
    in_batch: also contrast each query with the other B-1 queries, positives those of its class
    (fidelity note 2: the released code passes both views' 2B embeddings as queries);
    batch_keys / batch_key_labels: [B', D] / [B'] keys of this batch that every query contrasts with,
    unmined and with gradient, positives those of its class (Algorithm 1: view-1 queries, view-2 keys,
    each query's own view-2 key a positive; fidelity note 2b). None: no such keys;
    validate: check that every query has Q_p positives and Q_n negatives (a host sync); the training
    step skips it because the config check already guarantees it for per-class queues.
    With num_pos = Q, num_neg = (K-1)Q on a class-balanced queue and in_batch=False this is Eq. 3;
    with num_pos = num_neg = None it is SupCon over the queue, Eq. 1.
    Returns the scalar loss averaged over queries that have at least one positive.
    """
    if query.ndim != 2 or keys.ndim != 2 or query.shape[1] != keys.shape[1]:
        raise ValueError(f"query [B, D] and keys [M, D] must share D; got {tuple(query.shape)} and {tuple(keys.shape)}")
    if labels.shape != (query.shape[0],) or key_labels.shape != (keys.shape[0],):
        raise ValueError(
            f"labels {tuple(labels.shape)} / key_labels {tuple(key_labels.shape)} do not match "
            f"query {tuple(query.shape)} / keys {tuple(keys.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if batch_keys is not None and (batch_keys.ndim != 2 or batch_keys.shape[1] != query.shape[1]
                                   or batch_key_labels is None or batch_key_labels.shape != (batch_keys.shape[0],)):
        raise ValueError(f"batch_keys [B', D] with batch_key_labels [B'] must share D with the query; got "
                         f"{tuple(batch_keys.shape)} and {None if batch_key_labels is None else tuple(batch_key_labels.shape)}")
    keys = keys.to(query.dtype)
    if num_pos is None and num_neg is None:
        logits = query @ keys.T / temperature  # [B, M]
        pos_mask = labels[:, None] == key_labels[None, :]  # [B, M]
    else:
        with torch.no_grad():
            # Mining ranks raw similarities (tau does not change the order); only the chosen
            # Q_p + Q_n keys enter the graph, so the backward is [B, Q_p + Q_n], not [B, M].
            sim = query.detach() @ keys.T  # [B, M]
            is_pos = labels[:, None] == key_labels[None, :]
            pos_k = int(is_pos.sum(1).min()) if num_pos is None else num_pos
            neg_k = int((~is_pos).sum(1).min()) if num_neg is None else num_neg
            pos_idx, neg_idx = mine_hard_pairs(sim, labels, key_labels, pos_k, neg_k, validate=validate)
        chosen = keys[torch.cat([pos_idx, neg_idx], dim=1)]  # [B, Q_p + Q_n, D]
        logits = torch.einsum("bd,bkd->bk", query, chosen) / temperature
        pos_mask = torch.zeros_like(logits, dtype=torch.bool)
        pos_mask[:, :pos_k] = True
    valid_mask = None
    if in_batch:
        batch, queue_width = query.shape[0], logits.shape[1]
        batch_logits = query @ query.T / temperature  # [B, B]
        not_self = ~torch.eye(batch, dtype=torch.bool, device=query.device)
        logits = torch.cat([logits, batch_logits], dim=1)  # [B, queue_width + B]
        pos_mask = torch.cat([pos_mask, (labels[:, None] == labels[None, :]) & not_self], dim=1)
        # The anchor itself is no candidate: its self-similarity 1/tau would dominate the softmax.
        queue_valid = torch.ones(batch, queue_width, dtype=torch.bool, device=query.device)
        valid_mask = torch.cat([queue_valid, not_self], dim=1)
    if batch_keys is not None:
        logits, pos_mask, valid_mask = _append_batch_keys(query, labels, batch_keys, batch_key_labels,
                                                          temperature, logits, pos_mask, valid_mask)
    weights = None
    if class_weights is not None:
        weights = torch.as_tensor(class_weights, device=query.device)[labels]
    return supcon_loss_from_logits(logits, pos_mask, valid_mask, weights)


def _append_batch_keys(query: torch.Tensor, labels: torch.Tensor, batch_keys: torch.Tensor,
                       batch_key_labels: torch.Tensor, temperature: float, logits: torch.Tensor,
                       pos_mask: torch.Tensor, valid_mask: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Add the batch's keys as candidates: [B, C] -> [B, C + B'] (Algorithm 1's l_pos / batch keys).

    Every key is a candidate (no mining: Eq. 5 mines the queue) and none is the query itself, so
    no self-exclusion; positives share the query's label, its own other view among them.
    """
    batch_logits = query @ batch_keys.to(query.dtype).T / temperature  # [B, B']
    logits = torch.cat([logits, batch_logits], dim=1)
    pos_mask = torch.cat([pos_mask, labels[:, None] == batch_key_labels[None, :]], dim=1)
    if valid_mask is not None:
        valid_mask = torch.cat([valid_mask, torch.ones_like(batch_logits, dtype=torch.bool)], dim=1)
    return logits, pos_mask, valid_mask
