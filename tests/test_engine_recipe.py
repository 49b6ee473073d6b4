"""Recipes of stages: pre-train → step → distil from one spec, resumable at every stage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests._engine_util import (
    base_config,
    make_aligned,
    make_spec,
    merge,
    same_tensors,
    single_thread,  # noqa: F401 - autouse fixture
    weights,
)
from tests._recipe_util import recipe_registry
from vemkit.engine import resume
from vemkit.engine import run as run_engine
from vemkit.errors import SpecError, VemkitError

STAGES = ("01-pretrain", "02-shrink", "03-distil")


@pytest.fixture(scope="module")
def reg():
    return recipe_registry()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_aligned(root, n=5, split="train")
    make_aligned(root, n=3, split="val")
    return root


def recipe_config(data_root: Path, run_dir: Path, **changes) -> dict:
    config = merge(
        base_config(data_root, run_dir),
        {
            "method": {"type": "toy_recipe"},
            "train": {"deterministic": True},
            "output": {"checkpoint_every": 1, "keep": 2},
        },
    )
    return merge(config, changes)


def stage_weights(run_dir: Path, folder: str) -> dict:
    last = run_dir / "stages" / folder / "checkpoints" / "last"
    return {p.stem: weights(p) for p in sorted(last.glob("*.safetensors")) if p.stem != "state"}


def assert_same_result(a: Path, b: Path) -> None:
    for folder in STAGES:
        wa, wb = stage_weights(a, folder), stage_weights(b, folder)
        assert sorted(wa) == ["student", "teacher"], folder
        for name in wa:
            assert same_tensors(wa[name], wb[name]), (folder, name)


def test_a_recipe_runs_every_stage_and_records_the_new_architecture(reg, data_root, tmp_path):
    run_dir = tmp_path / "run"
    result = run_engine(make_spec(reg, recipe_config(data_root, run_dir)), registry=reg)
    assert result.status == "finished"
    index = json.loads((run_dir / "stages.json").read_text())
    assert [(s["name"], s["kind"], s["status"]) for s in index["stages"]] == [
        ("pretrain", "train", "done"),
        ("shrink", "step", "done"),
        ("distil", "train", "done"),
    ]
    # each training stage ran its own budget, with its own curve
    for folder, steps in (("01-pretrain", 3), ("03-distil", 4)):
        log = (run_dir / "stages" / folder / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(x)["step"] for x in log] == list(range(1, steps + 1))
    assert "toy.recon" in log[0] or "toy.kd" in log[0]
    # the step's output: the narrowed student, its architecture as data, its tables
    done = json.loads((run_dir / "stages" / "02-shrink" / "DONE.json").read_text())
    assert done["archs"]["student"]["width"] == 2
    assert (
        (run_dir / "stages" / "02-shrink" / "tables" / "kept.csv")
        .read_text()
        .startswith("layer,before,after")
    )
    student = stage_weights(run_dir, "02-shrink")["student"]
    assert student["body.0.weight"].shape[0] == 2
    # the distil stage builds the narrowed student and starts from the step's weights
    stage_spec = yaml.safe_load(
        (run_dir / "stages" / "03-distil" / "spec.resolved.yaml").read_text()
    )
    assert stage_spec["student"]["arch"]["width"] == 2
    assert stage_spec["train"]["iterations"] == 4
    final = stage_weights(run_dir, "03-distil")["student"]
    assert final["body.0.weight"].shape == (2, 3, 3, 3)
    assert not same_tensors(final, student)


def test_the_recipe_folder_opens_as_its_last_stage(reg, data_root, tmp_path):
    from vemkit.evaluate import resolve

    run_dir = tmp_path / "run"
    run_engine(make_spec(reg, recipe_config(data_root, run_dir)), registry=reg)
    source = resolve(run_dir, registry=reg)
    assert source.spec.student.arch.width == 2
    assert source.run_dir == run_dir / "stages" / "03-distil"
    assert source.weights["student"].endswith("student.safetensors")


@pytest.mark.parametrize("where", ["pretrain", "distil"])
def test_a_recipe_stopped_inside_a_training_stage_resumes_exactly(reg, data_root, tmp_path, where):
    whole = run_engine(make_spec(reg, recipe_config(data_root, tmp_path / "whole")), registry=reg)
    assert whole.status == "finished"
    split = tmp_path / "split"
    first = run_engine(
        make_spec(reg, recipe_config(data_root, split)), registry=reg, stop_at=2, stop_in=where
    )
    assert (first.status, first.step) == ("stopped", 2)
    index = json.loads((split / "stages.json").read_text())
    assert {s["name"]: s["status"] for s in index["stages"]}[where] == "stopped"
    done_before = {
        f: (split / "stages" / f / "DONE.json").stat().st_mtime_ns
        for f in STAGES
        if (split / "stages" / f / "DONE.json").exists()
    }
    second = resume(split, registry=reg)
    assert second.status == "finished"
    assert_same_result(tmp_path / "whole", split)
    # finished stages were not run again
    for f, mtime in done_before.items():
        assert (split / "stages" / f / "DONE.json").stat().st_mtime_ns == mtime, f
    calls = json.loads((split / "stages" / "02-shrink" / "step_calls.json").read_text())
    assert calls == 1


def test_stage_options_are_validated_spec_keys_with_did_you_mean(reg, data_root, tmp_path):
    config = recipe_config(
        data_root, tmp_path / "run", method={"stages": {"pretrian": {"iterations": 2}}}
    )
    with pytest.raises(Exception) as err:
        make_spec(reg, config)
    assert "pretrian" in str(err.value)
    from vemkit.spec import validate_source
    from vemkit.spec_source import parse_text

    source = parse_text(yaml.safe_dump(recipe_config(data_root, tmp_path / "r")), "spec.yaml")
    spec, problems = validate_source(
        source, ["method.stages.distil.iterations=9", "method.stages.shrink.width=3"], reg=reg
    )
    assert not problems
    assert (spec.method.stages.distil.iterations, spec.method.stages.shrink.width) == (9, 3)
    _, problems = validate_source(source, ["method.stages.distill.iterations=9"], reg=reg)
    text = str(SpecError(problems))
    assert "method.stages.distill" in text and "distil" in text


def test_plan_lists_the_stages_their_budgets_and_what_they_change(reg, data_root, tmp_path):
    from vemkit.plan import plan_of, render

    spec = make_spec(reg, recipe_config(data_root, tmp_path / "run"))
    plan = plan_of(spec, registry=reg)
    assert [(s["name"], s.get("iterations")) for s in plan["recipe"]] == [
        ("pretrain", 3),
        ("shrink", None),
        ("distil", 4),
    ]
    assert plan["iterations"] == 7
    text = render(plan)
    assert "1. pretrain" in text and "teacher frozen" in text
    assert "2. shrink" in text and "keep the student's first 2 channels" in text
    assert "replaces the student's architecture" in text
    assert "student: the architecture stage 'shrink' leaves" in text
    assert "toy.recon" in text and "toy.kd" in text


def test_start_from_an_earlier_runs_stage_reruns_only_what_follows(reg, data_root, tmp_path):
    first = tmp_path / "first"
    run_engine(make_spec(reg, recipe_config(data_root, first)), registry=reg)
    second = tmp_path / "second"
    changed = recipe_config(data_root, second, method={"stages": {"distil": {"iterations": 2}}})
    result = run_engine(make_spec(reg, changed), registry=reg, start_from=f"{first}:shrink")
    assert result.status == "finished"
    for folder in ("01-pretrain", "02-shrink"):
        a, b = stage_weights(first, folder), stage_weights(second, folder)
        assert all(same_tensors(a[n], b[n]) for n in a)
    calls = json.loads((second / "stages" / "02-shrink" / "step_calls.json").read_text())
    assert calls == 1  # copied, not recomputed
    log = (second / "stages" / "03-distil" / "metrics.jsonl").read_text().splitlines()
    assert len(log) == 2
    # an earlier stage that would have run differently is refused
    other = recipe_config(
        data_root, tmp_path / "third", method={"stages": {"pretrain": {"iterations": 2}}}
    )
    with pytest.raises(VemkitError, match=r"ran with other settings.*pretrain\.iterations"):
        run_engine(make_spec(reg, other), registry=reg, start_from=f"{first}:shrink")
    with pytest.raises(VemkitError, match=r"no stage 'srink'.*did you mean 'shrink'"):
        run_engine(
            make_spec(reg, recipe_config(data_root, tmp_path / "fourth")),
            registry=reg,
            start_from=f"{first}:srink",
        )


def test_a_stage_folder_cannot_be_resumed_alone(reg, data_root, tmp_path):
    run_dir = tmp_path / "run"
    run_engine(make_spec(reg, recipe_config(data_root, run_dir)), registry=reg)
    with pytest.raises(VemkitError, match="continue the whole recipe"):
        resume(run_dir / "stages" / "03-distil", registry=reg)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    import torch
    torch.set_num_threads(1)
    import yaml
    from tests._recipe_util import recipe_registry
    from vemkit.engine import resume, run
    from vemkit.spec_model import spec_model

    reg = recipe_registry()
    if sys.argv[1] == "resume":
        resume(sys.argv[2], registry=reg, progress=False)
    else:
        config = yaml.safe_load(open(sys.argv[2]))
        run(spec_model(reg).model_validate(config), registry=reg, progress=False)
    """
)


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "recipe_run.py"
    path.write_text(KILL_SCRIPT.format(root=str(Path(__file__).resolve().parents[1])))
    return path


