"""Figures of the report tables (PNG, matplotlib's Agg canvas; no pyplot state)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure

from rescom.engine.checkpoint import load_checkpoint
from rescom.pipeline.catalogue import Profile, expand_table
from rescom.report.tables import TABLES, Curve, Points


def _save(fig: Figure, path: Path, caption: str | None = None) -> Path:
    """At 100 dpi, a caption (if any) centred under the axes."""
    if caption is not None:
        fig.text(0.5, 0.01, caption, ha="center", fontsize=8)
    fig.tight_layout(rect=None if caption is None else (0, 0.04, 1, 1))
    fig.savefig(path, dpi=100)
    return path


def error_caption(agg: pd.DataFrame) -> str:
    """What the error bars are: the sample std over the seeds each point has (none for one seed)."""
    seeds = sorted({int(n) for n in agg["n_seeds"]}) if "n_seeds" in agg else []
    if not seeds or seeds == [1]:
        return "one seed per point: no error bars"
    return f"error bars: sample std over {'/'.join(map(str, seeds))} seeds"


def _zoom(ax, lows, highs) -> None:
    """y limits around the data (points and their error bars) with 15% margins, not 0-100:
    the gaps the claims are about are 1-2 points."""
    low, high = min(lows), max(highs)
    pad = max(0.15 * (high - low), 0.5)
    ax.set_ylim(low - pad, high + pad)


def _points(agg: pd.DataFrame, label_column: str, title: str, caption: str, path: Path) -> Path:
    """Left: All per row; right: Many / Medium / Few per row (last epoch, mean over seeds, std bars).
    Points, not bars, so each axis can be zoomed to its data without a bar starting mid-air."""
    fig = Figure(figsize=(max(7, 1.5 * len(agg) + 3), 4))
    xs = list(range(len(agg)))
    panels = ((fig.add_subplot(1, 2, 1), ("all",)), (fig.add_subplot(1, 2, 2), ("many", "medium", "few")))
    for ax, shots in panels:
        lows, highs = [], []
        for j, shot in enumerate(shots):
            means, stds = agg[f"last_test_{shot}_mean"], agg[f"last_test_{shot}_std"].fillna(0)
            offset = (j - (len(shots) - 1) / 2) * 0.15
            ax.errorbar([x + offset for x in xs], means, yerr=stds, fmt="o", capsize=3, label=shot.capitalize())
            finite = means.notna()
            lows += list((means - stds)[finite])
            highs += list((means + stds)[finite])
        if lows:
            _zoom(ax, lows, highs)
        ax.set_xticks(xs, [str(v) for v in agg[label_column]], rotation=20, ha="right", fontsize=9)
        ax.set_xlim(-0.5, len(agg) - 0.5)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylabel("last-epoch top-1 (%)")
        ax.set_title("All" if shots == ("all",) else "by shot group", fontsize=10)
        if len(shots) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, caption)


def _curve(agg: pd.DataFrame, x: str, series: str | None, title: str, caption: str, path: Path,
           xlabel: str) -> Path:
    """All against an ablation value, one line per series; a series of one value is a point."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(111)
    groups = agg.groupby(series, sort=False) if series else [("ResCom", agg)]
    lows, highs = [], []
    for name, group in groups:
        xs = [str(v) for v in group[x]]
        means, stds = group["last_test_all_mean"], group["last_test_all_std"].fillna(0)
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=str(name),
                    linestyle="-" if len(group) > 1 else "none")
        lows += list(means - stds)
        highs += list(means + stds)
    _zoom(ax, lows, highs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("last-epoch top-1 (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path, caption)


def queue_histograms(profile: Profile) -> dict[str, list[int]]:
    """Keys per class held by each queue type's queue at the end of training (first seed's runs)."""
    section = profile.section("queue_type")
    first_seed = section["axes"].get("seed", [0])[0]
    checkpoints = {str(spec.item["queue"]): spec.run_dir(profile.name) / "checkpoint.pt"
                   for spec in expand_table(profile, "queue_type") if spec.item.get("seed", first_seed) == first_seed}
    for reference in section.get("references") or []:  # a reused run of another table
        checkpoints[str(reference["queue"])] = Path("runs") / profile.name / reference["run"] / "checkpoint.pt"
    labels_by_queue = {name: load_checkpoint(checkpoint)["components"]["queue"]["queue_labels"]
                       for name, checkpoint in checkpoints.items() if checkpoint.is_file()}
    if not labels_by_queue:
        return {}
    num_classes = max(int(labels.max()) + 1 for labels in labels_by_queue.values())
    # FIFO slots never written hold label -1 and are not counted.
    return {name: torch.bincount(labels[labels >= 0], minlength=num_classes).tolist()
            for name, labels in labels_by_queue.items()}


def table_figures(profile: Profile, table: str, agg: pd.DataFrame, out_dir: Path, context: str = "") -> list[Path]:
    """The table's figure as its registry entry says (report/tables.py); `context` (dataset, IF,
    epochs of its runs) goes into every title."""
    spec = TABLES[table]
    tag = f"profile {profile.name}" + (f", {context}" if context else "")
    caption, path, figure = error_caption(agg), out_dir / f"{table}.png", spec.figure
    if isinstance(figure, Points):
        agg = agg.assign(label=[figure.label.format(**row) for row in agg.to_dict("records")])
        paths = [_points(agg, "label", f"{figure.title} ({tag})", caption, path)]
    elif isinstance(figure, Curve):
        paths = [_curve(agg, figure.x, figure.series, f"{figure.title} ({tag})", caption, path, figure.x_label)]
    else:
        paths = []
    histograms = queue_histograms(profile) if spec.queue_histograms else None
    if histograms:
        from rescom.analysis.figures import plot_queue_histograms

        path = out_dir / "queue_histograms.png"
        plot_queue_histograms(histograms, path, title=f"Keys per class in each queue at the end of training ({tag})")
        pd.DataFrame(histograms).rename_axis("class").to_csv(out_dir / "queue_histograms.csv")
        paths.append(path)
    return paths


def plot_curves(curves: pd.DataFrame, title: str, path: Path) -> Path:
    """Test top-1 over epochs, one line per variant (the same data as the DVC top-level plot, so the
    curves can be seen without a browser or the internet). A variant evaluated once is a point."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(111)
    for column in curves.columns[1:]:
        points = curves[["epoch", column]].dropna()
        ax.plot(points["epoch"], points[column], marker="o", label=str(column),
                linestyle="-" if len(points) > 1 else "none")
    ax.set_xticks(sorted(curves["epoch"].dropna().astype(int).unique()))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test top-1 (%), mean over seeds")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)
