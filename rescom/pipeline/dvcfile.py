"""Write a profile's dvc.yaml from the table layout in its params file (axes, names, applies).

Only the layout is baked in: axis values, seeds and settings are interpolated by DVC from the params
file (`${beta.axes.beta}`), so editing a value in params never needs a new dvc.yaml; adding an axis
or renaming a table does (`rescom pipeline write-dvc`; a test checks the committed files are current).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

from rescom.analysis import analysis
from rescom.pipeline.catalogue import Profile, claims_path, load_profile, profile_params, training_tables
from rescom.pipeline.code_deps import code_files
from rescom.pipeline.stage_record import StageRecord
from rescom.report.layout import WALL_CLOCK_ANALYSES, analysis_dir
from rescom.report.summary import CURVES_DIR, SUMMARY_NAME, curve_runs, curves_path
from rescom.report.tables import TABLES

# The code deps of each stage are what its command runs (pipeline/code_deps.py), not a hand-kept list.
RUN_FILES = ["checkpoint.pt", "config.yaml", "metrics.json", "history.csv", "per_class.csv", "per_class_accuracy.png",
             "confusion_matrix.png"]


def stage_code_deps(record: StageRecord) -> list[str]:
    """The rescom source files (or whole packages) a stage runs: its entry's `main`, followed through
    what it imports and calls (pipeline/code_deps.py), and, for an analysis, the `run_stage` of the
    module its registry entry names (the entry imports that module by name, which the walk cannot see)."""
    entries = [(f"rescom.stages.{record.kind}", "main")]
    if record.kind == "analysis":
        entries.append((analysis(record.target).module, "run_stage"))
    return _code_files(tuple(entries))


@functools.cache
def _code_files(entries: tuple[tuple[str, str], ...]) -> list[str]:
    return code_files(list(entries))


def _stage(record: StageRecord, deps: list[str], **fields) -> dict:
    """A stage's body: its command, rendered from the record once, its deps (the given ones, then the
    code it runs), the other fields, and the record itself as `meta` (stage_record.py)."""
    return {"cmd": record.command(), "deps": [*deps, *stage_code_deps(record)], **fields, "meta": record.as_meta()}


def profile_params_files(root: Path = Path(".")) -> list[Path]:
    """Every profile's params file under root: params.yaml (default) and pipelines/<profile>/params.yaml."""
    return [root / "params.yaml", *sorted(root.glob("pipelines/*/params.yaml"))]


def dvc_path(profile: Profile) -> Path:
    return profile_params(profile.name).with_name("dvc.yaml")


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


def _source_root_deps(profile: Profile) -> list[str]:
    """The prepare stage's dep on each set's own source folder (`root:`, e.g. an image folder), so new
    or changed images there make it stale. One foreach body serves every set, so the dep is
    `${item.root}`, which DVC can only fill when every set of the profile names a root."""
    specs = list((profile.params.get("datasets") or {}).values())
    return ["${item.root}"] if specs and all(isinstance(s, dict) and s.get("root") for s in specs) else []


