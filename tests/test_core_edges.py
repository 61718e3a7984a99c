"""Edges of the method core and the report rules that a mutation run (scripts/mutation-check.sh) found
untested: each test pins a boundary, a default or a message against a reference written here.
"""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from rescom.losses import balanced_softmax_loss, class_balanced_weights, spm_contrastive_loss
from rescom.losses.balanced_softmax import siamese_balanced_softmax_loss
from rescom.losses.contrastive import supcon_loss_from_logits
from rescom.metrics import expected_calibration_error, per_class_accuracy, shot_groups
from rescom.mining import mine_hard_pairs
from rescom.queue import ClassBalancedQueue, FifoQueue, PerClassQueue, reversed_capacities
from rescom.report.claims import seed_differences, verdict
from rescom.report.paired import matches, paired_cell, paired_differences


# --- verdict: an interval that touches its threshold, a zero seed, many seeds -------------------

@pytest.mark.parametrize("diffs, margin, expected", [
    ([0.0, 0.0], 0.0, "within noise"),         # the interval [0, 0] touches 0: "wholly above" is strict
    ([-1.0, -1.0], 1.0, "within noise"),       # [-1, -1] touches the margin's -1
    ([0.0, 1.0, 1.0, 1.0, 1.0, 1.0], 0.0, "reproduced"),   # 0.83 +- 0.43 (t 2.571): a zero seed does not block it
    ([0.0, -1.0, -1.0, -1.0, -1.0, -1.0], 0.0, "not reproduced"),
    ([-5.0] * 10 + [0.5], 0.0, "not reproduced"),  # -4.5 +- 1.11: one seed of the paper's sign does not rescue it
])
def test_verdict_strict_at_the_boundaries(diffs, margin, expected):
    assert verdict(pd.Series(diffs), margin) == expected


def test_seed_differences_context_with_a_missing_value_is_varying():
    rows = [{"finished": True, "method": m, "seed": 0, "last_test_all": v, "dataset": d, "imbalance": 10.0}
            for m, v, d in (("bs", 80.0, "a"), ("ce", 60.0, "a"))]
    rows.append({"finished": True, "method": "bs", "seed": 1, "last_test_all": 70.0, "dataset": None, "imbalance": 1.0})
    with pytest.raises(ValueError, match="several dataset, imbalance"):
        seed_differences(pd.DataFrame(rows), "method", "bs", "ce", context=("dataset", "imbalance"))
    same = pd.DataFrame(rows[:2])
    assert seed_differences(same, "method", "bs", "ce", context=("dataset", "imbalance")).tolist() == [20.0]


def test_seed_differences_of_a_metric_no_finished_run_recorded_are_empty_not_an_error():
    # finished runs of a profile without a Few group record no last_test_few column at all
    rows = [{"finished": True, "method": m, "seed": 0, "last_test_all": v} for m, v in (("bs", 80.0), ("ce", 60.0))]
    diffs = seed_differences(pd.DataFrame(rows), "method", "bs", "ce", metric="last_test_few")
    assert diffs.empty and diffs.dtype == float
    assert verdict(diffs) == "not run"

# --- paired differences ------------------------------------------------------------------------

def test_matches_compares_numbers_numerically_and_text_as_text():
    assert matches(pd.Series([100.0, 10.0, None]), 100).tolist() == [True, False, False]
    assert matches(pd.Series(["0.99", "0.9"]), 0.99).tolist() == [True, False]
    assert matches(pd.Series(["bs", "ce"]), "bs").tolist() == [True, False]


def _runs(finished_column=True):
    rows = [("bs", 0, 60.0, 30.0), ("bs", 1, 62.0, 31.0), ("zz", 0, 65.0, 40.0), ("zz", 1, 64.0, 33.0),
            ("aa", 0, 61.0, 30.5), ("aa", 1, 61.0, 32.0)]
    frame = pd.DataFrame([{"method": m, "seed": s, "last_test_all": a, "last_test_few": f, "dataset": "d",
                           "imbalance": 10.0, "finished": True} for m, s, a, f in rows])
    if finished_column:  # an unfinished run whose numbers must not count
        frame = pd.concat([frame, pd.DataFrame([{"method": "zz", "seed": 2, "last_test_all": 0.0, "last_test_few": 0.0,
                                                  "dataset": "d", "imbalance": 10.0, "finished": False}])])
        return frame.reset_index(drop=True)
    return frame.drop(columns="finished")


