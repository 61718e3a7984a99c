"""The prepared-data cache answers only the request it was made for, and checkpoints keep their data.

data/prepared/<dataset>-if<IF>-n<max>-s<seed> does not name the raw root or test_per_class; the
set records its request (source signature, subsampling rule, test cap) and is prepared again when a
run asks for something else. A checkpoint records the fingerprint of the set it was trained on, and
evaluate / --resume refuse a set of other content.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from rescom.config import DataConfig
from rescom.data.preparation.run_data import get_data, prepared_dir
from cli_errors import assert_one_line_error
from test_train_cli import run_cli, tiny_args


def _without_class(src, dst, name):
    shutil.copytree(src, dst)
    shutil.rmtree(dst / "train" / name)
    shutil.rmtree(dst / "test" / name)
    return dst


def _cfg(root, **kw):
    return DataConfig(dataset="folder-lt", root=str(root), imbalance=6, **kw)


def test_two_roots_are_two_prepared_sets_that_never_overwrite_each_other(workdir, tiny_folder):
    other = _without_class(tiny_folder, workdir / "three-classes", "class3")
    first = get_data(_cfg(tiny_folder))
    second = get_data(_cfg(other))
    assert prepared_dir(_cfg(tiny_folder)) != prepared_dir(_cfg(other))  # the root is part of the name
    assert "three-classes" in prepared_dir(_cfg(other)).name
    assert len(first.classes) == 4 and second.classes == ["class0", "class1", "class2"]
    for root, classes in ((tiny_folder, 4), (other, 3)):  # switching back and forth reuses both sets
        meta = json.loads((prepared_dir(_cfg(root)) / "meta.json").read_text())
        assert len(meta["classes"]) == classes
        assert len(get_data(_cfg(root)).classes) == classes


def test_changed_test_per_class_changes_the_test_set(workdir, tiny_folder):
    assert len(get_data(_cfg(tiny_folder)).test) == 24
    assert len(get_data(_cfg(tiny_folder, test_per_class=2)).test) == 8
    assert len(get_data(_cfg(tiny_folder)).test) == 24


def test_edited_raw_image_is_prepared_again(workdir, tiny_folder):
    root = shutil.copytree(tiny_folder, workdir / "copy")
    before = get_data(_cfg(root)).meta["fingerprint"]
    image = root / "test" / "class0" / "0.png"
    Image.fromarray(np.full((8, 8), 255, np.uint8), mode="L").save(image)
    assert get_data(_cfg(root)).meta["fingerprint"] != before


def test_same_request_reuses_the_cache(workdir, tiny_folder):
    get_data(_cfg(tiny_folder))
    meta = prepared_dir(_cfg(tiny_folder)) / "meta.json"
    stamp = meta.stat().st_mtime_ns
    get_data(_cfg(tiny_folder))
    assert meta.stat().st_mtime_ns == stamp


def test_missing_root_is_an_error_even_with_a_cache(workdir, tiny_folder):
    assert run_cli(tiny_args(tiny_folder, epochs=1, extra=["--no-track"])).exit_code == 0
    result = run_cli(tiny_args(tiny_folder, epochs=1, extra=["--no-track", "--overwrite",
                                                             "--data-root", workdir / "gone"]))
    assert_one_line_error(result, "gone does not exist")


def test_evaluate_refuses_data_other_than_the_checkpoints_and_writes_nothing(workdir, tiny_folder, tmp_path_factory,
                                                                             monkeypatch):
    root = shutil.copytree(tiny_folder, workdir / "raw")
    assert run_cli(tiny_args(root, epochs=1, extra=["--no-track", "--set", "run.run_name=ev"])).exit_code == 0
    checkpoint = workdir / "runs/ev/checkpoint.pt"

    elsewhere = tmp_path_factory.mktemp("elsewhere")  # no prepared set there: built in memory, nothing written
    monkeypatch.chdir(elsewhere)
    ok = run_cli(["evaluate", checkpoint])
    assert ok.exit_code == 0, ok.output
    assert list(elsewhere.iterdir()) == []

    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(root / "test" / "class2" / "1.png")
    refused = run_cli(["evaluate", checkpoint])
    assert_one_line_error(refused, "not the set the checkpoint was trained on")

    monkeypatch.chdir(workdir)
    resumed = run_cli(tiny_args(root, epochs=1, extra=["--no-track", "--set", "run.run_name=ev", "--resume"]))
    assert_one_line_error(resumed, "is not the set")


def test_every_source_draws_with_ldams_rule_and_records_it(workdir, tiny_folder):
    """The folder source (like Fashion-MNIST and CIFAR) keeps LDAM's images for its long tail and test cap."""
    from rescom.data.preparation.longtail import exponential_counts, longtail_indices
    from rescom.data.sources.registry import load_source

    data = get_data(_cfg(tiny_folder, test_per_class=3))
    raw = load_source("folder", str(tiny_folder))
    keep = longtail_indices(raw.train.labels, exponential_counts(4, 24, 6), seed=0)
    np.testing.assert_array_equal(data.train.images, raw.train.images[keep])
    test_keep = longtail_indices(raw.test.labels, [3] * 4, seed=0)
    np.testing.assert_array_equal(data.test.images, raw.test.images[test_keep])
    assert data.meta["subsample_rule"] == data.meta["test_subsample_rule"] == "ldam"


