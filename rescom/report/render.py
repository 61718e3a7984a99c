"""Render a profile's tables (Markdown + CSV) and figures (PNG) under reports/<profile>/ from finished runs.

Headline numbers are last-epoch top-1 (%), mean +- sample std over seeds; the best epoch (chosen on
the test set, as the released code does, so optimistic) stands beside it, labelled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from rescom.pipeline.catalogue import Profile, load_profile, training_tables
from rescom.report.claims import render_claims
from rescom.report.collect import aggregate, table_frame
from rescom.report.draws import render_draws
from rescom.report.numbers import difference_label, signed
from rescom.report.paired import baseline_label, paired_cell, paired_differences
from rescom.report.render_labels import key_text
from rescom.report.summary import SUMMARY_NAME, headline_summary, write_curves
from rescom.report.tables import TABLES
from rescom.report.paper_values import paper_top1, reference_line

SHOTS = ("all", "many", "medium", "few")


def report_settings(profile: Profile) -> dict:
    """The params file's `report` section: tolerance, and optionally `note` (what the data is, printed
    on every page of the report) and `stands_in_for` (the paper's dataset whose published numbers sit
    beside ours when the profile trains on a stand-in for it, e.g. a re-encoded copy of CIFAR-10)."""
    return profile.params.get("report") or {}


def paper_dataset(profile: Profile, dataset: str) -> str:
    """The dataset name the paper's numbers are looked up under for a run on `dataset`."""
    return report_settings(profile).get("stands_in_for") or dataset


def _frame(profile: Profile, table: str) -> pd.DataFrame:
    runs_of = TABLES[table].runs_of
    if runs_of is None:
        return table_frame(profile, table)
    section = profile.section(table)  # which of the other table's runs it shows
    frame = table_frame(profile, runs_of)
    frame = frame[frame["finished"]]
    if frame.empty:  # no run has finished: its rows carry no method or imbalance yet
        return frame
    frame = frame[frame["method"].isin(section["methods"]) & (frame["imbalance"] == float(section["imbalance"]))]
    if "dataset" in section:  # the other table may span several datasets (paper profile)
        frame = frame[frame["dataset"] == section["dataset"]]
    return frame


