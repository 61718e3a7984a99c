"""Smoke tests of the benchmarks on CPU at tiny sizes: they run and report positive times. No timing asserts."""

import pytest
import torch

from benchmarks.core_ops import bench_core_ops, format_rows
from benchmarks.step import bench_configs, bench_step, format_step
from benchmarks.timing import time_interleaved
from rescom.data.preparation.longtail import exponential_counts

TIME_KEYS = {"median_ms", "min_ms", "spread"}


def test_time_interleaved_counts_calls_and_reports_positive_times():
    calls = []
    t = time_interleaved({"fn": lambda: calls.append(torch.ones(64).sum())}, warmup=2, repeat=3, device="cpu")["fn"]
    assert len(calls) == 5
    assert set(t) == TIME_KEYS and t["median_ms"] > 0 and t["min_ms"] <= t["median_ms"] and t["spread"] >= 0


def test_time_interleaved_alternates():
    order = []
    time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                     warmup=0, repeat=2, device="cpu")
    assert order == ["a", "b", "a", "b"]


def test_core_ops_rows_at_tiny_scale():
    torch.manual_seed(0)
    rows = bench_core_ops("cpu", repeat=1, warmup=0, num_keys=8, image_size=8,
                          scales=(("tiny", 5, 20, 4.0),))
    assert len(rows) == 3  # resnet, enqueue, loss
    for row in rows:
        assert TIME_KEYS | {"op", "K", "ratio_to_resnet"} <= set(row)
        assert row["median_ms"] > 0 and row["ratio_to_resnet"] > 0
    assert rows[0]["ratio_to_resnet"] == 1.0
    table = format_rows(rows, "cpu")
    assert "torch" in table and "threads" in table and "enqueue" in table


def test_plain_config_is_the_classifier_only_twin():
    configs = bench_configs(batch_size=4)
    plain, rescom = configs["plain"].method, configs["rescom"].method
    assert (plain.contrastive, plain.queue, plain.classifier_loss) == ("none", "none", "siambs")
    assert rescom.contrastive == "supcon" and rescom.queue == "balanced"
    assert configs["plain"].model == configs["rescom"].model


def test_bench_step_quick_on_tiny_batch():
    result = bench_step("cpu", batch_size=8, num_classes=10, imbalance=10.0, max_count=20, image_size=8,
                        quick=True)
    assert result["steps_per_epoch"] == sum(exponential_counts(10, 20, 10.0)) // 8
    for name in ("rescom", "plain"):
        r = result[name]
        assert TIME_KEYS | {"epoch_s", "images_per_s", "peak_mib"} <= set(r)
        assert r["median_ms"] > 0 and r["images_per_s"] > 0 and r["peak_mib"] > 0
    assert result["ratio"] > 0 and isinstance(result["target_met"], bool)
    assert "rescom / plain" in format_step(result)


@pytest.mark.slow
def test_bench_epoch_times_both_autoaugment_policies():
    """bench epoch trains with one policy, times the other's augmentation too and prints the ratio."""
    from benchmarks.epoch import bench_epoch, format_epoch

    result = bench_epoch("cpu", method="ce", num_classes=2, max_count=130, imbalance=1.0, test_per_class=4,
                         autoaugment="torchvision")
    assert result["autoaugment"] == "torchvision" and result["steps_per_epoch"] == 2
    by_policy = result["augment_by_policy_s"]
    assert set(by_policy) == {"released", "torchvision"} and by_policy["torchvision"] == result["augment_s"]
    assert all(seconds > 0 for seconds in by_policy.values())
    ratio = result["released_over_torchvision"]
    assert ratio["augmentation"] == pytest.approx(by_policy["released"] / by_policy["torchvision"])
    released_epoch = result["epoch_s"] - result["augment_s"] + by_policy["released"]
    assert ratio["epoch"] == pytest.approx(released_epoch / result["epoch_s"])
    assert "released / torchvision: augmentation" in format_epoch(result)
