"""Raw data sources and the prepared long-tailed sets, on tiny data the tests make themselves."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_errors import assert_one_line_error
from rescom.data.preparation import prepared
from rescom.data.sources import cifar as source_cifar
from rescom.data.sources import idx as source_idx
from rescom.data.preparation.longtail import exponential_counts
from rescom.data.preparation.prepared import load_prepared, prepare
from rescom.data.sources.base import DataUnavailableError, RawDataset, Split
from rescom.data.sources.registry import load_source

# ---------------------------------------------------------------- helpers


def _save_image(path: Path, size=(8, 8), mode="RGB", seed=0) -> np.ndarray:
    """Write a random image (size = (W, H)) and return its pixels [H, W(, C)]."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    arr = rng.integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)
    return arr


def _make_folder(root: Path, counts: dict[str, dict[str, int]], size=(8, 8), mode="RGB") -> Path:
    seed = 0
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            for i in range(n):
                _save_image(root / split / cls / f"{i:03d}.png", size, mode, seed)
                seed += 1
    return root


def _synthetic(per_class=(10, 10, 10), test_per_class=2, hw=4, channels=3) -> RawDataset:
    rng = np.random.default_rng(0)
    train_labels = np.repeat(np.arange(len(per_class)), per_class)
    test_labels = np.repeat(np.arange(len(per_class)), test_per_class)

    def mk(n):
        return rng.integers(0, 256, (n, hw, hw, channels), dtype=np.uint8)

    return RawDataset(
        name="synthetic", classes=[f"c{k}" for k in range(len(per_class))], channels=channels,
        train=Split(labels=train_labels, images=mk(len(train_labels))),
        test=Split(labels=test_labels, images=mk(len(test_labels))),
    )


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


# ---------------------------------------------------------------- dispatcher


def test_unknown_source_lists_valid_names():
    with pytest.raises(ValueError, match="cifar10.*fashion-mnist.*inat2018"):
        load_source("mnist")


# ---------------------------------------------------------------- folder


def test_folder_in_memory_rgb(tmp_path):
    root = _make_folder(tmp_path / "ds", {"train": {"b": 3, "a": 2, "c": 4}, "test": {"a": 1, "b": 1, "c": 1}})
    raw = load_source("folder", root)
    assert raw.classes == ["a", "b", "c"]  # sorted by name, label = position
    assert raw.channels == 3
    assert raw.train.images.shape == (9, 8, 8, 3) and raw.train.images.dtype == np.uint8
    assert raw.train.labels.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert raw.test.labels.tolist() == [0, 1, 2]
    # pixels are the file's pixels: a/000.png is the 4th image written (after b's 3)
    first_a = np.asarray(Image.open(root / "train" / "a" / "000.png"))
    np.testing.assert_array_equal(raw.train.images[0], first_a)


def test_folder_grayscale_stays_one_channel(tmp_path):
    root = _make_folder(tmp_path, {"train": {"x": 2, "y": 2}, "test": {"x": 1, "y": 1}}, mode="L")
    raw = load_source("folder", root)
    assert raw.channels == 1 and raw.train.images.shape == (4, 8, 8, 1)


def test_folder_mixed_modes_become_rgb(tmp_path):
    root = _make_folder(tmp_path, {"train": {"x": 2}, "test": {"x": 1}}, mode="L")
    _save_image(root / "train" / "x" / "rgb.png", mode="RGB")
    raw = load_source("folder", root)
    assert raw.channels == 3 and raw.train.images.shape == (3, 8, 8, 3)


def test_folder_mixed_sizes_keep_paths(tmp_path):
    root = _make_folder(tmp_path, {"train": {"x": 2, "y": 1}, "test": {"x": 1, "y": 1}})
    _save_image(root / "train" / "y" / "big.png", size=(12, 10))
    raw = load_source("folder", root)
    assert raw.train.images is None and len(raw.train.paths) == 4
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in raw.train.paths)
    assert raw.test.images is not None  # each split decides on its own


def test_folder_missing_test_dir(tmp_path):
    _make_folder(tmp_path, {"train": {"x": 1}})
    with pytest.raises(DataUnavailableError, match="test"):
        load_source("folder", tmp_path)


# ---------------------------------------------------------------- fashion-mnist (IDX)


