"""A run's figures keep every text inside the image: title (wrapped to the figure), axis labels and
class names, for named classes and for index-only axes (more than 40 classes)."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from rescom.engine.outputs import plot_run_figures

LONG_TITLE = "supcon_siambs on fashion-mnist-lt-with-a-long-name (profile cifar10-jpeg, seed 2, last epoch)"


@pytest.mark.parametrize("num_classes", [10, 100])
def test_titles_and_labels_lie_inside_the_figure(tmp_path, monkeypatch, num_classes):
    saved = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (saved.append(fig), save(fig, *a, **k))[1])
    classes = [f"Ankle boot {i}" for i in range(num_classes)]
    confusion = torch.randint(0, 5, (num_classes, num_classes))
    plot_run_figures(tmp_path, classes, list(range(num_classes, 0, -1)), [50.0] * num_classes, confusion, LONG_TITLE)
    assert len(saved) == 2
    for fig in saved:
        renderer = fig._get_renderer()
        names = [t for ax in fig.axes for t in ax.get_xticklabels() if t.get_text() in classes]  # auto ticks overhang
        texts = [fig._suptitle, *names] + [t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
        for text in (t for t in texts if t is not None and t.get_text()):
            box = text.get_window_extent(renderer)
            assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, text.get_text()
