"""Learning-rate schedules as numbers (fidelity notes 7 and 12)."""

from __future__ import annotations

import math

import pytest

from rescom.config import ConfigError, apply_overrides, validate
from rescom.engine.components import learning_rate
from rescom.methods import preset_config


def _config(**optim):
    return apply_overrides(preset_config("rescom"), {f"optim.{k}": v for k, v in optim.items()})


def test_paper_cosine_goes_from_lr_to_zero():
    config = _config(schedule="cosine", lr=0.1, epochs=10)
    assert [learning_rate(config, e) for e in (0, 5)] == [0.1, 0.5 * 0.1 * (1 + math.cos(math.pi * 5 / 10))]
    assert learning_rate(config, 9) == pytest.approx(0.5 * 0.1 * (1 + math.cos(math.pi * 0.9)))


def test_released_large_data_cosine_warms_up_then_ends_at_lr_times_1e_5():
    config = _config(schedule="cosine", lr=0.06, epochs=400, cosine_warmup_epochs=10, cosine_final_ratio=1e-5)
    lrs = [learning_rate(config, e) for e in range(400)]
    assert lrs[0] == pytest.approx(0.006) and lrs[9] == pytest.approx(0.06) and lrs[10] == pytest.approx(0.06)
    floor = 0.06 * 1e-5
    assert lrs[399] == pytest.approx(floor + 0.5 * (0.06 - floor) * (1 + math.cos(math.pi * 389 / 390)))
    assert min(lrs) > floor and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # monotone after warmup


def test_cosine_settings_are_checked():
    with pytest.raises(ConfigError, match="cosine_warmup_epochs"):
        validate(_config(schedule="cosine", epochs=10, cosine_warmup_epochs=10))
    with pytest.raises(ConfigError, match="cosine_final_ratio"):
        validate(_config(schedule="cosine", cosine_final_ratio=2.0))
