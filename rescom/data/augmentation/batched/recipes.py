"""On-device CIFAR training augmentation: the released ResCom recipe as batched tensor ops.

The whole training set sits on the device as uint8 [N,C,H,W]; each step augments a batch with
per-sample random parameters and no host sync (no `.item()`, no data-sized outputs), so a CUDA
training loop never waits on it. Per view (released ResCom code, fidelity note 6 of DESIGN.md):

    RandomCrop(H, padding=4) -> RandomHorizontalFlip(0.5) -> AutoAugment(CIFAR10 policy)
    -> ToTensor (/255) -> Cutout(16) -> Normalize(mean, std)

The released main_rescom.py puts Cutout between ToTensor and Normalize, so the hole is black
(0 in [0,1], i.e. -mean/std after normalising), not the dataset mean colour.

AutoAugment is either policy (batched/released_autoaugment.py, batched/autoaugment.py), each tested
op by op against its per-image reference (tests/test_batched_augment.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rescom.data.augmentation.batched.autoaugment import (  # noqa: F401  (re-exported)
    CIFAR10_POLICY,
    OPS,
    apply_autoaugment,
    apply_ops,
    magnitude_bins,
    sample_autoaugment_params,
)
from rescom.data.augmentation.batched.released_autoaugment import (
    apply_released_slots,
    released_slot_ops,
    sample_released_params,
)
from rescom.data.augmentation.batched.ops import (  # noqa: F401  (re-exported)
    batched_crop,
    batched_cutout,
    batched_hflip,
    batched_normalize,
    check_image_batch,
    sample_crop_params,
    sample_cutout_params,
    sample_flip_params,
)

POLICIES = ("released", "torchvision")  # the values of data.autoaugment


class BatchedAugment:
    """Callable (x uint8 [B,C,H,W], generator) -> float32 [B,C,H,W] on x's device.

    Args:
        mean, std: per-channel Normalize statistics (length C).
        cutout: side of the Cutout square in pixels; 0 disables it.
        padding: RandomCrop zero padding; 0 disables the crop.
        autoaugment: apply AutoAugment.
        policy: which AutoAugment: "released" (the released code's own CIFAR10Policy, in Pillow's
            arithmetic) or "torchvision" (torchvision's AutoAugment(CIFAR10) tensor semantics).
        flip: apply RandomHorizontalFlip(0.5).

    `generator` must live on x's device (torch.Generator(device=x.device)); None uses the global RNG.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        cutout: int = 16,
        padding: int = 4,
        autoaugment: bool = True,
        flip: bool = True,
        policy: str = "torchvision",
    ) -> None:
        if len(mean) != len(std) or len(mean) not in (1, 3):
            raise ValueError(f"mean and std must both have 1 or 3 entries, got {len(mean)} and {len(std)}")
        if cutout < 0 or padding < 0:
            raise ValueError(f"cutout and padding must be >= 0, got cutout={cutout}, padding={padding}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.cutout = int(cutout)
        self.padding = int(padding)
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.autoaugment = bool(autoaugment)
        self.policy = policy
        self.flip = bool(flip)
        self._stats_cache: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(mean={self.mean}, std={self.std}, cutout={self.cutout}, "
                f"padding={self.padding}, autoaugment={self.autoaugment}, policy={self.policy!r}, flip={self.flip})")

    def _stats(self, device: torch.device) -> tuple[Tensor, Tensor]:
        # cached per device: torch.tensor(list, device=cuda) is a synchronous host-to-device copy
        if device not in self._stats_cache:
            self._stats_cache[device] = (torch.tensor(self.mean, device=device), torch.tensor(self.std, device=device))
        return self._stats_cache[device]

    @torch.no_grad()
    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_image_batch(x)
        return self.apply(x, self.sample_params(x.shape, generator, x.device))

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None,
                      device: torch.device | str) -> dict[str, Tensor]:
        """Every random draw of one batch of shape [B, C, H, W], as fixed-shape tensors on `device`.

        Keys: crop_dy, crop_dx, flip [B]; AutoAugment: aa_op, aa_apply, aa_magnitude [B, 2]
        (torchvision's policy) or aa_policy [B], aa_apply, aa_sign [B, 2] and what they select,
        aa_op, aa_value [B, 2] (the released policy);
        cutout_cy, cutout_cx [B] (each only when its op is on). The draw order is the one the
        recipe applies its ops in, so a batch is the same whether sampled here or op by op.
        """
        b, c, h, w = shape
        if c != len(self.mean):
            raise ValueError(f"image batch has {c} channels but mean/std have {len(self.mean)}")
        params: dict[str, Tensor] = {}
        if self.padding:
            params["crop_dy"], params["crop_dx"] = sample_crop_params(b, generator, device, self.padding)
        if self.flip:
            params["flip"] = sample_flip_params(b, generator, device)
        if self.autoaugment and self.policy == "released":
            drawn = sample_released_params(b, generator, device)
            op, value = released_slot_ops(drawn)  # table look-ups stay out of the captured application
            params |= {"aa_policy": drawn["policy"], "aa_apply": drawn["apply"], "aa_sign": drawn["sign"],
                       "aa_op": op, "aa_value": value}
        elif self.autoaugment:
            drawn = sample_autoaugment_params(b, generator, device, image_size=(h, w))
            params |= {"aa_op": drawn["op"], "aa_apply": drawn["apply"], "aa_magnitude": drawn["magnitude"]}
        if self.cutout:
            params["cutout_cy"], params["cutout_cx"] = sample_cutout_params(b, h, w, generator, device)
        return params

    @torch.no_grad()
    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """The recipe on x uint8 [B, C, H, W] with drawn params -> float32 [B, C, H, W].

        A pure function of its tensors: no randomness, no host sync, shapes fixed by x's, so it
        compiles with fullgraph=True and can be captured as a CUDA graph (tests/test_graph_ready.py).
        """
        check_image_batch(x)
        if self.padding:
            x = batched_crop(x, params["crop_dy"], params["crop_dx"], self.padding)
        if self.flip:
            x = batched_hflip(x, params["flip"])
        if self.autoaugment and self.policy == "released":
            x = apply_released_slots(x, params["aa_op"], params["aa_value"])
        elif self.autoaugment:
            x = apply_autoaugment(x, {"op": params["aa_op"], "apply": params["aa_apply"],
                                      "magnitude": params["aa_magnitude"]})
        out = x.float().div_(255.0)
        if self.cutout:
            out = batched_cutout(out, params["cutout_cy"], params["cutout_cx"], self.cutout)
        return batched_normalize(out, *self._stats(x.device))