@pytest.mark.parametrize("finished_column", [True, False])
def test_paired_differences_skip_unfinished_and_keep_row_order(finished_column):
    out = paired_differences(_runs(finished_column), "main", ["method"])
    assert out["method"].tolist() == ["bs", "zz", "aa"]  # order of first appearance, not sorted
    zz = out[out["method"] == "zz"].iloc[0]
    assert zz["paired_all_mean"] == pytest.approx(3.5) and zz["paired_n"] == 2
    assert zz["paired_all_std"] == pytest.approx(3 / math.sqrt(2))  # differences 5 and 2
    assert out["paired_is_baseline"].tolist() == [True, False, False]


def test_paired_differences_keep_rows_whose_key_is_missing():
    frame = _runs(False)
    frame["num_pos"] = [1.0, 1.0, None, None, 2.0, 2.0]  # None: all keys (spm's "no mining" row)
    out = paired_differences(frame, "main", ["method", "num_pos"])
    assert len(out) == 3 and out["num_pos"].isna().sum() == 1


def test_paired_differences_without_the_baseline_column_is_none():
    assert paired_differences(_runs(False).drop(columns="method"), "main", ["dataset"]) is None


def test_paired_cell_formats():
    assert paired_cell(pd.Series({"paired_n": 3, "paired_all_mean": 1.234, "paired_all_std": 0.4,
                                  "paired_is_baseline": False})) == "+1.23 ± 0.40 (3)"
    assert paired_cell(pd.Series({"paired_n": 1, "paired_all_mean": -1.0, "paired_all_std": math.nan,
                                  "paired_is_baseline": False})) == "-1.00 (1)"
    assert paired_cell(pd.Series({"paired_n": math.nan, "paired_all_mean": 1.0})) == ""
    assert paired_cell(pd.Series({"paired_n": 2, "paired_all_mean": math.nan})) == ""


# --- metrics -----------------------------------------------------------------------------------

def test_shot_groups_boundaries():
    groups = shot_groups([101, 100, 20, 19])
    assert groups["many"].tolist() == [True, False, False, False]
    assert groups["medium"].tolist() == [False, True, True, False]
    assert groups["few"].tolist() == [False, False, False, True]


def _reference_ece(probs: list[list[float]], targets: list[int], bins: int = 15) -> float:
    """Bins (b/bins, (b+1)/bins], sum of |hits - confidences| per bin over N, in %."""
    gap = [0.0] * bins
    for row, target in zip(probs, targets, strict=True):
        confidence = max(row)
        b = min(max(math.ceil(confidence * bins) - 1, 0), bins - 1)
        gap[b] += (row.index(confidence) == target) - confidence
    return 100.0 * sum(abs(g) for g in gap) / max(len(targets), 1)


def test_ece_against_reference_across_bins():
    rng = random.Random(0)
    probs, targets = [], []
    for _ in range(200):
        k = rng.choice([2, 5, 20])  # 20 classes: confidences below 1/15 fill the first bin
        row = [rng.random() ** rng.choice([1, 4, 12]) for _ in range(k)] + [0.0] * (20 - k)
        total = sum(row)
        probs.append([v / total for v in row])
        targets.append(rng.randrange(k))
    probs.append([1.0] + [0.0] * 19)  # confidence 1: the last bin
    targets.append(3)
    tensor = torch.tensor(probs, dtype=torch.float32)  # float32 in, computed in float64
    exact = [[float(v) for v in row] for row in tensor]
    assert expected_calibration_error(tensor, torch.tensor(targets)) == pytest.approx(_reference_ece(exact, targets), rel=1e-12)


def test_ece_of_one_sample_and_bad_shapes():
    assert expected_calibration_error(torch.tensor([[0.25, 0.75]]), torch.tensor([0])) == pytest.approx(75.0)
    with pytest.raises(ValueError, match=r"probs must be \[N, K\] matching targets \[N\]; got \(3,\) and \(3,\)"):
        expected_calibration_error(torch.tensor([0.2, 0.3, 0.5]), torch.tensor([0, 1, 2]))


