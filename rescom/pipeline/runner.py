"""What a DVC stage of the pipeline runs: prepare one dataset, train one run of one table, run one analysis."""

from __future__ import annotations

from rescom.config import ConfigError, TrainConfig, apply_overrides, differing_keys, resolve_for_data, validate
from rescom.data.preparation import run_data
from rescom.methods import preset_config
from rescom.pipeline.catalogue import Profile, RunSpec, find_run, load_profile, run_config_overrides


def run_config(profile: Profile, spec: RunSpec) -> TrainConfig:
    config = apply_overrides(preset_config(spec.preset), run_config_overrides(profile, spec))
    config.method_name = spec.preset
    validate(config)
    return config


def prepare_dataset(params_path: str, key: str):
    profile = load_profile(params_path)
    datasets = profile.section("datasets")
    if key not in datasets:
        raise ConfigError(f"{params_path}: datasets has no entry {key!r}; entries: {', '.join(datasets)}")
    spec = RunSpec("prepare", key, {}, "ce", key)
    config = run_config(profile, spec)
    return run_data.prepare_data(config.data)


def train_table_run(params_path: str, table: str, item: dict[str, str]) -> dict:
    """Train one run; continue it if an interrupted checkpoint of the same config is there."""
    from rescom.engine.train import train

    config, start = table_run_start(params_path, table, item)
    return train(config, resume=start.resume, overwrite=start.overwrite)


def table_run_start(params_path: str, table: str, item: dict[str, str]):
    """(config, RunStart) of one run of a table: resume an interrupted checkpoint of the same config
    and code, else start over (a stage always rewrites its outputs)."""
    from rescom.engine.checkpoint import load_checkpoint
    from rescom.engine.resume import RunStart

    profile = load_profile(params_path)
    spec = find_run(profile, table, item)
    config = run_config(profile, spec)
    checkpoint = spec.run_dir(profile.name) / "checkpoint.pt"
    resume = checkpoint.is_file() and _continuable(config, load_checkpoint(checkpoint))
    return config, RunStart(resume=resume, overwrite=not resume)


def _continuable(config: TrainConfig, state: dict) -> bool:
    """An interrupted run of the same config and the same code: DVC keeps its checkpoint (persist)
    so the stage continues it. A finished run, or one written by other code, trains afresh."""
    from rescom.engine.checkpoint import training_code_identity

    unfinished = state["epoch"] < config.optim.epochs
    return unfinished and state.get("code") == training_code_identity() and _same_config(config, state["config"])


def _same_config(config: TrainConfig, saved: dict) -> bool:
    """Whether the checkpoint's config is this one, resolved as training resolves it before saving:
    the data-dependent mining sizes, and data.pipeline auto as the tensor or pil it stands for (the
    checkpoint holds the resolved value, so an unresolved auto would never match)."""
    from rescom.data.loading import loaders

    data = run_data.get_data(config.data)
    resolved = resolve_for_data(config, data.class_counts)
    resolved.data.pipeline = loaders.resolve_pipeline(resolved.data, data)
    return not differing_keys(resolved, saved)


def run_analysis(params_path: str, name: str) -> dict:
    """One analysis stage of the profile: the module its registry entry names (rescom.analysis) runs
    it with the params file's `analysis.<name>` settings into reports/<profile>/analysis/<name>/
    (wall-clock ones: timings/, rescom.report.layout). The module is imported by name, so the stage
    runs that analysis's code and no other's."""
    import importlib

    from rescom.analysis import analysis
    from rescom.report.layout import analysis_dir

    entry = analysis(name)
    profile = load_profile(params_path)
    configured = profile.section("analysis")
    if name not in configured:
        raise ConfigError(f"{params_path}: the analysis section has no {name!r}; it has: {', '.join(configured)}")
    return importlib.import_module(entry.module).run_stage(profile, configured[name], analysis_dir(profile.name, name))
