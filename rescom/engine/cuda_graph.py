"""Replay a fixed-shape function as one CUDA graph: one launch instead of hundreds per call.

The ResNet-32 step on CIFAR shapes is launch-bound on a large GPU, and the batched augmentation is a
few hundred small kernels. Both are written without host syncs and with static shapes
(tests/test_graph_ready.py), so each can be captured once and replayed every step.

`CapturedCall(fn)` runs fn eagerly for `warmup` calls on a side stream (lazy allocations such as
cuDNN workspaces happen there), then captures it with static copies of the inputs and replays.
Outputs are the graph's static tensors: a caller that keeps them past the next call must clone them.
If the capture fails, the error is kept in `.disabled_reason` and every later call runs eagerly.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten


class CapturedCall:
    """Callable wrapper: fn(*args) with args a pytree of CUDA tensors of fixed shapes, replayed as a graph."""

    def __init__(self, fn: Callable, warmup: int = 3, name: str = "step"):
        self.fn, self.warmup, self.name = fn, warmup, name
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_inputs: list[torch.Tensor] = []
        self.static_output = None
        self.disabled_reason: str | None = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, *args):
        leaves, spec = tree_flatten(args)
        if self.graph is not None:
            if [t.shape for t in leaves] != [t.shape for t in self.static_inputs]:
                raise ValueError(f"{self.name}: a CUDA graph replays fixed shapes; got "
                                 f"{[tuple(t.shape) for t in leaves]}, captured {[tuple(t.shape) for t in self.static_inputs]}")
            for static, new in zip(self.static_inputs, leaves, strict=True):
                static.copy_(new, non_blocking=True)
            self.graph.replay()
            return self.static_output
        self.calls += 1
        if self.disabled_reason is not None or self.calls <= self.warmup:
            return self._eager_on_side_stream(args)
        return self._capture_and_replay(leaves, spec, args)

    def _eager_on_side_stream(self, args):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self.fn(*args)
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _capture_and_replay(self, leaves, spec, args):
        # The capture records kernels without running them; replaying it once runs this call.
        # fn must not have run on these inputs yet: a failed capture falls back to one eager call.
        static_inputs = [t.clone() for t in leaves]
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        try:
            with torch.cuda.graph(graph):
                static_output = self.fn(*tree_unflatten(static_inputs, spec))
        except Exception as error:  # noqa: BLE001  (any capture failure: fall back, say why)
            self.disabled_reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            torch.cuda.synchronize()
            return self._eager_on_side_stream(args)
        self.graph, self.static_inputs, self.static_output = graph, static_inputs, static_output
        graph.replay()
        return static_output
