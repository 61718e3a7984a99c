"""Vanishing contrastive gradients (Fig. 1 right) and positive-pair similarities (Fig. 5)."""

import math

import numpy as np
import pytest
import torch

from rescom.analysis.gradients import gradient_by_similarity_rank, similarity_gradients
from rescom.analysis.similarity import positive_pair_similarities, shot_group


def _supcon_queue_loss(sim, labels, key_labels, tau):
    """Eq. 1 summed over anchors with a positive: the autograd reference."""
    log_prob = torch.log_softmax(sim / tau, dim=1)
    pos = (labels[:, None] == key_labels[None, :]).to(sim.dtype)
    num_pos = pos.sum(1)
    keep = num_pos > 0
    per_anchor = -(pos * log_prob).sum(1)[keep] / num_pos[keep]
    return per_anchor.sum()


def test_closed_form_matches_autograd():
    gen = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(6, 5, generator=gen, dtype=torch.float64), dim=1)
    k = torch.nn.functional.normalize(torch.randn(9, 5, generator=gen, dtype=torch.float64), dim=1)
    y = torch.tensor([0, 1, 2, 0, 1, 3])  # class 3 has no key: that anchor gets no gradient
    yk = torch.tensor([0, 0, 1, 2, 2, 2, 1, 0, 1])
    tau = 0.2
    sim_ref = (q @ k.T).requires_grad_(True)
    _supcon_queue_loss(sim_ref, y, yk, tau).backward()
    sim, grad, is_pos = similarity_gradients(q, y, k, yk, tau)
    np.testing.assert_allclose(sim, sim_ref.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(grad, sim_ref.grad.numpy(), atol=1e-12)
    np.testing.assert_array_equal(is_pos, (y[:, None] == yk[None, :]).numpy())
    assert (grad[5] == 0).all()
    assert (grad[~is_pos] >= 0).all()  # negatives are always pushed away
    # positives: (p_ij - 1/|P_i|) / tau, i.e. each row's positive gradients sum to (sum_P p - 1) / tau
    row_sum = np.where(is_pos, grad, 0).sum(1)[:5]
    np.testing.assert_allclose(row_sum, (np.where(is_pos, np.exp(sim / tau), 0).sum(1)[:5]
                                         / np.exp(sim / tau).sum(1)[:5] - 1) / tau, atol=1e-12)


def test_two_key_case_by_hand():
    # z = e1, positive key e1 (s = 1), negative key e2 (s = 0), tau = 1:
    # p = e / (e + 1); dL/ds_pos = p - 1 = -1/(e+1); dL/ds_neg = 1 - p = 1/(e+1)
    _, grad, _ = similarity_gradients(np.array([[1.0, 0.0]]), [0], np.eye(2), [0, 1], 1.0)
    g = 1.0 / (math.e + 1.0)
    np.testing.assert_allclose(grad, [[-g, g]], atol=1e-15)
    # same with tau = 0.5: p = e^2 / (e^2 + 1), gradients scaled by 1/tau
    _, grad, _ = similarity_gradients(np.array([[1.0, 0.0]]), [0], np.eye(2), [0, 1], 0.5)
    g = 2.0 / (math.e**2 + 1.0)
    np.testing.assert_allclose(grad, [[-g, g]], atol=1e-15)


def test_shape_errors():
    with pytest.raises(ValueError, match="share D"):
        similarity_gradients(np.zeros((2, 3)), [0, 1], np.zeros((4, 2)), [0, 1, 0, 1], 0.2)
    with pytest.raises(ValueError, match="labels"):
        similarity_gradients(np.zeros((2, 3)), [0], np.zeros((4, 3)), [0, 1, 0, 1], 0.2)


def test_gradient_by_rank_by_hand():
    # one anchor, similarities (as dot products with unit keys along the first axis):
    # positives s = 0.9, 0.1; negatives s = 0.5, -0.5, -0.9
    s = np.array([0.9, 0.5, 0.1, -0.5, -0.9])
    keys = np.stack([s, np.sqrt(1 - s**2)], axis=1)
    key_labels = [0, 1, 0, 1, 1]
    tau = 0.2
    out = gradient_by_similarity_rank(np.array([[1.0, 0.0]]), [0], keys, key_labels, tau)
    p = np.exp(s / tau) / np.exp(s / tau).sum()
    np.testing.assert_allclose(out["positive"], np.abs(p[[0, 2]] - 0.5) / tau)
    np.testing.assert_allclose(out["negative"], p[[1, 3, 4]] / tau)
    np.testing.assert_allclose(out["positive_similarity"], [0.9, 0.1])
    np.testing.assert_array_equal(out["negative_count"], [1, 1, 1])


def test_easy_negatives_carry_less_gradient():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(16, 8))
    k = rng.normal(size=(64, 8))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    # 16 keys per class: every anchor has 16 positives and 48 negatives, so every rank averages
    # over the same anchors
    y, yk = rng.integers(0, 4, 16), np.repeat(np.arange(4), 16)
    out = gradient_by_similarity_rank(q, y, k, yk, 0.2)
    # per anchor, a negative's gradient is its softmax weight: monotone in similarity
    assert (np.diff(out["negative"]) <= 1e-15).all()
    assert (np.diff(out["negative_similarity"]) <= 0).all()
    assert (out["positive_count"] == 16).all() and out["negative"].size == 48


def test_shot_groups():
    assert [shot_group(n) for n in (101, 100, 20, 19)] == ["many", "medium", "medium", "few"]


def test_positive_pair_similarities_grouping():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(10, 4))
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    counts = [500, 50, 5, 10]  # many, medium, few, few
    out = positive_pair_similarities(emb, labels, counts)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)

    def pairs(members):
        return [unit[i] @ unit[j] for a, i in enumerate(members) for j in members[a + 1:]]

    np.testing.assert_allclose(out["many"], pairs([0, 1, 2]), rtol=1e-5)
    np.testing.assert_allclose(out["medium"], pairs([3, 4]), rtol=1e-5)
    np.testing.assert_allclose(np.sort(out["few"]), np.sort(pairs([6, 7, 8, 9])), rtol=1e-5)
    # row blocks must not change the result
    blocked = positive_pair_similarities(torch.tensor(emb), torch.tensor(labels), counts, block=2)
    for g in ("many", "medium", "few"):
        np.testing.assert_allclose(np.sort(blocked[g]), np.sort(out[g]), rtol=1e-5)


def test_similarity_and_gradient_figures(tmp_path):
    from rescom.analysis import figures

    rng = np.random.default_rng(0)
    out = gradient_by_similarity_rank(rng.normal(size=(4, 3)), [0, 1, 0, 1],
                                      rng.normal(size=(12, 3)), rng.integers(0, 2, 12), 0.2)
    figures.plot_gradient_by_rank(out, tmp_path / "grad.png")
    groups = {"rescom": {"many": rng.uniform(-1, 1, 50), "few": rng.uniform(0, 1, 20)},
              "supcon": {"many": rng.uniform(-1, 1, 50), "medium": rng.uniform(0, 1, 20)}}
    figures.plot_similarity_histograms(groups, tmp_path / "sim.png")
    for name in ("grad.png", "sim.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
