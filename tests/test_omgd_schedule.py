"""OMGD's CycleGAN best-teacher schedule (``method.best_teacher``): which phases run in which
iteration, which G_A the student learns from, the selection rule, exact resume, and the checks
made before training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests._engine_util import (
    make_registry,
    make_spec,
    make_unaligned,
    merge,
    same_tensors,
    single_thread,  # noqa: F401 - autouse fixture
    weights,
)
from vemkit.engine import hookspecs, resume
from vemkit.engine import run as run_engine
from vemkit.engine.program import compile
from vemkit.errors import VemkitError
from vemkit.plan import render
from vemkit_plugins.methods.omgd_schedule import BestTeacherSchedule
from vemkit_plugins.methods.options import BestTeacherOptions

SIZE = 32
SCHEDULE = {
    "teacher_iterations": 2,
    "student_iterations": 3,
    "metric": {"type": "fake_mae"},
    "score": "mae",
}


@pytest.fixture(scope="module")
def reg():
    return make_registry()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_unaligned(tmp_path_factory.mktemp("unaligned"), size=SIZE, seed=11)


def config(root: Path, run_dir: Path, **schedule: Any) -> dict:
    """OMGD CycleGAN at 32 px (Mobile ResNet pair ngf 4, student ngf 2) with the schedule."""
    return {
        "name": "omgd-best-teacher",
        "seed": 5,
        "task": "unpaired",
        "data": {
            "train": {"type": "unaligned", "root": str(root), "size": SIZE},
            "eval": {"type": "unaligned", "root": str(root), "size": SIZE, "flip": False},
        },
        "teacher": {"arch": {"type": "mobile_resnet", "ngf": 4}, "mode": "online"},
        "student": {"arch": {"type": "mobile_resnet", "ngf": 2}},
        "method": {
            "type": "omgd",
            "perceptual": "random_vgg16",
            "deep_teacher": None,
            "discriminator": {"type": "patchgan", "ndf": 4, "norm": "instance"},
            "pool_size": 2,
            "best_teacher": {**SCHEDULE, **schedule},
        },
        "train": {"iterations": 7, "batch_size": 1},
        "eval": {"every": 0, "samples": 0},
        "output": {"dir": str(run_dir), "checkpoint_every": 0, "sample_every": 0, "log_every": 1},
    }


def test_teacher_and_student_blocks_alternate(reg, root, tmp_path):
    program = compile(make_spec(reg, config(root, tmp_path)), registry=reg)
    ran = {
        phase.name: [step for step in range(10) if program.runs(phase, step)]
        for phase in program.phases
    }
    assert ran == {
        "teacher": [0, 1, 5, 6],
        "discriminator": [0, 1, 5, 6],
        "student": [2, 3, 4, 7, 8, 9],
    }
    text = render(program.describe())
    assert "schedule (method omgd): teacher and discriminator phases for 2 iterations" in text


def test_energy_phase_follows_the_student(reg, root, tmp_path):
    vem = {
        "type": "vem",
        "positive": "teacher",
        "energy": {"type": "conv_sn", "width": 4, "blocks": 2, "downsample": 0},
        "sampler": {"type": "langevin", "steps": 2},
    }
    program = compile(make_spec(reg, {**config(root, tmp_path), "mi": vem}), registry=reg)
    energy = program.phase("energy")
    assert [s for s in range(7) if program.runs(energy, s)] == [2, 3, 4]


class Recorder:
    """Run plugin: at the start of every iteration, G_A's weights and the schedule's set-aside
    latest G_A."""

    def __init__(self) -> None:
        self.teacher: list[dict[str, torch.Tensor]] = []
        self.latest: list[dict[str, torch.Tensor] | None] = []

    @hookspecs.hookimpl
    def vemkit_iteration_start(self, program, state, step):
        module = program.module("teacher")
        self.teacher.append({k: v.clone() for k, v in module.state_dict().items()})
        self.latest.append(program.components["method"].schedule.latest_weights)


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_student_learns_from_the_best_teacher_then_the_latest_comes_back(reg, root, tmp_path):
    recorder = Recorder()
    spec = make_spec(reg, config(root, tmp_path / "run", score_every=1))
    run_engine(spec, registry=reg, progress=False, callbacks=[recorder])
    log = rows(tmp_path / "run")
    # Teacher terms in iterations 1-2 and 6-7, student terms in 3-5 (1-based steps).
    assert ["omgd.cycle.A" in r for r in log] == [True, True, False, False, False, True, True]
    assert ["omgd.ssim" in r for r in log] == [False, False, True, True, True, False, False]
    # Scored after steps 1 and 6 (score_every) and 2 and 7 (ends of the teacher blocks), both
    # sides (rule either).
    assert [r["step"] for r in log if "teacher/mae.A" in r] == [1, 2, 6, 7]
    assert all("teacher/mae.B" in r for r in log if "teacher/mae.A" in r)
    assert log[0]["teacher/best_updated"] == 1.0  # the first score always counts

    teacher, latest = recorder.teacher, recorder.latest
    # The best G_A stands in during the student block (iterations 2-4, 0-based) and does not
    # train: it is the G_A of the best score, after 1 update (scored at step 1) or 2.
    best_after = 2 if log[1]["teacher/best_updated"] else 1
    assert same_tensors(teacher[2], teacher[3]) and same_tensors(teacher[3], teacher[4])
    assert latest[2] is not None and same_tensors(latest[2], latest[4])
    if best_after == 1:
        assert same_tensors(teacher[2], teacher[1])
    else:
        assert same_tensors(teacher[2], latest[2])
    # Then the latest G_A (after its 2 updates) is back and the teachers train on from it.
    assert latest[5] is None and latest[0] is None
    assert same_tensors(teacher[5], latest[2])
    assert not same_tensors(teacher[6], teacher[5])


def test_either_rule_keeps_g_a_when_only_g_b_improves():
    class Metric:
        higher_is_better = {"fid": False}

    class Program:
        def __init__(self, scores: list[float]) -> None:
            self.teacher = nn.Linear(2, 2)
            self.scores = iter(scores)

        def module(self, name: str) -> nn.Module:
            return self.teacher

        def build(self, kind: str, config: Any) -> Metric:
            return Metric()

        def score(self, fake, metrics, real):
            return {"fid": next(self.scores)}

    def run(rule: str, scores: list[float]) -> list[bool]:
        options = BestTeacherOptions(teacher_iterations=1, student_iterations=1, rule=rule)
        schedule = BestTeacherSchedule(options)
        program = Program(scores)
        kept = []
        for _ in range(len(scores) // (2 if rule == "either" else 1)):
            with torch.no_grad():
                program.teacher.weight.add_(1.0)
            kept.append(schedule.score(program, {}))
        return kept

    # A: 50 then 60 (worse); B: 40 then 30 (better): OMGD saves G_A anyway.
    assert run("either", [50.0, 40.0, 60.0, 30.0]) == [True, True]
    assert run("forward", [50.0, 60.0]) == [True, False]
    # NaN scores never count as an improvement.
    assert run("forward", [float("nan"), 70.0]) == [False, True]


def test_a_run_stopped_inside_a_student_block_resumes_exactly(reg, root, tmp_path):
    def spec(name: str):
        c = merge(config(root, tmp_path / name), {"train": {"deterministic": True}})
        return make_spec(reg, c)

    run_engine(spec("whole"), registry=reg, progress=False)
    run_engine(spec("split"), registry=reg, progress=False, stop_at=3)
    resume(tmp_path / "split", registry=reg, progress=False)
    for name in ("student", "teacher", "teacher_B", "discriminator_A", "state"):
        a = weights(tmp_path / "whole" / "checkpoints" / "last" / f"{name}.safetensors")
        b = weights(tmp_path / "split" / "checkpoints" / "last" / f"{name}.safetensors")
        assert same_tensors(a, b), name


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"task": "paired"}, "method.best_teacher: the best-teacher schedule is OMGD's CycleGAN"),
        ({"method": {"n_dis": 2}}, "method.n_dis: with best_teacher"),
        ({"data": {"eval": None}}, "method.best_teacher: the teachers are scored on data.eval"),
    ],
)
def test_impossible_schedules_are_refused_before_training(reg, root, tmp_path, change, says):
    c = merge(config(root, tmp_path), change)
    if change.get("task") == "paired":
        c["data"] = {"train": {"type": "aligned", "root": str(root), "size": SIZE}}
        c["teacher"]["arch"] = {"type": "unet", "ngf": 4, "num_downs": 5}
        c["student"]["arch"] = {"type": "unet", "ngf": 2, "num_downs": 5}
        c["method"]["discriminator"] = None
    with pytest.raises(VemkitError) as info:
        compile(make_spec(reg, c), registry=reg)
    assert says in str(info.value)
