"""A resumable, deterministic data loader for the engine.

The order of an epoch is a function of (seed, epoch) only, and the dataset's random crops/flips
are keyed by (seed, epoch, index) (``set_epoch``), so a run stopped after ``k`` samples of an
epoch continues exactly with ``make_loader(..., start_index=k)``. This module depends on torch
only (no vemkit_plugins import), so the engine can own a copy of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


def epoch_order(n: int, *, shuffle: bool, seed: int, epoch: int) -> list[int]:
    """Item indices of one epoch: a seeded permutation, or 0..n-1 without ``shuffle``."""
    if not shuffle:
        return list(range(n))
    # Offsetting by a large odd constant keeps epoch seeds apart from the dataset's item seeds.
    g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) & (2**63 - 1))
    return torch.randperm(n, generator=g).tolist()


class ResumableSampler(Sampler[int]):
    """Yields ``epoch_order(...)[start_index:]``; ``set_epoch`` moves to another epoch."""

    def __init__(
        self, data: Sized, *, shuffle: bool, seed: int, epoch: int = 0, start_index: int = 0
    ) -> None:
        self.data = data
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.start_index = int(start_index)

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        self.epoch = int(epoch)
        self.start_index = int(start_index)

    def __iter__(self) -> Iterator[int]:
        order = epoch_order(len(self.data), shuffle=self.shuffle, seed=self.seed, epoch=self.epoch)
        return iter(order[self.start_index :])

    def __len__(self) -> int:
        return max(0, len(self.data) - self.start_index)


class ResumableLoader(DataLoader):
    """A DataLoader whose ``set_epoch(epoch, start_index)`` sets the order, the dataset's epoch
    (when it has ``set_epoch``) and the resume position; call it before iterating an epoch."""

    sampler: ResumableSampler

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        if not 0 <= start_index <= len(self.dataset):  # type: ignore[arg-type]
            raise ValueError(
                f"start_index {start_index} is outside the epoch of {len(self.dataset)} items"  # type: ignore[arg-type]
            )
        self.sampler.set_epoch(epoch, start_index)
        set_dataset_epoch = getattr(self.dataset, "set_epoch", None)
        if set_dataset_epoch is not None:
            set_dataset_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch


def make_loader(
    dataset: Any,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    workers: int = 0,
    drop_last: bool = False,
    start_index: int = 0,
    epoch: int = 0,
) -> ResumableLoader:
    """A loader over ``dataset`` at ``epoch``, skipping the first ``start_index`` samples.

    Workers are not persistent, so each epoch's iterator sees the dataset's current epoch;
    memory is pinned when CUDA is available.
    """
    sampler = ResumableSampler(dataset, shuffle=shuffle, seed=seed, epoch=epoch)
    loader = ResumableLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(int(seed)),
        persistent_workers=False,
    )
    loader.set_epoch(epoch, start_index)
    return loader
