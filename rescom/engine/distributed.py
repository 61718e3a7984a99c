"""Multi-GPU training: `torchrun --nproc_per_node N -m rescom train ...` runs one process per device.

Contract (run.ddp_contrast=global, run.sync_bn=true): N processes together take the step that one
process takes on the same global batch. The defaults are the released code's form instead (below).

- Data: optim.batch_size is the global batch B. Every rank draws the same seeded epoch permutation
  and takes its own contiguous slice of B / N samples of each global batch (`data/loading/rank_sampler.py`),
  so the slices concatenated in rank order are the single-process batch.
- Only rank 0 tracks, evaluates, writes the run directory and prints (engine/run.py).

Two switches choose between the released code's multi-GPU form (the defaults; fidelity note 13) and
ours, which makes N processes take exactly the single-process step:

- run.sync_bn: false (released): each rank's BatchNorm uses its own slice's statistics. true (ours):
  the statistics span the global batch (torch's SyncBatchNorm on CUDA; on CPU, where torch's
  SyncBatchNorm refuses to run, `GlobalBatchNorm`). DDP averages the gradients either way.
- run.ddp_contrast: local (released): each rank's contrastive term sees its own slice (in-batch
  candidates and, with method.anchors=view1, view-2 keys) and the queue; `gather_keys` then collects
  every rank's keys and labels in rank order for the queue, so every rank writes the same keys and
  the queues stay identical. Every rank's loss is a mean over its slice, DDP averages: the gradient
  is the mean of the N local gradients. global (ours): `gather_batch` collects every rank's embeddings
  (with gradient) and labels in the single-process order, so every rank computes the single-process
  contrastive loss and writes the same keys to its queue. Gradient scaling: every rank's loss is
  L_cls(own slice, a mean) + lambda * L_con(global batch). DDP differentiates (1/N) sum_r loss_r. The
  classifier term's local means average to the global mean; the contrastive term is the same L on
  every rank, and the gather's backward sums the N ranks' gradients (N dL/dz), which DDP's 1/N
  cancels. Net, with sync_bn: the single-process gradient.

Every helper is the identity / a no-op in a single process, so single-process training is unchanged.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from rescom.config import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this module created the process group, so it also destroys it

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """The current process group as a World (World() when none is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def active() -> bool:
    """True when more than one process trains together."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_from_env(device_name: str) -> World:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT).

    NCCL when the run trains on CUDA, else gloo. Without torchrun (WORLD_SIZE unset or 1), or when
    the caller already initialised a group, nothing is created. Ranks > 0 are silenced.
    """
    if dist.is_available() and dist.is_initialized():
        return _silence_others(world())
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    else:
        dist.init_process_group("gloo")
    w = World(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True)
    return _silence_others(w)


def _silence_others(w: World) -> World:
    if not w.is_main:
        from rescom.progress import console

        console.quiet = True  # progress bars, epoch logs and the final table come from rank 0 only
    return w


def shutdown(w: World) -> None:
    if w.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def device_for(w: World, device: torch.device) -> torch.device:
    """cuda:LOCAL_RANK for a CUDA run under torchrun; the device unchanged otherwise."""
    if w.size > 1 and device.type == "cuda":
        return torch.device("cuda", w.local_rank)
    return device


def check_batch_size(batch_size: int, w: World) -> None:
    if batch_size % w.size:
        raise ConfigError(f"optim.batch_size: the global batch {batch_size} must be divisible by the "
                          f"{w.size} training processes (WORLD_SIZE)")


def barrier() -> None:
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. prepares the data set), the other ranks after it."""
    if active() and dist.get_rank() != 0:
        dist.barrier()
    yield
    if active() and dist.get_rank() == 0:
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's obj on every rank (any picklable object)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# --- collectives with gradients ----------------------------------------------------------------


class _AllReduceSum(torch.autograd.Function):
    """y = sum_r x_r on every rank. Backward: dF/dx_s = sum_r dL_r/dy_r (F = sum_r L_r), an all-reduce."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class _GatherRows(torch.autograd.Function):
    """[n, ...] per rank -> [N n, ...], rank-major. Backward: the sum over ranks of the gradient of
    this rank's rows (all-reduce, then this rank's slice: gloo has no reduce-scatter)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """All ranks' x concatenated in rank order; differentiable when x requires grad."""
    return _GatherRows.apply(x)