def test_per_class_accuracy_against_counting():
    preds, targets = [0, 1, 1, 2, 0, 2, 2], [0, 1, 0, 2, 0, 1, 2]
    got = per_class_accuracy(torch.tensor(preds), torch.tensor(targets), 5).tolist()
    for c in range(5):
        idx = [i for i, t in enumerate(targets) if t == c]
        if not idx:
            assert math.isnan(got[c])
        else:
            assert got[c] == pytest.approx(100.0 * sum(preds[i] == c for i in idx) / len(idx))


# --- mining ------------------------------------------------------------------------------------

def test_mining_messages_and_negative_counts():
    sim = torch.zeros(2, 4)
    q, k = torch.tensor([0, 1]), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="num_pos and num_neg must be >= 0, got -1, 1"):
        mine_hard_pairs(sim, q, k, -1, 1)
    with pytest.raises(ValueError, match=r"similarity must be \[B, M\], got \(4,\)"):
        mine_hard_pairs(torch.zeros(4), q, k, 1, 1)


def test_mining_query_class_absent_from_the_keys_is_refused():
    with pytest.raises(ValueError, match="only 0 keys of its class"):
        mine_hard_pairs(torch.zeros(2, 2), torch.tensor([0, 5]), torch.tensor([0, 1]), 1, 1)


def test_mining_validate_false_skips_the_check():
    # Query 1 has one positive; validate=False is the training step's promise that this cannot happen,
    # so no check (and no host sync) runs: the call returns instead of raising.
    pos, neg = mine_hard_pairs(torch.rand(2, 4), torch.tensor([0, 1]), torch.tensor([0, 0, 0, 1]), 2, 1, validate=False)
    assert pos.shape == (2, 2) and neg.shape == (2, 1)


# --- queues ------------------------------------------------------------------------------------

def _reference_reversed(counts: list[int], size: int) -> list[int]:
    """Rank classes head first (ties: lower index first); rank r gets the count of rank K-1-r; one slot
    each plus the largest-remainder split of the rest (ties: lower index first)."""
    k = len(counts)
    ranked = sorted(range(k), key=lambda c: -counts[c])
    rev = [0] * k
    for r, c in enumerate(ranked):
        rev[c] = counts[ranked[k - 1 - r]]
    share = [v / sum(rev) * (size - k) for v in rev]
    caps = [math.floor(s) + 1 for s in share]
    for c in sorted(range(k), key=lambda c: -(share[c] - math.floor(share[c])))[: size - sum(caps)]:
        caps[c] += 1
    return caps


@pytest.mark.parametrize("counts, size", [([10, 10, 5], 11), ([5, 10, 10, 5], 20), ([100, 30, 10], 14),
                                          ([7, 7, 7], 10), ([50, 20, 20, 3, 1], 17), ([5, 3, 1], 3)])
def test_reversed_capacities_against_reference_with_ties(counts, size):
    assert reversed_capacities(counts, size) == _reference_reversed(counts, size)


def test_queue_sizes_of_one_are_allowed_and_bad_sizes_are_named():
    assert FifoQueue(1, 1).keys.shape == (1, 1)
    assert PerClassQueue([1, 2], 1).keys.shape == (3, 1)
    with pytest.raises(ValueError, match=r"every class needs a queue capacity >= 1, got \[2, 0\]"):
        PerClassQueue([2, 0], 4)
    with pytest.raises(ValueError, match="dim must be >= 1, got 0"):
        PerClassQueue([2], 0)
    with pytest.raises(ValueError, match="num_classes and size_per_class must be >= 1, got 0, 2"):
        ClassBalancedQueue(0, 2, 4)
    with pytest.raises(ValueError, match="size and dim must be >= 1, got 4, 0"):
        FifoQueue(4, 0)
    with pytest.raises(ValueError, match="a reversed queue of 3 classes needs size >= 3, got 2"):
        reversed_capacities([5, 3, 1], 2)


# --- losses: defaults, messages, precision -----------------------------------------------------

