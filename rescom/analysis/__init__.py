"""Analyses of the paper: dual imbalance of contrastive pairs (Fig. 1 centre, Prop. 1), vanishing
gradients (Fig. 1 right), positive-pair similarities (Fig. 5), and their figures.

Only the numpy parts are imported here; ``rescom.analysis.figures`` (matplotlib) is imported on use.
"""

from rescom.analysis.gradients import gradient_by_similarity_rank, similarity_gradients
from rescom.analysis.pairs import (PairSimulation, contrastive_imbalance_ratio, normalised, pair_counts_from_batches,
                                   pair_frequency, proposition1_ratio, simulate_pairs, simulate_report)
from rescom.analysis.similarity import positive_pair_similarities, shot_group

__all__ = ["PairSimulation", "contrastive_imbalance_ratio", "gradient_by_similarity_rank", "normalised",
           "pair_counts_from_batches", "pair_frequency", "positive_pair_similarities", "proposition1_ratio",
           "shot_group", "similarity_gradients", "simulate_pairs", "simulate_report"]