def _cell(row: pd.Series, prefix: str, metric: str) -> str:
    mean, std = row.get(f"{prefix}_test_{metric}_mean"), row.get(f"{prefix}_test_{metric}_std")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    return f"{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _markdown(table: str, agg: pd.DataFrame, header: str) -> str:
    keys = list(TABLES[table].keys)
    baseline = baseline_label(table) if "paired_n" in agg else None
    paired = [f"{difference_label(group, baseline)} (paired)" for group in ("All", "Few")] if baseline else []
    columns = [*keys, "All (last)", "Many", "Medium", "Few", "ECE", *paired, "All (best epoch)", "best epoch",
               "paper All", "Δ vs paper"]
    lines = [header, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in agg.iterrows():
        paper = row.get("paper_all")
        has_paper = paper is not None and not (isinstance(paper, float) and math.isnan(paper))
        delta = signed(row['last_test_all_mean'] - paper) if has_paper else ""
        # a None (NaN) mining count means all keys; another key's NaN is a missing value
        cells = [key_text(k, row[k], "all" if k in ("num_pos", "num_neg") else "n/a") for k in keys] + [
            *(_cell(row, "last", m) for m in (*SHOTS, "ece")),
            *([paired_cell(row, "all"), paired_cell(row, "few")] if paired else []),
            _cell(row, "best", "all"), str(row["best_epoch"]), f"{paper:.1f}" if has_paper else "", delta]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_context(frame: pd.DataFrame) -> str:
    """'fashion-mnist-lt IF 100, 25 epochs': the dataset, imbalance and schedule of a table's runs."""
    done = frame[frame["finished"]]
    sets = sorted({f"{d} IF {i:g}" if i is not None and not math.isnan(i) else str(d)
                   for d, i in zip(done.get("dataset", []), done.get("imbalance", []), strict=True)})
    epochs = sorted({int(e) for e in done.get("epochs", [])})
    parts = ([", ".join(sets)] if sets else []) + ([f"{'/'.join(map(str, epochs))} epochs"] if epochs else [])
    return ", ".join(parts)


def _header(profile: Profile, table: str, frame: pd.DataFrame, agg: pd.DataFrame) -> str:
    entry = TABLES[table]
    title, ref = entry.title, entry.reference
    done = frame[frame["finished"]]
    datasets = sorted({f"{d} (IF {i:g})" if i is not None and not math.isnan(i) else str(d)
                       for d, i in zip(done.get("dataset", []), done.get("imbalance", []), strict=True)})
    seeds = sorted({int(s) for s in done.get("seed", [])})
    epochs = sorted({int(e) for e in done.get("epochs", [])})
    missing = frame[~frame["finished"]]["run"].tolist()
    lines = [
        f"# {title} ({ref})", "",
        f"- profile: **{profile.name}**; dataset: {', '.join(datasets) or 'n/a'}; seeds: {seeds}; epochs: {epochs}",
        "- headline: last-epoch top-1 (%), mean ± sample std over seeds; the best epoch is chosen on the test set "
        "(as the released code reports) and is optimistic",
        "- ECE in %, 15 bins; Many > 100, Medium 20-100, Few < 20 training images",
    ]
    settings = report_settings(profile)  # note, stands_in_for
    if settings.get("note"):
        lines.insert(2, f"- **data: {settings['note']}**")
    intervals = sorted({int(e) for e in done.get("eval_every", []) if not math.isnan(e)})
    if any(n > 1 for n in intervals):
        lines.append(f"- evaluated every {', '.join(map(str, intervals))} epochs: the best epoch is the best of "
                     "those evaluations (the released code evaluates every epoch)")
    if entry.note:
        lines.append(f"- {entry.note}")
    if baseline_label(table) and "paired_n" in agg:
        lines.append(f"- paired: last-epoch top-1 minus {baseline_label(table)}'s on the same seed, mean ± std over "
                     "the seeds both have (their number in brackets); a gap within about two stds is within noise")
    if entry.paper_numbers:
        run_settings = zip(done.get("dataset", []), done.get("imbalance", []), strict=True)
        runs_of = sorted({(d, None if i is None or math.isnan(i) else float(i)) for d, i in run_settings},
                         key=lambda s: (s[0], s[1] or 0))
        lines.extend(reference_line(paper_dataset(profile, d), i) for d, i in runs_of)
        if settings.get("stands_in_for"):
            lines.append(f"- the paper's numbers are for the official {settings['stands_in_for']}; this profile "
                         f"trains on a stand-in for it ({settings.get('note', 'see the params file')}), so compare "
                         "the paired differences, not the absolute accuracies")
    if entry.paper_says:
        lines.append(f"- the paper's ablations are on ImageNet-LT, not this set; it states: {entry.paper_says}")
    if missing:
        lines.append(f"- **not yet trained**: {', '.join(missing)}")
    return "\n".join(lines)


def render_table(profile: Profile, table: str, out_dir: Path) -> pd.DataFrame | None:
    frame = _frame(profile, table)
    if frame.empty or not frame["finished"].any():
        return None
    keys = list(TABLES[table].keys)
    agg = aggregate(frame, keys)
    imbalances = agg["imbalance"] if "imbalance" in keys else agg["imbalance_of_runs"]
    agg["paper_all"] = [(paper_top1(paper_dataset(profile, d), i, m) or (math.nan,))[0]
                        for d, i, m in zip(agg["dataset_of_runs"], imbalances, agg["method_of_runs"], strict=True)]
    agg = agg.drop(columns=["dataset_of_runs", "method_of_runs", "imbalance_of_runs"])
    paired = paired_differences(frame, table, keys)
    if paired is not None:
        agg = agg.merge(paired, on=keys, how="left")
    agg.to_csv(out_dir / f"{table}.csv", index=False, float_format="%.4f")
    (out_dir / f"{table}.md").write_text(_markdown(table, agg, _header(profile, table, frame, agg)))
    return agg


def render_rows(profile: Profile, table: str, out_dir: Path) -> pd.DataFrame | None:
    """Write one table (tables/<table>.md and .csv) by the renderer its registry entry names; its
    aggregate, or None when none of its runs has finished."""
    return render_draws(profile, out_dir) if TABLES[table].rows == "draws" else render_table(profile, table, out_dir)


def render_reports(params_path: str | Path, out_root: Path = Path("reports")) -> Path:
    """Write reports/<profile>/tables/{<table>.md,<table>.csv,*.png}, reports/<profile>/README.md and the
    DVC views reports/<profile>/summary.json and reports/<profile>/curves/<table>.csv (report/summary.py)."""
    from rescom.report.figures import error_caption, table_figures
    from rescom.report.machine import machine_fingerprint

    profile = load_profile(params_path)
    root = out_root / profile.name
    out_dir = root / "tables"
    out_dir.mkdir(parents=True, exist_ok=True)
    index = [f"# Reports: profile `{profile.name}`", "",
             *([f"**{PROFILE_NOTES[profile.name][0].upper()}{PROFILE_NOTES[profile.name][1:]}.**", ""]
               if profile.name in PROFILE_NOTES else []),
             f"Generated by `rescom report --params {profile.path}` from the runs under `runs/{profile.name}/`",
             "(and `rescom pipeline analysis ...` for the analyses). Each table names its dataset, seeds and",
             "epochs at the top; the headline is the last epoch, the best epoch (chosen on the test set) beside it.", ""]
    if report_settings(profile).get("note"):
        index[1:1] = ["", f"**Data: {report_settings(profile)['note']}.**"]
    aggregates = {}
    for table in [t for t in TABLES if t in profile.params]:
        title = f"{TABLES[table].title} ({TABLES[table].reference})"
        agg = render_rows(profile, table, out_dir)
        if agg is None:
            index.append(f"- {title}: no finished runs yet\n")
            continue
        figures = table_figures(profile, table, agg, out_dir, context=run_context(_frame(profile, table)))
        index.append(f"## {title}\n\n"
                     f"[tables/{table}.md](tables/{table}.md) · [tables/{table}.csv](tables/{table}.csv)\n")
        index.extend(f"![{f.stem}](tables/{f.name})\n" for f in figures)
        if figures:
            index.append(f"*{error_caption(agg)}.*\n")
        aggregates[table] = agg
    if render_claims(profile, out_dir) is not None:
        index.append("## The paper's claims at this scale\n\n[tables/claims.md](tables/claims.md) · "
                     "[tables/claims.csv](tables/claims.csv)\n")
    index.extend(_analysis_index(root, profile))
    from rescom.report.run_times import write_run_times

    # Listed whether or not run logs are here: they are no DVC output, so runs fetched by `dvc pull` have
    # none, and the README (a DVC output) must not depend on them.
    write_run_times(profile, root)
    if training_tables(profile):
        index.append("## Hardware and training time\n\n[timings/runs.md](timings/runs.md) · [timings/runs.csv](timings/runs.csv): "
                     "each run's hardware and seconds from its run log (not a DVC output: they differ every run)\n")
    (root / "README.md").write_text("\n".join(index) + "\n")
    # The compact views DVC shows (metrics and plots), outside tables/ so DVC can declare them.
    (root / SUMMARY_NAME).write_text(json.dumps(headline_summary(aggregates), indent=2, sort_keys=True) + "\n")
    write_curves(profile, root)
    (out_dir / "machine.json").write_text(json.dumps(machine_fingerprint(), indent=2, sort_keys=True) + "\n")
    write_reports_index(out_root)
    return root


PROFILE_NOTES = {
    "smoke": ("a toy profile: 2 epochs, width-4 networks, 60 images per class at most, one seed, for CI; it proves "
              "the pipeline and its bit-for-bit reproduction and says nothing about the method"),
    "default": "Fashion-MNIST-LT IF 100 on a 2-core CPU (what a bare `dvc repro` makes)",
    "paper": "CIFAR-10/100-LT and the large datasets at the paper's scale (GPU)",
    "cifar10-jpeg": ("CIFAR-10-LT IF 100 at the paper's scale (GPU) from the CIFAR-10 JPEG q75 stand-in, not the "
                     "official archive: BS and ResCom paired by seed"),
}


def write_reports_index(out_root: Path) -> Path:
    """reports/README.md: every profile's report, with its main figures shown."""
    lines = ["# Reports", "",
             "Generated by `rescom report` (the `report` stage of each profile's pipeline). Headline numbers are",
             "last-epoch top-1; each table states its profile, dataset, seeds and epochs.", ""]
    for profile in PROFILE_NOTES:
        readme = out_root / profile / "README.md"
        if not readme.is_file():
            lines.append(f"- `{profile}`: {PROFILE_NOTES[profile]} — not generated in this checkout\n")
            continue
        lines.append(f"## [{profile}]({profile}/README.md): {PROFILE_NOTES[profile]}\n")
        for table in [t for t, entry in TABLES.items() if entry.overview]:
            if (out_root / profile / "tables" / f"{table}.png").is_file():
                lines.append(f"![{profile} {table}]({profile}/tables/{table}.png)")
        lines.append("")
    path = out_root / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _analysis_index(root: Path, profile) -> list[str]:
    """Links to each analysis's files; a wall-clock analysis is listed from the params (the report
    reads none of its times, so it does not wait for them) with what its numbers are."""
    from rescom.analysis import ANALYSES
    from rescom.report.layout import UNCOMMITTED_TIMINGS, analysis_dir

    lines = []
    configured = profile.params.get("analysis") or {}
    for key, entry in ANALYSES.items():
        title, name = entry.title, key.replace("_", "-")
        if entry.wall_clock:
            if key in configured:
                stem = (analysis_dir(profile.name, key) / key).relative_to(Path("reports") / profile.name).as_posix()
                if profile.name in UNCOMMITTED_TIMINGS:  # git-ignored: a link would be dead in the repository
                    where = f"`reports/{profile.name}/{stem}.md` and `.csv` (written by the stage, git-ignored here)"
                else:
                    where = f"[{stem}.md]({stem}.md) · [{key}.csv]({stem}.csv)"
                lines += [f"## {title}\n", f"- {where}: wall-clock times on "
                          "the machine that ran the stage, beside the paper's (2080Ti). DVC hashes only what was "
                          f"measured, not the times, which differ every run; `dvc repro -f -s analysis_{key}` "
                          "measures again.", ""]
            continue
        directory = root / "analysis" / name
        if not directory.is_dir():
            continue
        lines.append(f"## {title}\n")
        for path in sorted(directory.iterdir()):
            link = f"analysis/{name}/{path.name}"
            lines.append(f"![{path.stem}]({link})\n" if path.suffix == ".png" else f"- [{path.name}]({link})")
        lines.append("")
    return lines
