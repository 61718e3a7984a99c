"""How command-line options become one validated run config (used by `rescom train` and `rescom analyze inference-cost`).

It lives in its own module so that both command modules can import it without importing each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def build_config(method: str, dataset: Optional[str], imbalance: Optional[float], config_file: Optional[Path],
                 sets: list[str], extra: dict):
    """Preset -> config file -> named options -> --set overrides, validated once."""
    from rescom.config import ConfigError, apply_overrides, flatten, parse_set_options, validate
    from rescom.methods import preset_config
    from rescom.yaml_files import read_yaml_mapping

    config = preset_config(method)
    if config_file is not None:
        config = apply_overrides(config, flatten(read_yaml_mapping(config_file, "config file", ConfigError)))
    named = {k: v for k, v in extra.items() if v is not None}
    if dataset is not None:
        named["data.dataset"] = dataset
    if imbalance is not None:
        named["data.imbalance"] = imbalance
    config = apply_overrides(config, named)
    config = apply_overrides(config, parse_set_options(sets))
    validate(config)
    # Imported here, not at the top: engine.data loads torch, which `rescom --help` should not wait for.
    from rescom.data.preparation.run_data import parse_dataset

    parse_dataset(config.data.dataset)
    return config
