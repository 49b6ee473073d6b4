"""The training loop: what a run writes, the NaN guard, hooks, precision, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

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
from vemkit.engine import hookspecs, resume
from vemkit.engine import run as run_engine
from vemkit.engine.checkpoint import latest
from vemkit.engine.program import Stage
from vemkit.errors import VemkitError
from vemkit.spec import validate_source
from vemkit.spec_source import read_source
from vemkit.weights import load_weights


@pytest.fixture(scope="module")
def reg():
    return make_registry()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_aligned(root, n=5, split="train")
    make_aligned(root, n=3, split="val")
    return root


@pytest.fixture
def config(data_root, tmp_path):
    return base_config(data_root, tmp_path / "run")


def config_dir(config):
    return Path(config["output"]["dir"])


def lines(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_run_writes_its_directory(reg, config, tmp_path):
    config = merge(
        config,
        {
            "data": {
                "eval": {
                    "type": "aligned",
                    "root": config["data"]["train"]["root"],
                    "split": "val",
                    "size": 16,
                }
            },
            "eval": {"every": 2, "metrics": [{"type": "fake_mae"}], "best": "mae", "samples": 3},
            "output": {"checkpoint_every": 2, "sample_every": 2, "log_every": 2, "keep": 1},
        },
    )
    spec = make_spec(reg, config)
    result = run_engine(spec, registry=reg, progress=False)
    run_dir = tmp_path / "run"
    assert result.status == "finished" and result.step == 4
    records = lines(run_dir)
    train = [r for r in records if "loss/student" in r]
    assert [r["step"] for r in train] == [2, 4]
    assert {"kd.output", "lr/student", "it_per_s", "samples_per_s"} <= set(train[0])
    evals = [r for r in records if "eval/mae" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert result.eval["mae"] == evals[-1]["eval/mae"]
    # linear_decay: constant for half of the 4 iterations, then 1 - (step - 2) / 2
    assert train[0]["lr/student"] == pytest.approx(2e-4 * 0.5 * (1.0 + 1.0))
    assert (run_dir / "samples" / "step_0000002.png").is_file()
    assert (run_dir / "samples" / "step_0000004.png").is_file()

    ck = run_dir / "checkpoints"
    assert (ck / "last").resolve().name == "step_0000004"
    best = (ck / "best").resolve().name
    assert best in {"step_0000002", "step_0000004"}
    kept = sorted(p.name for p in ck.iterdir() if p.name.startswith("step_"))
    assert kept == sorted({"step_0000004", best})  # keep: 1, plus the best
    # the layout `vemkit export` reads: RUN_DIR/spec.resolved.yaml + checkpoints/last/student
    reread, problems = validate_source(read_source(run_dir / "spec.resolved.yaml"), reg=reg)
    assert problems == [] and reread.to_dict() == spec.to_dict()
    student = reg.build("arch", spec.student.arch)
    load_weights(student, ck / "last" / "student.safetensors")
    assert same_tensors(student.state_dict(), result.program.module("student").state_dict())
    assert sorted(p.name for p in (ck / "last").iterdir()) == [
        "COMPLETE",
        "spec.resolved.yaml",
        "state.json",
        "state.safetensors",
        "student.safetensors",
        "teacher.safetensors",
    ]

    with pytest.raises(VemkitError, match=r"already holds a run of this spec: continue it with"):
        run_engine(spec, registry=reg, progress=False)


class NaNAt:
    """Adds a student term that is NaN at the given (0-based) iterations."""

    def __init__(self, bad_steps):
        self.bad = set(bad_steps)
        self.seen = []

    @hookspecs.hookimpl
    def vemkit_phases(self, program, spec):
        def term(state):
            value = state["student.out"].mean() * 0
            return value + float("nan") if state.step in self.bad else value

        program.add_term("student", "test.nan", term)

    @hookspecs.hookimpl
    def vemkit_iteration_end(self, program, state, step, logs):
        self.seen.append((step, "skipped/student" in logs))


def test_a_nan_term_is_skipped_reported_and_survived(reg, config, capsys):
    config["train"]["iterations"] = 3
    spec = make_spec(reg, config)
    probe = NaNAt({1})
    before = {}

    class Snapshot:
        @hookspecs.hookimpl
        def vemkit_iteration_end(self, program, state, step, logs):
            before[step] = {
                k: v.clone()
                for k, v in program.module("student").state_dict().items()
                if k.endswith("weight")
            }

    result = run_engine(spec, registry=reg, progress=False, callbacks=[probe, Snapshot()])
    assert (
        "step 2: phase 'student': non-finite loss in 'test.nan'; step skipped (1 in a row)"
        in capsys.readouterr().err
    )
    assert result.status == "finished"
    assert probe.seen == [(1, False), (2, True), (3, False)]
    assert same_tensors(before[1], before[2])  # the skipped step changed no weight
    assert not same_tensors(before[2], before[3])
    records = lines(config_dir(config))
    assert [r.get("skipped/student", 0) for r in records] == [0, 1.0, 0]
    assert records[-1]["skipped_total/student"] == 1


def test_nan_steps_in_a_row_stop_the_run_naming_phase_and_term(reg, config):
    config = merge(
        config, {"train": {"iterations": 8, "max_bad_steps": 3}, "output": {"checkpoint_every": 1}}
    )
    spec = make_spec(reg, config)
    with pytest.raises(VemkitError) as err:
        run_engine(spec, registry=reg, progress=False, callbacks=[NaNAt({2, 3, 4, 5})])
    message = str(err.value)
    assert "phase 'student' had a non-finite loss 3 iterations in a row" in message
    assert "culprit: 'test.nan'" in message
    assert "step_0000004" in message  # the last good checkpoint, kept
    path, skipped = latest(config_dir(config))
    assert path.name == "step_0000004" and skipped == []


class Counter:
    """A callback with state of its own (saved through vemkit_state_dict)."""

    def __init__(self):
        self.count = 0
        self.total = torch.zeros(2)
        self.restored = None

    @hookspecs.hookimpl
    def vemkit_iteration_end(self, program, state, step, logs):
        self.count += 1
        self.total += state["student.out"].detach().mean()
        logs["counter/count"] = float(self.count)

    @hookspecs.hookimpl
    def vemkit_state_dict(self, program):
        return {"counter.count": self.count, "counter.total": self.total, "counter.t": (1, "a")}

    @hookspecs.hookimpl
    def vemkit_load_state_dict(self, program, state):
        self.restored = state
        self.count = state["counter.count"]
        self.total = state["counter.total"].clone()


def test_component_state_survives_a_resume(reg, config):
    spec = make_spec(reg, merge(config, {"train": {"deterministic": True}}))
    first = Counter()
    result = run_engine(spec, registry=reg, progress=False, stop_at=2, callbacks=[first])
    assert result.status == "stopped" and result.step == 2
    second = Counter()
    result = resume(config_dir(config), registry=reg, progress=False, callbacks=[second])
    assert result.status == "finished" and result.step == 4
    assert second.restored["counter.count"] == 2
    assert second.restored["counter.t"] == (1, "a")
    assert torch.equal(second.restored["counter.total"], first.total)
    assert second.count == 4
    assert [r["counter/count"] for r in lines(config_dir(config))] == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_and_clipping_run(reg, config, precision):
    config = merge(config, {"train": {"precision": precision, "grad_clip": 0.5, "iterations": 2}})
    result = run_engine(make_spec(reg, config), registry=reg, progress=False)
    assert result.status == "finished"
    records = lines(config_dir(config))
    assert all(r["grad_norm/student"] >= 0 for r in records)
    final = weights(config_dir(config) / "checkpoints" / "last" / "student.safetensors")
    assert all(torch.isfinite(t).all() for t in final.values())


class StageAndScore:
    """A pre-training stage (run once, not again on resume) and an evaluation hook."""

    def __init__(self):
        self.stage_runs = 0
        self.ends = []

    @hookspecs.hookimpl
    def vemkit_stages(self, program, spec):
        def shrink(program, context):
            self.stage_runs += 1
            assert context["device"] == program.device
            with torch.no_grad():
                program.module("student").body[0].weight.mul_(0.5)

        return [Stage("shrink", shrink)]

    @hookspecs.hookimpl
    def vemkit_evaluate(self, program, step, run_dir):
        assert not program.module("student").training and not torch.is_grad_enabled()
        return {"custom": float(step)}

    @hookspecs.hookimpl
    def vemkit_run_end(self, program, status, run_dir):
        self.ends.append(status)


def test_stages_run_once_and_components_can_score(reg, config):
    config = merge(config, {"eval": {"every": 2, "best": "custom"}})
    first = StageAndScore()
    result = run_engine(
        make_spec(reg, config), registry=reg, progress=False, stop_at=2, callbacks=[first]
    )
    assert (first.stage_runs, first.ends, result.eval) == (1, ["stopped"], {"custom": 2.0})
    second = StageAndScore()
    result = resume(config_dir(config), registry=reg, progress=False, callbacks=[second])
    assert (second.stage_runs, second.ends, result.eval) == (0, ["finished"], {"custom": 4.0})
    evals = [r for r in lines(config_dir(config)) if "eval/custom" in r]
    assert [(r["step"], r["eval/custom"]) for r in evals] == [(2, 2.0), (4, 4.0)]
    # lower is better unless a metric says otherwise: the best stays at step 2
    assert (config_dir(config) / "checkpoints" / "best").resolve().name == "step_0000002"
