"""The fast path is graph-ready: no host syncs, no data-dependent shapes (issue 9).

On the CPU the proof is torch.compile with fullgraph=True: any `.item()`, `.any()` branch, boolean
indexing or other data-dependent shape is a graph break, and fullgraph turns a break into an error.
The aot_eager backend also traces the backward through AOTAutograd. The training step's two halves
around `loss.backward()` (which dynamo cannot trace itself) and the augmentation's application are
compiled, then compared with the eager functions on the same inputs and state.
On a GPU, tests/test_cuda.py captures the same functions as CUDA graphs.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo

from rescom.config import apply_overrides, resolve_for_data
from rescom.engine.components import build_components
from rescom.engine.step import apply_updates, forward_losses, train_step
from rescom.data.loading.tensor_data import batched_recipe
from rescom.methods import preset_config

COUNTS = [20, 10, 5, 3]
BATCH = 8
# Named variants of a preset: Algorithm 1's anchors (fidelity note 2b) take the same graph-ready path.
VARIANTS = {"rescom-view1": ("rescom", {"method.anchors": "view1", "method.in_batch": False,
                                        "method.enqueue_view": 2})}


def _setup(method: str, bf16: bool = False):
    method, variant = VARIANTS.get(method, (method, {}))
    overrides = {"model.width": 4, "optim.batch_size": BATCH, "run.bf16": bf16, **variant}
    if method in ("supcon_bs", "rescom"):
        overrides["method.queue_size"] = 3
    config = resolve_for_data(apply_overrides(preset_config(method), overrides), COUNTS)
    parts = build_components(config, COUNTS, 3, torch.device("cpu"))
    g = torch.Generator().manual_seed(1)
    views = [torch.randn(BATCH, 3, 8, 8, generator=g) for _ in range(2)]
    target = torch.tensor([0, 1, 2, 3, 0, 1, 0, 2])
    return config, parts, views, target


def _compiled_step(config, parts):
    """train_step with both halves compiled (fullgraph, aot_eager); backward() stays eager between them."""
    forward = torch.compile(lambda views, target: forward_losses(config, parts, views, target),
                            fullgraph=True, backend="aot_eager")
    update = torch.compile(lambda keys, labels: apply_updates(config, parts, keys, labels),
                           fullgraph=True, backend="aot_eager")

    def step(views, target):
        loss, losses, keys, labels = forward(views, target)
        parts.optimizer.zero_grad()
        loss.backward()
        update(keys, labels)
        return losses
    return step


@pytest.mark.parametrize("method", ["ce", "bs", "supcon_bs", "moco_bs", "rescom", "rescom-view1"])
def test_training_step_compiles_fullgraph_and_equals_eager(method):
    torch._dynamo.reset()
    config, parts, views, target = _setup(method)
    twin = copy.deepcopy(parts)
    compiled = _compiled_step(config, twin)
    for _ in range(2):  # the second step runs on state (momentum, queue) the first one wrote
        eager_losses = train_step(config, parts, views, target)
        compiled_losses = compiled(views, target)
        for key, value in eager_losses.items():
            torch.testing.assert_close(compiled_losses[key], value, rtol=1e-5, atol=1e-6, msg=key)
    for (name, p_eager), p_compiled in zip(parts.model.named_parameters(), twin.model.parameters(), strict=True):
        torch.testing.assert_close(p_compiled, p_eager, rtol=1e-5, atol=1e-6, msg=name)
    if parts.queue is not None:
        torch.testing.assert_close(twin.queue.keys, parts.queue.keys, rtol=1e-5, atol=1e-6)
        assert torch.equal(twin.queue.labels, parts.queue.labels)


@pytest.mark.parametrize("policy", ["released", "torchvision"])
def test_augmentation_apply_compiles_fullgraph_and_equals_eager(policy):
    torch._dynamo.reset()
    augment = batched_recipe("cifar", 3, policy)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    params = augment.sample_params(x.shape, g, x.device)
    compiled = torch.compile(augment.apply, fullgraph=True, backend="aot_eager")
    # The float ops (normalisation) may fuse differently; uint8 ops before them are exact.
    torch.testing.assert_close(compiled(x, params), augment.apply(x, params), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("policy", ["released", "torchvision"])
def test_sampled_then_applied_equals_the_recipe_call(policy):
    """The split into draws (eager) and application (graph) keeps the recipe's random stream."""
    augment = batched_recipe("cifar", 3, policy)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    whole = augment(x, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    assert torch.equal(augment.apply(x, augment.sample_params(x.shape, g, x.device)), whole)


def test_a_host_sync_in_the_step_would_fail_this_check(monkeypatch):
    """The check can fail: a `.item()` inside the forward half is a graph break, an error under fullgraph."""
    import rescom.engine.step as step_module

    torch._dynamo.reset()
    config, parts, views, target = _setup("rescom")
    real = step_module.classifier_loss

    def syncing_loss(*args):
        loss = real(*args)
        if loss.item() > 1e9:  # data-dependent branch on a host value
            loss = loss * 0
        return loss

    monkeypatch.setattr(step_module, "classifier_loss", syncing_loss)
    forward = torch.compile(lambda v, t: forward_losses(config, parts, v, t), fullgraph=True, backend="aot_eager")
    # Unsupported (a graph break) or UserError (a guard on a data-dependent value), as the op decides.
    with pytest.raises((torch._dynamo.exc.Unsupported, torch._dynamo.exc.UserError)):
        forward(views, target)
