"""One profile's columns of `dvc exp show`: its headline metrics and the params that define it.

DVC gathers every dvc.yaml of the repository, so a bare `dvc exp show` lists the metrics of every
profile and every key of every params file (about 575 columns with four profiles). `rescom exp
show --profile P` runs the same `dvc exp show` (every DVC option still works) keeping only

- the profile's `reports/<P>/summary.json` (per table and row the last-epoch All, main also Few,
  mean over seeds: about 20 numbers), or the tables asked for;
- the params that say what the experiment is: `profile`, each prepared set's imbalance, and the
  shared training settings of DEFINING_PARAMS (epochs, batch size, lr, schedule, backbone,
  recipe), when the profile sets them.

DVC names a column `key` when one file of the repository has it and `file:key` when several do,
counting only what it collects (params.yaml whole, other params files only the keys that stages
declare). So the names are worked out from DVC's own collection of the workspace
(`repo.params.show()`, `repo.metrics.show()`), with DVC's rule, and the kept pattern lists them
exactly: a key of another profile never slips in under its bare name.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from rescom.config import flatten
from rescom.pipeline.catalogue import Profile
from rescom.report.summary import SUMMARY_NAME

DEFINING_PARAMS = ("profile", "train.optim.epochs", "train.optim.batch_size", "train.optim.lr",
                   "train.optim.schedule", "train.model.backbone", "train.data.recipe")
# DVC's own columns kept: the row's name and date. State and Executor (of queued and running
# experiments) go with the rest; `rescom exp show --keep State` brings them back.
DVC_COLUMNS = ("Experiment", "Created")
# Every column DVC makes itself; a params or metrics key spelled like one gets its file prefix.
DVC_OWN_HEADERS = ("Experiment", "rev", "typ", "Created", "parent", "State", "Executor")


def summary_path(profile_name: str) -> Path:
    return Path("reports") / profile_name / SUMMARY_NAME


def defining_params(profile: Profile) -> list[str]:
    """The flattened param keys that define the profile's experiment, in a fixed order."""
    flat = flatten({k: v for k, v in profile.params.items() if k != "claims"})
    keys = [k for k in DEFINING_PARAMS if k in flat]
    keys += [f"datasets.{name}.imbalance" for name, spec in profile.params["datasets"].items()
             if isinstance(spec, dict) and "imbalance" in spec]
    return keys


def headline_metrics(profile_name: str, tables: list[str] | None = None) -> list[str]:
    """The summary's keys (table.row.all), only `tables` if given; [] before the first report."""
    path = summary_path(profile_name)
    if not path.is_file():
        return []
    summary = json.loads(path.read_text())
    unknown = sorted(set(tables or []) - set(summary))
    if unknown:
        raise ValueError(f"{path} has no table {', '.join(unknown)} (it has {', '.join(sorted(summary))})")
    chosen = {t: rows for t, rows in summary.items() if not tables or t in tables}
    return list(flatten(chosen))


def collected_keys(root: str | Path = ".") -> dict[str, list[str]]:
    """{file: flattened keys} of every params and metrics file DVC collects in the workspace."""
    from dvc.repo import Repo

    files: dict[str, list[str]] = {}
    with Repo(str(root)) as repo:
        for collected in (repo.metrics.show(), repo.params.show()):
            for path, entry in next(iter(collected.values()), {}).get("data", {}).items():
                data = entry.get("data")
                files[path] = list(flatten(data)) if isinstance(data, dict) else []
    return files


def column_names(files: dict[str, list[str]], wanted: dict[str, list[str]]) -> list[str]:
    """DVC's column name of each wanted (file, key) it collects: the bare key when no other file
    (nor one of DVC's own columns) has it, else file:key."""
    counts = Counter(key for keys in files.values() for key in keys)
    counts.update(DVC_OWN_HEADERS)
    names = []
    for path, keys in wanted.items():
        held = set(files.get(path, ()))
        names += [key if counts[key] == 1 else f"{path}:{key}" for key in keys if key in held]
    return names


def keep_pattern(names: list[str]) -> str:
    """A regular expression for `dvc exp show --keep` matching exactly these columns."""
    return "^(?:" + "|".join(re.escape(name) for name in [*DVC_COLUMNS, *names]) + ")$"


def exp_show_args(profile: Profile, tables: list[str] | None = None, root: str | Path = ".") -> list[str]:
    """`dvc exp show` arguments that show this profile's columns and nothing else."""
    wanted = {summary_path(profile.name).as_posix(): headline_metrics(profile.name, tables),
              profile.path.as_posix(): defining_params(profile)}
    return ["exp", "show", "--drop", ".*", "--keep", keep_pattern(column_names(collected_keys(root), wanted))]
