"""Losses of ResCom: Balanced Softmax (Eq. 6), class-balanced weights (Eq. 2), SupCon/SPM (Eqs. 1, 3, 5)."""

from rescom.losses.balanced_softmax import balanced_softmax_loss, siamese_balanced_softmax_loss
from rescom.losses.class_balanced import class_balanced_weights
from rescom.losses.contrastive import spm_contrastive_loss, supcon_loss_from_logits

__all__ = [
    "balanced_softmax_loss",
    "siamese_balanced_softmax_loss",
    "class_balanced_weights",
    "spm_contrastive_loss",
    "supcon_loss_from_logits",
]
