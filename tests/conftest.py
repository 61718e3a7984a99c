"""Shared fixtures: a tiny long-tailed image folder made here, and an isolated MLflow store."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

TINY_CLASSES = 4
TINY_TRAIN_PER_CLASS = 24
TINY_TEST_PER_CLASS = 6


def _write_folder(root, rng):
    """8x8 grayscale images whose brightness pattern depends on the class, so a few epochs learn it."""
    for split, per_class in (("train", TINY_TRAIN_PER_CLASS), ("test", TINY_TEST_PER_CLASS)):
        for c in range(TINY_CLASSES):
            directory = root / split / f"class{c}"
            directory.mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 60, size=(8, 8))
                image[c * 2:(c * 2) + 2, :] += 180  # a bright band whose row encodes the class
                Image.fromarray(image.clip(0, 255).astype(np.uint8), mode="L").save(directory / f"{i}.png")


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """train/<class>/*.png and test/<class>/*.png: 4 classes, 24 train and 6 test images each."""
    root = tmp_path_factory.mktemp("tiny-folder")
    _write_folder(root, np.random.default_rng(0))
    return root


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory):
    """One sqlite store for the session: creating its tables takes seconds, so it is made once."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def workdir(tmp_path, monkeypatch, mlflow_uri):
    """Run in a fresh directory (runs/, data/prepared/ land here) against the session's MLflow store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    return tmp_path