def test_fashion_mnist_idx_parsing(tmp_path):
    rng = np.random.default_rng(1)
    tr_x, tr_y = rng.integers(0, 256, (5, 3, 4)), np.array([0, 9, 3, 3, 1])
    te_x, te_y = rng.integers(0, 256, (2, 3, 4)), np.array([7, 2])
    for name, arr in [("train-images-idx3-ubyte.gz", tr_x), ("train-labels-idx1-ubyte.gz", tr_y),
                      ("t10k-images-idx3-ubyte.gz", te_x), ("t10k-labels-idx1-ubyte.gz", te_y)]:
        _write_idx(tmp_path / name, arr)
    raw = load_source("fashion-mnist", tmp_path)
    assert raw.channels == 1 and len(raw.classes) == 10
    assert raw.train.images.shape == (5, 3, 4, 1) and raw.train.images.dtype == np.uint8
    np.testing.assert_array_equal(raw.train.images[..., 0], tr_x)
    assert raw.train.labels.dtype == np.int64 and raw.train.labels.tolist() == tr_y.tolist()
    assert raw.test.labels.tolist() == [7, 2]


def test_idx_rejects_bad_magic_and_truncation(tmp_path):
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="magic"):
        source_idx.read_idx(bad)
    short = tmp_path / "short.gz"
    with gzip.open(short, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + np.asarray([5], ">u4").tobytes() + b"\x00\x01")
    with pytest.raises(ValueError, match="needs 5 data bytes"):
        source_idx.read_idx(short)


