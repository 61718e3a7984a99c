"""Typed training configuration: presets, config files and `key=value` overrides, validated once.

A config is a tree of dataclasses, built from a method preset (methods.py), an optional YAML file and
dotted overrides (`method.num_neg=400`); a bad key or value raises one `ConfigError` naming the key.
Nothing is written while parsing.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rescom.errors import ExpectedError


class ConfigError(ExpectedError, ValueError):
    """A bad configuration: unknown key, wrong type or impossible value. The message names the key."""


@dataclass
class DataConfig:
    dataset: str = "fashion-mnist-lt"   # <source>-lt (long-tailed subsample) or <source> (as is)
    root: str | None = None             # where the raw files are; None: the source's default
    imbalance: float | None = 100.0     # IF = n_max / n_min; None keeps the set as it is
    max_count: int | None = None        # n_max; None: the smallest raw class size
    subsample_seed: int = 0
    test_per_class: int | None = None   # keep at most this many test images per class (small profiles)
    recipe: str = "auto"                # augmentation: cifar, fashion-mnist[-basic], large[-inat], none; auto by dataset
    prepared_dir: str | None = None     # None: data/prepared/<dataset>-if<IF>-n<max>-s<seed>[-<root>-<hash>]
    workers: int = 0                    # DataLoader worker processes (PIL pipeline)
    pipeline: str = "auto"              # tensor (batched ops on a resident uint8 set) | pil (per image) | auto
    # fidelity note 11: the released code's own augmentation policies, or torchvision's
    autoaugment: str = "released"       # cifar / fashion-mnist recipes: released PIL CIFAR10Policy | torchvision
    randaugment: str = "released"       # large recipes: released timm rand-n2-m10-mstd0.5 | torchvision RandAugment(2, 10)
    # folder source: images brought to N x N at preparation (shorter side to N, centre crop).
    # auto: the recipe's input side (cifar 32, fashion-mnist[-basic] 28; large and none: as stored)
    image_size: int | str | None = "auto"


@dataclass
class MethodConfig:
    """One choice per component (DESIGN.md, "Method variants as one composition")."""

    classifier_loss: str = "siambs"     # a kind of CLASSIFIER_LOSSES: ce | bs | siambs (Eq. 6)
    contrastive: str = "supcon"         # none | supcon (Eqs. 1-5)
    key_encoder: str = "shared"         # shared | momentum
    momentum: float = 0.999
    queue: str = "balanced"             # none | fifo | reversed | balanced (Eq. 3)
    queue_size: int = 10                # balanced: Q per class; fifo / reversed: total keys
    beta: float = 0.999999              # Eq. 2 class weights; 0 = unweighted
    num_pos: int | None = 1             # Q_p; None = all positives (no mining)
    num_neg: int | str | None = "auto"  # Q_n; None = all negatives; auto = min(400, (K-1)Q)
    in_batch: bool = True               # fidelity note 2
    enqueue_view: int = 1               # 1: released code; 2: Algorithm 1
    anchors: str = "both"               # both (released: all 2B embeddings are queries) | view1 (Algorithm 1); note 2b
    temperature: float = 0.2            # tau
    contrastive_weight: float = 0.5     # lambda, Eq. 7


# torchvision's ImageNet ResNets (fidelity note 10): `model.pretrained` loads their ImageNet weights.
TORCHVISION_BACKBONES = ("resnet50", "resnext50_32x4d", "resnet152")


def imagenet_weights_url(backbone: str) -> str:
    """Where torchvision publishes the weights (V1, the original release: what `pretrained=True` gave in 2022)."""
    from torchvision.models import get_model_weights  # metadata, nothing is fetched; lazy: it takes ~1 s

    return get_model_weights(backbone).IMAGENET1K_V1.url


@dataclass
class ModelConfig:
    backbone: str = "resnet32"
    width: int = 16                     # CIFAR ResNets: stage-1 channels (16 in the paper)
    proj_hidden: int | None = None      # None: feature size
    proj_dim: int = 32
    pretrained: str | None = None       # torchvision ImageNet weights file for the encoder (Places-LT); None: random


@dataclass
class OptimConfig:
    epochs: int = 400
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "constant"          # constant (released code's actual) | multistep | cosine
    warmup_epochs: int = 10             # multistep only
    cosine_warmup_epochs: int = 0       # cosine: linear warmup epochs (released large-data code: 10)
    cosine_final_ratio: float = 0.0     # cosine: final lr / lr (paper: 0; released large-data code: 1e-5)
    # 2: the released code's epoch count (epoch e at cosine position (e + 1 - warmup) / (epochs - warmup));
    # 1: one epoch behind it, kept so that checkpoints trained with it resume on their own schedule
    schedule_version: int = 2
    milestones: list[int] = field(default_factory=lambda: [320, 360])
    gamma: float = 0.1


@dataclass
class RunConfig:
    seed: int = 0
    device: str = "auto"                # auto | cpu | cuda
    eval_every: int = 1
    bf16: bool = False                  # bf16 autocast
    channels_last: bool = False
    compile: bool = False               # torch.compile the training forward (GPU fast path)
    cuda_graphs: bool = True            # on a GPU (one process): replay step + augmentation as CUDA graphs
    ddp_contrast: str = "local"         # torchrun: local (released: each GPU's batch) | global (all ranks gathered); note 13
    sync_bn: bool = False               # torchrun: BatchNorm over the global batch (ours); false: per GPU (released)
    run_name: str | None = None         # None: derived from method, dataset, IF and seed
    runs_dir: str = "runs"
    experiment: str = "rescom"          # MLflow experiment
    track: bool = True                  # log to MLflow
    log_every: int = 10                 # steps between host syncs for the progress bar and NaN check
    profile: str = "adhoc"              # which profile produced the run (a label in reports)


@dataclass
class TrainConfig:
    method_name: str = "rescom"
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """{'method.num_neg': 400, ...}: the form logged as MLflow params."""
        return flatten(self.to_dict())


def flatten(tree: dict | None, prefix: str = "") -> dict[str, Any]:
    """{'optim': {'epochs': 3}, 'run.seed': 0} -> {'optim.epochs': 3, 'run.seed': 0}.

    Config trees, config files and params sections may nest or use dotted keys (what
    `dvc exp run -S train.optim.epochs=3` writes is nested).
    """
    out: dict[str, Any] = {}
    for key, value in (tree or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


# Keys that may differ between a checkpoint and its continuation: they do not change the numbers.
RESUME_NEUTRAL = ("run.track", "run.log_every", "data.workers")


# Keys a user may change on purpose when continuing a run (`--resume --allow-change optim.lr`): the
# learning-rate schedule is recomputed from the config every epoch, so a lower rate after a NaN, or
# more epochs, take effect without touching the saved model, queue or optimizer state.
RESUME_CHANGEABLE = ("optim.lr", "optim.epochs", "optim.schedule", "optim.milestones", "optim.gamma",
                     "optim.warmup_epochs", "run.eval_every")


def differing_keys(config: "TrainConfig", saved: dict, allowed: tuple[str, ...] = ()) -> list[str]:
    """Keys whose value in config differs from a checkpoint's saved config tree (resume check),
    apart from the neutral keys and the `allowed` ones."""
    saved_flat = flatten(saved)
    skip = set(RESUME_NEUTRAL) | set(allowed)
    return sorted(k for k, v in config.flat().items() if k not in skip and saved_flat.get(k) != v)


def check_allow_change(keys: list[str], resume: bool) -> tuple[str, ...]:
    """The --allow-change keys, checked: only with --resume, only keys in RESUME_CHANGEABLE."""
    if keys and not resume:
        raise ConfigError("--allow-change applies only with --resume (a fresh run takes any config)")
    for key in keys:
        if key not in RESUME_CHANGEABLE:
            raise ConfigError(f"--allow-change {key}: cannot change on resume (the saved state depends on it); "
                              f"changeable: {', '.join(RESUME_CHANGEABLE)}")
    return tuple(keys)


@dataclass(frozen=True)
class ClassifierLoss:
    """A kind of classifier loss: cross-entropy over the logits of the first `views` views (1: view 1
    only; 2: both, as Eq. 6), with log(n_c / sum n) added to the logits when `balanced` (Balanced Softmax)."""

    views: int
    balanced: bool


# method.classifier_loss, one entry per kind: the config takes its choices from here, the training
# step (engine/step.py) its loss, the data its number of views (methods.uses_two_views).
CLASSIFIER_LOSSES = {
    "ce": ClassifierLoss(views=1, balanced=False),
    "bs": ClassifierLoss(views=1, balanced=True),
    "siambs": ClassifierLoss(views=2, balanced=True),  # Siamese Balanced Softmax, Eq. 6
}


CHOICES = {
    "method.classifier_loss": tuple(CLASSIFIER_LOSSES),
    "method.contrastive": ("none", "supcon"),
    "method.key_encoder": ("shared", "momentum"),
    "method.queue": ("none", "fifo", "reversed", "balanced"),
    "method.enqueue_view": (1, 2),
    "method.anchors": ("both", "view1"),
    "run.ddp_contrast": ("local", "global"),
    "optim.schedule": ("constant", "multistep", "cosine"),
    "optim.schedule_version": (1, 2),
    "data.recipe": ("auto", "cifar", "fashion-mnist", "fashion-mnist-basic", "large", "large-inat", "none"),
    "data.pipeline": ("auto", "tensor", "pil"),
    "data.autoaugment": ("released", "torchvision"),
    "data.randaugment": ("released", "torchvision"),
    "run.device": ("auto", "cpu", "cuda"),
    "model.backbone": ("resnet8", "resnet14", "resnet20", "resnet32", *TORCHVISION_BACKBONES),
}


# A decimal number as people write it. YAML 1.1 (PyYAML) reads `1e-3`, `5e-4` and `1e6` as strings
# because it wants a dot before the exponent; float fields accept them anyway.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check value against a field's type annotation; strings from the command line are YAML-parsed."""
    union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    members = typing.get_args(annotation) if union else (annotation,)
    if isinstance(value, str) and annotation is not str:
        parsed = yaml.safe_load(value)
        if not (isinstance(parsed, str) and str in members):
            value = parsed
    if float in members and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        value = float(value)
    if value is None:
        if type(None) in members:
            return None
        raise ConfigError(f"{key}: null is not allowed")
    for kind in members:
        origin = typing.get_origin(kind)
        if origin is list:
            if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                return value
        elif kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        elif kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        elif kind in (bool, str) and isinstance(value, kind):
            return value
    names = " or ".join(getattr(m, "__name__", str(m)) for m in members)
    raise ConfigError(f"{key}: expected {names}, got {value!r}")


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """Return a copy of config with dotted keys set; unknown keys and bad types raise ConfigError."""
    config = dataclasses.replace(config, **{
        f.name: dataclasses.replace(getattr(config, f.name))
        for f in dataclasses.fields(config) if dataclasses.is_dataclass(getattr(config, f.name))
    })
    for key, value in overrides.items():
        section_name, _, name = key.partition(".")
        if not name:
            if section_name == "method_name":
                config.method_name = str(value)
                continue
            raise ConfigError(f"{key}: unknown key (use section.key, e.g. method.num_neg)")
        section = getattr(config, section_name, None)
        if not dataclasses.is_dataclass(section):
            raise ConfigError(f"{key}: unknown section {section_name!r}; sections: data, method, model, optim, run")
        hints = typing.get_type_hints(type(section))
        if name not in hints:
            raise ConfigError(f"{key}: unknown key; {section_name} has {', '.join(hints)}")
        setattr(section, name, _coerce(key, value, hints[name]))
    return config


