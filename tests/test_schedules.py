"""Learning-rate schedules as numbers (fidelity notes 7 and 12)."""

from __future__ import annotations

import math

import pytest

from rescom.config import ConfigError, apply_overrides, validate
from rescom.engine.components import learning_rate
from rescom.methods import preset_config


def _config(**optim):
    return apply_overrides(preset_config("rescom"), {f"optim.{k}": v for k, v in optim.items()})


def released_cosine(lr, warm_epochs, epochs, eta_min):
    """The released `adjust_learning_rate` (large data), written out for epochs t = 1..epochs as its
    loop runs them: [lr at t = 1, ..., lr at t = epochs]."""
    out = []
    for t in range(1, epochs + 1):
        if t < warm_epochs:
            out.append(lr / warm_epochs * t)
        else:
            out.append(eta_min + (lr - eta_min) * (1 + math.cos(math.pi * (t - warm_epochs) / (epochs - warm_epochs))) / 2)
    return out


@pytest.mark.parametrize("lr,epochs", [(0.06, 400), (0.02, 30)])  # ImageNet-LT, Places-LT
def test_released_large_data_cosine_equals_the_released_loop_epoch_for_epoch(lr, epochs):
    config = _config(schedule="cosine", lr=lr, epochs=epochs, cosine_warmup_epochs=10, cosine_final_ratio=1e-5)
    ours = [learning_rate(config, e) for e in range(epochs)]
    assert ours == pytest.approx(released_cosine(lr, 10, epochs, lr * 1e-5), rel=1e-12, abs=0)
    assert ours[:3] == pytest.approx([lr * 0.1, lr * 0.2, lr * 0.3])
    assert ours.count(max(ours)) == 1 and ours.index(lr) == 9   # the peak once, at the 10th epoch
    assert ours[-1] == pytest.approx(lr * 1e-5, rel=1e-12)       # the last epoch at lr x 1e-5
    assert all(a > b for a, b in zip(ours[9:], ours[10:], strict=False))       # strictly down after the peak


def test_paper_cosine_to_zero_ends_at_zero_as_the_released_formula_does():
    config = _config(schedule="cosine", lr=0.1, epochs=10)
    ours = [learning_rate(config, e) for e in range(10)]
    assert ours == pytest.approx(released_cosine(0.1, 0, 10, 0.0), rel=1e-12, abs=1e-18)
    assert ours[0] == pytest.approx(0.05 * (1 + math.cos(math.pi / 10))) and abs(ours[-1]) < 1e-18


def test_default_profile_cosine_two_warmup_epochs_follows_the_released_formula():
    config = _config(schedule="cosine", lr=0.1, epochs=30, cosine_warmup_epochs=2)
    ours = [learning_rate(config, e) for e in range(30)]
    assert ours == pytest.approx(released_cosine(0.1, 2, 30, 0.0), rel=1e-12, abs=1e-18)
    assert ours[:2] == pytest.approx([0.05, 0.1]) and ours[2] < 0.1


def test_schedule_version_1_is_the_shifted_form_old_runs_trained_with():
    """Version 1 (runs before the fix) gives epoch e the released value of epoch e - 1 after warmup:
    the peak held two epochs and the floor never reached. Only old checkpoints resume with it."""
    lr, epochs = 0.06, 400
    config = _config(schedule="cosine", lr=lr, epochs=epochs, cosine_warmup_epochs=10, cosine_final_ratio=1e-5,
                     schedule_version=1)
    old = [learning_rate(config, e) for e in range(epochs)]
    released = released_cosine(lr, 10, epochs, lr * 1e-5)
    assert old[:10] == pytest.approx(released[:10], rel=1e-12)
    assert old[10:] == pytest.approx(released[9:-1], rel=1e-12)
    assert old[9] == old[10] == pytest.approx(lr) and old[-1] > lr * 1e-5 * 1.01


def test_cosine_settings_are_checked():
    with pytest.raises(ConfigError, match="cosine_warmup_epochs"):
        validate(_config(schedule="cosine", epochs=10, cosine_warmup_epochs=10))
    with pytest.raises(ConfigError, match="cosine_final_ratio"):
        validate(_config(schedule="cosine", cosine_final_ratio=2.0))
    with pytest.raises(ConfigError, match="schedule_version"):
        validate(_config(schedule_version=3))


def test_multistep_equals_the_released_cifar_formula_epoch_for_epoch():
    """The released CIFAR branch (computed, though never applied there: note 7), t = 1..400:
    lr t / W while t < W, x0.1 once t > 320, x0.01 once t > 360."""
    def released(t, lr=0.1, warm=10):
        if t < warm:
            return lr / warm * t
        return lr * (0.01 if t > 360 else 0.1 if t > 320 else 1.0)

    config = _config(schedule="multistep", lr=0.1, epochs=400, warmup_epochs=10, milestones=[320, 360])
    assert [learning_rate(config, e) for e in range(400)] == pytest.approx([released(t) for t in range(1, 401)],
                                                                          rel=1e-12)
