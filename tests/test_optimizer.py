"""MomentumSGD against torch.optim.SGD: the same updates bit for bit, the same state-dict layout, and
no torch._dynamo import (the start-up it exists to save)."""

import subprocess
import sys

import pytest
import torch

from rescom.engine.optimizer import MomentumSGD


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 5))


def _train(model, optimizer, steps: int, zero_grad) -> None:
    torch.manual_seed(1)
    for step in range(steps):
        if step == 3:
            for group in optimizer.param_groups:
                group["lr"] = 0.05
        zero_grad()
        model(torch.randn(8, 3, 8, 8)).square().mean().backward()
        optimizer.step()


def test_updates_and_state_equal_torch_sgd():
    ours_model, torch_model = _model(0), _model(0)
    ours = MomentumSGD(ours_model.parameters(), 0.1, 0.9, 5e-4, foreach=True)
    reference = torch.optim.SGD(torch_model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, foreach=True)
    _train(ours_model, ours, 6, ours.zero_grad)
    _train(torch_model, reference, 6, lambda: reference.zero_grad(set_to_none=True))
    for a, b in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
        assert torch.equal(a, b)
    mine, theirs = ours.state_dict(), reference.state_dict()
    assert mine["param_groups"] == theirs["param_groups"]
    assert list(mine["param_groups"][0]) == list(theirs["param_groups"][0])  # key order: pickled bytes
    assert mine["state"].keys() == theirs["state"].keys()
    for index, state in theirs["state"].items():
        assert torch.equal(mine["state"][index]["momentum_buffer"], state["momentum_buffer"])


def test_load_state_dict_continues_the_same_trajectory():
    model, resumed_model = _model(0), _model(0)
    optimizer = MomentumSGD(model.parameters(), 0.1, 0.9, 5e-4, foreach=True)
    _train(model, optimizer, 4, optimizer.zero_grad)
    resumed_model.load_state_dict(model.state_dict())
    resumed = MomentumSGD(resumed_model.parameters(), 0.3, 0.0, 0.0, foreach=True)
    resumed.load_state_dict(optimizer.state_dict())
    assert resumed.param_groups[0]["lr"] == 0.05 and resumed.param_groups[0]["momentum"] == 0.9
    _train(model, optimizer, 2, optimizer.zero_grad)
    _train(resumed_model, resumed, 2, resumed.zero_grad)
    for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_load_state_dict_refuses_another_model():
    optimizer = MomentumSGD(_model(0).parameters(), 0.1, 0.9, 5e-4)
    other = MomentumSGD(torch.nn.Linear(2, 2).parameters(), 0.1, 0.9, 5e-4)
    with pytest.raises(ValueError, match="parameter groups"):
        other.load_state_dict(optimizer.state_dict())


def test_building_and_stepping_never_imports_dynamo():
    code = ("import sys, torch\nfrom rescom.engine.optimizer import MomentumSGD\n"
            "m = torch.nn.Linear(3, 2)\no = MomentumSGD(m.parameters(), 0.1, 0.9, 0.0, foreach=True)\n"
            "m(torch.ones(1, 3)).sum().backward()\no.step()\no.zero_grad()\no.load_state_dict(o.state_dict())\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
