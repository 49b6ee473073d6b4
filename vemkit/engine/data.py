"""Resumable, deterministic batches for the training loop.

The order of an epoch is a function of (seed, epoch) only and the position inside it is a
sample count, so a run stopped after ``index`` samples of ``epoch`` continues with exactly the
batches an uninterrupted run would have seen. Datasets that draw random crops/flips key them by
(seed, epoch, item) through their ``set_epoch``; the loader calls it at every epoch start.
With several processes each global batch of ``batch_size × world`` samples is split by rank
(and an incomplete last global batch is dropped, so that every rank steps together).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from vemkit.errors import DataError

_EPOCH_SALT = 0x9E3779B1  # keeps epoch orders apart from the datasets' own item seeds


def epoch_order(n: int, *, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """The item order of one epoch: a permutation seeded by (seed, epoch)."""
    if not shuffle:
        return list(range(n))
    g = torch.Generator().manual_seed((seed * _EPOCH_SALT + epoch) % (2**63 - 1))
    return torch.randperm(n, generator=g).tolist()


class BatchStream:
    """Batches from position (``epoch``, ``index``) on; :attr:`epoch` and :attr:`index` always
    name the next unread sample."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        seed: int,
        workers: int = 0,
        shuffle: bool = True,
        epoch: int = 0,
        index: int = 0,
        rank: int = 0,
        world: int = 1,
        device: torch.device | str = "cpu",
        name: str = "data.train",
    ) -> None:
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.workers = int(workers)
        self.shuffle = shuffle
        self.epoch = int(epoch)
        self.index = int(index)
        self.rank = int(rank)
        self.world = int(world)
        self.device = torch.device(device)
        self.n = len(dataset)
        self.global_batch = self.batch_size * self.world
        if self.n < (self.global_batch if self.world > 1 else 1):
            raise DataError(
                f"{name}: {self.n} item(s) cannot fill a batch of {self.batch_size} on "
                f"{self.world} process(es)"
            )
        self._iter: Iterator[Any] | None = None
        self._sizes: list[int] = []

    def _open_epoch(self) -> None:
        if self.index >= self._epoch_length():
            self.epoch, self.index = self.epoch + 1, 0
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(self.epoch)
        order = epoch_order(self.n, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle)
        rest = order[self.index : self._epoch_length()]
        local: list[int] = []
        self._sizes = []
        for start in range(0, len(rest), self.global_batch):
            chunk = rest[start : start + self.global_batch]
            mine = chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            local += mine
            self._sizes.append(len(chunk))
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=local,
            num_workers=self.workers,
            drop_last=False,
            pin_memory=self.device.type == "cuda",
            # The loader draws its workers' base seed from this generator: seeding it by
            # (seed, epoch) keeps the global RNG untouched, so a resumed run matches.
            generator=torch.Generator().manual_seed(self.seed * 1009 + self.epoch),
        )
        self._iter = iter(loader)

    def _epoch_length(self) -> int:
        if self.world == 1:
            return self.n
        return self.n - self.n % self.global_batch  # whole global batches only

    def next(self) -> dict[str, Any]:
        """The next batch, moved to the device; starts a new epoch when one ends."""
        for _ in range(2):
            if self._iter is None:
                self._open_epoch()
            try:
                batch = next(self._iter)  # type: ignore[arg-type]
            except StopIteration:
                self._iter = None
                self.epoch, self.index = self.epoch + 1, 0
                continue
            self.index += self._sizes.pop(0)
            return to_device(batch, self.device)
        raise DataError("the training data yielded no batch")  # pragma: no cover

    def close(self) -> None:
        self._iter = None


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def eval_batches(
    dataset: Any, batch_size: int, *, device: torch.device, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """The evaluation set in order (the first ``limit`` items), batch by batch."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    loader = DataLoader(dataset, batch_size=batch_size, sampler=list(range(n)), num_workers=0)
    for batch in loader:
        yield to_device(batch, device)


def holdout_indices(n: int, fraction: float, *, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of ``range(n)`` into (the rest, a held-out ``fraction``), each sorted:
    e.g. GAN-Compression scores its search candidates on a held-out half of the training set."""
    if not 0 < fraction < 1:
        raise DataError(f"a held-out fraction must be between 0 and 1, got {fraction}")
    held = max(1, min(n - 1, round(n * fraction))) if n > 1 else 0
    order = epoch_order(n, seed=seed, epoch=-1)
    return sorted(order[held:]), sorted(order[:held])


class Part(torch.utils.data.Dataset):
    """The items ``indices`` of ``dataset`` (with its ``set_epoch`` passed on)."""

    def __init__(self, dataset: Any, indices: list[int]) -> None:
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
