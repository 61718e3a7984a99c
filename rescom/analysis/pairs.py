"""Dual class-imbalance of contrastive pairs (ResCom, arXiv 2203.11506, Fig. 1 centre, Prop. 1).

A label-only simulation of how often each (anchor class i, key class j) pair enters a supervised
contrastive loss while a long-tailed training set is iterated in shuffled, drop_last batches.
No images and no embeddings: a batch is its class histogram a [K], a queue is its class histogram
q [K], and the pairs between them are the outer product a q^T.

Symbols (as in the paper): K classes, n_k training images of class k, N = sum n_k, batch B,
queue of Q keys. Two levels of imbalance multiply:

- original batch level: anchors of class i arrive in proportion to n_i;
- Siamese batch (queue) level: a long-tailed FIFO queue holds keys of class j in proportion to n_j.

So with a FIFO queue the count of (i, j) pairs grows like n_i n_j, and the positive pairs (i, i)
like n_i^2: their max/min ratio is (N_max / N_min)^2 (Prop. 1), the square of the imbalance factor
a classifier sees. A class-balanced queue (Eq. 3) holds the same number of keys of every class, so
it removes the key-side factor and leaves n_i only (which the class-balanced weights of Eq. 2 then
address).

Queue convention: ``queue_size`` is the total number of keys for every queue type, so the FIFO and
the balanced queue hold the same number of keys. The balanced queue gives each class
``queue_size // K`` slots, or ``size_per_class`` slots when that is given (the released code's
Q = 10 per class is ``size_per_class=10``); each class's slots are a FIFO of that class's keys.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rescom.errors import UsageError

QUEUE_TYPES = ("fifo", "balanced", "none")


def _batch_histograms(batches: np.ndarray, num_classes: int, first: int | None = None) -> np.ndarray:
    """Class histogram of each row of ``batches`` [T, B] (of its first ``first`` labels): [T, K]."""
    batches = batches[:, :first]  # first=None keeps the whole row
    t = batches.shape[0]
    flat = (np.arange(t)[:, None] * num_classes + batches).ravel()
    return np.bincount(flat, minlength=t * num_classes).reshape(t, num_classes)


class _PairCounter:
    """Accumulates pair counts over a stream of batches; the queue persists across calls (epochs).

    Per batch t (anchors: histogram a_t, taken ``views`` times), in this order:
      1. queue pairs:    views * a_t q_t^T, q_t = the queue's class histogram before step 3;
      2. in-batch pairs: (views a_t)(views a_t)^T - views diag(a_t)   (every anchor with every other
         member of the batch, its own other views included, itself excluded; only if in_batch);
      3. enqueue the batch's labels (one view: B keys).
    """

    def __init__(self, num_classes: int, batch_size: int, queue: str, queue_size: int, *,
                 size_per_class: int | None = None, in_batch: bool = True, views: int = 1, prefill: bool = False):
        if queue not in QUEUE_TYPES:
            raise ValueError(f"queue must be one of {QUEUE_TYPES}, got {queue!r}")
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        if queue_size < 0:
            raise UsageError(f"queue_size must be >= 0, got {queue_size}")
        self.k, self.b, self.queue = num_classes, batch_size, queue
        self.in_batch, self.views, self.prefill = in_batch, views, prefill
        self.pairs = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.queue_hist_sum = np.zeros(num_classes, dtype=np.int64)  # sum over batches of q_t
        self.num_batches = 0
        if queue == "balanced":
            slots = size_per_class if size_per_class is not None else queue_size // num_classes
            if slots < 1:
                raise UsageError(f"balanced queue needs >= 1 slot per class: queue_size={queue_size}, "
                                 f"K={num_classes}, size_per_class={size_per_class}")
            self.slots = int(slots)
            self.seen = np.zeros(num_classes, dtype=np.int64)  # keys of each class enqueued so far
        elif queue == "fifo":
            # The FIFO window of Q labels ends at the last enqueued one. Write Q = qb*B + qr:
            # it covers the last qb batches fully and the last qr labels of the batch before them.
            self.qb, self.qr = divmod(int(queue_size), batch_size)
            rows = self.qb + 1
            self.prev_full = np.zeros((rows, num_classes), dtype=np.int64)  # empty queue at start
            self.prev_tail = np.zeros((rows, num_classes), dtype=np.int64)

    def _fifo_queue_histograms(self, full: np.ndarray, batches: np.ndarray) -> np.ndarray:
        """q_t [T, K] for the FIFO queue; ``full`` [T, K] are the batches' histograms."""
        b, qb, qr = self.b, self.qb, self.qr
        # last qr labels of each batch: the part of the oldest batch still in the window
        tail = full - _batch_histograms(batches, self.k, b - qr) if qr else np.zeros_like(full)
        all_full = np.concatenate([self.prev_full, full])  # [L + T, K]
        all_tail = np.concatenate([self.prev_tail, tail])
        lead = self.prev_full.shape[0]  # = qb + 1
        cum = np.concatenate([np.zeros((1, self.k), np.int64), np.cumsum(all_full, axis=0)])
        t = np.arange(lead, lead + full.shape[0])
        q = cum[t] - cum[t - qb]  # batches t-qb .. t-1
        if qr:
            q += all_tail[t - qb - 1]
        self.prev_full, self.prev_tail = all_full[-lead:], all_tail[-lead:]
        return q

    def update(self, batches: np.ndarray) -> None:
        """Feed batches [T, B] of integer labels in training order."""
        batches = np.asarray(batches, dtype=np.int64)
        if batches.ndim != 2 or batches.shape[1] != self.b:
            raise ValueError(f"batches must be [T, {self.b}], got {batches.shape}")
        if batches.size and (batches.min() < 0 or batches.max() >= self.k):
            raise ValueError(f"labels must lie in [0, {self.k}), got {batches.min()}..{batches.max()}")
        if batches.shape[0] == 0:
            return
        full = _batch_histograms(batches, self.k)  # a_t: [T, K]
        if self.queue == "fifo":
            q = self._fifo_queue_histograms(full, batches)
        elif self.queue == "balanced":
            # keys of class k enqueued before batch t, capped at its slots (per-class FIFO)
            before = self.seen + np.cumsum(full, axis=0) - full
            self.seen = self.seen + full.sum(axis=0)
            q = np.full_like(full, self.slots) if self.prefill else np.minimum(before, self.slots)
        else:
            q = np.zeros_like(full)
        v = self.views
        self.pairs += v * (full.T @ q)  # sum_t a_t q_t^T
        if self.in_batch:
            self.pairs += v * v * (full.T @ full) - v * np.diag(full.sum(axis=0))
        self.queue_hist_sum += q.sum(axis=0)
        self.num_batches += full.shape[0]


