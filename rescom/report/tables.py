"""The registry of report tables: one entry per table says everything the suite needs of it.

Adding a table is one entry here plus its runs (the profile section of that name, which
pipeline/catalogue.py expands) and, where it needs more than a `Points` or `Curve` figure, its
renderer. Everything else reads this registry: which tables train runs (catalogue.training_tables,
the pipeline's stages), `rescom ablate`'s names, keys, titles, header lines, paired baselines,
curves, summary, figures, the reports index, the structure-only diff's row keys; so a table cannot
drop out of one of them (tests/test_report_tables.py, tests/test_registries.py).
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
    # The table whose runs it shows, selected by its section's `methods`, `imbalance` and `dataset`
    # (entirety: main's); None: runs of its own, each a training stage of the pipeline.
    runs_of: str | None = None
    rows: str = "runs"  # "draws": a row is a draw of the subset, rendered by report/draws.py
    note: str | None = None  # a line of its header
    paper_numbers: bool = False  # its header gives the paper's numbers for the datasets of its runs
    paper_says: str | None = None  # what the paper states of this ablation (Sec. 4.2-4.3, Figs. 3-4; ImageNet-LT)

    @property
    def overview(self) -> bool:
        """Whether the reports index (reports/README.md) shows its figure: the ones of its own runs."""
        return self.figure is not None and self.runs_of is None


TABLES: dict[str, ReportTable] = {
    "main": ReportTable("Main comparison", "shape of paper Tables 1-2", ("dataset", "method", "imbalance"),
                        Baseline("method", "bs", ("dataset", "imbalance")),
                        figure=Points("{method} IF{imbalance:g}", "Main comparison"), paper_numbers=True),
    "entirety": ReportTable("Entirety: SupCon+BS, MoCo+BS, ResCom", "paper Sec. 4.2", ("method",), curves=False,
                            figure=Points("{method}", "Entirety"), runs_of="main",  # no second headline
                            paper_says="ImageNet-LT, ResNet-50: SupCon framework 56.5, MoCo framework 55.7, ResCom 58.7"),
    "queue_type": ReportTable("Queue type: original (FIFO) / reversed / balanced", "paper Fig. 3", ("queue",),
                              Baseline("queue", "balanced"), figure=Points("{queue}", "Queue type"),
                              queue_histograms=True,
                              paper_says="the class-balanced queue is the best of the three queue types, with the "
                                         "lowest ECE (Fig. 3)"),
    "beta": ReportTable("Class-balanced weight beta", "paper Fig. 4 left", ("beta",), Baseline("beta", 0.999999),
                        figure=Curve("beta", None, "Top-1 vs beta", "beta"),
                        paper_says="beta = 0.99 is +0.5 over beta = 0; larger beta degrades (Fig. 4 left)"),
    "spm": ReportTable("Siamese balanced contrastive mining: Q, Q_p, Q_n", "paper Fig. 4 centre",
                       ("grid", "queue_size", "num_pos", "num_neg"), Baseline("grid", "all"),
                       figure=Points("{grid}", "Hard pair mining grid"),
                       note="num_pos / num_neg None = all keys of that kind (no mining)",
                       paper_says="SPM is +0.8 over the plain class-balanced queue; smaller Q_p and Q_n are better "
                                  "(Fig. 4 centre, ResNeXt-50)"),
    "siambs": ReportTable("SiamBS vs BS across queue sizes", "paper Fig. 4 right", ("variant", "queue", "queue_size"),
                          Baseline("variant", "supcon_bs", ("queue", "queue_size")),
                          figure=Curve("queue_size", "variant", "Top-1 vs queue size", "queue size (keys)"),
                          paper_says="SiamBS is +0.6 over SupCon+BS and MoCo+BS at every queue size (Fig. 4 right)"),
    "large": ReportTable("Large-scale datasets", "paper Tables 3-4", ("dataset",), paper_numbers=True),
    "draws": ReportTable("Draw of the long-tailed subset: BS and ResCom on other draws of the same counts",
                         "not in the paper", ("method", "subsample_seed"), curves=False, rows="draws"),
}


def ablation_tables() -> dict[str, str]:
    """`rescom ablate NAME`'s names -> the table each renders: every table, underscores as hyphens."""
    return {table.replace("_", "-"): table for table in TABLES}
