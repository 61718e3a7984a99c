"""The registry of report tables: one entry per table says everything the report needs of it.

Adding a table is one entry here plus its runs (the profile section that pipeline/catalogue.py
expands; `TABLES` there names it) and, where it needs more than a `Points` or `Curve` figure, its
renderer. Everything else (keys, titles, paired baselines, curves, summary, figures, the
structure-only diff's row keys) reads this registry, so a table cannot drop out of one of them
(tests/test_report_tables.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Baseline:
    """The row every other row is paired with, seed by seed: `column` == `value`, sharing `context`."""

    column: str
    value: object
    context: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """'bs' for a method, 'grid=all' otherwise."""
        return str(self.value) if self.column == "method" else f"{self.column}={self.value}"


@dataclass(frozen=True)
class Points:
    """All, and Many / Medium / Few, per row (report/figures.py); `label` formats a row's columns."""

    label: str
    title: str


@dataclass(frozen=True)
class Curve:
    """All against an ablation value `x`, one line per `series` value (report/figures.py)."""

    x: str
    series: str | None
    title: str
    x_label: str


@dataclass(frozen=True)
class ReportTable:
    title: str
    reference: str  # where the paper has it
    keys: tuple[str, ...]  # the columns that name a row (besides the seed)
    baseline: Baseline | None = None
    curves: bool = True  # test top-1 over epochs (curves/<table>.csv) and a headline in summary.json
    figure: Points | Curve | None = None
    queue_histograms: bool = False  # also the keys per class held by each queue at the end


TABLES: dict[str, ReportTable] = {
    "main": ReportTable("Main comparison", "shape of paper Tables 1-2", ("dataset", "method", "imbalance"),
                        Baseline("method", "bs", ("dataset", "imbalance")),
                        figure=Points("{method} IF{imbalance:g}", "Main comparison")),
    "entirety": ReportTable("Entirety: SupCon+BS, MoCo+BS, ResCom", "paper Sec. 4.2", ("method",), curves=False,
                            figure=Points("{method}", "Entirety")),  # main's runs again: no second headline
    "queue_type": ReportTable("Queue type: original (FIFO) / reversed / balanced", "paper Fig. 3", ("queue",),
                              Baseline("queue", "balanced"), figure=Points("{queue}", "Queue type"),
                              queue_histograms=True),
    "beta": ReportTable("Class-balanced weight beta", "paper Fig. 4 left", ("beta",), Baseline("beta", 0.999999),
                        figure=Curve("beta", None, "Top-1 vs beta", "beta")),
    "spm": ReportTable("Siamese balanced contrastive mining: Q, Q_p, Q_n", "paper Fig. 4 centre",
                       ("grid", "queue_size", "num_pos", "num_neg"), Baseline("grid", "all"),
                       figure=Points("{grid}", "Hard pair mining grid")),
    "siambs": ReportTable("SiamBS vs BS across queue sizes", "paper Fig. 4 right", ("variant", "queue", "queue_size"),
                          Baseline("variant", "supcon_bs", ("queue", "queue_size")),
                          figure=Curve("queue_size", "variant", "Top-1 vs queue size", "queue size (keys)")),
    "large": ReportTable("Large-scale datasets", "paper Tables 3-4", ("dataset",)),
    # rendered by report/draws.py (rows are draws of the subset, not runs of one setting)
    "draws": ReportTable("Draw of the long-tailed subset: BS and ResCom on other draws of the same counts",
                         "not in the paper", ("method", "subsample_seed"), curves=False),
}