@dataclass
class PairSimulation:
    """Result of :func:`simulate_pairs`."""

    freq: np.ndarray  # [K, K] pair counts, anchor class x key class
    queue_histogram: np.ndarray  # [K] mean number of keys of each class in the queue over batches
    num_batches: int


def simulate_pairs(
    class_counts: Sequence[int], batch_size: int, queue_size: int, epochs: int, seed: int, queue: str = "fifo", *,
    size_per_class: int | None = None, in_batch: bool = True, views: int = 1, prefill: bool = False,
) -> PairSimulation:
    """Count contrastive pairs by (anchor class, key class) over simulated long-tailed training.

    Each epoch shuffles the N = sum(class_counts) labels (``np.random.default_rng(seed)``, one
    generator for the whole run) and cuts batches of ``batch_size`` (drop_last), each counted as
    ``_PairCounter`` says. The queue persists across epochs and starts empty.

    Args:
        class_counts: n_k, [K].
        batch_size: B.
        queue_size: total keys in the queue, as the module docstring's queue convention says (ignored for ``none``).
        epochs, seed: length and seed of the simulation.
        queue: ``fifo`` (long-tailed FIFO, as MoCo), ``balanced`` (ResCom, Eq. 3: a FIFO of
            ``size_per_class`` keys per class) or ``none`` (in-batch pairs only).
        in_batch: also count pairs between batch members (SupCon; the released ResCom code does).
        views: anchors per image (2 for the Siamese 2B batch of the released code); keys are enqueued
            from one view.
        prefill: balanced queue only: start with every slot occupied (the released code fills the
            queue with random unit vectors whose slot labels are fixed by layout).

    Returns:
        PairSimulation; positive pairs are the diagonal of its freq.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size < 1 or (counts < 0).any():
        raise ValueError(f"class_counts must be a 1-D list of non-negative ints, got {class_counts}")
    if batch_size < 1 or epochs < 0:
        raise UsageError(f"need batch_size >= 1 and epochs >= 0, got {batch_size}, {epochs}")
    k = counts.size
    labels = np.repeat(np.arange(k), counts)
    nb = labels.size // batch_size
    counter = _PairCounter(k, batch_size, queue, queue_size, size_per_class=size_per_class, in_batch=in_batch,
                           views=views, prefill=prefill)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(labels)
        counter.update(order[: nb * batch_size].reshape(nb, batch_size))
    mean_q = counter.queue_hist_sum / max(counter.num_batches, 1)
    return PairSimulation(counter.pairs, mean_q, counter.num_batches)


def normalised(freq: np.ndarray) -> np.ndarray:
    """Pair counts divided by their total (a joint distribution over (anchor, key) classes)."""
    freq = np.asarray(freq, dtype=np.float64)
    total = freq.sum()
    if total <= 0:
        raise ValueError("no pairs to normalise (all counts are zero)")
    return freq / total


def contrastive_imbalance_ratio(freq: np.ndarray, kind: str = "positive") -> float:
    """Imbalance factor of contrastive pairs, as in Prop. 1 of the paper.

    ``kind="positive"`` (default, Prop. 1): max_k freq[k, k] / min_k freq[k, k], about (N_max / N_min)^2
    with a long-tailed (FIFO) queue (module docstring). Other views of the same matrix:
      ``all``: max / min over all entries (a zero entry gives inf);
      ``key``: max / min of the column sums (Siamese batch / queue level: keys per class);
      ``anchor``: max / min of the row sums (original batch level: anchors per class).
    For a class-balanced queue (and no in-batch pairs) ``key`` is 1 once the queue is full and
    ``positive`` falls to about N_max / N_min.
    """
    freq = np.asarray(freq, dtype=np.float64)
    if freq.ndim != 2 or freq.shape[0] != freq.shape[1]:
        raise ValueError(f"freq must be square [K, K], got {freq.shape}")
    views = {"positive": np.diag, "all": np.ravel, "key": lambda f: f.sum(axis=0), "anchor": lambda f: f.sum(axis=1)}
    if kind not in views:
        raise ValueError(f"kind must be positive, all, key or anchor, got {kind!r}")
    values = views[kind](freq)
    lo, hi = values.min(), values.max()
    if hi == 0:
        raise ValueError("no pairs counted")
    return float("inf") if lo == 0 else float(hi / lo)


def proposition1_ratio(class_counts: Sequence[int]) -> float:
    """(N_max / N_min)^2: Prop. 1's prediction of the positive-pair imbalance with a FIFO queue."""
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.min() <= 0:
        raise ValueError(f"every class needs >= 1 image, got {class_counts}")
    return float((counts.max() / counts.min()) ** 2)


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def simulate_report(class_counts: Sequence[int], batch_size: int, queue_size: int, epochs: int, seed: int,
                    out_dir) -> dict:
    """Run the pair simulation for the FIFO and the balanced queue (in-batch pairs counted) and write its
    report to ``out_dir``.

    Writes ``pairs_<queue>.png`` (heatmap of normalised pair frequencies), ``queue_histograms.png``
    (mean keys per class in each queue), ``pair_frequency.csv`` (long format: queue, anchor_class,
    key_class, count, frequency) and ``pair_ratios.json`` (the settings, the ratios of
    :func:`contrastive_imbalance_ratio` per queue and kind, and Prop. 1's (N_max/N_min)^2).
    Returns the JSON's content.
    """
    from rescom.analysis import figures

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "class_counts": [int(c) for c in class_counts], "batch_size": int(batch_size), "queue_size": int(queue_size),
        "epochs": int(epochs), "seed": int(seed), "in_batch": True,
        "proposition1_ratio": proposition1_ratio(class_counts), "queues": {},
    }
    histograms = {}
    rows = []
    for queue in ("fifo", "balanced"):
        sim = simulate_pairs(class_counts, batch_size, queue_size, epochs, seed, queue)
        freq = normalised(sim.freq)
        summary["queues"][queue] = {
            # inf (a class pair never met) is written as null: JSON has no infinity
            **{f"ratio_{kind}": _finite_or_none(contrastive_imbalance_ratio(sim.freq, kind))
               for kind in ("positive", "all", "key", "anchor")},
            "num_batches": sim.num_batches,
        }
        histograms[queue] = sim.queue_histogram
        figures.plot_pair_heatmap(
            freq, out / f"pairs_{queue}.png",
            title=(f"Contrastive pair frequency, {queue} queue (K={len(class_counts)}, "
                   f"IF {max(class_counts) / max(min(class_counts), 1):.0f}, {epochs} epochs, Q={queue_size}, B={batch_size})"),
        )
        rows += [(queue, i, j, int(sim.freq[i, j]), float(freq[i, j])) for i, j in np.ndindex(freq.shape)]
    figures.plot_queue_histograms(histograms, out / "queue_histograms.png", ylabel="mean keys in queue per batch")
    with open(out / "pair_frequency.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["queue", "anchor_class", "key_class", "count", "frequency"])
        writer.writerows(rows)
    with open(out / "pair_ratios.json", "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    return summary


def run_stage(profile, settings: dict, out_dir: Path) -> dict:
    """The pipeline's stage: the params file's `analysis.simulate_pairs` (class counts from num_classes,
    max_count and imbalance; batch_size, queue_size, epochs, seed)."""
    from rescom.data.preparation.longtail import exponential_counts

    counts = exponential_counts(settings["num_classes"], settings["max_count"], settings["imbalance"])
    return simulate_report(counts, settings["batch_size"], settings["queue_size"], settings["epochs"],
                           settings["seed"], out_dir)
