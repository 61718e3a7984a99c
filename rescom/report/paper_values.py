"""Published numbers to show beside reproduced ones, each with its source.

Only values found in a public source are listed; a setting without one shows no paper value.
"""

from __future__ import annotations

AUTHORS_README = "authors' README, dvlab-research/Imbalanced-Learning/ResCom/README.md"

# (dataset, imbalance factor, method) -> (top-1 %, source)
TOP1: dict[tuple[str, float | None, str], tuple[float, str]] = {
    ("cifar10-lt", 100.0, "rescom"): (84.9, AUTHORS_README),
    ("cifar10-lt", 50.0, "rescom"): (88.0, AUTHORS_README),
    ("cifar10-lt", 10.0, "rescom"): (92.0, AUTHORS_README),
    ("cifar100-lt", 100.0, "rescom"): (53.8, AUTHORS_README),
    ("cifar100-lt", 50.0, "rescom"): (58.0, AUTHORS_README),
    ("cifar100-lt", 10.0, "rescom"): (66.1, AUTHORS_README),
    ("imagenet-lt", None, "rescom"): (58.7, AUTHORS_README + " (ResNet-50)"),
    ("imagenet-lt", None, "supcon_bs"): (56.5, AUTHORS_README + " (ResNet-50)"),
    ("imagenet-lt", None, "moco_bs"): (55.7, AUTHORS_README + " (ResNet-50)"),
    ("inat2018", None, "rescom"): (75.2, AUTHORS_README + " (ResNet-50)"),
}


def paper_top1(dataset: str, imbalance: float | None, method: str) -> tuple[float, str] | None:
    key = (dataset, None if imbalance is None else float(imbalance), method)
    return TOP1.get(key)
