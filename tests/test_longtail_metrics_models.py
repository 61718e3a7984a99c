"""Long-tailed counts, shot-group metrics, ECE and the models."""

import math

import numpy as np
import pytest
import torch

from rescom.data.preparation.longtail import exponential_counts, longtail_indices
from rescom.metrics import expected_calibration_error, shot_accuracy
from rescom.models import build_model


@pytest.mark.parametrize("k, n_max, factor, total", [
    (10, 5000, 100, 12406), (10, 5000, 50, 13996), (10, 5000, 10, 20431),
    (100, 500, 100, 10847), (100, 500, 50, 12608), (100, 500, 10, 19573),
    (10, 1000, 100, 2478),  # Fashion-MNIST-LT of the default profile
])
def test_cifar_lt_counts(k, n_max, factor, total):
    counts = exponential_counts(k, n_max, factor)
    assert sum(counts) == total and counts[0] == n_max and counts[-1] == int(n_max / factor)


@pytest.mark.parametrize("args, message", [((10, 500, 0.5), "imbalance factor"), ((10, 50, 100), "empty")])
def test_counts_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        exponential_counts(*args)


def test_longtail_indices_seeded_and_exact():
    labels = np.repeat(np.arange(3), 10)
    a = longtail_indices(labels, [10, 5, 2], seed=0)
    assert np.bincount(labels[a]).tolist() == [10, 5, 2]
    assert np.array_equal(a, longtail_indices(labels, [10, 5, 2], seed=0))
    assert not np.array_equal(a, longtail_indices(labels, [10, 5, 2], seed=1))
    with pytest.raises(ValueError, match="class 1"):
        longtail_indices(labels, [10, 11, 2], seed=0)


def test_shot_boundaries():
    # train counts 101 -> many, 100 -> medium, 20 -> medium, 19 -> few
    counts = [101, 100, 20, 19]
    targets = torch.tensor([0, 1, 2, 3])
    preds = torch.tensor([0, 1, 0, 0])  # class 0 and 1 right, 2 and 3 wrong
    acc = shot_accuracy(preds, targets, counts)
    assert acc == {"all": 50.0, "many": 100.0, "medium": 50.0, "few": 0.0}


def test_shot_accuracy_empty_group_is_nan():
    acc = shot_accuracy(torch.tensor([0, 1]), torch.tensor([0, 1]), [500, 200])
    assert acc["many"] == 100.0 and math.isnan(acc["few"])


def test_ece_hand_computed():
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    targets = torch.tensor([0, 1, 1, 1])
    # bin of 0.9: acc 0.5, conf 0.9 -> 0.4 * 2/4; bin of 0.6: acc 1, conf 0.6 -> 0.4 * 2/4
    assert expected_calibration_error(probs, targets) == pytest.approx(40.0)
    perfect = torch.eye(3)
    assert expected_calibration_error(perfect, torch.arange(3)) == pytest.approx(0.0)


def test_resnet32_shapes_and_inference_model():
    torch.manual_seed(0)
    model = build_model("resnet32", num_classes=10, in_channels=1).eval()
    x = torch.randn(2, 1, 28, 28)
    logits, z = model(x)
    assert logits.shape == (2, 10) and z.shape == (2, 32)
    assert torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(model.inference_model()(x), logits)
    assert sum(p.numel() for p in model.encoder.parameters()) == 463_216  # ResNet-32 option A: 0.46M
    rgb = build_model("resnet32", num_classes=100)
    assert rgb(torch.randn(2, 3, 32, 32))[0].shape == (2, 100)


@pytest.mark.parametrize("name, blocks", [("resnet8", 1), ("resnet14", 2), ("resnet20", 3), ("resnet32", 5)])
def test_cifar_resnet_family_depths(name, blocks):
    """Depth 6n + 2: n blocks per stage (3 stages), two 3x3 convs each, plus the stem."""
    model = build_model(name, num_classes=10, in_channels=1)
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6 * blocks + 1 and model.encoder.feature_dim == 64
    assert model(torch.randn(2, 1, 28, 28))[0].shape == (2, 10)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model("vgg", 10)


def test_ldam_rule_selects_the_released_codes_images():
    """Every source keeps LDAM's images: np.random.seed(0), then np.random.shuffle per class in label order."""
    from rescom.data.preparation.longtail import longtail_indices

    labels = np.repeat(np.arange(4), 50)[np.random.RandomState(7).permutation(200)]  # interleaved classes
    counts = [20, 9, 4, 2]
    np.random.seed(0)  # the released rule, literally (global generator)
    expected = []
    for c, n in enumerate(counts):
        idx = np.where(labels == c)[0]
        np.random.shuffle(idx)
        expected.append(idx[:n])
    got = longtail_indices(labels, counts, seed=0)
    np.testing.assert_array_equal(got, np.sort(np.concatenate(expected)))
    # Pinned (computed once with the released rule): class-sorted labels, 50 images per class.
    sorted_labels = np.repeat(np.arange(4), 50)
    pinned = longtail_indices(sorted_labels, counts, seed=0)
    assert {28, 11, 10, 41, 2} <= set(pinned[:20].tolist())  # the first five of class 0's shuffle
    assert pinned[sorted_labels[pinned] == 2].tolist() == [107, 124, 127, 148]
    assert pinned[sorted_labels[pinned] == 3].tolist() == [162, 186]
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    longtail_indices(labels, counts, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # NumPy's global generator untouched


def test_warnings_for_data_that_makes_numbers_meaningless():
    from rescom.metrics import misleading_data_warnings

    assert misleading_data_warnings([500, 50, 5], [0, 1, 2]) == []
    lines = misleading_data_warnings([50, 40, 30], [0, 0, 1])
    assert any("classes [2] have no test image" in line for line in lines)
    assert any("no many-shot class" in line for line in lines) and any("no few-shot class" in line for line in lines)
