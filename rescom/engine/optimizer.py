"""SGD with momentum and weight decay: torch's functional SGD over state held here, not in torch.optim.SGD.

Why not torch.optim.SGD: its constructor and zero_grad/state_dict import torch._dynamo on first
call, 1.5 s of every training stage's start-up on a CPU (docs/results.md, "Start-up of a training
stage"). The update is torch's functional `sgd` (same kernels, same numbers), and the state dict
keeps torch's layout, so a checkpoint stores the same tensors under the same keys.
"""

from __future__ import annotations

import torch
from torch.optim.sgd import sgd


class MomentumSGD:
    """One parameter group with torch.optim.SGD's keys (lr, momentum, dampening, weight_decay, nesterov,
    maximize, foreach, differentiable, fused) and a momentum buffer per parameter.

    The buffers exist from the start, as zeros: SGD's first update m * 0 + g = g equals torch's lazy
    clone of g bit for bit, and the step never allocates state (CUDA graphs, fullgraph compile).
    """

    def __init__(self, params, lr: float | torch.Tensor, momentum: float, weight_decay: float,
                 foreach: bool | None = None, fused: bool | None = None) -> None:
        group = {"params": list(params), "lr": lr, "momentum": momentum, "dampening": 0,
                 "weight_decay": weight_decay, "nesterov": False, "maximize": False, "foreach": foreach,
                 "differentiable": False, "fused": fused}
        self.param_groups = [group]
        self.state = {p: {"momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format)}
                      for p in group["params"]}

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self) -> None:
        """Drop every gradient (torch's zero_grad(set_to_none=True))."""
        for param in self._params():
            param.grad = None

    def state_dict(self) -> dict:
        """torch.optim.Optimizer's layout: state by parameter index, groups listing those indices."""
        index = {id(p): i for i, p in enumerate(self._params())}
        groups = [{**{k: v for k, v in group.items() if k != "params"},
                   "params": [index[id(p)] for p in group["params"]]} for group in self.param_groups]
        state = {index[id(p)]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict) -> None:
        """Momentum buffers (copied, cast to their parameter's device and dtype) and the groups' settings."""
        params = self._params()
        if len(saved["param_groups"]) != len(self.param_groups) or \
                sum(len(g["params"]) for g in saved["param_groups"]) != len(params):
            raise ValueError("optimizer state: its parameter groups do not match the model's")
        for group, saved_group in zip(self.param_groups, saved["param_groups"], strict=True):
            group.update({k: v for k, v in saved_group.items() if k != "params"})
        for i, param in enumerate(params):
            buffer = saved["state"][i]["momentum_buffer"]
            self.state[param]["momentum_buffer"] = buffer.to(device=param.device, dtype=param.dtype, copy=True)

    @torch.no_grad()
    def step(self) -> None:
        """One SGD update of every parameter with a gradient: one call of torch's functional SGD.

        Optimizer.step wraps the update in hooks and a grad-mode guard that deliberately break a
        torch.compile graph; this call has neither, so the update compiles with fullgraph=True and is
        captured inside the step's CUDA graph. The group's foreach/fused flags and lr (float or tensor) apply.
        """
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            sgd(params, [p.grad for p in params], [self.state[p]["momentum_buffer"] for p in params],
                foreach=group["foreach"], fused=group["fused"], weight_decay=group["weight_decay"],
                momentum=group["momentum"], lr=group["lr"], dampening=group["dampening"],
                nesterov=group["nesterov"], maximize=group["maximize"])

    def set_learning_rate(self, lr: float) -> None:
        """Set every group's lr; a tensor lr is filled in place (no sync, and captured graphs see it)."""
        for group in self.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr


def build_optimizer(config, model: torch.nn.Module, device: torch.device) -> MomentumSGD:
    """SGD with momentum and weight decay: one fused kernel on a GPU, foreach (multi-tensor) on the CPU.

    On a GPU the learning rate is a device tensor, so a CUDA graph that captured the step reads the
    value set each epoch (set_learning_rate) instead of the one frozen at capture.
    """
    o = config.optim
    if device.type == "cuda":
        return MomentumSGD(model.parameters(), torch.tensor(o.lr, device=device), o.momentum, o.weight_decay,
                           fused=True)
    return MomentumSGD(model.parameters(), o.lr, o.momentum, o.weight_decay, foreach=True)
