"""scripts/gpu-evidence.sh as a CPU dry run: a copy of the tree, a tiny version of the cifar10-jpeg
profile on a tarball of synthetic JPEGs, and a Python on which mlflow, dvc and dask cannot be
imported (stub packages that record any attempt and raise ImportError), as on the GPU machines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "scripts/gpu-evidence.sh"
NOT_ON_THE_GPU_MACHINE = ("mlflow", "dvc", "dask")
# Top-level outputs of this checkout (not rescom/data: a missing package would be found in the venv's install).
TOP_LEVEL_IGNORED = {".venv", ".git", "data", "runs", "mlruns", "mlartifacts", "mlflow.db", "mlflow.db.lock",
                     "gpu-check", "gpu-evidence", ".pytest_cache"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    top = Path(directory) == ROOT
    return {n for n in names if n == "__pycache__" or (top and n in TOP_LEVEL_IGNORED)}


def _jpeg_tarball(path: Path, top: str, train_per_class: int, test_per_class: int) -> Path:
    """top/{train,test}/<class>/NNNN.jpg for 10 classes of random 32x32 images, as JPEG q75 (like the stand-in)."""
    rng = np.random.default_rng(0)
    folder = path.parent / "unpacked" / top
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for c in range(10):
            class_dir = folder / split / f"{c}_class"
            class_dir.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(class_dir / f"{i:04d}.jpg", quality=75)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=top)
    return path


def _tiny_params(repo: Path, root: str) -> Path:
    """The committed profile shrunk: one BS run of 1 epoch, width 4, on CPU; everything else as committed."""
    params = yaml.safe_load((repo / "pipelines/cifar10-jpeg/params.yaml").read_text())
    params["profile"] = "cifar10-jpeg-dry"
    (key, dataset), = params["datasets"].items()
    params["datasets"] = {key: {**dataset, "root": root, "max_count": 12, "imbalance": 10, "test_per_class": 4}}
    params["train"]["optim"].update(epochs=1, batch_size=8)
    params["train"]["model"] = {"width": 4}
    params["train"]["run"].update(compile=False, device="cpu", eval_every=1)
    params["main"]["axes"] = {"method": ["bs"], "seed": [0]}
    params["entirety"]["imbalance"] = 10
    path = repo / "pipelines/cifar10-jpeg-dry/params.yaml"  # its own folder: the claims file sits beside it
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(repo / "pipelines/cifar10-jpeg/claims.yaml", path.parent / "claims.yaml")
    return path


def _stubs(where: Path, marker: Path) -> Path:
    for name in NOT_ON_THE_GPU_MACHINE:
        (where / name).mkdir(parents=True)
        (where / name / "__init__.py").write_text(
            f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
            "raise ImportError(f'{__name__} is not installed on the GPU machine (test stub)')\n")
    return where


@pytest.mark.slow
def test_gpu_evidence_dry_run_trains_reports_and_copies_without_mlflow_dvc_dask(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=_ignore)
    assert (repo / "rescom/data/sources/folder.py").is_file()
    tarball = _jpeg_tarball(tmp_path / "cifar10-jpeg-dry.tar.gz", "cifar10-jpeg-dry", 12, 4)
    params = _tiny_params(repo, "data/raw/cifar10-jpeg-dry")
    marker = tmp_path / "imported.txt"
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(_stubs(tmp_path / "stubs", marker)), "PYTHON": sys.executable,
           "DEVICE": "cpu", "GPU_CHECK": "0", "PARAMS": str(params.relative_to(repo)), "OUT": str(out), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", SCRIPT, str(tarball)], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not marker.exists(), f"imported on the way: {marker.read_text()}"

    assert (repo / "data/raw/cifar10-jpeg-dry/train/0_class/0000.jpg").is_file()  # unpacked where the profile reads
    assert sorted(p.name for p in out.iterdir()) == ["logs.tar.gz", "reports.tar.gz", "runs.tar.gz", "summary.txt"]
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = set(tar.getnames())
    run = "runs/cifar10-jpeg-dry/main/bs-s0"
    assert {f"{run}/{f}" for f in ("metrics.json", "history.csv", "config.yaml", "run_log.json")} <= names
    with tarfile.open(out / "reports.tar.gz") as tar:
        tar.extractall(tmp_path / "back", filter="data")
    report = tmp_path / "back/reports/cifar10-jpeg-dry"
    main = (report / "tables/main.md").read_text()
    note = "CIFAR-10 JPEG q75 stand-in, not the official archive"
    assert note in main and note in (report / "README.md").read_text() and note in (report / "tables/claims.md").read_text()
    assert "paper, cifar10-lt IF 10 (Table 1): Balanced Softmax 91.3" in main  # stands_in_for: the paper's numbers beside
    assert "| folder-lt | bs | 10 |" in main and "| 91.3 |" in main
    assert "main/bs-s0 | yes | 1 |" in (report / "timings/runs.md").read_text()
    assert "ResCom over Balanced Softmax" in (report / "tables/claims.md").read_text()
    window = (report / "timings/windows.md").read_text()  # this window's wall clock, for the committed report
    assert "## window " in window and "trained in" in window and "main:method=bs,seed=0" in window
    summary = (out / "summary.txt").read_text()
    assert "one after another" in summary or "packed" in summary
    assert "done: status 0" in summary
