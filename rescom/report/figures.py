"""Figures of the report tables (PNG, matplotlib's Agg canvas; no pyplot state)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure

from rescom.engine.checkpoint import load_checkpoint
from rescom.pipeline.catalogue import Profile, expand_table


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def _bars(agg: pd.DataFrame, label_column: str, title: str, path: Path) -> Path:
    """Many / Medium / Few / All bars per row (last epoch, mean over seeds, std as error bars)."""
    fig = Figure(figsize=(max(5, 1.2 * len(agg)), 3.5))
    ax = fig.add_subplot(111)
    width = 0.2
    for j, shot in enumerate(("all", "many", "medium", "few")):
        means = agg[f"last_test_{shot}_mean"].fillna(0)
        stds = agg[f"last_test_{shot}_std"].fillna(0)
        ax.bar([i + (j - 1.5) * width for i in range(len(agg))], means, width, yerr=stds, label=shot.capitalize())
    ax.set_xticks(range(len(agg)))
    ax.set_xticklabels([str(v) for v in agg[label_column]], rotation=20, fontsize=8)
    ax.set_ylabel("last-epoch top-1 (%)")
    ax.set_ylim(0, 112)  # headroom so the legend sits above the bars
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncols=4, loc="upper center")
    return _save(fig, path)


def _curve(agg: pd.DataFrame, x: str, series: str | None, title: str, path: Path, xlabel: str) -> Path:
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot(111)
    groups = agg.groupby(series, sort=False) if series else [("ResCom", agg)]
    for name, group in groups:
        xs = [str(v) for v in group[x]]
        ax.errorbar(xs, group["last_test_all_mean"], yerr=group["last_test_all_std"].fillna(0), marker="o",
                    capsize=3, label=str(name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("last-epoch top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def queue_histograms(profile: Profile) -> dict[str, list[int]]:
    """Keys per class held by each queue type's queue at the end of training (first seed's runs)."""
    section = profile.section("queue_type")
    first_seed = section["axes"].get("seed", [0])[0]
    checkpoints = {str(spec.item["queue"]): spec.run_dir(profile.name) / "checkpoint.pt"
                   for spec in expand_table(profile, "queue_type") if spec.item.get("seed", first_seed) == first_seed}
    for reference in section.get("references") or []:  # a reused run of another table
        checkpoints[str(reference["queue"])] = Path("runs") / profile.name / reference["run"] / "checkpoint.pt"
    labels_by_queue = {}
    for name, checkpoint in checkpoints.items():
        if checkpoint.is_file():
            queue = load_checkpoint(checkpoint)["components"]["queue"]
            labels_by_queue[name] = queue["queue_labels"]
    if not labels_by_queue:
        return {}
    num_classes = max(int(labels.max()) + 1 for labels in labels_by_queue.values())
    # FIFO slots never written hold label -1 and are not counted.
    return {name: torch.bincount(labels[labels >= 0], minlength=num_classes).tolist()
            for name, labels in labels_by_queue.items()}


def table_figures(profile: Profile, table: str, agg: pd.DataFrame, out_dir: Path) -> list[Path]:
    tag = f"profile {profile.name}"
    if table == "main":
        agg = agg.assign(label=[f"{m} IF{i:g}" for m, i in zip(agg["method"], agg["imbalance"])])
        return [_bars(agg, "label", f"Main comparison by shot group ({tag})", out_dir / "main.png")]
    if table == "entirety":
        return [_bars(agg, "method", f"Entirety ({tag})", out_dir / "entirety.png")]
    if table == "queue_type":
        from rescom.analysis.figures import plot_queue_histograms

        paths = [_bars(agg, "queue", f"Queue type ({tag})", out_dir / "queue_type.png")]
        histograms = queue_histograms(profile)
        if histograms:
            path = out_dir / "queue_histograms.png"
            plot_queue_histograms({k: torch.tensor(v).numpy() for k, v in histograms.items()}, path,
                                  title=f"Keys per class in each queue at the end of training ({tag})")
            pd.DataFrame(histograms).rename_axis("class").to_csv(out_dir / "queue_histograms.csv")
            paths.append(path)
        return paths
    if table == "beta":
        return [_curve(agg, "beta", None, f"Top-1 vs beta ({tag})", out_dir / "beta.png", "beta")]
    if table == "spm":
        return [_bars(agg, "grid", f"Hard pair mining grid ({tag})", out_dir / "spm.png")]
    if table == "siambs":
        return [_curve(agg, "queue_size", "variant", f"Top-1 vs queue size ({tag})", out_dir / "siambs.png",
                       "queue size (keys)")]
    return []