@pytest.fixture(scope="module")
def uninterrupted(reg, data_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    assert run_engine(make_spec(reg, recipe_config(data_root, run_dir)), registry=reg).status == (
        "finished"
    )
    return run_dir


# In the fast suite on purpose (a few seconds each): a real SIGKILL inside each kind of stage.
@pytest.mark.parametrize("kill_at", ["pretrain:2", "shrink:0", "distil:3"])
def test_a_recipe_killed_inside_any_stage_resumes_to_the_same_weights(
    data_root, tmp_path, kill_at, uninterrupted
):
    script = _script(tmp_path)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    env.pop("VEMKIT_TEST_KILL_AT", None)
    spec = tmp_path / "killed.yaml"
    spec.write_text(yaml.safe_dump(recipe_config(data_root, tmp_path / "killed")))
    killed = subprocess.run(
        [sys.executable, str(script), "run", str(spec)],
        env={**env, "VEMKIT_TEST_KILL_AT": kill_at},
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    resumed = subprocess.run(
        [sys.executable, str(script), "resume", str(tmp_path / "killed")],
        env=env,
        capture_output=True,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert_same_result(uninterrupted, tmp_path / "killed")


def test_the_report_shows_each_stage_and_what_a_step_changed(reg, data_root, tmp_path):
    from vemkit.report import write_report

    run_dir = tmp_path / "run"
    run_engine(make_spec(reg, recipe_config(data_root, run_dir)), registry=reg)
    written = write_report([run_dir])
    assert written["md"] == run_dir / "report.md"
    text = written["md"].read_text()
    assert "## Stages" in text
    assert "#### 1. pretrain (train)" in text and "#### 3. distil (train)" in text
    assert "| body.0 | 4 | 2 |" in text  # channels before and after the step
    assert "Table `kept`" in text
    assert (run_dir / "stage_run_01.png").is_file() and (run_dir / "stage_run_03.png").is_file()
    assert "<h2>Stages</h2>" in written["html"].read_text()


def test_plan_draws_a_recipe_as_a_chain_of_stages(reg, data_root, tmp_path):
    from vemkit.plan import plan_of, render

    spec = make_spec(reg, recipe_config(data_root, tmp_path / "run"))
    text = render(plan_of(spec, registry=reg), "mermaid")
    assert text.splitlines()[0] == "flowchart LR"
    assert "stage_1_pretrain -->" in text
    assert "stage_2_shrink -- student --> stage_3_distil" in text


def test_a_held_out_part_of_the_training_split_is_seeded_and_disjoint():
    from vemkit.engine.data import holdout_indices

    rest, held = holdout_indices(10, 0.5, seed=1)
    assert len(held) == 5 and not set(rest) & set(held) and sorted(rest + held) == list(range(10))
    assert holdout_indices(10, 0.5, seed=1) == (rest, held)
    assert holdout_indices(10, 0.5, seed=2) != (rest, held)
    assert len(holdout_indices(7, 0.3, seed=0)[1]) == 2


def test_the_mi_term_joins_only_the_stage_that_distils_unless_a_stage_asks(
    reg, data_root, tmp_path
):
    from vemkit.plan import plan_of, render

    config = recipe_config(data_root, tmp_path / "run", mi={"type": "vid", "weight": 0.5})
    plan = plan_of(make_spec(reg, config), registry=reg)
    terms = {
        s["name"]: {t["name"] for p in s["plan"]["phases"] for t in p["terms"]}
        for s in plan["recipe"]
        if s["kind"] == "train"
    }
    assert not any(t.startswith("mi.") for t in terms["pretrain"])
    assert any(t.startswith("mi.") for t in terms["distil"])
    text = render(plan)
    assert "distil       (train, 4 iterations, teacher frozen, with mi vid)" in text
    assert "mi:     none in this stage (vid joins another stage)" in text
    config = merge(config, {"method": {"stages": {"pretrain": {"mi": True}}}})
    plan = plan_of(make_spec(reg, config), registry=reg)
    pre = plan["recipe"][0]["plan"]["phases"]
    assert any(t["name"].startswith("mi.") for p in pre for t in p["terms"])


def test_a_sweep_knows_a_finished_recipe_cell_and_where_its_result_lives(reg, data_root, tmp_path):
    from vemkit.sweep import Cell, cell_state, result_dir

    run_dir = tmp_path / "cell"
    spec = make_spec(reg, recipe_config(data_root, run_dir))
    cell = Cell(index=1, arms=(), seed=3, run_dir=run_dir, overrides=[], spec=spec)
    assert cell_state(cell) == "new"
    run_engine(spec, registry=reg, stop_at=1, stop_in="distil")
    assert cell_state(cell) == "partial"
    resume(run_dir, registry=reg)
    assert cell_state(cell) == "finished"
    assert result_dir(run_dir) == run_dir / "stages" / "03-distil"


def test_a_partial_stage_override_keeps_the_stages_other_defaults(reg, data_root, tmp_path):
    # ToyStages.pretrain defaults to TrainingStage(iterations=3, teacher="frozen")
    config = recipe_config(data_root, tmp_path / "run", method={"stages": {"pretrain": {}}})
    config["method"]["stages"]["pretrain"] = {"iterations": 5}
    pretrain = make_spec(reg, config).method.stages.pretrain
    assert (pretrain.iterations, pretrain.teacher) == (5, "frozen")


def test_a_stage_sets_its_batch_size_and_hands_on_its_best_checkpoint(reg, data_root, tmp_path):
    config = recipe_config(
        data_root,
        tmp_path / "run",
        method={"stages": {"pretrain": {"batch_size": 1, "output": "best", "eval_every": 1}}},
        eval={"best": "mae", "metrics": [{"type": "fake_mae"}]},
    )
    config["data"]["eval"] = {**config["data"]["train"], "split": "val"}
    run_dir = tmp_path / "run"
    run_engine(make_spec(reg, config), registry=reg)
    stage = run_dir / "stages" / "01-pretrain"
    assert yaml.safe_load((stage / "spec.resolved.yaml").read_text())["train"]["batch_size"] == 1
    done = json.loads((stage / "DONE.json").read_text())
    assert done["checkpoint"] == (stage / "checkpoints" / "best").resolve().name


def test_an_earlier_stage_without_the_mi_term_serves_a_run_with_another_mi(
    reg, data_root, tmp_path
):
    first = tmp_path / "first"
    run_engine(make_spec(reg, recipe_config(data_root, first)), registry=reg)
    second = recipe_config(data_root, tmp_path / "second", mi={"type": "vid", "weight": 0.5})
    result = run_engine(make_spec(reg, second), registry=reg, start_from=f"{first}:shrink")
    assert result.status == "finished"


def test_until_stops_after_a_stage_and_resume_finishes_the_same_run(reg, data_root, tmp_path):
    whole = tmp_path / "whole"
    run_engine(make_spec(reg, recipe_config(data_root, whole)), registry=reg)
    part = tmp_path / "part"
    spec = make_spec(reg, recipe_config(data_root, part))
    result = run_engine(spec, registry=reg, until="shrink")
    assert (result.status, result.stage) == ("stopped", "shrink")
    index = json.loads((part / "stages.json").read_text())
    assert [s["status"] for s in index["stages"]] == ["done", "done", "pending"]
    assert not (part / "stages" / "03-distil").exists()
    # --until on a run that has finished the stage stops again; without it, the rest runs
    again = resume(part, registry=reg, until="shrink")
    assert (again.status, again.stage) == ("stopped", "shrink")
    assert resume(part, registry=reg).status == "finished"
    assert_same_result(whole, part)
    with pytest.raises(VemkitError, match=r"--until: this spec's recipe has no stage 'srink'"):
        run_engine(
            make_spec(reg, recipe_config(data_root, tmp_path / "x")), registry=reg, until="srink"
        )
    assert not (tmp_path / "x").exists()  # refused before anything is written
    with pytest.raises(VemkitError, match=r"--until shrink: method 'kd' is one training loop"):
        run_engine(make_spec(reg, base_config(data_root, tmp_path / "y")), until="shrink")
    assert not (tmp_path / "y").exists()


def test_reseed_takes_stages_that_ran_with_another_seed_and_says_so(reg, data_root, tmp_path):
    first = tmp_path / "first"
    run_engine(make_spec(reg, recipe_config(data_root, first)), registry=reg, until="shrink")
    seeded = recipe_config(data_root, tmp_path / "second", seed=1)
    with pytest.raises(VemkitError, match=r"changed: seed\); .*add --reseed"):
        run_engine(make_spec(reg, seeded), registry=reg, start_from=f"{first}:shrink")
    second = tmp_path / "second"
    run_engine(make_spec(reg, seeded), registry=reg, start_from=f"{first}:shrink", reseed=True)
    for folder in ("01-pretrain", "02-shrink"):
        a, b = stage_weights(first, folder), stage_weights(second, folder)
        assert all(same_tensors(a[n], b[n]) for n in a)
    taken = json.loads((second / "from.json").read_text())
    assert taken == {"run": str(first), "stage": "shrink", "stages": ["pretrain", "shrink"],
                     "seed": 3}  # fmt: skip
    # the distillation ran with seed 1: not what seed 3 gives after the same stages
    zero = tmp_path / "zero"
    run_engine(
        make_spec(reg, recipe_config(data_root, zero)), registry=reg, start_from=f"{first}:shrink"
    )
    a, b = stage_weights(zero, "03-distil"), stage_weights(second, "03-distil")
    assert not same_tensors(a["student"], b["student"])
    # --reseed does not excuse another setting
    other = recipe_config(
        data_root, tmp_path / "third", seed=2, method={"stages": {"pretrain": {"iterations": 2}}}
    )
    with pytest.raises(VemkitError, match=r"changed: method\.stages\.pretrain\.iterations"):
        run_engine(make_spec(reg, other), registry=reg, start_from=f"{first}:shrink", reseed=True)


def test_a_sweep_shares_the_first_stages_and_seeds_only_the_rest(reg, data_root, tmp_path):
    from tests.test_sweep import in_process
    from vemkit import registry
    from vemkit import sweep as sweeps

    config = recipe_config(data_root, tmp_path / "unused", eval={"metrics": [{"type": "fake_mae"}]})
    config["data"]["eval"] = {**config["data"]["train"], "split": "val"}
    spec_path = tmp_path / "recipe.yaml"
    spec_path.write_text(yaml.safe_dump({"vemkit": 1, **config}), encoding="utf-8")
    shared = tmp_path / "sweep" / "shared"
    axes = [sweeps.parse_grid("mi.type=none,vid")]
    kwargs = {"out": tmp_path / "sweep", "plugins": ["tests._recipe_util"], "registry": reg}
    plan = sweeps.plan(spec_path, axes, [3, 4], start_from=f"{shared}:shrink", **kwargs)
    assert plan.cells[0].spec.seed == 3 and plan.shared.seed == 3
    argv = plan.run_args(plan.cells[1])
    assert argv[-3:] == ["--from", f"{shared}:shrink", "--reseed"]
    assert plan.run_args(plan.shared)[-2:] == ["--until", "shrink"]
    said: list[str] = []
    try:
        sweeps.run_sweep(plan, runner=in_process, log=said.append)
    finally:  # the in-process cells' -p must not reach the tests after this one
        registry.set_explicit_plugins([])
    assert any("shared stages up to 'shrink'" in line for line in said)
    assert (tmp_path / "sweep" / "shared.txt").read_text().count("--until shrink") == 1
    assert json.loads((shared / "stages" / "02-shrink" / "step_calls.json").read_text()) == 1
    finals = {}
    for cell in plan.cells:
        for folder in ("01-pretrain", "02-shrink"):
            a, b = stage_weights(shared, folder), stage_weights(cell.run_dir, folder)
            assert all(same_tensors(a[n], b[n]) for n in a), (cell.name, folder)
        finals[cell.name] = stage_weights(cell.run_dir, "03-distil")["student"]
    # the seed changes the distillation only; the same seed after the same stages is one run
    assert not same_tensors(finals["mi.type=none/seed3"], finals["mi.type=none/seed4"])
    # an arm that would change a shared stage is refused before anything runs
    bad = [sweeps.parse_grid("method.stages.pretrain.iterations=2,3")]
    with pytest.raises(VemkitError, match=r"iterations=2 changes method\.stages\.pretrain"):
        sweeps.plan(spec_path, bad, [3], start_from=f"{shared}:shrink", **kwargs)
    with pytest.raises(VemkitError, match="last stage"):
        sweeps.plan(spec_path, axes, [3], start_from=f"{shared}:distil", **kwargs)
