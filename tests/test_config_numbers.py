"""Numbers in --set and config files parse as people write them: 1e-3, 5e-4 and 1e6 are floats.

PyYAML follows YAML 1.1, which reads an exponent without a dot (`1e-3`) as a string.
"""

from __future__ import annotations

import pytest

from rescom.cli.run_config import build_config
from rescom.config import ConfigError, apply_overrides, TrainConfig


@pytest.mark.parametrize("text, number", [("1e-3", 1e-3), ("5e-4", 5e-4), ("1e6", 1e6), ("2.5E-2", 0.025),
                                          ("+1e-1", 0.1), (".5", 0.5), ("3", 3.0)])
def test_set_accepts_exponent_notation_for_floats(text, number):
    config = build_config("rescom", None, None, None, [f"optim.lr={text}", f"optim.weight_decay={text}"], {})
    assert config.optim.lr == number and isinstance(config.optim.lr, float)
    assert config.optim.weight_decay == number


def test_config_file_accepts_exponent_notation(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  weight_decay: 5e-4\ndata:\n  imbalance: 1e2\n")
    config = build_config("rescom", None, None, path, [], {})
    assert (config.optim.lr, config.optim.weight_decay, config.data.imbalance) == (1e-3, 5e-4, 100.0)


@pytest.mark.parametrize("text", ["abc", "1e", "e5", "1e-3x", "nan"])
def test_non_numbers_are_still_refused(text):
    with pytest.raises(ConfigError, match="optim.lr"):
        build_config("rescom", None, None, None, [f"optim.lr={text}"], {})


def test_exponent_text_stays_text_for_string_fields():
    config = apply_overrides(TrainConfig(), {"run.run_name": "1e-3"})
    assert config.run.run_name == "1e-3"
