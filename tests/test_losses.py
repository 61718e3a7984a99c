"""Losses: hand-computed values, equivalences, gradcheck, bad input."""

import math

import pytest
import torch
import torch.nn.functional as F

from rescom.losses import (
    balanced_softmax_loss,
    class_balanced_weights,
    siamese_balanced_softmax_loss,
    spm_contrastive_loss,
)
from rescom.queue import ClassBalancedQueue

D64 = torch.float64


def test_balanced_softmax_hand_computed():
    logits = torch.tensor([[0.0, 0.0]], dtype=D64)
    # prior log(3/4), log(1/4): softmax of [log 3, log 1] -> p(y=1) = 1/4.
    loss = balanced_softmax_loss(logits, torch.tensor([1]), [3, 1])
    assert loss.item() == pytest.approx(-math.log(0.25))


def test_balanced_softmax_uniform_prior_is_cross_entropy():
    torch.manual_seed(0)
    logits, target = torch.randn(8, 5, dtype=D64), torch.randint(0, 5, (8,))
    assert torch.allclose(balanced_softmax_loss(logits, target, [7] * 5), F.cross_entropy(logits, target))


def test_siamese_is_mean_of_single_view_losses():
    torch.manual_seed(1)
    l1, l2, y = torch.randn(6, 4, dtype=D64), torch.randn(6, 4, dtype=D64), torch.randint(0, 4, (6,))
    counts = [50, 20, 5, 1]
    expected = (balanced_softmax_loss(l1, y, counts) + balanced_softmax_loss(l2, y, counts)) / 2
    assert torch.allclose(siamese_balanced_softmax_loss(l1, l2, y, counts), expected)


def test_balanced_softmax_gradcheck():
    logits = torch.randn(5, 3, dtype=D64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1])
    assert torch.autograd.gradcheck(lambda s: balanced_softmax_loss(s, y, [9, 3, 1]), (logits,))


@pytest.mark.parametrize("bad", [
    lambda: balanced_softmax_loss(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long), [1, 1, 1]),
    lambda: balanced_softmax_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), [1, 1]),
    lambda: balanced_softmax_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), [1, 0, 1]),
    lambda: siamese_balanced_softmax_loss(torch.zeros(2, 3), torch.zeros(3, 3), torch.zeros(2, dtype=torch.long), [1, 1, 1]),
])
def test_balanced_softmax_bad_input(bad):
    with pytest.raises(ValueError):
        bad()


def test_class_balanced_weights_hand_computed():
    beta = 0.5
    counts = [2, 1]
    e = [(1 - beta**2) / (1 - beta), (1 - beta) / (1 - beta)]  # 1.5, 1.0
    mean = sum(e) / 2
    assert torch.allclose(class_balanced_weights(counts, beta), torch.tensor([mean / e[0], mean / e[1]], dtype=D64))


def test_class_balanced_weights_beta_zero_is_ones_and_released_beta_is_finite():
    assert torch.equal(class_balanced_weights([500, 50, 5], 0.0), torch.ones(3, dtype=D64))
    w = class_balanced_weights([500, 50, 5], 0.999999)
    assert torch.isfinite(w).all() and w[2] > w[1] > w[0]


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5])
def test_class_balanced_weights_beta_outside_range(beta):
    with pytest.raises(ValueError, match="beta"):
        class_balanced_weights([3, 2], beta)


def test_class_balanced_weights_empty_class():
    with pytest.raises(ValueError, match="empty"):
        class_balanced_weights([3, 0], 0.9)


# -- contrastive ------------------------------------------------------------------------------

def _unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=D64), dim=1)


def test_supcon_over_queue_hand_computed():
    # One query, keys: one positive at similarity 1, one negative at similarity 0, tau = 1.
    query = _unit([1.0, 0.0])
    keys = _unit([1.0, 0.0], [0.0, 1.0])
    loss = spm_contrastive_loss(query, torch.tensor([0]), keys, torch.tensor([0, 1]),
                                num_pos=None, num_neg=None, temperature=1.0)
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 1)))


