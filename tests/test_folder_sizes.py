"""A user's image folder of mixed sizes (the usual case): each recipe trains or refuses in one line.

The folder source brings its images to one size at preparation (`data.image_size`, auto: the
recipe's side), `large` takes any size, and a recipe that needs one size as stored refuses before
training, naming the sizes found and the key that fixes it.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from test_train_cli import run_cli

SIZES_SEEN = set()


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """3 classes of random-size RGB PNGs (10-90 px a side), 12 / 8 / 6 train and 3 test images each."""
    root = tmp_path_factory.mktemp("mixed-folder")
    rng = np.random.default_rng(0)
    for split, per_class in (("train", (12, 8, 6)), ("test", (3, 3, 3))):
        for c, n in enumerate(per_class):
            directory = root / split / f"class{c}"
            directory.mkdir(parents=True)
            for i in range(n):
                w, h = (int(v) for v in rng.integers(10, 90, size=2))
                SIZES_SEEN.add((w, h))
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                pixels[..., c] = 255  # the class is the saturated channel: learnable at any size
                Image.fromarray(pixels, mode="RGB").save(directory / f"{i}.png")
    return root


def folder_args(root, recipe, extra=()):
    return ["train", "--method", "rescom", "--dataset", "folder-lt", "--imbalance", "2", "--data-root", str(root),
            "--epochs", "1", "--seed", "0", "--set", "optim.batch_size=4", "--set", "model.width=4",
            "--set", "method.queue_size=2", "--set", f"data.recipe={recipe}", "--set", "run.track=false", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("recipe,side", [("cifar", 32), ("fashion-mnist", 28), ("fashion-mnist-basic", 28)])
def test_a_cifar_or_fashion_recipe_brings_the_folder_to_its_side_and_trains(workdir, mixed_folder, recipe, side):
    result = run_cli(folder_args(mixed_folder, recipe))
    assert result.exit_code == 0, result.output
    meta = json.loads(next((workdir / "data/prepared").glob("folder-lt*/meta.json")).read_text())
    assert meta["request"]["image_size"] == side and meta["storage"] == {"train": "images", "test": "images"}
    from rescom.data.preparation.prepared import load_prepared

    data = load_prepared(next((workdir / "data/prepared").glob("folder-lt*")))
    assert data.train.images.shape[1:] == (side, side, 3) and data.test.images.shape[1:] == (side, side, 3)


@pytest.mark.slow
def test_the_large_recipe_trains_on_the_sizes_as_stored(workdir, mixed_folder):
    result = run_cli(folder_args(mixed_folder, "large"))
    assert result.exit_code == 0, result.output
    meta = json.loads(next((workdir / "data/prepared").glob("folder-lt*/meta.json")).read_text())
    assert meta["request"]["image_size"] is None and meta["storage"]["train"] == "paths"


@pytest.mark.parametrize("recipe", ["auto", "none"])
def test_a_recipe_that_needs_one_size_as_stored_refuses_naming_the_sizes_and_the_key(workdir, mixed_folder, recipe):
    result = run_cli(folder_args(mixed_folder, recipe))
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    line = errors[0]
    assert "data.image_size=" in line and "recipe none" in line
    found = re.search(r"come in (\d+) sizes \(W x H: ([^)]*)\)", line)
    named = [tuple(map(int, size.split("x"))) for size in found.group(2).removesuffix(", ...").split(", ")]
    assert int(found.group(1)) > 1 and named and set(named) <= SIZES_SEEN  # the sizes of the images it would use
    assert not (workdir / "data/prepared").exists() or not list((workdir / "data/prepared").glob("*/meta.json"))
    assert not (workdir / "runs").exists()


def test_none_with_an_image_size_trains(workdir, mixed_folder):
    result = run_cli(folder_args(mixed_folder, "none", extra=["--set", "data.image_size=16"]))
    assert result.exit_code == 0, result.output


def test_a_side_other_than_the_recipes_is_refused_in_one_line(workdir, mixed_folder):
    for value in ("null", "64"):
        result = run_cli(folder_args(mixed_folder, "cifar", extra=["--set", f"data.image_size={value}"]))
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert result.exit_code == 2 and len(errors) == 1 and "recipe cifar trains on 32 x 32" in errors[0]
        assert "Traceback" not in result.output


def test_image_size_on_a_source_of_fixed_size_is_refused():
    from rescom.config import ConfigError, DataConfig
    from rescom.data.preparation.run_data import folder_image_size

    assert folder_image_size(DataConfig(dataset="fashion-mnist-lt")) is None
    with pytest.raises(ConfigError, match="folder source only"):
        folder_image_size(DataConfig(dataset="cifar10-lt", image_size=32))


def test_bringing_to_a_side_keeps_the_aspect_and_leaves_an_image_of_that_side_unchanged(tmp_path):
    from rescom.data.sources.folder import _fitted

    pixels = np.random.default_rng(1).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "same.png")
    np.testing.assert_array_equal(_fitted(str(tmp_path / "same.png"), "RGB", 32), pixels)
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 20:40] = 255  # a white square in the middle third
    Image.fromarray(wide).save(tmp_path / "wide.png")
    out = _fitted(str(tmp_path / "wide.png"), "RGB", 10)  # 20x60 -> 10x30, centre 10x10: all white
    assert out.shape == (10, 10, 3) and out[:, 2:8].min() >= 250
