"""Exact resume, atomic checkpoints, and refusing a run directory of another spec."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests._engine_util import (
    base_config,
    make_aligned,
    make_registry,
    make_spec,
    merge,
    same_tensors,
    single_thread,  # noqa: F401 - autouse fixture
    weights,
)
from vemkit.engine import checkpoint as ckpt
from vemkit.engine import resume
from vemkit.engine import run as run_engine
from vemkit.errors import VemkitError


@pytest.fixture(scope="module")
def reg():
    return make_registry()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_aligned(tmp_path_factory.mktemp("data"), n=5)


def gan_config(data_root: Path, run_dir: Path) -> dict:
    # Everything that carries state across iterations: an online teacher, a discriminator
    # phase, BatchNorm statistics, Adam moments, a linear-decay schedule, shuffled epochs of
    # 5 items in batches of 2 (the stop falls inside an epoch).
    return merge(
        base_config(data_root, run_dir),
        {
            "teacher": {"mode": "online"},
            "method": {
                "type": "kd",
                "recon_weight": 1.0,
                "gan_weight": 0.1,
                "discriminator": {"type": "tiny", "width": 4, "output_nc": 1},
            },
            "train": {"iterations": 7, "deterministic": True},
        },
    )


def final_state(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    last = run_dir / "checkpoints" / "last"
    return {p.stem: weights(p) for p in sorted(last.glob("*.safetensors"))}


def test_stop_and_resume_is_bitwise_identical_to_an_uninterrupted_run(reg, data_root, tmp_path):
    whole = run_engine(
        make_spec(reg, gan_config(data_root, tmp_path / "whole")), registry=reg, progress=False
    )
    assert whole.status == "finished"
    spec = make_spec(reg, gan_config(data_root, tmp_path / "split"))
    first = run_engine(spec, registry=reg, progress=False, stop_at=4)
    assert (first.status, first.step) == ("stopped", 4)
    state = json.loads((first.checkpoint / "state.json").read_text())["state"]["progress"]
    assert (state["epoch"], state["index"]) == (1, 2)  # 5 items: batches of 2, 2, 1, then 2
    second = resume(tmp_path / "split", registry=reg, progress=False)
    assert (second.status, second.step) == ("finished", 7)

    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "split")
    assert sorted(a) == ["discriminator", "state", "student", "teacher"]
    for name in a:
        assert same_tensors(a[name], b[name]), name
    # the training curve continues the same way (log lines after the stop are recomputed)
    log_a = [
        json.loads(x) for x in (tmp_path / "whole" / "metrics.jsonl").read_text().split("\n") if x
    ]
    log_b = [
        json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().split("\n") if x
    ]
    assert [r["step"] for r in log_b] == list(range(1, 8))
    assert [r["loss/student"] for r in log_a] == [r["loss/student"] for r in log_b]


def test_an_interrupted_checkpoint_write_never_loads(reg, data_root, tmp_path, monkeypatch):
    config = merge(base_config(data_root, tmp_path / "run"), {"output": {"checkpoint_every": 1}})
    spec = make_spec(reg, config)
    run_engine(spec, registry=reg, progress=False, stop_at=2)
    root = tmp_path / "run" / "checkpoints"

    # A write that dies half-way (here: an error while writing the training state) leaves
    # nothing that looks like a checkpoint, and `last` still names the previous one.
    real = ckpt._save_tensors

    def failing(tensors, path, what):
        if path.name == ckpt.STATE_TENSORS:
            raise OSError("disk full")
        real(tensors, path, what)

    monkeypatch.setattr(ckpt, "_save_tensors", failing)
    with pytest.raises(OSError):
        resume(tmp_path / "run", registry=reg, progress=False, stop_at=3)
    monkeypatch.setattr(ckpt, "_save_tensors", real)
    assert sorted(p.name for p in root.iterdir()) == ["last", "step_0000001", "step_0000002"]
    assert (root / "last").resolve().name == "step_0000002"

    # A process killed mid-write leaves a folder without COMPLETE (as if renamed by hand):
    partial = root / "step_0000003"
    partial.mkdir()
    (partial / "student.safetensors").write_bytes(b"\0" * 10)
    assert "incomplete checkpoint" in ckpt.verify(partial)
    # ... and a complete checkpoint whose file changed after the fact fails its hash.
    step2 = root / "step_0000002" / "student.safetensors"
    data = bytearray(step2.read_bytes())
    data[-1] ^= 0xFF
    step2.write_bytes(bytes(data))
    with pytest.raises(VemkitError, match=r"student.safetensors does not match its hash"):
        ckpt.load(root / "step_0000002")
    path, skipped = ckpt.latest(tmp_path / "run")
    assert path.name == "step_0000001"
    assert len(skipped) == 2

    result = resume(tmp_path / "run", registry=reg, progress=False)
    assert (result.status, result.step) == ("finished", 4)


def test_resume_refuses_a_different_spec(reg, data_root, tmp_path):
    config = base_config(data_root, tmp_path / "run")
    run_engine(make_spec(reg, config), registry=reg, progress=False, stop_at=1)
    other = make_spec(reg, merge(config, {"train": {"batch_size": 1}, "seed": 4}))
    with pytest.raises(VemkitError) as err:
        resume(tmp_path / "run", spec=other, registry=reg, progress=False)
    assert "holds a run of a different spec (changed: seed, train.batch_size)" in str(err.value)
    with pytest.raises(VemkitError, match=r"already holds a run of a different spec"):
        run_engine(other, registry=reg, progress=False)
    with pytest.raises(VemkitError, match=r"different spec \(changed: train.iterations\)"):
        resume(tmp_path / "run", overrides=["train.iterations=9"], registry=reg, progress=False)
    # an edited resolved spec is noticed too
    spec_file = tmp_path / "run" / "spec.resolved.yaml"
    edited = yaml.safe_load(spec_file.read_text())
    edited["train"]["iterations"] = 9
    spec_file.write_text(yaml.safe_dump(edited))
    with pytest.raises(VemkitError, match=r"was modified after the run started"):
        resume(tmp_path / "run", registry=reg, progress=False)


def _vemkit(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vemkit", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# In the fast suite on purpose: ~10-20 s, and it is what the issue asks to prove.
def test_a_run_killed_with_sigkill_resumes_exactly(data_root, tmp_path):
    # The CLI in subprocesses, with the built-in unet (the test arch is not an installed
    # plugin): an uninterrupted run, and a run killed at a random moment after its first
    # checkpoint (possibly while writing one), then resumed.
    config = {
        "vemkit": 1,
        "name": "kill",
        "seed": 1,
        "data": {"train": {"type": "aligned", "root": str(data_root), "size": 32}},
        "teacher": {"arch": {"type": "unet", "ngf": 8, "num_downs": 5}, "mode": "online"},
        "student": {"arch": {"type": "unet", "ngf": 4, "num_downs": 5}},
        "method": {"type": "kd", "recon_weight": 1.0},
        "train": {"iterations": 60, "batch_size": 2, "deterministic": True},
        "output": {"checkpoint_every": 1, "log_every": 5, "sample_every": 0, "keep": 2},
    }
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    paths = {}
    for name in ("whole", "killed"):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(
            yaml.safe_dump({**config, "output": {**config["output"], "dir": str(tmp_path / name)}})
        )
        paths[name] = spec
    whole = _vemkit("run", str(paths["whole"]), env=env)
    killed = _vemkit("run", str(paths["killed"]), env=env)
    last = tmp_path / "killed" / "checkpoints" / "last"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.5))
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    stopped_at = int(os.readlink(last).removeprefix("step_"))
    assert stopped_at < 60
    assert whole.wait(timeout=300) == 0, whole.stdout.read()
    resumed = _vemkit("run", "--resume", str(tmp_path / "killed"), env=env)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "killed")
    assert sorted(a) == ["state", "student", "teacher"]
    for name in ("student", "teacher"):
        assert same_tensors(a[name], b[name]), name
