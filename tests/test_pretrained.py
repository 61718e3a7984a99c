"""`model.pretrained`: torchvision-format ImageNet weights into the encoder, from a local file only.

No download: the files are state dicts saved from the suite's own (randomly initialised) backbone.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli_errors import assert_one_line_error
from rescom.cli import app
from rescom.config import ConfigError, TrainConfig, apply_overrides, validate
from rescom.models import build_model
from rescom.models.backbones import build_backbone
from rescom.models.pretrained import load_pretrained

URL50 = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
PAPER_PARAMS = Path(__file__).resolve().parents[1] / "pipelines" / "paper" / "params.yaml"


def test_encoder_loaded_head_skipped_rest_as_without(tmp_path):
    torch.manual_seed(0)
    fresh = build_model("resnet50", 10, proj_hidden=64)
    # A file as torchvision publishes it: encoder tensors a fresh model lacks (BatchNorm statistics too),
    # a 1000-way fc, and no num_batches_tracked (the V1 files predate it).
    saved = {k: v + torch.rand_like(v) for k, v in fresh.encoder.state_dict().items() if v.is_floating_point()}
    saved |= {"fc.weight": torch.randn(1000, 2048), "fc.bias": torch.randn(1000)}
    torch.save(saved, tmp_path / "resnet50.pth")
    torch.manual_seed(0)
    loaded = build_model("resnet50", 10, proj_hidden=64, pretrained=str(tmp_path / "resnet50.pth"))
    for key, value in loaded.encoder.state_dict().items():
        expected = saved[key] if key in saved else torch.tensor(0)  # num_batches_tracked stays fresh
        assert torch.equal(value, expected), key
    # The classifier and projection are the same draws as a run without weights (same seed).
    for key, value in fresh.state_dict().items():
        if not key.startswith("encoder."):
            assert torch.equal(value, loaded.state_dict()[key]), key


@pytest.fixture(scope="module")
def encoder50():
    return build_backbone("resnet50")[0]


@pytest.mark.parametrize("content, needle", [
    ({"conv1.weight": torch.zeros(64, 3, 7, 7), "head.weight": torch.zeros(1)}, "has unknown keys head.weight"),
    ({"conv1.weight": torch.zeros(64, 1, 7, 7)}, "has other shapes conv1.weight (64, 1, 7, 7) (needs (64, 3, 7, 7))"),
    ({"conv1.weight": torch.zeros(64, 3, 7, 7)}, "lacks bn1.bias, bn1.running_mean, bn1.running_var ..."),
    ({"conv1.weight": [1.0, 2.0]}, "is not a state dict of tensors"),
    ([torch.zeros(1)], "is not a state dict of tensors"),
    ({"conv1.weight": print}, "cannot be read as a state dict (UnpicklingError)"),  # weights_only refuses callables
    (b"not a torch file", "cannot be read as a state dict"),
    (None, "cannot be read as a state dict (FileNotFoundError)"),
])
def test_wrong_file_refused_in_one_line(tmp_path, encoder50, content, needle):
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    before = {k: v.clone() for k, v in encoder50.state_dict().items()}
    with pytest.raises(ConfigError) as err:
        load_pretrained(encoder50, str(path), "resnet50")
    message = str(err.value)
    assert needle in message and str(path) in message and URL50 in message and "\n" not in message
    assert all(torch.equal(v, before[k]) for k, v in encoder50.state_dict().items())  # nothing half-loaded


def test_config_checks_backbone_and_file(tmp_path):
    def config(**model):
        return apply_overrides(TrainConfig(), {f"model.{k}": v for k, v in model.items()})

    with pytest.raises(ConfigError, match=f"model.pretrained: {tmp_path}/none.pth does not exist; download {URL50}"):
        validate(config(backbone="resnet50", pretrained=f"{tmp_path}/none.pth"))
    (tmp_path / "w.pth").write_bytes(b"")  # config time only checks that a file is there
    with pytest.raises(ConfigError, match="not model.backbone=resnet32"):
        validate(config(backbone="resnet32", pretrained=str(tmp_path / "w.pth")))
    validate(config(backbone="resnet50", pretrained=str(tmp_path / "w.pth")))
    validate(config(backbone="resnet50"))  # the default: random initialisation, no file


def test_paper_places_lt_stage_offline_fails_at_once(workdir):
    """Without the weights the paper's Places-LT stage stops at its config, before any data is read."""
    start = time.monotonic()
    result = CliRunner().invoke(app, ["pipeline", "train", "--params", str(PAPER_PARAMS), "--table", "large",
                                      "--item", "data=places-lt", "--item", "seed=0"])
    assert_one_line_error(result, "data/pretrained/resnet152-394f9c45.pth does not exist",
                          "https://download.pytorch.org/models/resnet152-394f9c45.pth")
    assert time.monotonic() - start < 30 and not (workdir / "runs").exists()