def build_dvc(profile: Profile) -> dict:
    params_file = profile.path.as_posix()
    where = {"wdir": "../.."} if profile.name != "default" else {}
    name = profile.name
    archives = _downloadable_archives(profile)
    stages: dict = {}
    if archives:  # the official CIFAR archives, fetched and checked by the pipeline's first stage
        download = StageRecord("download", "${item.name}", {"root": "data/raw/${item.name}"})
        stages["download"] = {"foreach": [{"name": n, "archive": a} for n, a in archives], "do": {
            # Not cached: the dataset's own archive, fetched from its URL and checked by md5 (docs/design.md).
            **where, **_stage(download, [], outs=[{"data/raw/${item.name}/${item.archive}": {"cache": False, "persist": True}}]),
        }}
    prepare = StageRecord("prepare", arguments={"params": params_file, "key": "${key}"})
    stages["prepare"] = {"foreach": "${datasets}", "do": {
        **where,
        # Every prepare waits for the downloads (a CIFAR-less set does not change with them).
        **_stage(prepare, [f"data/raw/{n}/{a}" for n, a in archives] + _source_root_deps(profile),
                 params=[{params_file: ["datasets.${key}"]}],
                 # Cached: a colleague's `dvc pull` brings the set, so evaluating a pulled run needs no raw data.
                 outs=[{f"data/prepared/{name}/${{key}}": {"cache": True}}]),
    }}
    for table in training_tables(profile):
        section = profile.section(table)
        axes, apply = section["axes"], section["apply"]
        run_dir = f"runs/{name}/{table}/{_dollar(section['name'])}"
        data_dep = f"data/prepared/{name}/{_data_key_pattern(table, apply)}"
        table_params = ["train", f"{table}.set", f"{table}.name"] + [f"{table}.{key}" for key in ("preset", "data", "dataset") if key in section]
        table_params += [f"{table}.{t.split(':', 1)[1]}.${{item.{a}}}" for a, t in apply.items() if t.startswith("variant:")]
        table_params += [f"{table}.per_data" for t in apply.values() if t == "data" and "per_data" in section]
        train = StageRecord("train", arguments={"params": params_file, "table": table,
                                                "item": {axis: f"${{item.{axis}}}" for axis in axes}})
        stages[table] = {
            "matrix": {axis: f"${{{table}.axes.{axis}}}" for axis in axes},
            **where,
            # metrics.json and history.csv are plain outputs: declared as metrics / plots of every run they
            # filled `dvc exp show` and `dvc plots show` with every profile's runs; the report's summary
            # and curves stand for them (report_views). Cached, so `dvc push` shares a run (docs/sharing.md).
            **_stage(train, [data_dep], params=[{params_file: table_params}],
                     outs=[{f"{run_dir}/{f}": {"cache": True, **({"persist": True} if f == "checkpoint.pt" else {})}}
                           for f in RUN_FILES]),
        }
    analyses = profile.params.get("analysis") or {}
    for analysis_name, settings in analyses.items():
        runs = [settings["run"]] if "run" in settings else list((settings.get("runs") or {}).values())
        record = StageRecord("analysis", analysis_name, {"params": params_file})
        # A wall-clock analysis's output holds its times, which .dvcignore keeps out of the hash. Not cached:
        # git tracks the folder as part of the report (DVC refuses to cache a git-tracked file).
        stages[f"analysis_{analysis_name}"] = {**where, **_stage(
            record, [f"runs/{name}/{run}/checkpoint.pt" for run in runs],
            params=[{params_file: [f"analysis.{analysis_name}"]}],
            outs=[{analysis_dir(name, analysis_name).as_posix(): {"cache": False}}])}
    report = StageRecord("report", arguments={"params": params_file})
    stages["report"] = {**where, **_stage(
        report, [f"runs/{name}", *([claims_path(profile.path).as_posix()] if claims_path(profile.path).is_file() else []),
                 *([f"reports/{name}/analysis"] if set(analyses) - set(WALL_CLOCK_ANALYSES) else [])],
        params=[{params_file: ["report", *[t for t in profile.params if t in TABLES]]}], **report_views(profile))}
    return {"stages": stages, "plots": top_level_plots(profile)}


def report_views(profile: Profile) -> dict:
    """The report stage's outputs: tables and README, the curves the plots draw, and the summary that
    is the profile's one DVC metrics file (git-tracked: cache false), so `dvc exp show` shows a few
    headline columns for the committed baseline and every experiment."""
    name = profile.name
    return {
        "outs": [{f"reports/{name}/tables": {"cache": False}}, {f"reports/{name}/README.md": {"cache": False}},
                 {f"reports/{name}/{CURVES_DIR}": {"cache": False}}],
        "metrics": [{f"reports/{name}/{SUMMARY_NAME}": {"cache": False}}],
    }


def top_level_plots(profile: Profile) -> list[dict]:
    """One plot per table: test top-1 over epochs, one line per variant (mean over seeds)."""
    # Top-level plot paths are relative to the dvc.yaml, not to a stage's wdir.
    up = "../" * (len(dvc_path(profile).parts) - 1)
    plots = []
    for table in [t for t in training_tables(profile) if TABLES[t].curves]:  # the tables the report writes curves of
        labels = list(curve_runs(profile, table))
        title, reference = TABLES[table].title, TABLES[table].reference
        plots.append({f"{profile.name} {table}: test top-1 over epochs": {
            "template": "linear", "x": "epoch",
            "y": {up + curves_path(profile.name, table).as_posix(): labels},
            "title": f"{title} ({reference}), profile {profile.name}: test top-1 over epochs, mean over seeds",
            "x_label": "epoch", "y_label": "test top-1 (%)",
        }})
    return plots


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
