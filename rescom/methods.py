"""Named method presets: each is a choice per component (DESIGN.md, "Method variants")."""

from __future__ import annotations

from rescom.config import CLASSIFIER_LOSSES, ConfigError, TrainConfig, apply_overrides

_NO_CONTRAST = {"method.contrastive": "none", "method.queue": "none", "method.beta": 0.0,
                "method.num_pos": None, "method.num_neg": None, "method.in_batch": False}

PRESETS: dict[str, dict] = {
    # Cross-entropy on one view.
    "ce": {"method.classifier_loss": "ce", **_NO_CONTRAST},
    # Balanced Softmax (Ren et al. 2020) on one view.
    "bs": {"method.classifier_loss": "bs", **_NO_CONTRAST},
    # SupCon over the two views of the batch (no queue) + Balanced Softmax on view 1.
    "supcon_bs": {**_NO_CONTRAST, "method.classifier_loss": "bs", "method.contrastive": "supcon",
                  "method.in_batch": True},
    # MoCo-style: momentum key encoder (m = 0.999), long-tailed FIFO queue, Balanced Softmax on view 1.
    # queue_size 1000 matches ResCom's K*Q = 100*10 on CIFAR-100 (the queue-type ablation equalises sizes).
    # Its view-1 queries contrast with the batch's momentum keys (view 2) and the queue, never with each
    # other: in_batch is false because that is what this path does (config.validate refuses true).
    "moco_bs": {**_NO_CONTRAST, "method.classifier_loss": "bs", "method.contrastive": "supcon",
                "method.key_encoder": "momentum", "method.queue": "fifo", "method.queue_size": 1000},
    # ResCom as released (fidelity notes 1-6): the TrainConfig defaults.
    "rescom": {},
}


def preset_config(name: str) -> TrainConfig:
    """The TrainConfig of a named preset."""
    if name not in PRESETS:
        raise ConfigError(f"method: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    config = apply_overrides(TrainConfig(), PRESETS[name])
    config.method_name = name
    return config


def uses_two_views(config: TrainConfig) -> bool:
    """Single-view baselines (ce, bs without contrast) need one augmented view per image."""
    return CLASSIFIER_LOSSES[config.method.classifier_loss].views == 2 or config.method.contrastive != "none"
