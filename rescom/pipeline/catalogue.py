"""The experiment catalogue: which runs make which table, read from a profile's params file.

A profile's params file (params.yaml for `default`, pipelines/<profile>/params.yaml otherwise) has
one section per stage: `datasets` (prepare), `train` (settings shared by every run), one section per
table (its runs as a matrix of axes), and `report`. A table section:

    beta:
      data: fmnist-if100            # prepared set (a key of `datasets`), unless an axis picks it
      preset: rescom                # method preset, unless an axis picks it
      set: {}                       # overrides for every run of the table
      name: "beta{beta}-s{seed}"    # run directory name; {axis} is the axis value
      axes: {beta: [0, 0.99], seed: [0]}
      apply: {beta: method.beta, seed: run.seed}

`apply` says what each axis sets: a config key, `preset` (the value is a preset name), `imbalance`
and `dataset` (together they pick the prepared set `<dataset>-if<imbalance>`; `dataset` defaults to
the section's), `data` (the value is a key of `datasets`; the section's `per_data.<value>` entry, if
any, adds its `preset`/`set`), or `variant:<dict>` (the value names an
entry of the section's <dict>, holding `preset` and/or `set`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rescom.config import ConfigError, flatten


@dataclass(frozen=True)
class RunSpec:
    """One training run of a table: where it lives and how its config is made."""

    table: str
    name: str
    item: dict[str, Any]
    preset: str
    data_key: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def run_dir(self, profile: str) -> Path:
        return Path("runs") / profile / self.table / self.name


@dataclass
class Profile:
    path: Path
    params: dict

    @property
    def name(self) -> str:
        return self.params["profile"]

    def section(self, name: str) -> dict:
        if name not in self.params:
            raise ConfigError(f"{self.path}: no section {name!r}")
        return self.params[name]

    def checkpoint(self, run: str) -> Path:
        """'main/rescom-if100-s0' -> runs/<profile>/main/rescom-if100-s0/checkpoint.pt"""
        return Path("runs") / self.name / run / "checkpoint.pt"


def training_tables(profile: Profile) -> list[str]:
    """The profile's tables whose rows are runs of their own, in the report registry's order
    (rescom.report.tables; imported here only, so a report table's title is no dep of training)."""
    from rescom.report.tables import TABLES

    return [t for t, entry in TABLES.items() if entry.runs_of is None and t in profile.params]


def profile_params(profile_name: str) -> Path:
    """A profile's params file by name: params.yaml for `default`, pipelines/<name>/params.yaml otherwise;
    its dvc.yaml lies beside it."""
    return Path("params.yaml") if profile_name == "default" else Path("pipelines") / profile_name / "params.yaml"


def load_profile(path: str | Path) -> Profile:
    from rescom.yaml_files import read_yaml_mapping

    path = Path(path)
    params = read_yaml_mapping(path, "params file", ConfigError)
    for key in ("profile", "datasets", "train"):
        if key not in params:
            raise ConfigError(f"{path}: missing the {key!r} section")
    claims = claims_path(path)
    if "claims" not in params and claims.is_file():
        params = {**params, "claims": read_yaml_mapping(claims, "claims file", ConfigError).get("claims")}
    return Profile(path, params)


def claims_path(params_path: str | Path) -> Path:
    """The claims beside a params file (claims.yaml): read with the profile, no DVC params, so
    `dvc exp show` and `dvc params diff` do not print the list as one very wide value."""
    return Path(params_path).parent / "claims.yaml"


def format_value(value: Any) -> str:
    """An axis value as DVC interpolates it into names (Python's str; YAML true -> True)."""
    return str(value)


def expand_table(profile: Profile, table: str) -> list[RunSpec]:
    """The runs of a table: the product of its axes, in params order."""
    section = profile.section(table)
    axes: dict[str, list] = section.get("axes", {})
    apply: dict[str, str] = section.get("apply", {})
    missing = [a for a in axes if a not in apply]
    if missing:
        raise ConfigError(f"{profile.path}: {table}.apply does not say what axes {missing} set")
    return [_spec(profile, table, section, dict(zip(axes, values, strict=True)), apply)
            for values in itertools.product(*axes.values())]


def find_run(profile: Profile, table: str, item: dict[str, Any]) -> RunSpec:
    """The run of `table` whose axis values print as `item`'s: the strings DVC passes on the command
    line, or the values of a stage's record (dvc.yaml's meta, as DVC interpolates it)."""
    printed = {k: format_value(v) for k, v in item.items()}
    for spec in expand_table(profile, table):
        if {k: format_value(v) for k, v in spec.item.items()} == printed:
            return spec
    raise ConfigError(f"{profile.path}: table {table} has no run with {item}")


def _spec(profile: Profile, table: str, section: dict, item: dict, apply: dict) -> RunSpec:
    preset = section.get("preset", "rescom")
    data_key, prefix, imbalance = section.get("data"), section.get("dataset"), None
    overrides: dict[str, Any] = flatten(section.get("set"))
    for axis, value in item.items():
        target = apply[axis]
        if target == "preset":
            preset = value
        elif target == "imbalance":
            imbalance = value
        elif target == "dataset":
            prefix = value
        elif target == "data":
            data_key = value
            per_data = (section.get("per_data") or {}).get(value, {})  # settings that come with the dataset
            preset = per_data.get("preset", preset)
            overrides.update(flatten(per_data.get("set")))
        elif target.startswith("variant:"):
            variants = section.get(target.split(":", 1)[1], {})
            if value not in variants:
                raise ConfigError(f"{profile.path}: {table}.{target.split(':', 1)[1]} has no entry {value!r}")
            preset = variants[value].get("preset", preset)
            overrides.update(flatten(variants[value].get("set")))
        else:
            overrides[target] = value
    if imbalance is not None:
        data_key = f"{prefix}-if{format_value(imbalance)}"
    if data_key not in profile.params["datasets"]:
        raise ConfigError(f"{profile.path}: table {table} uses data {data_key!r}, not in the datasets section")
    try:
        name = section["name"].format(**{k: format_value(v) for k, v in item.items()})
    except KeyError as err:
        raise ConfigError(f"run name pattern {section['name']!r} uses {err} which is not an axis") from None
    return RunSpec(table, name, item, preset, data_key, overrides)


def run_config_overrides(profile: Profile, spec: RunSpec) -> dict[str, Any]:
    """Every override of a run, lowest priority first: dataset, profile-wide train settings, table, axes."""
    dataset = profile.params["datasets"][spec.data_key]
    overrides = {
        "data.dataset": dataset["dataset"], "data.imbalance": dataset.get("imbalance"),
        "data.max_count": dataset.get("max_count"), "data.subsample_seed": dataset.get("seed", 0),
        "data.test_per_class": dataset.get("test_per_class"),
        "data.prepared_dir": str(Path("data/prepared") / profile.name / spec.data_key),
    }
    if dataset.get("root") is not None:
        overrides["data.root"] = dataset["root"]
    overrides.update(flatten(profile.params.get("train")))
    overrides.update(spec.overrides)
    overrides.update({"run.profile": profile.name, "run.runs_dir": str(Path("runs") / profile.name / spec.table),
                      "run.run_name": spec.name, "run.experiment": f"{profile.name}/{spec.table}"})
    return overrides
