"""Cost of ResCom's own operations beside the backbone they ride on (DESIGN.md, "Speed").

Rows: one class-balanced enqueue of 256 keys, one SPM loss forward + backward (Eq. 5, queries
[256, 32] = both views of a batch of 128, released settings: Q = 10, Q_p = 1, Q_n = 400, in-batch
contrast, Eq. 2 weights) at CIFAR-100 scale (K = 100) and iNaturalist scale (K = 8142), each with its
ratio to one ResNet-32 forward + backward of the same 256 images (3 x 32 x 32, fp32).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

import torch
import torch.nn.functional as F

from benchmarks.timing import time_interleaved
from rescom.data.preparation.longtail import exponential_counts
from rescom.losses import class_balanced_weights, spm_contrastive_loss
from rescom.models import build_model
from rescom.queue import ClassBalancedQueue

# (name, K, n_max, IF): class profiles of CIFAR-100-LT IF 100 and of iNaturalist 2018 (1000 .. 2 images).
SCALES = (("cifar100", 100, 500, 100.0), ("inat2018", 8142, 1000, 500.0))
QUEUE_PER_CLASS, NUM_POS, NUM_NEG, TEMPERATURE, BETA, DIM = 10, 1, 400, 0.2, 0.999999, 32


def _enqueue_fn(num_classes: int, num_keys: int, device: torch.device) -> Callable[[], None]:
    queue = ClassBalancedQueue(num_classes, QUEUE_PER_CLASS, DIM).to(device)
    keys = F.normalize(torch.randn(num_keys, DIM, device=device), dim=1)
    labels = torch.randint(0, num_classes, (num_keys,), device=device)
    return lambda: queue.enqueue(keys, labels)


def _loss_fn(counts: list[int], num_queries: int, device: torch.device, num_neg: int) -> Callable[[], None]:
    num_classes = len(counts)
    queue = ClassBalancedQueue(num_classes, QUEUE_PER_CLASS, DIM).to(device)
    weights = class_balanced_weights(counts, BETA).to(device, torch.float32)
    query = F.normalize(torch.randn(num_queries, DIM, device=device), dim=1).requires_grad_(True)
    labels = torch.randint(0, num_classes, (num_queries,), device=device)

    def step() -> None:
        query.grad = None
        loss = spm_contrastive_loss(query, labels, queue.keys, queue.labels, num_pos=NUM_POS,
                                    num_neg=num_neg, temperature=TEMPERATURE, class_weights=weights,
                                    in_batch=True)
        loss.backward()

    return step


def _resnet_fn(num_images: int, num_classes: int, device: torch.device,
               image_size: int) -> Callable[[], None]:
    model = build_model("resnet32", num_classes, 3, 16, None, DIM, True).to(device)
    x = torch.randn(num_images, 3, image_size, image_size, device=device)
    y = torch.randint(0, num_classes, (num_images,), device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        logits, z = model(x)
        # z.sum() * 0 keeps the projection head in the graph, as in training, at no loss cost.
        (F.cross_entropy(logits, y) + z.sum() * 0.0).backward()

    return step


def bench_core_ops(device: torch.device | str = "cpu", repeat: int = 10, *, warmup: int = 3,
                   num_keys: int = 256, image_size: int = 32,
                   scales: tuple = SCALES) -> list[dict]:
    """Rows {"op", "K", "median_ms", "min_ms", "spread", "ratio_to_resnet"}, ResNet-32 row first.

    scales: (name, K, n_max, IF) class profiles; Q_n is capped at (K-1)Q so tiny K works in tests.
    The ResNet-32 reference has a K = 100 classifier (its cost barely depends on K).
    """
    device = torch.device(device)
    torch.manual_seed(0)
    resnet_name = f"resnet32 fwd+bwd, {num_keys} x 3x{image_size}x{image_size} fp32"
    fns, classes = {resnet_name: _resnet_fn(num_keys, 100, device, image_size)}, {resnet_name: 100}
    for name, num_classes, n_max, imbalance in scales:
        counts = exponential_counts(num_classes, n_max, imbalance)
        num_neg = min(NUM_NEG, (num_classes - 1) * QUEUE_PER_CLASS)
        enqueue = f"{name}: enqueue {num_keys} keys (Q={QUEUE_PER_CLASS})"
        loss = f"{name}: SPM loss fwd+bwd [{num_keys},{DIM}] Q_p={NUM_POS} Q_n={num_neg} in-batch"
        fns[enqueue] = _enqueue_fn(num_classes, num_keys, device)
        fns[loss] = _loss_fn(counts, num_keys, device, num_neg)
        classes[enqueue] = classes[loss] = num_classes
    # Interleaved, so that load from other processes falls on the ops and the reference alike.
    times = time_interleaved(fns, warmup=warmup, repeat=repeat, device=device)
    rows = [{"op": op, "K": classes[op], **t} for op, t in times.items()]
    resnet = times[resnet_name]
    for row in rows:
        row["ratio_to_resnet"] = row["median_ms"] / resnet["median_ms"]
    return rows


def environment(device: torch.device | str) -> str:
    """One line naming the hardware and software the numbers were measured on."""
    device = torch.device(device)
    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    # Other processes competing for the cores inflate CPU times; the load average says whether they did.
    load = f", 1-min load average {os.getloadavg()[0]:.2f} (this run included)" if hasattr(os, "getloadavg") else ""
    return (f"device {device} ({hardware}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} intra-op threads{load}")


def format_rows(rows: list[dict], device: torch.device | str = "cpu") -> str:
    """A plain-text table of bench_core_ops rows under a line stating device, torch version, threads."""
    header = ("op", "K", "median ms", "min ms", "spread", "x resnet32")
    body = [(r["op"], str(r["K"]), f"{r['median_ms']:.3f}", f"{r['min_ms']:.3f}", f"{r['spread']:.2f}",
             f"{r['ratio_to_resnet']:.3f}") for r in rows]
    return "\n".join([environment(device), *table_lines(header, body)])


def table_lines(header: tuple, body: list[tuple]) -> list[str]:
    """Header and rows between rules; the first column left-aligned, the others right-aligned."""
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(line: tuple) -> str:
        cells = zip(line, widths, strict=True)
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(cells))

    rule = "-" * len(fmt(header))
    return [rule, fmt(header), rule, *map(fmt, body), rule]
