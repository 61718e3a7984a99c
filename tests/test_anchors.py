"""method.anchors (fidelity note 2b): the released code's queries are both views; Algorithm 1's are view 1.

The view-1 form is checked against a hand-written loop over anchors on fixed tensors: each view-1
query contrasts with its mined queue keys (Eq. 5: the Q_p least similar of its class, the Q_n most
similar of other classes) and with every view-2 key of the batch (its own among the positives),
weighted by w_{y_i} (Eq. 2) and averaged over anchors.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from rescom.config import ConfigError, apply_overrides, validate
from rescom.engine.step import contrastive_loss
from rescom.methods import preset_config

D64 = torch.float64
B, K, DIM, Q = 4, 3, 8, 2          # batch, classes, embedding size, keys per class (a queue of 6)
NUM_POS, NUM_NEG, TAU = 1, 2, 0.2
WEIGHTS = torch.tensor([1.0, 2.0, 0.5], dtype=D64)
VIEW1 = {"method.anchors": "view1", "method.in_batch": False, "method.enqueue_view": 2}


def _inputs():
    g = torch.Generator().manual_seed(7)
    z = F.normalize(torch.randn(2 * B, DIM, generator=g, dtype=D64), dim=1)  # [view 1; view 2]
    target = torch.tensor([0, 1, 2, 0])
    queue = SimpleNamespace(keys=F.normalize(torch.randn(K * Q, DIM, generator=g, dtype=D64), dim=1),
                            labels=torch.arange(K).repeat_interleave(Q))
    parts = SimpleNamespace(queue=queue, mining_sizes=(NUM_POS, NUM_NEG), class_weights=WEIGHTS)
    return z, target, parts


def _config(overrides: dict):
    config = apply_overrides(preset_config("rescom"), {"method.temperature": TAU, **overrides})
    validate(config)
    return config


def _reference_view1(z, target, queue) -> float:
    """Algorithm 1 with Eq. 5 mining and Eq. 2 weights, one anchor at a time, in plain Python."""
    view1, view2 = z[:B], z[B:]
    total = 0.0
    for i in range(B):
        q, y = view1[i], int(target[i])
        sims = [float(q @ k) for k in queue.keys]
        own = sorted(s for s, c in zip(sims, queue.labels.tolist(), strict=True) if c == y)
        other = sorted((s for s, c in zip(sims, queue.labels.tolist(), strict=True) if c != y), reverse=True)
        positives = own[:NUM_POS]                      # hardest positives: least similar
        candidates = positives + other[:NUM_NEG]       # + hardest negatives: most similar
        for j in range(B):                             # every view-2 key of the batch
            s = float(q @ view2[j])
            candidates.append(s)
            if int(target[j]) == y:
                positives.append(s)
        log_norm = math.log(sum(math.exp(s / TAU) for s in candidates))
        per_anchor = -sum(s / TAU - log_norm for s in positives) / len(positives)
        total += float(WEIGHTS[y]) * per_anchor
    return total / B


def test_view1_loss_equals_the_algorithm1_reference():
    z, target, parts = _inputs()
    got = contrastive_loss(_config(VIEW1), parts, z, target, None)
    assert got.item() == pytest.approx(_reference_view1(z, target, parts.queue), rel=1e-12)


def test_view1_gradient_reaches_both_views():
    """One shared encoder: the view-2 keys are embeddings of this step, so they carry gradient too."""
    z, target, parts = _inputs()
    z = z.clone().requires_grad_()
    contrastive_loss(_config(VIEW1), parts, z, target, None).backward()
    assert z.grad[:B].abs().sum() > 0 and z.grad[B:].abs().sum() > 0


@pytest.mark.parametrize("in_batch", [True, False])
def test_both_differs_from_view1(in_batch):
    z, target, parts = _inputs()
    view1 = contrastive_loss(_config(VIEW1), parts, z, target, None)
    both = contrastive_loss(_config({"method.in_batch": in_batch}), parts, z, target, None)
    assert abs(both.item() - view1.item()) > 1e-3


def test_default_is_the_released_both_views():
    assert preset_config("rescom").method.anchors == "both"


def test_bad_anchors_value_is_refused():
    with pytest.raises(ConfigError, match="method.anchors"):
        _config({"method.anchors": "view2"})


def test_view1_with_in_batch_is_refused_naming_both_keys():
    with pytest.raises(ConfigError, match=r"method\.anchors / method\.in_batch"):
        _config({"method.anchors": "view1", "method.in_batch": True})


def test_view1_needs_no_queue():
    """Its view-2 keys are candidates already; both views without a queue still need in_batch."""
    _config({**VIEW1, "method.queue": "none", "method.num_pos": None, "method.num_neg": None})
    with pytest.raises(ConfigError, match="method.in_batch"):
        _config({"method.in_batch": False, "method.queue": "none", "method.num_pos": None, "method.num_neg": None})