def test_fashion_mnist_missing_names_all_files(tmp_path, monkeypatch):
    monkeypatch.setattr(source_idx, "DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.raises(DataUnavailableError) as err:
        load_source("fashion-mnist", tmp_path)
    for name in source_idx.FILES.values():
        assert name in str(err.value)


@pytest.mark.parametrize("source", ["cifar10", "cifar100", "fashion-mnist", "folder", "imagenet-lt", "places-lt",
                                    "inat2018"])
def test_missing_root_is_an_error_for_every_source(tmp_path, source):
    missing = tmp_path / "does" / "not" / "exist"
    with pytest.raises(DataUnavailableError, match=f"data root {missing} does not exist"):
        load_source(source, missing)


def test_fashion_mnist_given_root_is_not_replaced_by_the_debian_copy(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    debian.mkdir()
    for name in source_idx.FILES.values():
        (debian / name).write_bytes(b"")
    monkeypatch.setattr(source_idx, "DEBIAN_DIR", debian)
    empty_root = tmp_path / "mine"
    empty_root.mkdir()
    with pytest.raises(DataUnavailableError, match=f"not found in {empty_root}"):
        load_source("fashion-mnist", empty_root)


def test_fashion_mnist_debian_copy():
    """The real set from Debian's dataset-fashion-mnist; CI installs it, so there it must exist."""
    if not source_idx.DEBIAN_DIR.is_dir():
        assert not os.environ.get("CI"), f"CI must install dataset-fashion-mnist ({source_idx.DEBIAN_DIR} missing)"
        pytest.skip(f"{source_idx.DEBIAN_DIR} not installed (apt-get install dataset-fashion-mnist)")
    raw = load_source("fashion-mnist", None)
    assert raw.train.images.shape == (60000, 28, 28, 1)
    assert raw.test.images.shape == (10000, 28, 28, 1)
    assert np.bincount(raw.train.labels).tolist() == [6000] * 10
    assert np.bincount(raw.test.labels).tolist() == [1000] * 10
    # Fashion-MNIST-LT, n_max 1000, IF 100
    assert sum(exponential_counts(10, 1000, 100)) == 2478


# ---------------------------------------------------------------- CIFAR


def test_cifar_empty_root_fails_fast_naming_archive(tmp_path):
    with pytest.raises(DataUnavailableError) as err:
        load_source("cifar10", tmp_path)
    msg = str(err.value)
    assert "cifar-10-python.tar.gz" in msg and "https://www.cs.toronto.edu/~kriz/" in msg and str(tmp_path) in msg
    with pytest.raises(DataUnavailableError, match="cifar-100-python.tar.gz"):
        load_source("cifar100", tmp_path)


def test_cifar_download_offline_fails_without_network(tmp_path, monkeypatch):
    # Stand in for an offline machine, so the test never downloads 170 MB where there is internet.
    monkeypatch.setattr(source_cifar, "_reachable", lambda url, timeout: False)
    with pytest.raises(DataUnavailableError, match="not reachable.*cifar-10-python.tar.gz"):
        load_source("cifar10", tmp_path / "c", download=True)


def test_cifar_corrupt_archive(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(DataUnavailableError, match="corrupt"):
        load_source("cifar10", tmp_path)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _mini_cifar_archive(tmp_path, monkeypatch) -> Path:
    """A miniature archive in the official layout (2 images per batch); CIFAR10's checksums point at it."""
    from torchvision.datasets import CIFAR10

    src = tmp_path / "src" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        batch = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [i % 10, (i + 1) % 10]}
        (src / name).write_bytes(pickle.dumps(batch))
    (src / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"k{i}" for i in range(10)]}))
    archive = tmp_path / "served" / CIFAR10.filename
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    monkeypatch.setattr(CIFAR10, "tgz_md5", _md5(archive))
    monkeypatch.setattr(CIFAR10, "train_list", [[n, _md5(src / n)] for n in names[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(src / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": _md5(src / "batches.meta")})
    return archive


def test_cifar_archive_is_unpacked_and_read(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    archive = root / "cifar-10-python.tar.gz"
    archive.write_bytes(_mini_cifar_archive(tmp_path, monkeypatch).read_bytes())

    raw = load_source("cifar10", root)
    assert (root / "cifar-10-batches-py").is_dir()
    assert raw.classes == [f"k{i}" for i in range(10)] and raw.channels == 3
    assert raw.train.images.shape == (10, 32, 32, 3) and raw.test.images.shape == (2, 32, 32, 3)
    assert raw.train.labels.dtype == np.int64 and raw.test.labels.tolist() == [5, 6]
    # the extracted folder alone is enough
    archive.unlink()
    assert len(load_source("cifar10", root).train) == 10


# ---------------------------------------------------------------- txt split lists


@pytest.fixture
def http_server():
    """A local HTTP server over a folder, as a stand-in for the archive's official host."""
    import functools
    import http.server
    import threading

    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()


def test_data_download_fetches_checks_and_unpacks_atomically(tmp_path, monkeypatch, http_server):
    from typer.testing import CliRunner

    from rescom.cli import app

    runner = CliRunner()
    served = _mini_cifar_archive(tmp_path, monkeypatch)
    url = http_server(served.parent) + "/" + served.name
    root = tmp_path / "raw"
    result = runner.invoke(app, ["data", "download", "cifar10", "--root", str(root), "--url", url])
    assert result.exit_code == 0, result.output
    assert _md5(root / served.name) == _md5(served) and (root / "cifar-10-batches-py" / "data_batch_1").is_file()
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no partial download left
    assert len(load_source("cifar10", root).train) == 10
    # Present and valid: nothing is fetched again (an unreachable mirror does not matter).
    again = runner.invoke(app, ["data", "download", "cifar10", "--root", str(root), "--url", "http://127.0.0.1:9/x"])
    assert again.exit_code == 0, again.output

    corrupt_dir = tmp_path / "corrupt"
    corrupt_dir.mkdir()
    (corrupt_dir / served.name).write_bytes(served.read_bytes()[:-100])  # truncated in transit
    bad_root = tmp_path / "raw-bad"
    bad = runner.invoke(app, ["data", "download", "cifar10", "--root", str(bad_root),
                              "--url", http_server(corrupt_dir) + "/" + served.name])
    assert_one_line_error(bad, "corrupt")
    assert list(bad_root.iterdir()) == []  # the partial file never took the archive's name


def test_data_download_offline_fails_fast_and_names_the_file(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rescom.cli import app

    monkeypatch.setattr(source_cifar, "_reachable", lambda url, timeout: False)
    result = CliRunner().invoke(app, ["data", "download", "cifar100", "--root", str(tmp_path)])
    assert_one_line_error(result, "not reachable", "cifar-100-python.tar.gz")
    unknown = CliRunner().invoke(app, ["data", "download", "imagenet-lt"])
    assert_one_line_error(unknown, "cannot be downloaded")


def test_split_lists(tmp_path):
    (tmp_path / "ImageNet_LT_train.txt").write_text("train/a/1.jpg 0\ntrain/b c/2.jpg 3\n\n")
    (tmp_path / "ImageNet_LT_test.txt").write_text("val/x.jpg 5\n")
    _save_image(tmp_path / "train" / "a" / "1.jpg")
    raw = load_source("imagenet-lt", tmp_path)
    assert raw.train.paths == [str(tmp_path / "train/a/1.jpg"), str(tmp_path / "train/b c/2.jpg")]
    assert raw.train.labels.tolist() == [0, 3] and raw.train.images is None
    assert raw.classes == [str(k) for k in range(6)]  # K = 1 + largest label in either list
    assert raw.channels == 3


def test_split_lists_custom_and_inat_names(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "tr.txt").write_text("img/1.jpg 1\n")
    (tmp_path / "iNaturalist18_val.txt").write_text("img/2.jpg 0\n")
    _save_image(tmp_path / "img" / "1.jpg")
    raw = load_source("inat2018", tmp_path, train_list="lists/tr.txt")
    assert raw.train.labels.tolist() == [1] and raw.test.labels.tolist() == [0]


def test_split_lists_errors(tmp_path):
    (tmp_path / "Places_LT_train.txt").write_text("a.jpg 0\n")
    with pytest.raises(DataUnavailableError, match="Places_LT_test.txt"):
        load_source("places-lt", tmp_path)
    (tmp_path / "Places_LT_test.txt").write_text("b.jpg zero\n")
    with pytest.raises(ValueError, match=r"Places_LT_test.txt:1"):
        load_source("places-lt", tmp_path)
    (tmp_path / "Places_LT_test.txt").write_text("b.jpg 0\n")
    with pytest.raises(DataUnavailableError, match="image root"):
        load_source("places-lt", tmp_path)  # a.jpg does not exist under root


@pytest.mark.parametrize("name, source", [("imagenet-lt", "image-net.org"), ("places-lt", "places2.csail.mit.edu"),
                                          ("inat2018", "visipedia/inat_comp")])
def test_large_data_names_what_is_missing_and_where_to_get_it(tmp_path, name, source):
    """None of these sets can be downloaded freely: each missing piece is named with its source."""
    from rescom.data.sources.lists import STANDARD_LISTS

    train, test = STANDARD_LISTS[name]
    with pytest.raises(DataUnavailableError, match="needs root") as no_root:
        load_source(name, None)
    with pytest.raises(DataUnavailableError, match="does not exist") as no_dir:
        load_source(name, tmp_path / "nowhere")
    with pytest.raises(DataUnavailableError, match=train) as no_list:
        load_source(name, tmp_path)
    (tmp_path / train).write_text("img/1.jpg 0\n")
    (tmp_path / test).write_text("img/2.jpg 0\n")
    with pytest.raises(DataUnavailableError, match="first image") as no_image:
        load_source(name, tmp_path)
    for err in (no_root, no_dir, no_list, no_image):
        assert source in str(err.value), str(err.value)
    assert "github.com/zhmiao/OpenLongTailRecognition-OLTR" in str(no_list.value) or name == "inat2018"
    assert "classifier-balancing" in str(no_list.value) or name != "inat2018"


# ---------------------------------------------------------------- prepare / load_prepared


def test_prepare_longtail_roundtrip(tmp_path):
    raw = _synthetic(per_class=(10, 12, 11))
    out = tmp_path / "prep"
    data = prepare(raw, out, imbalance_factor=5, max_count=None, seed=3)
    expected = exponential_counts(3, 10, 5)  # max_count defaults to the smallest raw class
    assert data.class_counts == expected == [10, 4, 2]
    assert sorted(os.listdir(out)) == ["meta.json", "test.npz", "train.npz"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dataset"] == "synthetic" and meta["classes"] == ["c0", "c1", "c2"] and meta["channels"] == 3
    assert meta["imbalance_factor"] == 5.0 and meta["max_count"] == 10 and meta["seed"] == 3
    assert meta["class_counts"] == expected and meta["num_train"] == 16 and meta["num_test"] == 6
    assert len(meta["fingerprint"]) == 64

    back = load_prepared(out)
    np.testing.assert_array_equal(back.train.images, data.train.images)
    np.testing.assert_array_equal(back.train.labels, data.train.labels)
    np.testing.assert_array_equal(back.test.images, raw.test.images)  # test split unchanged
    assert back.class_counts == expected and back.meta == meta and back.channels == 3
    # same seed -> same set; another seed -> another subset of the same sizes
    again = prepare(raw, tmp_path / "again", imbalance_factor=5, max_count=None, seed=3)
    assert again.meta["fingerprint"] == meta["fingerprint"]
    other = prepare(raw, tmp_path / "other", imbalance_factor=5, max_count=None, seed=4)
    assert other.meta["fingerprint"] != meta["fingerprint"] and other.class_counts == expected


def test_prepare_cifar10_lt_counts(tmp_path):
    """CIFAR-10-LT IF 100 with n_max 5000 has 12,406 images (labels only; 1x1 images keep it fast)."""
    raw = _synthetic(per_class=(5000,) * 10, test_per_class=1, hw=1)
    data = prepare(raw, tmp_path / "c10", imbalance_factor=100, max_count=5000, seed=0)
    assert data.meta["num_train"] == 12406 and data.class_counts[0] == 5000 and data.class_counts[-1] == 50


def test_prepare_keep_as_is_with_paths(tmp_path):
    raw = RawDataset(
        name="lt", classes=["0", "1"], channels=3,
        train=Split(labels=np.array([0, 0, 1]), paths=["/d/a.jpg", "/d/b.jpg", "/d/c é.jpg"]),
        test=Split(labels=np.array([1, 0]), paths=["/d/t1.jpg", "/d/t0.jpg"]),
    )
    data = prepare(raw, tmp_path / "lt", imbalance_factor=None, max_count=None, seed=0)
    assert data.class_counts == [2, 1] and data.meta["imbalance_factor"] is None
    back = load_prepared(tmp_path / "lt")
    assert back.train.paths == raw.train.paths and back.test.paths == raw.test.paths
    assert back.train.images is None
    with pytest.raises(ValueError, match="max_count"):
        prepare(raw, tmp_path / "x", imbalance_factor=None, max_count=5, seed=0)


def test_prepare_failure_leaves_nothing(tmp_path, monkeypatch):
    raw = _synthetic()

    def boom(path, meta):
        raise OSError("disk full")

    monkeypatch.setattr(prepared, "_write_meta", boom)
    with pytest.raises(OSError, match="disk full"):
        prepare(raw, tmp_path / "prep", imbalance_factor=2, max_count=None, seed=0)
    assert os.listdir(tmp_path) == []  # neither out_dir nor a temp dir


def test_prepare_failure_keeps_previous_version(tmp_path, monkeypatch):
    raw = _synthetic()
    first = prepare(raw, tmp_path / "prep", imbalance_factor=2, max_count=None, seed=0)
    monkeypatch.setattr(prepared, "_write_split", lambda path, split: (_ for _ in ()).throw(OSError("io")))
    with pytest.raises(OSError):
        prepare(raw, tmp_path / "prep", imbalance_factor=4, max_count=None, seed=1)
    assert os.listdir(tmp_path) == ["prep"]
    assert load_prepared(tmp_path / "prep").meta["fingerprint"] == first.meta["fingerprint"]
    monkeypatch.undo()
    second = prepare(raw, tmp_path / "prep", imbalance_factor=4, max_count=None, seed=1)  # replaces it
    assert os.listdir(tmp_path) == ["prep"] and load_prepared(tmp_path / "prep").meta == second.meta


def test_load_prepared_errors(tmp_path):
    prepare(_synthetic(), tmp_path / "p", imbalance_factor=2, max_count=None, seed=0)
    (tmp_path / "p" / "test.npz").unlink()
    with pytest.raises(FileNotFoundError, match="test.npz"):
        load_prepared(tmp_path / "p")
    prepare(_synthetic(), tmp_path / "q", imbalance_factor=2, max_count=None, seed=0)
    meta = json.loads((tmp_path / "q" / "meta.json").read_text())
    meta["fingerprint"] = "0" * 64
    (tmp_path / "q" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="fingerprint"):
        load_prepared(tmp_path / "q")