def parse_set_options(items: list[str]) -> dict[str, str]:
    """['a.b=1', ...] -> {'a.b': '1'}; a malformed item raises ConfigError."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value")
        out[key.strip()] = value
    return out


def validate(config: TrainConfig) -> None:
    """Value checks that need no data: choices and ranges. Data-dependent checks run in resolve_for_data."""
    flat = config.flat()
    for key, allowed in CHOICES.items():
        if flat[key] not in allowed:
            raise ConfigError(f"{key}: {flat[key]!r} is not one of {', '.join(map(str, allowed))}")
    m, o = config.method, config.optim
    positive = {
        "optim.epochs": o.epochs, "optim.batch_size": o.batch_size, "optim.lr": o.lr,
        "method.queue_size": m.queue_size, "method.temperature": m.temperature,
        "model.width": config.model.width, "model.proj_dim": config.model.proj_dim,
        "run.eval_every": config.run.eval_every, "run.log_every": config.run.log_every,
    }
    for key, value in positive.items():
        if not value > 0:  # also refuses nan (YAML's .nan)
            raise ConfigError(f"{key}: must be > 0, got {value}")
    for key, value in {"method.beta": m.beta, "method.momentum": m.momentum}.items():
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{key}: must lie in [0, 1), got {value}")
    size = config.data.image_size
    if isinstance(size, str) and size != "auto":
        raise ConfigError(f"data.image_size: expected a side in pixels, null (as stored) or 'auto', got {size!r}")
    if isinstance(m.num_neg, str) and m.num_neg != "auto":
        raise ConfigError(f"method.num_neg: expected an int, null (all) or 'auto', got {m.num_neg!r}")
    at_least_one = {"data.imbalance": config.data.imbalance, "data.image_size": size,  # null: none / as stored / all
                    "data.max_count": config.data.max_count, "method.num_pos": m.num_pos, "method.num_neg": m.num_neg}
    for key, value in at_least_one.items():
        if isinstance(value, (int, float)) and value < 1:
            raise ConfigError(f"{key}: must be >= 1, got {value}")
    # anchors=view1 always has the batch's view-2 keys, so it needs neither a queue nor in_batch.
    if m.contrastive == "supcon" and m.queue == "none" and not m.in_batch and m.anchors == "both":
        raise ConfigError("method.in_batch: a contrastive loss without a queue needs in-batch contrast")
    if m.anchors == "view1" and m.in_batch:
        raise ConfigError("method.anchors / method.in_batch: anchors=view1 is Algorithm 1, whose view-1 queries "
                          "contrast with the batch's view-2 keys and the queue, never with each other; "
                          "set method.in_batch=false")
    if m.key_encoder == "momentum" and m.in_batch:
        raise ConfigError("method.in_batch: the momentum-encoder path contrasts view-1 queries with the batch's "
                          "momentum keys and the queue, never with each other; set it to false")
    if m.key_encoder == "momentum" and m.contrastive == "none":
        raise ConfigError("method.key_encoder: a momentum encoder needs method.contrastive=supcon")
    if o.schedule == "cosine" and not 0 <= o.cosine_warmup_epochs < o.epochs:
        raise ConfigError(f"optim.cosine_warmup_epochs: must lie in [0, optim.epochs={o.epochs}), got {o.cosine_warmup_epochs}")
    if not 0.0 <= o.cosine_final_ratio <= 1.0:
        raise ConfigError(f"optim.cosine_final_ratio: must lie in [0, 1], got {o.cosine_final_ratio}")
    if o.schedule == "multistep" and sorted(o.milestones) != o.milestones:
        raise ConfigError(f"optim.milestones: must be increasing, got {o.milestones}")
    pretrained, backbone = config.model.pretrained, config.model.backbone
    if pretrained is not None and backbone not in TORCHVISION_BACKBONES:
        raise ConfigError(f"model.pretrained: ImageNet weights exist for {', '.join(TORCHVISION_BACKBONES)} only, "
                          f"not model.backbone={backbone}")
    if pretrained is not None and not Path(pretrained).is_file():  # an offline run stops here, before any data
        raise ConfigError(f"model.pretrained: {pretrained} does not exist; download {imagenet_weights_url(backbone)} "
                          f"(torchvision's {backbone} ImageNet weights) and put it there")


def resolve_for_data(config: TrainConfig, class_counts: list[int]) -> TrainConfig:
    """Fill data-dependent values (num_neg=auto) and check Q_p <= Q, Q_n <= (K-1)Q, batch <= N."""
    config = apply_overrides(config, {})
    m = config.method
    num_classes, num_train = len(class_counts), sum(class_counts)
    if min(class_counts, default=0) < 1:
        empty = [c for c, n in enumerate(class_counts) if n < 1]
        raise ConfigError(f"data: classes {empty} have no training image (Balanced Softmax needs n_c >= 1)")
    if config.optim.batch_size > num_train:
        raise ConfigError(f"optim.batch_size: {config.optim.batch_size} is larger than the {num_train} training images")
    if m.contrastive == "none" or m.queue == "none":
        m.num_pos = m.num_neg = None  # no queue, nothing to mine
        return config
    per_class = _min_keys_per_class(m, class_counts)
    total = m.queue_size * num_classes if m.queue == "balanced" else m.queue_size
    if m.num_neg == "auto":
        m.num_neg = None if m.queue == "fifo" else min(400, total - max(per_class))
    if m.queue == "fifo" and (m.num_pos is not None or m.num_neg is not None):
        raise ConfigError("method.num_pos/num_neg: mining needs a per-class queue (balanced or reversed); "
                          "set both to null for a fifo queue")
    if m.num_pos is not None and m.num_pos > min(per_class):
        raise ConfigError(f"method.num_pos: Q_p={m.num_pos} exceeds the {min(per_class)} keys per class in the queue (Q_p <= Q)")
    if m.num_neg is not None and m.num_neg > total - max(per_class):
        raise ConfigError(f"method.num_neg: Q_n={m.num_neg} exceeds the {total - max(per_class)} keys of other classes (Q_n <= (K-1)Q)")
    return config


def _min_keys_per_class(m: MethodConfig, class_counts: list[int]) -> list[int]:
    if m.queue == "balanced":
        return [m.queue_size] * len(class_counts)
    if m.queue == "reversed":
        from rescom.queue import reversed_capacities

        if m.queue_size < len(class_counts):
            raise ConfigError(f"method.queue_size: a reversed queue needs at least one slot per class ({len(class_counts)})")
        return reversed_capacities(class_counts, m.queue_size)
    return [0] * len(class_counts)  # fifo: a class may hold no key at a given step
