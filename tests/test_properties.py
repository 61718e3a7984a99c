"""Properties against independent references: the class-balanced queue, the verdict rule, mining bounds.

Each reference is written from the definition, not from the implementation: a per-class
`collections.deque(maxlen=Q)` for Eq. 3's FIFO queues, the verdict rule of docs/reports.md spelled out with
`statistics` and a printed t table, and the Q_p <= Q / Q_n <= (K-1)Q bounds counted per query in Python.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter, deque

import pandas as pd
import pytest
import torch

from rescom.mining import mine_hard_pairs
from rescom.queue import ClassBalancedQueue
from rescom.report.claims import verdict


# --- class-balanced queue (Eq. 3) against per-class deques ------------------------------------

def _held(queue: ClassBalancedQueue, cls: int) -> list[float]:
    """Class cls's written tags, oldest first.

    Tags start at 10 and grow with every key written, so unwritten slots (random unit keys, first
    coordinate in [-1, 1]) are told apart and ascending tag order is arrival order.
    """
    q = queue.size_per_class
    return sorted(t for t in queue.keys[cls * q : (cls + 1) * q, 0].tolist() if t >= 10)


def _ring_from_pointer(queue: ClassBalancedQueue, cls: int) -> list[float]:
    """Class cls's slots read as a ring from its write pointer: a full FIFO reads oldest to newest."""
    q = queue.size_per_class
    tags = queue.keys[cls * q : (cls + 1) * q, 0].tolist()
    start = int(queue.pointers[cls])
    return tags[start:] + tags[:start]


@pytest.mark.parametrize("seed", range(40))
def test_balanced_queue_matches_per_class_deques(seed):
    rng = random.Random(seed)
    num_classes, size = rng.randint(1, 4), rng.randint(1, 4)
    queue = ClassBalancedQueue(num_classes, size, 2)
    reference = [deque(maxlen=size) for _ in range(num_classes)]
    tag = 10.0
    for _ in range(rng.randint(1, 8)):
        # Batches of 0..3Q keys: a class may receive none, fewer than Q, exactly Q or overflow by
        # 1..2Q more than Q, so the pointer is tested with overflow amounts other than Q.
        labels = [rng.randrange(num_classes) for _ in range(rng.randint(0, 3 * size * num_classes))]
        tags = [tag + i for i in range(len(labels))]
        tag += len(labels)
        keys = torch.tensor([[t, 0.0] for t in tags], dtype=torch.float32).reshape(-1, 2)
        queue.enqueue(keys, torch.tensor(labels, dtype=torch.long))
        for t, c in zip(tags, labels, strict=True):
            reference[c].append(t)
        for c in range(num_classes):
            assert _held(queue, c) == list(reference[c]), (seed, c, labels)
            if len(reference[c]) == size:  # the next key must replace the oldest one
                assert _ring_from_pointer(queue, c) == list(reference[c]), (seed, c, labels)
    assert queue.labels.tolist() == [c for c in range(num_classes) for _ in range(size)]


def test_balanced_queue_issue_example_keeps_newest_key():
    """Q = 2: enqueue [1, 2, 3] then [4] holds {3, 4}, never [2, 4] (the newest overwritten)."""
    queue = ClassBalancedQueue(1, 2, 2)
    queue.enqueue(torch.tensor([[1.0, 0], [2.0, 0], [3.0, 0]]), torch.tensor([0, 0, 0]))
    queue.enqueue(torch.tensor([[4.0, 0]]), torch.tensor([0]))
    assert sorted(queue.keys[:, 0].tolist()) == [3.0, 4.0]


# --- the verdict rule at its boundaries -------------------------------------------------------

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}  # printed two-sided 95% t table, by degrees of freedom


def _reference_verdict(diffs: list[float], margin: float = 0.0) -> str:
    """The rule of docs/reports.md, written from its words (module docstring of report.claims)."""
    if len(diffs) < 2:
        return "undetermined" if diffs else "not run"
    mean, std = statistics.fmean(diffs), statistics.stdev(diffs)
    half = T975[len(diffs) - 1] * std / math.sqrt(len(diffs))
    if mean - half > -margin:
        return "reproduced"
    return "not reproduced" if mean + half < -margin else "within noise"


