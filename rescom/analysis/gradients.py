"""Contrastive gradients per key similarity (ResCom, arXiv 2203.11506, Fig. 1 right).

SupCon over a queue (Eq. 1), per anchor i with positives P_i among the keys, s_ij = z_i . k_j:

    L_i = -1/|P_i| sum_{p in P_i} log( exp(s_ip / tau) / sum_a exp(s_ia / tau) )

Its gradient with respect to one similarity decouples into positives and negatives
(p_ij = softmax_j(s_i / tau)):

    dL_i/ds_ij = (p_ij - 1/|P_i|) / tau   for a positive j,
    dL_i/ds_ij =  p_ij / tau              for a negative j.

Easy positives (high similarity) and easy negatives (low similarity) carry almost no gradient:
summed over a queue dominated by them, the useful signal vanishes, which motivates hard pair
mining (Eq. 5). Keys only: an anchor is not contrasted with itself or the other queries.
"""

from __future__ import annotations

import numpy as np


def as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def similarity_gradients(query, labels, keys, key_labels, temperature: float):
    """Closed-form dL_i/ds_ij of Eq. 1 for every anchor i and key j.

    Args:
        query: z [B, D] (the caller normalises; used as given).
        labels: y [B] int.
        keys: k [M, D].
        key_labels: [M] int.
        temperature: tau > 0.

    Returns:
        sim [B, M] (s_ij), grad [B, M] (dL_i/ds_ij, float64), is_pos [B, M] (bool, y_i == label_j).
        Rows of anchors without a positive key are zero in grad: L_i is undefined and such anchors are
        left out of the loss (as SupCon does).
    """
    z = as_numpy(query).astype(np.float64)
    k = as_numpy(keys).astype(np.float64)
    y = as_numpy(labels).astype(np.int64).ravel()
    yk = as_numpy(key_labels).astype(np.int64).ravel()
    if z.ndim != 2 or k.ndim != 2 or z.shape[1] != k.shape[1]:
        raise ValueError(f"query [B, D] and keys [M, D] must share D, got {z.shape} and {k.shape}")
    if y.shape[0] != z.shape[0] or yk.shape[0] != k.shape[0]:
        raise ValueError(f"labels {y.shape} / key_labels {yk.shape} must match query {z.shape} / keys {k.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    sim = z @ k.T  # [B, M]
    logits = sim / temperature
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)  # softmax over the keys: [B, M]
    is_pos = y[:, None] == yk[None, :]
    num_pos = is_pos.sum(axis=1, keepdims=True)  # |P_i|: [B, 1]
    inv = np.divide(1.0, num_pos, out=np.zeros(num_pos.shape), where=num_pos > 0)
    grad = (p - is_pos * inv) / temperature
    grad[num_pos[:, 0] == 0] = 0.0  # anchor without positives: no loss term, no gradient
    return sim, grad, is_pos


def gradient_by_similarity_rank(query, labels, keys, key_labels, temperature: float) -> dict:
    """Mean |dL_i/ds_ij| over anchors as a function of a key's similarity rank.

    For each anchor, its positive keys are ranked by similarity (rank 0 = most similar) and so are its
    negative keys, separately. Entry r of ``positive`` is the mean |grad| of the rank-r positive over
    the anchors that have at least r+1 positives (likewise ``negative``). Anchors without a positive
    are skipped.

    Returns a dict of 1-D float arrays, indexed by rank: ``positive`` and ``negative`` (mean |grad|),
    ``positive_similarity`` and ``negative_similarity`` (mean s_ij at that rank), ``positive_count``
    and ``negative_count`` (how many anchors contributed; int).
    """
    sim, grad, is_pos = similarity_gradients(query, labels, keys, key_labels, temperature)
    keep = is_pos.any(axis=1)
    sim, grad, is_pos = sim[keep], grad[keep], is_pos[keep]
    m = sim.shape[1]
    order = np.argsort(-sim, axis=1, kind="stable")  # descending similarity
    sim_s = np.take_along_axis(sim, order, axis=1)
    grad_s = np.abs(np.take_along_axis(grad, order, axis=1))
    pos_s = np.take_along_axis(is_pos, order, axis=1)
    out: dict = {}
    for name, mask in (("positive", pos_s), ("negative", ~pos_s)):
        rank = np.cumsum(mask, axis=1) - 1  # rank among keys of the same kind, in similarity order
        r = rank[mask]
        count = np.bincount(r, minlength=m)
        grad_sum = np.bincount(r, weights=grad_s[mask], minlength=m)
        sim_sum = np.bincount(r, weights=sim_s[mask], minlength=m)
        n = int(count.nonzero()[0].max()) + 1 if count.any() else 0
        out[name] = grad_sum[:n] / count[:n]
        out[f"{name}_similarity"] = sim_sum[:n] / count[:n]
        out[f"{name}_count"] = count[:n]
    return out
