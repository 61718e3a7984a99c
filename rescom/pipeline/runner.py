"""What a DVC stage of the pipeline runs: prepare one dataset, train one run of one table."""

from __future__ import annotations

from rescom.config import TrainConfig, apply_overrides, resolve_for_data, validate
from rescom.engine import data as run_data
from rescom.engine.checkpoint import load_checkpoint
from rescom.methods import preset_config
from rescom.pipeline.catalogue import Profile, RunSpec, find_run, load_profile, run_config_overrides

# Keys that may differ between a checkpoint and its continuation (they do not change the numbers).
RESUME_NEUTRAL = ("run.track", "run.log_every", "data.workers")


def run_config(profile: Profile, spec: RunSpec) -> TrainConfig:
    config = apply_overrides(preset_config(spec.preset), run_config_overrides(profile, spec))
    config.method_name = spec.preset
    validate(config)
    return config


def prepare_dataset(params_path: str, key: str):
    profile = load_profile(params_path)
    datasets = profile.section("datasets")
    if key not in datasets:
        from rescom.config import ConfigError

        raise ConfigError(f"{params_path}: datasets has no entry {key!r}; entries: {', '.join(datasets)}")
    spec = RunSpec("prepare", key, {}, "ce", key)
    config = run_config(profile, spec)
    return run_data.prepare_data(config.data)


def train_table_run(params_path: str, table: str, item: dict[str, str]) -> dict:
    """Train one run; continue it if an interrupted checkpoint of the same config is there."""
    from rescom.engine.train import train

    profile = load_profile(params_path)
    spec = find_run(profile, table, item)
    config = run_config(profile, spec)
    checkpoint = spec.run_dir(profile.name) / "checkpoint.pt"
    resume = checkpoint.is_file() and _same_config(config, load_checkpoint(checkpoint)["config"])
    return train(config, resume=resume, overwrite=not resume)


def _same_config(config: TrainConfig, saved: dict) -> bool:
    from rescom.engine.train import _flat

    data = run_data.get_data(config.data)
    resolved = resolve_for_data(config, data.class_counts).flat()
    saved_flat = _flat(saved)
    return all(saved_flat.get(k) == v for k, v in resolved.items() if k not in RESUME_NEUTRAL)
