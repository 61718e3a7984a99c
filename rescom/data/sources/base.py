"""Types shared by every raw data source: a split (labels + images or paths) and a dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rescom.errors import ExpectedError


class DataUnavailableError(ExpectedError, RuntimeError):
    """The files a data source needs are not on disk (and could not be fetched).

    The message names the files to supply and the directory to put them in.
    """


class BadFileError(ExpectedError, ValueError):
    """A data file that cannot be read (garbage, truncated, empty); the message names it and the problem."""

    def __init__(self, message: str) -> None:
        # Raised in a DataLoader worker (data.workers > 0), it comes back to the main process as
        # BadFileError("Caught BadFileError in DataLoader worker process 0.\nOriginal Traceback ...
        # \n<module>.BadFileError: <message>"): keep the one line the user needs.
        if message.startswith("Caught ") and "Original Traceback" in message:
            message = message.rstrip().splitlines()[-1].split("BadFileError: ", 1)[-1]
        super().__init__(message)


def unreadable_image(path: str, err: Exception) -> BadFileError:
    """The one-line error for an image PIL cannot decode (empty, truncated, not an image)."""
    reason = "empty file" if Path(path).stat().st_size == 0 else (str(err).splitlines() or [type(err).__name__])[0]
    return BadFileError(f"image {path} cannot be read: {reason}")


@dataclass
class Split:
    """One split of a dataset.

    labels: int64 [N].
    images: uint8 [N, H, W, C], C in {1, 3}, when the split is held in memory.
    paths:  N absolute image paths otherwise (large datasets, mixed image sizes).
    Exactly one of images / paths is set.
    """

    labels: np.ndarray
    images: np.ndarray | None = None
    paths: list[str] | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.ndim != 1:
            raise ValueError(f"labels must be 1-D, got shape {self.labels.shape}")
        if (self.images is None) == (self.paths is None):
            raise ValueError("a Split holds exactly one of images or paths")
        n = len(self.labels)
        if self.images is not None:
            if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[3] not in (1, 3):
                raise ValueError(
                    f"images must be uint8 [N,H,W,C] with C in (1, 3), got {self.images.dtype} {self.images.shape}"
                )
            if len(self.images) != n:
                raise ValueError(f"{len(self.images)} images but {n} labels")
        if self.paths is not None and len(self.paths) != n:
            raise ValueError(f"{len(self.paths)} paths but {n} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> "Split":
        """The split restricted to indices [M] (kept in the given order)."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.images is not None:
            return Split(labels=self.labels[indices], images=self.images[indices])
        return Split(labels=self.labels[indices], paths=[self.paths[i] for i in indices])


@dataclass
class RawDataset:
    """A dataset as read from its source: K class names, channel count, train and test splits."""

    name: str
    classes: list[str]
    channels: int
    train: Split
    test: Split
