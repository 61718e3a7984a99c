"""Hard pair mining of ResCom's Siamese Balanced Contrastive Mining (Eq. 5)."""

from __future__ import annotations

import torch


def mine_hard_pairs(
    similarity: torch.Tensor,
    query_labels: torch.Tensor,
    key_labels: torch.Tensor,
    num_pos: int,
    num_neg: int,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query, the num_pos least similar keys of its own class and the num_neg most similar others.

    similarity: [B, M] query-key similarities; query_labels: [B]; key_labels: [M].
    Returns (pos_idx [B, num_pos], neg_idx [B, num_neg]) as indices into the M keys, positives in
    ascending and negatives in descending order of similarity.
    Raises ValueError when a query has fewer than num_pos positives or num_neg negatives among the keys;
    validate=False skips that check (and its host sync) where the queue layout already guarantees it.
    """
    if similarity.ndim != 2:
        raise ValueError(f"similarity must be [B, M], got {tuple(similarity.shape)}")
    batch, num_keys = similarity.shape
    if query_labels.shape != (batch,) or key_labels.shape != (num_keys,):
        raise ValueError(
            f"labels do not match similarity {tuple(similarity.shape)}: "
            f"query_labels {tuple(query_labels.shape)}, key_labels {tuple(key_labels.shape)}"
        )
    if num_pos < 0 or num_neg < 0:
        raise ValueError(f"num_pos and num_neg must be >= 0, got {num_pos}, {num_neg}")
    is_pos = query_labels[:, None] == key_labels[None, :]  # [B, M]
    if validate and batch:
        # Keys per class by bincount, O(B + M) rather than summing the [B, M] mask; label -1 (an
        # unwritten FIFO slot) shifts to bin 0 and counts only as a negative.
        per_class = torch.bincount(key_labels + 1, minlength=int(query_labels.max()) + 2)[query_labels + 1]
        pos_available = int(per_class.min())
        neg_available = num_keys - int(per_class.max())
        if num_pos > pos_available:
            raise ValueError(
                f"num_pos={num_pos} but a query has only {pos_available} keys of its class in the queue (Q_p <= Q)"
            )
        if num_neg > neg_available:
            raise ValueError(
                f"num_neg={num_neg} but a query has only {neg_available} keys of other classes (Q_n <= (K-1)Q)"
            )
    # Masked entries are pushed out of reach of topk rather than gathered per query: one kernel, no loop.
    inf = torch.finfo(similarity.dtype).max
    with torch.no_grad():
        pos_idx = similarity.masked_fill(~is_pos, inf).topk(num_pos, dim=1, largest=False).indices
        neg_idx = similarity.masked_fill(is_pos, -inf).topk(num_neg, dim=1, largest=True).indices
    return pos_idx, neg_idx