def _as_made_before_the_one_rule(directory, **meta_changes):
    meta_path = directory / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.update(meta_changes)
    meta.pop("test_subsample_rule", None)  # not recorded before
    meta_path.write_text(json.dumps(meta))


def test_a_prepared_set_of_the_old_rule_is_refused_not_reused(workdir, tiny_folder):
    from rescom.data.preparation.prepared import OldSubsampleRuleError, load_prepared

    get_data(_cfg(tiny_folder))
    directory = prepared_dir(_cfg(tiny_folder))
    _as_made_before_the_one_rule(directory, subsample_rule="permutation")
    for read in (lambda: get_data(_cfg(tiny_folder)), lambda: load_prepared(directory)):
        try:
            read()
        except OldSubsampleRuleError as err:
            assert "'permutation' rule" in str(err) and "prepare it again" in str(err) and "\n" not in str(err)
        else:
            raise AssertionError("an old-rule prepared set was used")
    # Through the CLI: exit 2 and one line; `rescom prepare` makes it anew, and then it trains.
    result = run_cli(tiny_args(tiny_folder, epochs=1))
    assert result.exit_code == 2 and "before rescom used one rule" in result.output
    prepared = run_cli(["prepare", "--dataset", "folder-lt", "--imbalance", "6", "--data-root", tiny_folder])
    assert prepared.exit_code == 0, prepared.output
    assert run_cli(tiny_args(tiny_folder, epochs=1)).exit_code == 0


def test_an_old_test_cap_is_refused(workdir, tiny_folder):
    from rescom.data.preparation.prepared import OldSubsampleRuleError

    get_data(_cfg(tiny_folder, test_per_class=2))
    _as_made_before_the_one_rule(prepared_dir(_cfg(tiny_folder)))
    try:
        get_data(_cfg(tiny_folder, test_per_class=2))
    except OldSubsampleRuleError as err:
        assert "test cap" in str(err)
    else:
        raise AssertionError("an old-rule test cap was used")


def test_a_checkpoint_trained_on_the_old_rule_is_refused_on_resume(workdir, tiny_folder):
    import torch

    from rescom.engine.checkpoint import save_checkpoint

    args = tiny_args(tiny_folder, epochs=1, extra=["--set", "run.run_name=old"])
    assert run_cli(args).exit_code == 0
    assert run_cli([*args, "--resume"]).exit_code == 0  # its own rule recorded: it resumes (evaluates again)
    path = workdir / "runs/old/checkpoint.pt"
    state = torch.load(path, weights_only=True)
    del state["subsample_rule"]  # before the one rule: a folder's long tail was a permutation
    save_checkpoint(state, path)
    result = run_cli([*args, "--resume"])
    assert result.exit_code == 2 and "'permutation' rule" in result.output and "--overwrite" in result.output
    evaluated = run_cli(["evaluate", path])  # nor is it evaluated on a set of other images
    assert evaluated.exit_code == 2 and "'permutation' rule" in evaluated.output
    assert run_cli([*args, "--overwrite"]).exit_code == 0