def gather_batch(z: torch.Tensor, target: torch.Tensor, keys: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The global batch's embeddings in single-process order; identity in one process.

    z: [V b, D], this rank's V views stacked view-major (as train_step builds them); target: [b];
    keys: [b, D] momentum keys or None. Returns z [V B, D] (view-major, rank order within each view,
    with gradient), target [B] and keys [B, D], B = N b.
    """
    if not active():
        return z, target, keys
    views, dim = z.shape[0] // target.shape[0], z.shape[1]
    gathered = gather_rows(z)  # [N V b, D], rank-major
    size, b = dist.get_world_size(), target.shape[0]
    z_all = gathered.view(size, views, b, dim).transpose(0, 1).reshape(views * size * b, dim)
    keys_all = gather_rows(keys) if keys is not None else None
    return z_all, gather_rows(target), keys_all


def gather_keys(keys: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's queue keys [b, D] (no gradient) and labels [b], rank order: [N b, D], [N b].

    The released code's `concat_all_gather` before its enqueue (run.ddp_contrast=local): the loss is
    local, the queue global. Identity in one process.
    """
    if not active():
        return keys, labels
    return gather_rows(keys.detach()), gather_rows(labels)


def reduce_totals(sums: dict[str, torch.Tensor], seen: int) -> tuple[dict[str, torch.Tensor], int]:
    """Epoch running sums over all ranks: loss terms averaged (each rank's are batch means), `correct`
    and the sample count summed. Identity in one process."""
    if not active():
        return sums, seen
    keys = sorted(sums)
    stacked = torch.stack([sums[k].double() for k in keys] + [sums[keys[0]].new_tensor(seen, dtype=torch.float64)])
    dist.all_reduce(stacked)
    size = dist.get_world_size()
    out = {k: stacked[i] if k == "correct" else stacked[i] / size for i, k in enumerate(keys)}
    return out, int(stacked[-1].item())


# --- model ---------------------------------------------------------------------------------------


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics (mean, biased variance) span every rank's batch.

    The portable stand-in for torch.nn.SyncBatchNorm, which (torch 2.14) raises on CPU tensors.
    Two-pass statistics (sum, then sum of squared deviations) with differentiable all-reduces; the
    running variance uses the global unbiased estimate, as one process on the global batch would.
    Evaluation, or a single process, is plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = xf.new_tensor([x.numel() // x.shape[1]])
        totals = _AllReduceSum.apply(torch.cat([xf.sum(dims), count]))  # [C + 1]
        n = totals[-1]
        mean = totals[:-1] / n  # [C]
        centered = xf - mean.view(shape)
        var = _AllReduceSum.apply(centered.square().sum(dims)) / n  # [C], biased
        y = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * n / (n - 1).clamp(min=1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module, cls: type[nn.modules.batchnorm._BatchNorm]) -> nn.Module:
    """Replace every BatchNorm in module by cls, keeping the same Parameter objects and buffers
    (the optimizer keeps working, state-dict keys are unchanged)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, cls):
        new = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_batchnorm(child, cls))
    return module


def prepare_components(parts, device: torch.device, *, sync_bn: bool) -> None:
    """Wrap the model in DDP; with sync_bn (run.sync_bn) also synchronise BatchNorm across ranks
    (model and momentum encoder). Without it each rank normalises with its own batch's statistics,
    as the released code (plain DDP, no SyncBatchNorm) does; DDP then broadcasts rank 0's running
    statistics before every forward (broadcast_buffers), so evaluation and checkpoints use rank 0's.

    parts.model stays the plain network (checkpoints, evaluation, momentum update); the DDP wrapper
    goes to parts.forward_model, which train_step calls. No-op in a single process.
    """
    if not active():
        return
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn:
        bn = nn.SyncBatchNorm if device.type == "cuda" else GlobalBatchNorm
        convert_batchnorm(parts.model, bn)
        if parts.key_encoder is not None:
            convert_batchnorm(parts.key_encoder, bn)
    device_ids = [device.index] if device.type == "cuda" else None
    parts.forward_model = DistributedDataParallel(parts.model, device_ids=device_ids)
