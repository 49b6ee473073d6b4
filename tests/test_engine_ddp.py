"""Two processes on the CPU (gloo), as ``torchrun --nproc_per_node 2`` would start them: the
processes end with identical weights, only rank 0 writes, and each rank sees its own half of
every global batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from tests._engine_util import (
    FakeMAE,
    base_config,
    make_aligned,
    make_registry,
    make_spec,
    merge,
    single_thread,  # noqa: F401 - autouse fixture
)
from vemkit.engine import hookspecs


class Indices:
    """Records the sample indices each process trains on, and what ``program.score`` gives
    each process after the last iteration (rank 0 scores, the others receive its result)."""

    def __init__(self):
        self.seen = []
        self.scores = {}

    @hookspecs.hookimpl
    def vemkit_iteration_start(self, program, state, step):
        self.seen.append(sorted(state.batch["index"].tolist()))

    @hookspecs.hookimpl
    def vemkit_iteration_end(self, program, state, step, logs):
        if step == program.spec.train.iterations:
            self.scores = program.score("student.out", [FakeMAE()], real="target")


def _worker(rank: int, world: int, port: int, config: dict, out: str) -> None:
    os.environ.update(
        {
            "WORLD_SIZE": str(world),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    from vemkit.engine import run

    reg = make_registry()
    indices = Indices()
    result = run(make_spec(reg, config), registry=reg, progress=False, callbacks=[indices])
    student = result.program.module("student").state_dict()
    torch.save(
        {
            "student": student,
            "seen": indices.seen,
            "scores": indices.scores,
            "checkpoint": str(result.checkpoint),
        },
        Path(out) / f"rank{rank}.pt",
    )
    _exit_now()


def _exit_now() -> None:
    """End a worker whose results are saved without the interpreter's teardown: gloo's threads,
    destroyed there in no fixed order, once aborted a rank at exit ("terminate called without an
    active exception") after everything it had to do was done and written."""
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# In the fast suite on purpose: ~10-20 s, and it is what the issue asks to prove.
def test_two_gloo_processes_train_one_model(tmp_path):
    data = make_aligned(tmp_path / "data", n=8)
    config = merge(
        base_config(data, tmp_path / "run"),
        {"train": {"iterations": 3}, "output": {"checkpoint_every": 1}},
    )
    config["data"]["eval"] = dict(config["data"]["train"])
    mp.spawn(_worker, args=(2, _free_port(), config, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # the same weights everywhere (rank 0's start, averaged gradients); BatchNorm statistics
    # stay per process, as with DDP without SyncBatchNorm
    for key, value in r0["student"].items():
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(value, r1["student"][key]), key
    # each global batch of 2 x 2 samples is split between the ranks, none seen twice
    for a, b in zip(r0["seen"], r1["seen"], strict=True):
        assert len(a) == len(b) == 2 and not set(a) & set(b)
    assert r0["checkpoint"].endswith("step_0000003") and r1["checkpoint"] == "None"
    # program.score: rank 0's scores reach rank 1 unchanged (sent as JSON)
    assert set(r0["scores"]) == {"mae"} and 0 < r0["scores"]["mae"] < 2
    assert r1["scores"] == r0["scores"]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "last",
        "step_0000001",
        "step_0000002",
        "step_0000003",
    ]


def _recipe_worker(rank: int, world: int, port: int, config: dict, out: str) -> None:
    os.environ.update(
        {
            "WORLD_SIZE": str(world),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    from tests._recipe_util import recipe_registry
    from vemkit.engine import run

    reg = recipe_registry()
    result = run(make_spec(reg, config), registry=reg, progress=False)
    torch.save(
        {"student": result.program.module("student").state_dict(), "stage": result.stage},
        Path(out) / f"recipe{rank}.pt",
    )
    _exit_now()


def test_two_gloo_processes_run_a_recipe_and_agree_on_every_stage(tmp_path):
    data = make_aligned(tmp_path / "data", n=8)
    config = merge(base_config(data, tmp_path / "run"), {"method": {"type": "toy_recipe"}})
    mp.spawn(_recipe_worker, args=(2, _free_port(), config, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "recipe0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "recipe1.pt", weights_only=True)
    assert r0["stage"] == r1["stage"] == "distil"
    assert r0["student"]["body.0.weight"].shape[0] == 2  # the step's narrower student
    for key, value in r0["student"].items():
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(value, r1["student"][key]), key
    stages = tmp_path / "run" / "stages"
    assert sorted(p.name for p in stages.iterdir()) == ["01-pretrain", "02-shrink", "03-distil"]
    assert (stages / "02-shrink" / "step_calls.json").read_text() == "1"
