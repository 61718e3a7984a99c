"""Every file a user hands the suite is untrusted: bad ones end in exit 2 and one line naming the file.

Each kind of file (checkpoint, config, image, split list, params file) is fed a garbage, a truncated
and an empty version; a checkpoint that pickles a callable must be refused before the callable runs.
"""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from cli_errors import assert_one_line_error
from rescom.cli import app
from rescom.engine.checkpoint import save_checkpoint

runner = CliRunner()


def invoke(args):
    return runner.invoke(app, [str(a) for a in args])


def _bad_versions(good: bytes) -> dict[str, bytes]:
    return {"garbage": b"\x00\xffnot a file of this kind\n" * 20, "truncated": good[: len(good) // 2], "empty": b""}


# ---------------------------------------------------------------- checkpoints


class _WritesMarker:
    """Unpickling this opens (creates) a file: the side effect a crafted checkpoint would have."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _valid_checkpoint_bytes(tmp_path) -> bytes:
    path = tmp_path / "valid.pt"
    save_checkpoint({"config": {}, "components": {"model": {"w": torch.zeros(64, 64)}}, "epoch": 1,
                     "history": [], "mlflow_run_id": None}, path)
    return path.read_bytes()


def test_checkpoint_with_pickled_callable_is_refused_without_running_it(workdir):
    marker = workdir / "side-effect-ran"
    crafted = workdir / "crafted.pt"
    torch.save({"config": {}, "components": {}, "epoch": 1, "history": [], "payload": _WritesMarker(marker)}, crafted)
    result = invoke(["evaluate", crafted])
    assert_one_line_error(result, crafted, "refused")
    assert not marker.exists()
    assert not (workdir / "data").exists()


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_bad_checkpoint_is_one_line_for_evaluate_and_analyze(workdir, kind):
    path = workdir / f"{kind}.pt"
    path.write_bytes(_bad_versions(_valid_checkpoint_bytes(workdir))[kind])
    assert_one_line_error(invoke(["evaluate", path]), path)
    assert_one_line_error(invoke(["analyze", "gradients", path]), path)
    assert_one_line_error(invoke(["analyze", "similarity", "--run", f"a={path}", "--out", workdir / "sim"]), path)


def test_torch_file_that_is_not_a_run_checkpoint(workdir):
    path = workdir / "tensor.pt"
    torch.save(torch.zeros(3), path)
    assert_one_line_error(invoke(["evaluate", path]), path, "not a rescom checkpoint")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_bad_checkpoint_under_resume_names_the_file(workdir, tiny_folder, kind):
    from test_train_cli import tiny_args

    checkpoint = workdir / "runs" / "broken" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(_bad_versions(_valid_checkpoint_bytes(workdir))[kind])
    result = invoke(tiny_args(tiny_folder, epochs=1, extra=["--set", "run.run_name=broken", "--resume"]))
    assert_one_line_error(result, "runs/broken/checkpoint.pt")


# ---------------------------------------------------------------- config and params files

CONFIG = {"garbage": b"\xff\xfe\x00garbage\x00" * 10, "truncated": b"optim: {lr: 0.05, epochs: 3", "empty": b""}
PARAMS = {"garbage": b"\x89PNG\r\n\x1a\n\x00\x00" * 10,
          "truncated": b"profile: tiny\ndatasets: {tiny: {dataset: folder-lt, imbalance: 6", "empty": b""}


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_bad_config_file(workdir, tiny_folder, kind):
    from test_train_cli import tiny_args

    path = workdir / f"{kind}.yaml"
    path.write_bytes(CONFIG[kind])
    assert_one_line_error(invoke(tiny_args(tiny_folder) + ["--config", path]), path, "config file")
    assert not (workdir / "runs").exists() and not (workdir / "data").exists()


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_bad_params_file(workdir, kind):
    path = workdir / f"{kind}.yaml"
    path.write_bytes(PARAMS[kind])
    assert_one_line_error(invoke(["pipeline", "prepare", "--params", path, "--key", "tiny"]), path, "params file")
    assert_one_line_error(invoke(["pipeline", "train", "--params", path, "--table", "main"]), path, "params file")


# ---------------------------------------------------------------- data files


def _copy_folder(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_bad_image_in_a_folder(workdir, tiny_folder, kind, split):
    from test_train_cli import tiny_args

    root = _copy_folder(tiny_folder, workdir / "images")
    image = root / split / "class1" / "3.png"
    image.write_bytes(_bad_versions(image.read_bytes())[kind])
    result = invoke(tiny_args(root))
    assert_one_line_error(result, image, "cannot be read")
    assert not (workdir / "data").exists()


@pytest.mark.parametrize("workers", [0, 2])
def test_truncated_image_decoded_during_training(workdir, tiny_folder, workers, monkeypatch):
    """A folder too large for memory keeps paths and decodes while training (in DataLoader workers
    when data.workers > 0): a file cut short still ends in one line naming it, not a worker traceback."""
    from test_train_cli import tiny_args

    from rescom.data.sources import folder as source_folder

    monkeypatch.setattr(source_folder, "IN_MEMORY_LIMIT_BYTES", 0)  # as if the images did not fit in RAM
    root = _copy_folder(tiny_folder, workdir / "images")
    for image in (root / "train" / "class1").iterdir():  # whichever the subsample keeps, it is cut short
        image.write_bytes(_bad_versions(image.read_bytes())["truncated"])  # the header survives the cut
    result = invoke(tiny_args(root, extra=["--set", f"data.workers={workers}", "--no-track"]))
    assert_one_line_error(result, root / "train" / "class1", "cannot be read")


def _list_root(workdir):
    root = workdir / "lists"
    for name in ("a.jpg", "b.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


@pytest.mark.parametrize("which", ["ImageNet_LT_train.txt", "ImageNet_LT_test.txt"])
@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_bad_split_list(workdir, kind, which):
    root = _list_root(workdir)
    good = b"a.jpg 0\nb.jpg 1\n"
    for name in ("ImageNet_LT_train.txt", "ImageNet_LT_test.txt"):
        (root / name).write_bytes(good)
    bad = {"garbage": b"\xff\xfe\x00\x01" * 10, "truncated": b"a.jpg 0\nb.j", "empty": b""}[kind]
    (root / which).write_bytes(bad)
    result = invoke(["train", "--dataset", "imagenet-lt", "--data-root", root, "--epochs", "1", "--no-track"])
    assert_one_line_error(result, root / which, "split list")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_bad_fashion_mnist_file(workdir, kind):
    import gzip

    import numpy as np

    from rescom.data.sources import idx as source_idx

    root = workdir / "fmnist"
    root.mkdir()
    for key, name in source_idx.FILES.items():
        n = 60 if key.startswith("train") else 10
        arr = np.zeros((n, 28, 28) if key.endswith("images") else (n,), dtype=np.uint8)
        header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
        with gzip.open(root / name, "wb") as f:
            f.write(header + arr.tobytes())
    bad_file = root / source_idx.FILES["train_images"]
    bad_file.write_bytes(_bad_versions(bad_file.read_bytes())[kind])
    result = invoke(["train", "--dataset", "fashion-mnist-lt", "--data-root", root, "--epochs", "1", "--no-track"])
    assert_one_line_error(result, bad_file)
    assert not (workdir / "data" / "prepared").exists()


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_bad_cifar_archive(workdir, kind):
    from rescom.data.sources.cifar import _dataset_class

    root = workdir / "cifar"
    root.mkdir()
    archive = root / _dataset_class("cifar10").filename
    archive.write_bytes(_bad_versions(b"\x1f\x8b" + b"\x00" * 4096)[kind])
    result = invoke(["train", "--dataset", "cifar10-lt", "--data-root", root, "--epochs", "1", "--no-track"])
    assert_one_line_error(result, archive, "corrupt")


@pytest.mark.parametrize("name", ["meta.json", "train.npz", "test.npz"])
@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_bad_prepared_file_is_named(workdir, tiny_folder, kind, name):
    from rescom.config import DataConfig
    from rescom.data.preparation.prepared import load_prepared
    from rescom.data.sources.base import BadFileError
    from rescom.data.preparation.run_data import prepare_data

    cfg = DataConfig(dataset="folder-lt", root=str(tiny_folder), imbalance=6, prepared_dir=str(workdir / "prep"))
    prepare_data(cfg)
    path = workdir / "prep" / name
    path.write_bytes(_bad_versions(path.read_bytes())[kind])
    with pytest.raises(BadFileError, match=str(path)):
        load_prepared(workdir / "prep")