def test_mining_keeps_hardest_pairs_hand_computed():
    # Query along x; positives at cos 1 and cos 0; negatives at cos 0.6 and cos -1. Q_p = Q_n = 1:
    # the softmax runs over the hardest positive (cos 0) and hardest negative (cos 0.6) only.
    query = _unit([1.0, 0.0])
    keys = _unit([1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0])
    key_labels = torch.tensor([0, 0, 1, 1])
    tau = 0.5
    loss = spm_contrastive_loss(query, torch.tensor([0]), keys, key_labels, num_pos=1, num_neg=1, temperature=tau)
    expected = -math.log(math.exp(0 / tau) / (math.exp(0 / tau) + math.exp(0.6 / tau)))
    assert loss.item() == pytest.approx(expected)


def test_full_mining_on_balanced_queue_equals_eq3():
    torch.manual_seed(2)
    num_classes, q, dim = 4, 3, 8
    queue = ClassBalancedQueue(num_classes, q, dim).double()
    query = F.normalize(torch.randn(6, dim, dtype=D64), dim=1)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    mined = spm_contrastive_loss(query, labels, queue.keys, queue.labels,
                                 num_pos=q, num_neg=(num_classes - 1) * q, temperature=0.2)
    # Eq. 3 written out: every queue key in the denominator, every same-class key a positive.
    log_prob = torch.log_softmax(query @ queue.keys.T / 0.2, dim=1)
    pos = labels[:, None] == queue.labels[None, :]
    eq3 = (-(log_prob * pos).sum(1) / pos.sum(1)).mean()
    assert torch.allclose(mined, eq3)
    unmined = spm_contrastive_loss(query, labels, queue.keys, queue.labels, num_pos=None, num_neg=None, temperature=0.2)
    assert torch.allclose(unmined, eq3)


def test_class_weights_beta_zero_is_unweighted_and_weights_scale_anchors():
    torch.manual_seed(3)
    query = F.normalize(torch.randn(4, 5, dtype=D64), dim=1)
    keys = F.normalize(torch.randn(6, 5, dtype=D64), dim=1)
    labels, key_labels = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 1, 2, 2])
    kw = dict(num_pos=2, num_neg=4, temperature=0.2)
    plain = spm_contrastive_loss(query, labels, keys, key_labels, **kw)
    ones = spm_contrastive_loss(query, labels, keys, key_labels, class_weights=class_balanced_weights([9, 4, 1], 0.0), **kw)
    assert torch.allclose(plain, ones)
    w = torch.tensor([1.0, 2.0, 3.0], dtype=D64)
    weighted = spm_contrastive_loss(query, labels, keys, key_labels, class_weights=w, **kw)
    per_anchor = torch.stack([spm_contrastive_loss(query[i:i + 1], labels[i:i + 1], keys, key_labels, **kw) for i in range(4)])
    assert torch.allclose(weighted, (per_anchor * w[labels]).mean())


def test_in_batch_adds_batch_candidates_and_excludes_self():
    # Two queries of class 0 at cos 1 with each other, one queue key of class 1 at cos 0. tau = 1.
    query = _unit([1.0, 0.0], [1.0, 0.0])
    keys = _unit([0.0, 1.0])
    loss = spm_contrastive_loss(query, torch.tensor([0, 0]), keys, torch.tensor([1]),
                                num_pos=None, num_neg=None, temperature=1.0, in_batch=True)
    # Each anchor: candidates = queue key (e^0) and the other query (e^1, the positive); not itself.
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 1)))


def test_anchor_without_positive_is_left_out():
    query = _unit([1.0, 0.0], [0.0, 1.0])
    keys = _unit([1.0, 0.0], [0.0, 1.0])
    both = spm_contrastive_loss(query, torch.tensor([0, 5]), keys, torch.tensor([0, 1]), num_pos=None, num_neg=None, temperature=1.0)
    alone = spm_contrastive_loss(query[:1], torch.tensor([0]), keys, torch.tensor([0, 1]), num_pos=None, num_neg=None, temperature=1.0)
    assert torch.allclose(both, alone)