def test_balanced_softmax_validates_by_default_and_names_the_problem():
    logits, target = torch.zeros(2, 3), torch.tensor([0, 2])  # the empty class 1 is nobody's target
    with pytest.raises(ValueError, match=r"class_counts has empty classes \[1\]"):
        balanced_softmax_loss(logits, target, [1, 0, 2])
    assert torch.isfinite(balanced_softmax_loss(logits, target, [1, 0, 2], validate=False))
    with pytest.raises(ValueError, match=r"class_counts has empty classes \[1\]"):
        siamese_balanced_softmax_loss(logits, logits, target, [1, 0, 2])
    assert torch.isfinite(siamese_balanced_softmax_loss(logits, logits, target, [1, 0, 2], validate=False))
    with pytest.raises(ValueError, match=r"class_counts must be 1-D \[K\], got shape \(1, 3\)"):
        balanced_softmax_loss(logits, target, [[1, 1, 2]])
    with pytest.raises(ValueError, match="class_counts has 2 classes, logits have 3"):
        balanced_softmax_loss(logits, target, [1, 2])
    with pytest.raises(ValueError, match=r"logits must be \[B, K\] and target \[B\]; got \(2, 3\) and \(2, 1\)"):
        balanced_softmax_loss(logits, target[:, None], [1, 1, 2])
    with pytest.raises(ValueError, match=r"logits must be \[B, K\] and target \[B\]; got \(3,\) and \(2,\)"):
        balanced_softmax_loss(torch.zeros(3), target, [1, 1, 2])
    with pytest.raises(ValueError, match=r"the two views' logits differ in shape: \(2, 3\) vs \(2, 2\)"):
        siamese_balanced_softmax_loss(logits, torch.zeros(2, 2), target, [1, 1, 2])


def test_balanced_softmax_float64_prior_is_exact():
    torch.manual_seed(0)
    logits, target, counts = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 3]), [1000, 97, 13, 3]
    prior = torch.log(torch.tensor(counts, dtype=torch.float64) / sum(counts))
    reference = F.cross_entropy(logits + prior, target)
    assert abs(balanced_softmax_loss(logits, target, counts).item() - reference.item()) < 1e-14


def test_class_balanced_weights_shapes_and_named_empty_classes():
    assert class_balanced_weights([5], 0.9).tolist() == [1.0]
    with pytest.raises(ValueError, match=r"non-empty 1-D \[K\], got shape \(0,\)"):
        class_balanced_weights([], 0.9)
    with pytest.raises(ValueError, match=r"non-empty 1-D \[K\], got shape \(1, 2\)"):
        class_balanced_weights([[1, 2]], 0.9)
    with pytest.raises(ValueError, match=r"class_counts has empty classes \[0, 3\]$"):
        class_balanced_weights([0, 5, 1, 0], 0.9)


# --- the contrastive loss against a per-query loop ---------------------------------------------

def _reference_loss(query, labels, keys, key_labels, tau, num_pos=None, num_neg=None, in_batch=False,
                    batch_keys=None, batch_key_labels=None, weights=None):
    """Per query: candidates = its mined (or all) queue keys [+ other queries] [+ batch keys];
    loss_i = -mean over positives of log softmax; weighted mean over queries with a positive."""
    total, kept = 0.0, 0.0
    for i in range(len(query)):
        sims = [(float(query[i] @ keys[j]), int(key_labels[j]) == int(labels[i])) for j in range(len(keys))]
        pos = sorted(s for s, p in sims if p)
        neg = sorted((s for s, p in sims if not p), reverse=True)
        if num_pos is not None or num_neg is not None:
            pos = pos[: num_pos if num_pos is not None else len(pos)]
            neg = neg[: num_neg if num_neg is not None else len(neg)]
        cands = [(s, True) for s in pos] + [(s, False) for s in neg]
        if in_batch:
            cands += [(float(query[i] @ query[j]), int(labels[j]) == int(labels[i])) for j in range(len(query)) if j != i]
        if batch_keys is not None:
            cands += [(float(query[i] @ batch_keys[j]), int(batch_key_labels[j]) == int(labels[i]))
                      for j in range(len(batch_keys))]
        log_norm = math.log(sum(math.exp(s / tau) for s, _ in cands))
        positives = [s / tau - log_norm for s, p in cands if p]
        if positives:
            w = 1.0 if weights is None else float(weights[int(labels[i])])
            total += -w * sum(positives) / len(positives)
            kept += 1
    return total / max(kept, 1.0)


