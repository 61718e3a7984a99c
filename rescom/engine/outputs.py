"""What a finished run leaves in its directory: metrics.json, history.csv, per_class.csv, figures."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pandas as pd
import torch
import yaml


def json_safe(value):
    """value with every NaN / inf float as None: strict JSON (null), which other tools can read."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, payload: dict) -> None:
    """Atomic strict JSON (a metric that is not a number, e.g. an empty shot group, is null)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(json_safe(payload), indent=2, sort_keys=True, allow_nan=False) + "\n")
    tmp.replace(path)


RUN_LOG_NAME = "run_log.json"


def run_log(mlflow_run_id: str | None, hardware: str, epoch_seconds: list[float]) -> dict:
    """What changes each time the same run is repeated: wall-clock seconds per epoch, the hardware they
    were measured on and the MLflow run id.

    Kept out of checkpoint.pt, metrics.json and history.csv, which are DVC outputs and repeat bit for
    bit on CPU, in run_log.json (no DVC output): regenerating a profile then leaves its dvc.lock unchanged.
    """
    seconds = [round(float(s), 4) for s in epoch_seconds]
    return {"mlflow_run_id": mlflow_run_id, "hardware": hardware, "epoch_seconds": seconds,
            "mean_epoch_seconds": round(sum(seconds) / len(seconds), 4) if seconds else None}


def read_run_log(path: Path) -> dict:
    """The run log, or {} when the run has none (a run from before it existed, or never started)."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):  # none, or cut short by a crash: timing only, the run is in the checkpoint
        return {}
    return payload if isinstance(payload, dict) else {}


def write_config(path: Path, config: dict) -> None:
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def write_history(path: Path, history: list[dict]) -> None:
    pd.DataFrame(history).to_csv(path, index=False, float_format="%.6g")


def write_per_class(path: Path, classes: list[str], class_counts: list[int], accuracy: list[float]) -> None:
    pd.DataFrame({"class": classes, "train_count": class_counts, "test_accuracy": accuracy}).to_csv(
        path, index=False, float_format="%.4f")


def confusion_matrix(probs: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[K, K] counts, rows = true class, columns = predicted class."""
    preds = probs.argmax(1)
    return torch.bincount(targets * num_classes + preds, minlength=num_classes**2).view(num_classes, num_classes)


def _suptitle(fig, text: str) -> None:
    """The title over the whole figure (not the axes, which the colorbar pushes left), wrapped to its
    width: a 9 pt character is about 5.4 pt wide."""
    width = int(fig.get_figwidth() * 72 / 5.4)
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in text.splitlines()), fontsize=9)


def plot_run_figures(run_dir: Path, classes: list[str], class_counts: list[int], accuracy: list[float],
                     confusion: torch.Tensor, title: str) -> list[Path]:
    """Per-class accuracy against training count, and the row-normalised confusion matrix (PNG).

    Classes are named on the axes (up to 40 of them; more would be unreadable, so indices are kept).
    """
    from matplotlib.figure import Figure

    named = len(classes) <= 40
    paths = []
    fig = Figure(figsize=(7, 3.5 + (0.8 if named else 0)), layout="constrained")
    ax = fig.add_subplot(111)
    ax.bar(range(len(classes)), accuracy, color="tab:blue", label="test accuracy (%)")
    ax.set_xlabel("class (sorted by training count, head first)")
    if named:
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax2 = ax.twinx()
    ax2.plot(range(len(classes)), class_counts, color="tab:red", marker=".", label="train images")
    ax2.set_ylabel("training images")
    ax2.set_yscale("log")
    _suptitle(fig, title)
    paths.append(run_dir / "per_class_accuracy.png")
    fig.savefig(paths[-1], dpi=100)

    fig = Figure(figsize=(5.5, 5) if named else (5, 4.5), layout="constrained")
    ax = fig.add_subplot(111)
    norm = confusion.double() / confusion.sum(1, keepdim=True).clamp(min=1)
    image = ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if named:
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
    _suptitle(fig, f"confusion (row-normalised)\n{title}")
    fig.colorbar(image, ax=ax)
    paths.append(run_dir / "confusion_matrix.png")
    fig.savefig(paths[-1], dpi=100)
    return paths
