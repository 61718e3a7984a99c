"""PNG figures for the analyses (Fig. 1 centre and right, Fig. 5, queue composition).

Figures are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas, so nothing touches
pyplot's global state or needs a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure


def run_context(config) -> str:
    """'fashion-mnist-lt IF 100, 25 epochs': what a figure's title names about the run it reads."""
    imbalance = f" IF {config.data.imbalance:g}" if config.data.imbalance is not None else ""
    return f"{config.data.dataset}{imbalance}, {config.optim.epochs} epochs"


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_pair_heatmap(freq, path, title: str = "Contrastive pair frequency") -> Path:
    """Heatmap of a [K, K] pair-frequency matrix (rows: anchor class, columns: key class), on a log
    colour scale (the head/tail contrast spans orders of magnitude); zero entries are left blank."""
    freq = np.asarray(freq, dtype=np.float64)
    k = freq.shape[0]
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    positive = freq[freq > 0]
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    image = ax.imshow(np.where(freq > 0, freq, np.nan) if norm else freq, cmap="viridis", norm=norm)
    fig.colorbar(image, ax=ax, label="pair frequency" + (" (log scale)" if norm else ""))
    ax.set_xlabel("key class j (queue / batch)")
    ax.set_ylabel("anchor class i")
    ax.set_title(title)
    if k <= 20:
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
    return _save(fig, path)


def plot_gradient_by_rank(result: Mapping[str, np.ndarray], path,
                          title: str = "Contrastive gradient by similarity rank") -> Path:
    """Mean |dL/ds| of positives and negatives against their similarity rank (log y axis)."""
    fig = Figure(figsize=(9, 3.8))
    for n, name in enumerate(("positive", "negative")):
        ax = fig.add_subplot(1, 2, n + 1)
        values = np.asarray(result[name], dtype=np.float64)
        ax.plot(np.arange(values.size), values, marker="." if values.size < 50 else None)
        if (values > 0).any():
            ax.set_yscale("log")
        ax.set_xlabel(f"rank of {name} key by similarity (0 = most similar)")
        ax.set_ylabel("mean |dL / ds|")
        ax.set_title(f"{name}s")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def plot_similarity_histograms(groups: Mapping[str, Mapping[str, np.ndarray]], path,
                               title: str = "Positive-pair cosine similarity", bins: int = 50) -> Path:
    """One panel per shot group (many / medium / few); one histogram per method in each panel.

    ``groups``: method -> group -> 1-D array of similarities (as returned by
    :func:`rescom.analysis.similarity.positive_pair_similarities`).
    """
    order = [g for g in ("many", "medium", "few") if any(g in per_method for per_method in groups.values())]
    fig = Figure(figsize=(4 * max(len(order), 1), 3.6))
    edges = np.linspace(-1.0, 1.0, bins + 1)
    for n, group in enumerate(order):
        ax = fig.add_subplot(1, len(order), n + 1)
        for method, per_method in groups.items():
            values = np.asarray(per_method.get(group, []), dtype=np.float64)
            if values.size:
                ax.hist(values, bins=edges, density=True, histtype="step", linewidth=1.5,
                        label=f"{method} (mean {values.mean():.2f})")
        ax.set_xlabel("cosine similarity of same-class pairs")
        ax.set_ylabel("density")
        ax.set_title(group)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def plot_queue_histograms(histograms: Mapping[str, np.ndarray], path, title: str = "Keys per class in the queue",
                          ylabel: str = "keys in queue") -> Path:
    """Grouped bars: per-class key count of each queue type (queue type -> [K])."""
    fig = Figure(figsize=(7, 3.8))
    ax = fig.add_subplot()
    width = 0.8 / max(len(histograms), 1)
    for n, (name, hist) in enumerate(histograms.items()):
        hist = np.asarray(hist, dtype=np.float64)
        ax.bar(np.arange(hist.size) + (n - (len(histograms) - 1) / 2) * width, hist, width, label=name)
    ax.set_xlabel("class (sorted by training count, head first)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)