def _setup(seed=0, batch=5, dim=4):
    g = torch.Generator().manual_seed(seed)
    query = F.normalize(torch.randn(batch, dim, generator=g, dtype=torch.float64), dim=1)
    keys = F.normalize(torch.randn(9, dim, generator=g, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 1, 2, 0, 1][:batch])
    key_labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    return query, labels, keys, key_labels


@pytest.mark.parametrize("num_pos, num_neg", [(None, None), (None, 2), (1, None), (2, 3)])
@pytest.mark.parametrize("in_batch", [False, True])
def test_spm_loss_against_per_query_loop(num_pos, num_neg, in_batch):
    query, labels, keys, key_labels = _setup()
    got = spm_contrastive_loss(query, labels, keys, key_labels, num_pos=num_pos, num_neg=num_neg, temperature=0.5,
                               in_batch=in_batch)
    want = _reference_loss(query, labels, keys, key_labels, 0.5, num_pos, num_neg, in_batch)
    assert got.item() == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("in_batch", [False, True])
def test_spm_loss_with_batch_keys_and_weights_against_per_query_loop(in_batch):
    query, labels, keys, key_labels = _setup(1)
    batch_keys = F.normalize(torch.randn(5, 4, generator=torch.Generator().manual_seed(2)), dim=1)  # float32 keys
    batch_key_labels = torch.tensor([2, 1, 0, 0, 1])
    weights = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    got = spm_contrastive_loss(query, labels, keys.float(), key_labels, num_pos=1, num_neg=4, temperature=0.3,
                               in_batch=in_batch, batch_keys=batch_keys, batch_key_labels=batch_key_labels,
                               class_weights=weights)
    want = _reference_loss(query, labels, keys.float().double(), key_labels, 0.3, 1, 4, in_batch,
                           batch_keys.double(), batch_key_labels, weights)
    assert got.item() == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("bad, message", [
    (dict(batch_keys=torch.zeros(3)), r"\(3,\) and \(3,\)"),
    (dict(batch_keys=torch.zeros(3, 5)), r"\(3, 5\) and \(3,\)"),
    (dict(batch_key_labels=None), r"\(3, 4\) and None"),
    (dict(batch_key_labels=torch.zeros(2, dtype=torch.long)), r"\(3, 4\) and \(2,\)"),
])
def test_spm_batch_keys_checks_name_the_shapes(bad, message):
    query, labels, keys, key_labels = _setup()
    kwargs = dict(batch_keys=torch.zeros(3, 4), batch_key_labels=torch.zeros(3, dtype=torch.long)) | bad
    with pytest.raises(ValueError, match=r"batch_keys \[B', D\] with batch_key_labels \[B'\] must share D .*" + message):
        spm_contrastive_loss(query, labels, keys, key_labels, num_pos=1, num_neg=1, temperature=0.2, **kwargs)


def test_spm_shape_checks_each_condition():
    query, labels, keys, key_labels = _setup()
    with pytest.raises(ValueError, match="must share D"):
        spm_contrastive_loss(query[0], labels, keys, key_labels, num_pos=1, num_neg=1, temperature=0.2)
    with pytest.raises(ValueError, match="do not match"):
        spm_contrastive_loss(query, labels, keys, key_labels[:-1], num_pos=1, num_neg=1, temperature=0.2)


def test_spm_validate_false_is_passed_to_mining():
    query, labels, keys, key_labels = _setup()
    with pytest.raises(ValueError, match="Q_p <= Q"):
        spm_contrastive_loss(query, labels, keys, key_labels, num_pos=4, num_neg=1, temperature=0.2)
    assert torch.isfinite(spm_contrastive_loss(query, labels, keys, key_labels, num_pos=4, num_neg=1,
                                               temperature=0.2, validate=False))


