"""The paper's published numbers (arXiv 2203.11506), as data, for the reports' "paper" columns.

`paper/tables.csv` holds every method row of Tables 1-4, 6 and 7 (top-1 %; CIFAR settings if100 /
if50 / if10, large datasets many / medium / few / all); `paper/inference_time.csv` Tables 5 and 8
(ms per batch of 64 on a GeForce 2080Ti, with accuracies). Each value is cited by its table.
The ablations (Figs. 3-4) are plots without printed values, all on ImageNet-LT: the effects the
text states are quoted by each table's registry entry (report/tables.py, `paper_says`).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pandas as pd

PAPER = "ResCom paper (arXiv 2203.11506)"
DATA = Path(__file__).parent / "paper"
# The suite's presets under the paper's method names.
METHOD_NAMES = {"bs": "Balanced Softmax", "rescom": "ResCom"}
# Backbone of the paper's main rows per dataset (ImageNet-LT also has ResNeXt-50, Table 4).
MAIN_BACKBONE = {"cifar10-lt": "resnet32", "cifar100-lt": "resnet32", "imagenet-lt": "resnet50",
                 "places-lt": "resnet152-pretrained", "inat2018": "resnet50"}
# The entirety ablation's printed numbers, for the presets that match its frameworks.
_ENTIRETY = {"supcon_bs": 56.5, "moco_bs": 55.7}


@functools.lru_cache(maxsize=1)
def paper_tables() -> pd.DataFrame:
    """Tables 1-4, 6, 7: columns table, dataset, backbone, method, setting, value."""
    return pd.read_csv(DATA / "tables.csv")


@functools.lru_cache(maxsize=1)
def paper_inference_times() -> pd.DataFrame:
    """Tables 5 and 8: table, dataset, backbone, method, infer_ms_batch64 (2080Ti), many, medium, few, all."""
    return pd.read_csv(DATA / "inference_time.csv")


def _setting(dataset: str, imbalance: float | None) -> str | None:
    if dataset in ("cifar10-lt", "cifar100-lt"):
        return None if imbalance is None else f"if{imbalance:g}"
    return "all"


def paper_value(dataset: str, imbalance: float | None, paper_method: str) -> tuple[float, str] | None:
    """(top-1 %, "Table N") of a method as the paper names it, in the dataset's main backbone; None if absent."""
    setting = _setting(dataset, None if imbalance is None or math.isnan(imbalance) else float(imbalance))
    t = paper_tables()
    rows = t[(t["dataset"] == dataset) & (t["backbone"] == MAIN_BACKBONE.get(dataset)) &
             (t["method"] == paper_method) & (t["setting"] == setting)]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return float(row["value"]), f"{PAPER}, Table {int(row['table'])}"


def paper_top1(dataset: str, imbalance: float | None, method: str) -> tuple[float, str] | None:
    """The paper's top-1 for one of the suite's presets in the same setting, with its table; None if absent."""
    if method in METHOD_NAMES:
        return paper_value(dataset, imbalance, METHOD_NAMES[method])
    if dataset == "imagenet-lt" and method in _ENTIRETY:
        return _ENTIRETY[method], f"{PAPER}, Sec. 4.2 (entirety ablation, ResNet-50)"
    return None


def reference_line(dataset: str, imbalance: float | None) -> str:
    """One Markdown line: the paper's Balanced Softmax, PaCo and ResCom for this setting, or why there are none."""
    found = [(name, paper_value(dataset, imbalance, name)) for name in ("Balanced Softmax", "PaCo", "ResCom")]
    found = [(name, v) for name, v in found if v is not None]
    where = f"{dataset}" + (f" IF {imbalance:g}" if imbalance is not None and not math.isnan(imbalance) else "")
    if not found:
        return (f"- paper: no published number for {where} (the paper reports CIFAR-10/100-LT, ImageNet-LT, "
                "Places-LT and iNaturalist 2018 only)")
    values = ", ".join(f"{name} {value:.1f}" for name, (value, _) in found)
    tables = sorted({source.rsplit(", ", 1)[1] for _, (_, source) in found})
    return f"- paper, {where} ({', '.join(tables)}): {values}"
