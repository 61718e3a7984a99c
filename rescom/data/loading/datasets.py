"""torch Datasets over a Split: two augmented views for training, one view for evaluation."""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image
from torch.utils.data import Dataset

from rescom.data.sources.base import Split, unreadable_image


class _SplitImages(Dataset):
    """Decodes image i of a split as a PIL image in mode 'L' (channels=1) or 'RGB' (channels=3)."""

    def __init__(self, split: Split, transform: Callable, channels: int) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.split = split
        self.transform = transform
        self.mode = "L" if channels == 1 else "RGB"

    def __len__(self) -> int:
        return len(self.split.labels)

    def image(self, i: int) -> Image.Image:
        if self.split.images is not None:
            arr = self.split.images[i]  # uint8 [H, W, C]
            img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
            return img if img.mode == self.mode else img.convert(self.mode)
        try:
            with Image.open(self.split.paths[i]) as img:
                return img.convert(self.mode)  # convert() decodes, so the file can close here
        except (OSError, ValueError, SyntaxError) as err:  # large sets are decoded here, not when prepared
            raise unreadable_image(self.split.paths[i], err) from None

    def label(self, i: int) -> int:
        return int(self.split.labels[i])


class TwoViewDataset(_SplitImages):
    """Item i -> (view1 [C,H,W], view2 [C,H,W], label): two independent draws of `transform`."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        img = self.image(i)
        return self.transform(img), self.transform(img), self.label(i)


class SingleViewDataset(_SplitImages):
    """Item i -> (image [C,H,W], label), for evaluation."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.image(i)), self.label(i)