def test_supcon_from_logits_averages_each_anchors_own_positives():
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0], [0.5, 0.5, 0.0, 3.0]], dtype=torch.float64)
    pos = torch.tensor([[True, True, True, False], [False, False, False, True]])
    log_prob = torch.log_softmax(logits, 1)
    want = (-(log_prob[0, :3].mean()) - log_prob[1, 3]) / 2
    assert supcon_loss_from_logits(logits, pos).item() == pytest.approx(want.item(), rel=1e-12)


# --- second mutation run: what was still alive --------------------------------------------------

def _row(confidence: float, classes: int = 20) -> list[float]:
    """A probability row of `classes` classes whose maximum, at class 0, is `confidence`."""
    return [confidence] + [(1 - confidence) / (classes - 1)] * (classes - 1)


def test_ece_keeps_neighbouring_bins_of_opposite_sign_apart():
    # bin 0 (conf .06, right: +.94), bin 1 (.1, wrong: -.1), bin 13 (.9, right: +.1), bin 14 (1.0, wrong: -1):
    # merging any two neighbours would cancel part of their gaps.
    probs = torch.tensor([_row(0.06), _row(0.1), _row(0.9), _row(1.0)], dtype=torch.float64)
    got = expected_calibration_error(probs, torch.tensor([0, 1, 0, 1]))
    assert got == pytest.approx(100 * (0.94 + 0.1 + 0.1 + 1.0) / 4, rel=1e-12)


def test_shot_accuracy_passes_its_thresholds_and_checks_shapes():
    from rescom.metrics import misleading_data_warnings, shot_accuracy

    counts = [101, 50, 15, 6]  # 15 images: Few under the default 20, Medium under few=10
    preds, targets = torch.tensor([0, 1, 0, 3]), torch.tensor([0, 1, 2, 3])
    assert shot_accuracy(preds, targets, counts, few=10) == {"all": 75.0, "many": 100.0, "medium": 50.0, "few": 100.0}
    assert shot_accuracy(preds, targets, counts) == {"all": 75.0, "many": 100.0, "medium": 100.0, "few": 50.0}
    with pytest.raises(ValueError, match=r"preds and targets must both be \[N\]; got \(4,\) and \(3,\)"):
        shot_accuracy(preds, targets[:3], counts)
    with pytest.raises(ValueError, match=r"got \(2, 2\) and \(2, 2\)"):
        shot_accuracy(preds.view(2, 2), targets.view(2, 2), counts)
    assert misleading_data_warnings([101, 50, 20], [0, 1, 2]) == [
        "no few-shot class (Many > 100, Few < 20 training images): test_few is NaN"]
    assert misleading_data_warnings([101, 50, 20], [0, 1, 2], few=25) == []


def test_metrics_refuse_device_tensors_by_name():
    from rescom.metrics import host_tensors

    with pytest.raises(ValueError, match=r"metrics take CPU tensors, got one on meta: move model outputs with "
                                         r"rescom\.engine\.evaluate\.predict \(or \.cpu\(\)\) before computing metrics"):
        host_tensors(torch.zeros(2, device="meta"))


def test_matches_mixed_column_compares_numbers_as_numbers():
    assert matches(pd.Series([100.0, "x"], dtype=object), 100).tolist() == [True, False]


def test_baseline_labels():
    from rescom.report.paired import baseline_label

    assert (baseline_label("main"), baseline_label("spm"), baseline_label("entirety")) == ("bs", "grid=all", None)


def test_paired_differences_count_finished_runs_only():
    frame = _runs(True)
    frame = pd.concat([frame, pd.DataFrame([{"method": "zz", "seed": 1, "last_test_all": math.nan,
                                             "last_test_few": math.nan, "dataset": "d", "imbalance": 10.0,
                                             "finished": False}])], ignore_index=True)
    out = paired_differences(frame, "main", ["method"])
    assert out[out["method"] == "zz"].iloc[0]["paired_n"] == 2


def test_spm_labels_shape_checked_alone():
    query, labels, keys, key_labels = _setup()
    for num_pos, num_neg in ((1, 1), (None, None)):  # unmined (Eq. 1): no later check would catch it
        with pytest.raises(ValueError, match="do not match"):
            spm_contrastive_loss(query, labels[:-1], keys, key_labels, num_pos=num_pos, num_neg=num_neg, temperature=0.2)