def test_spm_gradcheck():
    torch.manual_seed(4)
    query = F.normalize(torch.randn(3, 4, dtype=D64), dim=1).requires_grad_()
    keys = F.normalize(torch.randn(6, 4, dtype=D64), dim=1)
    labels, key_labels = torch.tensor([0, 1, 0]), torch.tensor([0, 0, 1, 1, 2, 2])
    def fn(z):
        return spm_contrastive_loss(z, labels, keys, key_labels, num_pos=1, num_neg=3, temperature=0.2,
                                    class_weights=torch.tensor([1.0, 2.0, 0.5], dtype=D64), in_batch=True)

    assert torch.autograd.gradcheck(fn, (query,))


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_pos=3, num_neg=1), "num_pos"),     # only 2 positives per class
    (dict(num_pos=1, num_neg=5), "num_neg"),     # only 4 negatives
    (dict(num_pos=1, num_neg=1, temperature=0.0), "temperature"),
])
def test_spm_bad_counts(kwargs, message):
    keys = F.normalize(torch.randn(6, 4), dim=1)
    key_labels = torch.tensor([0, 0, 1, 1, 2, 2])
    kwargs = {"temperature": 0.2, **kwargs}
    with pytest.raises(ValueError, match=message):
        spm_contrastive_loss(F.normalize(torch.randn(2, 4), dim=1), torch.tensor([0, 1]), keys, key_labels, **kwargs)


def test_spm_shape_mismatch():
    with pytest.raises(ValueError, match="share D"):
        spm_contrastive_loss(torch.randn(2, 4), torch.tensor([0, 1]), torch.randn(6, 3), torch.zeros(6, dtype=torch.long),
                             num_pos=1, num_neg=1, temperature=0.2)
    with pytest.raises(ValueError, match="labels"):
        spm_contrastive_loss(torch.randn(2, 4), torch.tensor([0]), torch.randn(6, 4), torch.zeros(6, dtype=torch.long),
                             num_pos=1, num_neg=1, temperature=0.2)


def test_each_classifier_loss_kind_computes_its_reference_loss_and_the_config_takes_its_choices_from_them():
    from rescom.config import CHOICES, CLASSIFIER_LOSSES
    from rescom.engine.step import classifier_loss

    assert CHOICES["method.classifier_loss"] == tuple(CLASSIFIER_LOSSES) == ("ce", "bs", "siambs")
    torch.manual_seed(0)
    logits, target, counts = torch.randn(8, 3), torch.randint(0, 3, (4,)), torch.tensor([9.0, 4.0, 1.0])
    reference = {"ce": F.cross_entropy(logits[:4], target),
                 "bs": balanced_softmax_loss(logits[:4], target, counts),
                 "siambs": siamese_balanced_softmax_loss(logits[:4], logits[4:], target, counts)}
    for kind, expected in reference.items():
        assert torch.equal(classifier_loss(kind, logits, target, counts, 4), expected), kind


def test_an_unknown_classifier_loss_kind_raises_and_a_new_kind_is_one_registry_entry(monkeypatch):
    import rescom.config as config_module
    from rescom.config import ClassifierLoss, ConfigError, apply_overrides, validate
    from rescom.engine.step import classifier_loss
    from rescom.methods import preset_config, uses_two_views

    logits, target, counts = torch.randn(8, 3), torch.tensor([0, 1, 2, 0]), torch.tensor([9.0, 4.0, 1.0])
    with pytest.raises(ValueError, match="unknown classifier loss 'focal'; kinds: ce, bs, siambs"):
        classifier_loss("focal", logits, target, counts, 4)
    with pytest.raises(ConfigError, match="method.classifier_loss: 'focal' is not one of ce, bs, siambs"):
        validate(apply_overrides(preset_config("bs"), {"method.classifier_loss": "focal"}))
    # Siamese cross-entropy: one entry, and the config, the step and the number of views follow.
    monkeypatch.setitem(config_module.CLASSIFIER_LOSSES, "siamce", ClassifierLoss(views=2, balanced=False))
    # (CHOICES took its tuple from CLASSIFIER_LOSSES when config.py was imported)
    monkeypatch.setitem(config_module.CHOICES, "method.classifier_loss", tuple(config_module.CLASSIFIER_LOSSES))
    config = apply_overrides(preset_config("ce"), {"method.classifier_loss": "siamce"})
    validate(config)
    assert uses_two_views(config)
    assert torch.equal(classifier_loss("siamce", logits, target, counts, 4),
                       F.cross_entropy(logits, torch.cat([target, target])))
