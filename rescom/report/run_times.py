"""Hardware and wall time of a profile's runs, from each run's run_log.json, for its report.

Training seconds are the sum of the epochs' seconds (training only: evaluation, checkpoints and
compilation outside the epoch loop are excluded); a run resumed in another window adds the epochs
of each window, each on the hardware named in its log (the last one's). Wall-clock numbers differ
every run, so they go under reports/<profile>/timings/ (no DVC output, see rescom.report.layout).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rescom.pipeline.catalogue import Profile, expand_table, training_tables
from rescom.report.layout import TIMINGS

COLUMNS = ["run", "finished", "epochs_done", "hardware", "mean_epoch_seconds", "training_seconds"]


def run_times(profile: Profile) -> pd.DataFrame:
    """One row per run of the profile's training tables that has a run log (started at least one epoch)."""
    from rescom.engine.outputs import RUN_LOG_NAME, read_run_log

    rows = []
    for table in training_tables(profile):
        for spec in expand_table(profile, table):
            run_dir = spec.run_dir(profile.name)
            log = read_run_log(run_dir / RUN_LOG_NAME)
            seconds = log.get("epoch_seconds") or []
            if not seconds:
                continue
            rows.append({"run": f"{table}/{spec.name}", "finished": (run_dir / "metrics.json").is_file(),
                         "epochs_done": len(seconds), "hardware": log.get("hardware", "?"),
                         "mean_epoch_seconds": log.get("mean_epoch_seconds"), "training_seconds": round(sum(seconds), 1)})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_run_times(profile: Profile, root: Path) -> Path | None:
    """root/timings/runs.{csv,md}; None when no run has a log yet."""
    frame = run_times(profile)
    if frame.empty:
        return None
    out = root / TIMINGS
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "runs.csv", index=False)
    note = (profile.params.get("report") or {}).get("note")
    lines = [f"# Hardware and training time per run (profile **{profile.name}**)", "",
             *([f"- data: {note}"] if note else []),
             "- training seconds: the sum over epochs of the training loop alone (evaluation, checkpoints and "
             "start-up excluded); a resumed run adds each window's epochs; hardware as its run log names it", "",
             "| run | finished | epochs | hardware | s / epoch | training s |", "|---|---|---|---|---|---|"]
    for _, row in frame.iterrows():
        mean = "" if pd.isna(row["mean_epoch_seconds"]) else f"{row['mean_epoch_seconds']:.3f}"
        lines.append(f"| {row['run']} | {'yes' if row['finished'] else 'no'} | {row['epochs_done']} | "
                     f"{row['hardware']} | {mean} | {row['training_seconds']:.1f} |")
    lines.append(f"\ntotal training seconds: {frame['training_seconds'].sum():.1f}")
    path = out / "runs.md"
    path.write_text("\n".join(lines) + "\n")
    return path
