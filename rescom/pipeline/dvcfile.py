"""Write a profile's dvc.yaml from the table layout in its params file (axes, names, applies).

Only the layout is baked in: axis values, seeds and settings are interpolated by DVC from the params
file (`${beta.axes.beta}`), so editing a value in params never needs a new dvc.yaml; adding an axis
or renaming a table does (`rescom pipeline write-dvc`; a test checks the committed files are current).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from rescom.pipeline.catalogue import Profile, load_profile
from rescom.report.layout import WALL_CLOCK_ANALYSES, analysis_dir

# Code a training run depends on: a change here reruns every training stage.
TRAIN_CODE = ["rescom/config.py", "rescom/methods.py", "rescom/losses", "rescom/mining.py", "rescom/queue.py",
              "rescom/models", "rescom/engine", "rescom/data", "rescom/pipeline/catalogue.py"]
REPORT_CODE = ["rescom/report", "rescom/pipeline/catalogue.py", "rescom/analysis"]
RUN_FILES = ["checkpoint.pt", "config.yaml", "per_class.csv", "per_class_accuracy.png", "confusion_matrix.png"]


def profile_params_files(root: Path = Path(".")) -> list[Path]:
    """Every profile's params file under root: params.yaml (default) and pipelines/<profile>/params.yaml."""
    return [root / "params.yaml", *sorted(root.glob("pipelines/*/params.yaml"))]


def dvc_path(profile: Profile) -> Path:
    return Path("dvc.yaml") if profile.name == "default" else Path("pipelines") / profile.name / "dvc.yaml"


def _dollar(pattern: str) -> str:
    """'{method}-s{seed}' -> '${item.method}-s${item.seed}' (DVC's interpolation of matrix items)."""
    return re.sub(r"\{(\w+)\}", r"${item.\1}", pattern)


def _data_key_pattern(table: str, apply: dict[str, str]) -> str:
    """The prepared-set key of a table's runs as a DVC interpolation (mirrors catalogue._spec)."""
    by_target = {target: axis for axis, target in apply.items()}
    if "data" in by_target:
        return f"${{item.{by_target['data']}}}"
    if "imbalance" in by_target:
        prefix = f"${{item.{by_target['dataset']}}}" if "dataset" in by_target else f"${{{table}.dataset}}"
        return f"{prefix}-if${{item.{by_target['imbalance']}}}"
    return f"${{{table}.data}}"


def _downloadable_archives(profile: Profile) -> list[tuple[str, str]]:
    """(source, archive file) of the CIFAR sets a profile prepares from their default root."""
    from rescom.data.sources.cifar import ARCHIVES
    from rescom.data.preparation.run_data import parse_dataset

    sources = set()
    for spec in (profile.params.get("datasets") or {}).values():
        source, _ = parse_dataset(spec["dataset"])
        if source in ARCHIVES and not spec.get("root"):
            sources.add(source)
    return [(source, ARCHIVES[source]) for source in sorted(sources)]


def build_dvc(profile: Profile) -> dict:
    params_file = profile.path.as_posix()
    where = {"wdir": "../.."} if profile.name != "default" else {}
    name = profile.name
    archives = _downloadable_archives(profile)
    stages: dict = {}
    if archives:  # the official CIFAR archives, fetched and checked by the pipeline's first stage
        stages["download"] = {"foreach": [{"name": n, "archive": a} for n, a in archives], "do": {
            **where,
            "cmd": "rescom data download ${item.name} --root data/raw/${item.name}",
            "deps": ["rescom/cli/data.py"],
            "outs": [{"data/raw/${item.name}/${item.archive}": {"cache": False, "persist": True}}],
        }}
    stages |= {
        "prepare": {"foreach": "${datasets}", "do": {
            **where,
            "cmd": f"rescom pipeline prepare --params {params_file} --key ${{key}}",
            # Every prepare waits for the downloads (a CIFAR-less set does not change with them).
            "deps": ["rescom/data", "rescom/pipeline/catalogue.py", *(f"data/raw/{n}/{a}" for n, a in archives)],
            "params": [{params_file: ["datasets.${key}"]}],
            "outs": [{f"data/prepared/{name}/${{key}}": {"cache": False}}],
        }},
    }
    for table in profile.tables():
        section = profile.section(table)
        axes, apply = section["axes"], section["apply"]
        run_dir = f"runs/{name}/{table}/{_dollar(section['name'])}"
        data_dep = f"data/prepared/{name}/{_data_key_pattern(table, apply)}"
        table_params = ["train", f"{table}.set", f"{table}.name"] + [f"{table}.{key}" for key in ("preset", "data", "dataset") if key in section]
        table_params += [f"{table}.{t.split(':', 1)[1]}.${{item.{a}}}" for a, t in apply.items() if t.startswith("variant:")]
        table_params += [f"{table}.per_data" for t in apply.values() if t == "data" and "per_data" in section]
        items = " ".join(f"--item {axis}=${{item.{axis}}}" for axis in axes)
        stages[table] = {
            "matrix": {axis: f"${{{table}.axes.{axis}}}" for axis in axes},
            **where,
            "cmd": f"rescom pipeline train --params {params_file} --table {table} {items}",
            "deps": [data_dep, *TRAIN_CODE],
            "params": [{params_file: table_params}],
            "outs": [{f"{run_dir}/{f}": {"cache": False, **({"persist": True} if f == "checkpoint.pt" else {})}}
                     for f in RUN_FILES],
            "metrics": [{f"{run_dir}/metrics.json": {"cache": False}}],
            "plots": [{f"{run_dir}/history.csv": {"cache": False, "x": "epoch", "y": "test_all"}}],
        }
    analyses = profile.params.get("analysis") or {}
    for analysis, settings in analyses.items():
        runs = [settings["run"]] if "run" in settings else list((settings.get("runs") or {}).values())
        stages[f"analysis_{analysis}"] = {
            **where,
            "cmd": f"rescom pipeline analysis {analysis} --params {params_file}",
            "deps": [*(f"runs/{name}/{run}/checkpoint.pt" for run in runs), *REPORT_CODE],
            "params": [{params_file: [f"analysis.{analysis}"]}],
            # A wall-clock analysis declares no output: its times differ every run and would dirty dvc.lock.
            **({} if analysis in WALL_CLOCK_ANALYSES else
               {"outs": [{analysis_dir(name, analysis).as_posix(): {"cache": False}}]}),
        }
    stages["report"] = {
        **where,
        "cmd": f"rescom report --params {params_file}",
        "deps": [f"runs/{name}", *REPORT_CODE,
                 *([f"reports/{name}/analysis"] if set(analyses) - set(WALL_CLOCK_ANALYSES) else [])],
        "params": [{params_file: ["report", *[t for t in profile.params if t in ("entirety", "claims", *profile.tables())]]}],
        "outs": [{f"reports/{name}/tables": {"cache": False}}, {f"reports/{name}/README.md": {"cache": False}}],
    }
    return {"stages": stages}


def render(profile: Profile) -> str:
    header = (f"# Generated by `rescom pipeline write-dvc {profile.path}` from the table layout of that file.\n"
              "# Do not edit by hand: change the params file and regenerate.\n")
    return header + yaml.safe_dump(build_dvc(profile), sort_keys=False, width=1000)


def write(params_path: str | Path) -> Path:
    profile = load_profile(params_path)
    target = dvc_path(profile)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(profile))
    return target