def _with_ratio(mean: float, ratio: float, n: int) -> list[float]:
    """n values with the given mean and sample std = |mean| / ratio."""
    std = abs(mean) / ratio
    # Symmetric offsets with sample std 1: for n = 2, +-1/sqrt(2); n = 3, (-1, 0, 1); n = 4, ...
    base = [i - (n - 1) / 2 for i in range(n)]
    scale = statistics.stdev(base)
    return [mean + std * b / scale for b in base]


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("fraction, expected_if_positive", [
    (0.5, "within noise"),    # |mean| / std at half the interval's edge t / sqrt(n)
    (0.97, "within noise"),   # just inside
    (1.03, "reproduced"),     # just outside
    (3.0, "reproduced"),
])
def test_verdict_boundaries_at_the_interval_edge(n, sign, fraction, expected_if_positive):
    diffs = _with_ratio(sign * 2.0, fraction * T975[n - 1] / math.sqrt(n), n)
    expected = expected_if_positive
    if sign < 0 and expected == "reproduced":
        expected = "not reproduced"
    assert _reference_verdict(diffs) == expected, diffs  # the reference reads the rule as intended
    assert verdict(pd.Series(diffs, dtype=float)) == expected, diffs


def test_verdict_default_profile_case_is_within_noise():
    """ResCom over MoCo+BS, an earlier default profile: +2.51 / +1.81 / +0.79, 1.70 +- 2.14."""
    assert verdict(pd.Series([2.51, 1.81, 0.79])) == "within noise"
    assert verdict(pd.Series([-2.51, -1.81, -0.79])) == "within noise"


@pytest.mark.parametrize("seed", range(60))
def test_verdict_matches_reference_on_random_differences(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 5)
    centre, spread, margin = rng.uniform(-3, 3), rng.uniform(0.05, 3), rng.choice([0.0, rng.uniform(0, 2)])
    diffs = [rng.gauss(centre, spread) for _ in range(n)]
    assert verdict(pd.Series(diffs, dtype=float), margin) == _reference_verdict(diffs, margin)


# --- mining bounds on uneven key mixes --------------------------------------------------------

def _reference_bounds(query_labels: list[int], key_labels: list[int]) -> tuple[int, int]:
    """(largest Q_p, largest Q_n) every query can have: counted per query over the keys."""
    counts = Counter(key_labels)
    pos = min(counts[q] for q in query_labels)
    neg = min(len(key_labels) - counts[q] for q in query_labels)
    return pos, neg


def test_mining_refuses_negatives_of_the_smallest_class_bound():
    """Keys [0, 0, 0, 1], Q_n = 3: query 0 has only one key of another class, so it is refused."""
    sim = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="num_neg=3"):
        mine_hard_pairs(sim, torch.tensor([0, 1]), torch.tensor([0, 0, 0, 1]), 1, 3)
    with pytest.raises(ValueError, match="num_pos=2"):  # query 1 has one positive only
        mine_hard_pairs(sim, torch.tensor([0, 1]), torch.tensor([0, 0, 0, 1]), 2, 1)


@pytest.mark.parametrize("seed", range(40))
def test_mining_bounds_match_per_query_counts(seed):
    rng = random.Random(seed)
    num_classes = rng.randint(2, 4)
    # Uneven mixes: each class gets between 1 and 5 keys (some classes possibly absent from queries).
    key_labels = [c for c in range(num_classes) for _ in range(rng.randint(1, 5))]
    rng.shuffle(key_labels)
    query_labels = [rng.randrange(num_classes) for _ in range(rng.randint(1, 5))]
    max_pos, max_neg = _reference_bounds(query_labels, key_labels)
    sim = torch.rand(len(query_labels), len(key_labels), generator=torch.Generator().manual_seed(seed))
    q, k = torch.tensor(query_labels), torch.tensor(key_labels)
    for num_pos in range(0, max_pos + 2):
        for num_neg in range(0, max_neg + 2):
            if num_pos <= max_pos and num_neg <= max_neg:
                pos, neg = mine_hard_pairs(sim, q, k, num_pos, num_neg)
                for i, label in enumerate(query_labels):
                    assert all(key_labels[j] == label for j in pos[i].tolist())
                    assert all(key_labels[j] != label for j in neg[i].tolist())  # never its own positives
                    assert len(set(neg[i].tolist())) == num_neg and len(set(pos[i].tolist())) == num_pos
            else:
                with pytest.raises(ValueError):
                    mine_hard_pairs(sim, q, k, num_pos, num_neg)
