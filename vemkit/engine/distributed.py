"""Several processes (``torchrun``): process group, gradient averaging, rank-0 duties.

vemkit does not wrap modules in ``DistributedDataParallel``: one iteration steps several
optimizers over different graphs (discriminator, teacher, energy, student), each backward is
restricted to its phase's parameters (``backward(inputs=...)``), and the frozen teacher has no
gradients at all, which is exactly what DDP's reducer handles badly (unused parameters,
several backward passes per forward). Instead each phase averages the gradients of its own
parameters across processes after its backward (one flattened ``all_reduce`` per phase), and
initial weights are broadcast from rank 0. Frozen modules never take part; BatchNorm
statistics stay per process (as with DDP without SyncBatchNorm). Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T")


@dataclass
class Dist:
    """Where this process stands: ``rank`` of ``world`` (1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device_type: str) -> Dist:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        owns = True
    return Dist(dist.get_rank(), dist.get_world_size(), local, owns)


def teardown(d: Dist) -> None:
    if d.owns_group:
        import torch.distributed as dist

        dist.destroy_process_group()


def broadcast_modules(d: Dist, modules: list[nn.Module]) -> None:
    """Make every process start from rank 0's weights and buffers."""
    if not d.active:
        return
    import torch.distributed as dist

    for m in modules:
        for t in [*m.parameters(), *m.buffers()]:
            dist.broadcast(t.data, src=0)


def average_gradients(d: Dist, params: list[nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the processes (one flat all-reduce)."""
    if not d.active:
        return
    import torch.distributed as dist

    if not params:
        return
    for p in params:  # same layout on every process, even where a parameter got no gradient
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= d.world
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def all_true(d: Dist, flag: bool, device: torch.device) -> bool:
    """True when ``flag`` holds on every process (so that all skip a step together)."""
    if not d.active:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def broadcast_json(d: Dist, value: T, device: torch.device) -> T:
    """Rank 0's ``value`` (JSON-serialisable: a dict of scores) on every process; sent as
    JSON bytes rather than pickled."""
    if not d.active:
        return value
    import json

    import torch.distributed as dist

    data = json.dumps(value).encode() if d.main else b""
    size = torch.tensor([len(data)], dtype=torch.long, device=device)
    dist.broadcast(size, src=0)
    buffer = torch.zeros(int(size.item()), dtype=torch.uint8, device=device)
    if d.main:
        buffer.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    dist.broadcast(buffer, src=0)
    return json.loads(bytes(buffer.cpu().tolist()).decode())


def barrier(d: Dist) -> None:
    if d.active:
        import torch.distributed as dist

        dist.barrier()
