"""The registry of the paper's analyses: one entry per analysis says everything the pipeline and the
report need of it.

Adding an analysis is one entry here plus its module, whose `run_stage(profile, settings, out_dir)`
runs it from the params file's `analysis.<name>` section. The pipeline's stage imports that module
by the entry's name alone, so each analysis stage depends on its own code (and what it shares with
others), never on the other analyses; this package's `__init__` imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Analysis:
    title: str  # its heading in the report, with where the paper has it
    module: str  # the module whose run_stage runs it
    wall_clock: bool = False  # its results are times: under reports/<profile>/timings/, see report/layout.py


ANALYSES: dict[str, Analysis] = {
    "simulate_pairs": Analysis("Dual imbalance: contrastive pair frequency by class pair (paper Fig. 1 centre, Prop. 1)",
                               "rescom.analysis.pairs"),
    "gradients": Analysis("Vanishing gradients: mean |dL/ds| by similarity rank (paper Fig. 1 right)",
                          "rescom.analysis.gradients"),
    "similarity": Analysis("Positive-pair similarity by shot group (paper Fig. 5)", "rescom.analysis.similarity"),
    "inference_cost": Analysis("Inference cost of the evaluation vs the training model (paper Tables 5 and 8)",
                               "rescom.analysis.inference_cost", wall_clock=True),
}


def analysis(name: str) -> Analysis:
    """The registry entry of `name`; ConfigError naming the analyses there are."""
    if name not in ANALYSES:
        from rescom.config import ConfigError

        raise ConfigError(f"no analysis {name!r}; analyses: {', '.join(ANALYSES)}")
    return ANALYSES[name]
