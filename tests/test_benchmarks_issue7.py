"""The MI ablation and the throughput benchmark run end to end at their smallest settings.

No timing is asserted (a benchmark is not a test: STYLE.md); the structure of the JSON, the
finiteness of its numbers, the resumption of the ablation and the scaling of the paper specs
are.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import ablation, throughput
from vemkit.spec import load_spec

# Tiny OMGD pix2pix at 32 px: U-Nets of 5 levels, a narrow shared discriminator, VGG-shaped
# random perceptual features (the Inception substitute needs at least 43 px).
TINY_PIX2PIX = [
    "teacher.arch.ngf=8",
    "student.arch.ngf=4",
    "method.deep_teacher.ngf=4",
    "method.perceptual=random_vgg16",
    "method.discriminator={type: omgd_patchgan, ndf: 8}",
]


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _write_aligned(root: Path, split: str, n: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    (root / split).mkdir(parents=True)
    for i in range(n):
        pair = rng.integers(0, 256, size=(size, 2 * size, 3), dtype=np.uint8)
        Image.fromarray(pair).save(root / split / f"{i:03d}.png")


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _in_process(args: list[str], log: Path) -> int:
    """The sweep's runner for tests: ``vemkit ARGS`` in this process (no process start-up)."""
    import contextlib

    from vemkit import cli

    with (
        open(log, "a", encoding="utf-8") as f,
        contextlib.redirect_stdout(f),
        contextlib.redirect_stderr(f),
    ):
        return cli.main(args)


@pytest.mark.slow  # a teacher, 4 cells and 4 FID evaluations: about a minute here
def test_ablation_sweeps_trains_the_teacher_once_and_resumes(tmp_path, capsys):
    data = tmp_path / "e2s"
    _write_aligned(data, "train", 8, 32, seed=0)
    _write_aligned(data, "test", 4, 32, seed=1)
    out = tmp_path / "ablation.json"
    runs = tmp_path / "runs"
    sets = [
        f"data.train.root={data}",
        f"data.eval.root={data}",
        "data.train.size=32",
        "data.eval.size=32",
        "teacher.arch.num_downs=5",
        "student.arch.num_downs=5",
        "method.deep_teacher.num_downs=5",
        *TINY_PIX2PIX,
    ]
    argv = [
        "--tasks", "edges2shoes-fmnist",
        "--arms", "none", "vem-t1",
        "--seeds", "0", "1",
        "--iterations", "2",
        "--fid-samples", "4",
        *[x for s in sets for x in ("--set", s)],
        "--teacher-set", "train.iterations=2",
        "--mi-set", "vem-t1", "mi.energy.width=4",
        "--runs", str(runs),
        "--output", str(out),
        "--quiet",
    ]  # fmt: skip
    assert ablation.main(argv, runner=_in_process) == 0
    printed = capsys.readouterr().out
    assert "**OMGD (Ren et al., ICCV 2021), edges2shoes-fmnist**" in printed
    assert "| fid ↓ | vem-t1 | none | 2 |" in printed
    result = json.loads(out.read_text())
    assert {"cpu", "cores", "torch", "threads"} <= set(result["machine"])
    assert len(result["load_before"]) == 3 and _finite(result["wall_seconds"])
    assert result["budget"]["iterations"] == 2 and result["budget"]["fid_samples"] == 4
    assert result["arms"]["vem-t1"] == [*ablation.ARMS["vem-t1"]]
    assert [(c["arm"], c["seed"]) for c in result["cells"]] == [
        ("none", 0), ("none", 1), ("vem-t1", 0), ("vem-t1", 1)
    ]  # fmt: skip
    for cell in result["cells"]:
        assert cell["iterations"] == 2 and cell["eval_items"] == 4
        assert {"fid", "kid_mean", "psnr", "ssim"} <= set(cell["metrics"])
        assert all(_finite(cell["metrics"][k]) for k in ("fid", "kid_mean", "psnr", "ssim"))
        assert _finite(cell["train_seconds"]) and 0 < cell["train_seconds"] < result["wall_seconds"]
    # The teacher was trained once, in its own folder, and every cell distils from its weights.
    teacher = runs / "teachers" / "edges2shoes-fmnist" / "teacher" / "seed0"
    assert (teacher / "checkpoints" / "last" / "teacher.safetensors").is_file()
    spec = load_spec(Path(result["cells"][3]["run_dir"]) / "spec.resolved.yaml")
    assert spec.teacher.mode == "frozen" and spec.mi.sampler.noise_std == "auto"
    assert spec.teacher.checkpoint == str(teacher / "checkpoints/last/teacher.safetensors")
    assert spec.method.deep_teacher_checkpoint.endswith("last/deep_teacher.safetensors")
    by = {(c["arm"], c["seed"]): c["metrics"] for c in result["cells"]}
    fid = next(r for r in result["statistics"] if r["metric"] == "fid")
    assert fid["config"] == "vem-t1" and fid["reference"] == "none" and fid["n"] == 2
    assert fid["differences"] == pytest.approx(
        [by[("vem-t1", s)]["fid"] - by[("none", s)]["fid"] for s in (0, 1)]
    )
    report = Path(result["reports"]["omgd/edges2shoes-fmnist"])
    assert report.is_file() and "Paired differences" in report.read_text()

    # The same command again trains and evaluates nothing: the same scores.
    mtime = (teacher / "run.json").stat().st_mtime
    assert ablation.main([*argv[:-1]], runner=_in_process) == 0
    said = capsys.readouterr().err
    assert "1/1 cell(s) already finished" in said and "4/4 cell(s) already finished" in said
    assert "4/4 evaluation(s) current: reused" in said and "trained" not in said
    assert (teacher / "run.json").stat().st_mtime == mtime
    again = json.loads(out.read_text())
    assert [c["metrics"] for c in again["cells"]] == [c["metrics"] for c in result["cells"]]
    # The cells' training times come from their logs, not from this short invocation.
    assert [c["train_seconds"] for c in again["cells"]] == [
        c["train_seconds"] for c in result["cells"]
    ]


def test_a_terminated_ablation_exits_143_and_restores_the_handler(tmp_path, capsys):
    # SIGTERM (a scheduler's time limit, `kill`) while a cell trains: the benchmark stops like
    # `vemkit sweep` does (the cells run in sessions of their own: killed outright, it would
    # leave them running) and says how to continue.
    import os
    import signal
    import time

    data = tmp_path / "e2s"
    _write_aligned(data, "train", 2, 32, seed=0)
    _write_aligned(data, "test", 2, 32, seed=1)
    started: list[list[str]] = []

    def terminated_while_training(args: list[str], log: Path) -> int:
        started.append(args)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at the next bytecode: never reached
        return 0

    before = signal.getsignal(signal.SIGTERM)
    argv = [
        "--tasks", "edges2shoes-fmnist", "--arms", "none", "--seeds", "0",
        "--set", f"data.train.root={data}", "--set", f"data.eval.root={data}",
        "--runs", str(tmp_path / "runs"), "--output", str(tmp_path / "a.json"), "--quiet",
    ]  # fmt: skip
    assert ablation.main(argv, runner=terminated_while_training) == 128 + signal.SIGTERM
    assert len(started) == 1 and started[0][0] == "run"  # the teacher's run, then nothing
    assert "terminated: run the same command again" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
    assert not (tmp_path / "a.json").exists()


def test_ablation_rejects_an_override_for_an_unknown_arm():
    with pytest.raises(SystemExit):
        ablation.parse_args(["--mi-set", "vdi", "mi.weight=0.2"])


def test_every_method_has_a_spec_per_task_and_arms_that_validate():
    from vemkit import sweep as sweeps

    checked = set()
    for name, method in ablation.METHODS.items():
        arms = [sweeps.Arm(a, ablation.arm_overrides(name, a)) for a in ablation.ARMS]
        assert method.settings and set(method.settings) <= set(ablation.SETTINGS)
        for setting in method.settings:
            for task in method.tasks:
                path = ablation._path(ablation.SETTINGS[setting].spec, ablation.TASKS[task], name)
                plan = sweeps.plan(path, [sweeps.Axis("arm", tuple(arms))], [0])
                types = [c.spec.mi.type for c in plan.cells]
                assert types == ["none", "vid", "crd", "vem", "vem", "vem"]
                assert plan.cells[4].spec.mi.sampler.noise_std == "auto"
                assert plan.cells[5].spec.mi.sampler.init == "marginal"
                base = plan.cells[0].spec
                if method.shared_teacher:
                    # cpu: the shared pre-trained teacher, frozen; gpu: OMGD's online teachers
                    assert base.teacher.mode == ("frozen" if setting == "cpu" else "online")
                else:
                    # An independent cell: its recipe trains its teacher, loads no other run's.
                    assert base.teacher.checkpoint is None
                    assert getattr(base.method, "discriminator_checkpoint", None) is None
                # The key --iterations sets exists in the spec (a typo would add nothing).
                node = base.model_dump()
                for part in method.iterations_key.split("."):
                    node = node[part]
                assert isinstance(node, int) and node > 0
                checked.add((name, setting, task))
    assert ("omgd", "gpu", "emoji") in checked and ("cagc", "cpu", "fmnist32") in checked
    assert len(checked) == 8  # omgd: 2 tasks x 2 settings; the recipes: one task, cpu


def test_unconditional_tasks_are_scored_by_fid_only():
    fid = {"type": "fid", "num_samples": 64}
    assert ablation.metric_configs(64, ablation.TASKS["fmnist32"]) == [fid]
    assert ablation.metric_configs(64, ablation.TASKS["emoji-twitter"]) == [fid]
    assert ablation.metric_configs(64, ablation.TASKS["emoji"]) == [
        fid, {"type": "psnr"}, {"type": "ssim"}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "task", "key"),
    [
        ("gcc", "emoji-twitter", "method.stages.distil.iterations"),
        ("cat", "emoji", "method.stages.student.iterations"),
        ("gan_compression", "emoji", "method.stages.finetune.iterations"),
        ("cagc", "fmnist32", "method.stages.retrain.iterations"),
    ],
)
def test_dry_run_plans_the_cells_of_a_recipe_method(tmp_path, capsys, method, task, key):
    runs = tmp_path / "runs"
    argv = ["--methods", method, "--arms", "none", "crd", "vem", "--seeds", "0", "1",
            "--iterations", "7", "--dry-run", "--runs", str(runs), "--quiet"]  # fmt: skip
    assert ablation.main(argv) == 0
    assert "6 cells = 3 arm × 2 seeds; reference arm: none" in capsys.readouterr().out
    # Each method sweeps its own task only, and trains no shared teacher.
    assert sorted(p.name for p in runs.iterdir()) == [method]
    assert [p.name for p in (runs / method).iterdir()] == [task]
    plan = json.loads((runs / method / task / "cells.json").read_text())
    assert plan["overrides"] == ["train.device=cpu", f"{key}=7"]
    unconditional = ablation.TASKS[task].metrics == ("fid",)
    assert [m["type"] for m in plan["evaluation"]["metrics"]] == (
        ["fid"] if unconditional else ["fid", "psnr", "ssim"]
    )
    crd = next(a for a in plan["axes"][0]["arms"] if a["name"] == "crd")
    assert ("mi.negatives=batch" in crd["overrides"]) == unconditional
    assert [(c["config"], c["seed"]) for c in plan["cells"]] == [
        ("none", 0), ("none", 1), ("crd", 0), ("crd", 1), ("vem", 0), ("vem", 1)
    ]  # fmt: skip
    assert not [o for c in plan["cells"] for o in c["overrides"] if "checkpoint" in o]
    # The stages before the distillation are trained once (first seed) and taken by every cell.
    stage = ablation.METHODS[method].shared_stages
    shared = runs / method / task / "shared"
    assert plan["shared"]["run_dir"] == str(shared) and plan["shared"]["seed"] == 0
    assert plan["shared"]["command"][-2:] == ["--until", stage]
    assert all(c["command"][-3:] == ["--from", f"{shared}:{stage}", "--reseed"]
               for c in plan["cells"])  # fmt: skip


def test_ablation_says_which_methods_and_tasks_go_together(tmp_path, capsys):
    # The recipe methods have no gpu-setting specs: a clear error, and not in the default.
    with pytest.raises(SystemExit):
        ablation.parse_args(["--setting", "gpu", "--methods", "cat"])
    assert "--methods cat: no gpu setting" in capsys.readouterr().err
    assert ablation.parse_args(["--setting", "gpu"]).methods == ["omgd"]
    assert ablation.parse_args([]).methods == ["omgd", "gcc", "cat", "gan_compression", "cagc"]
    assert ablation.parse_args(["--tasks", "emoji"]).methods == ["omgd", "cat", "gan_compression"]
    with pytest.raises(SystemExit):
        ablation.parse_args(["--setting", "gpu", "--tasks", "fmnist32"])
    # Given tasks: each method runs those it has; one that has none of them is an error.
    assert ablation.pairs(["omgd", "cat"], ["emoji"]) == [("omgd", "emoji"), ("cat", "emoji")]
    argv = ["--methods", "cat", "--tasks", "edges2shoes-fmnist", "--dry-run",
            "--runs", str(tmp_path), "--quiet"]  # fmt: skip
    assert ablation.main(argv) != 0
    assert "method cat runs none of them (its tasks: emoji)" in capsys.readouterr().err


def test_scale_overrides_shrink_the_paper_setting():
    spec = load_spec(throughput.REPO / throughput.SETTINGS["pix2pix"].specs["vem"])
    assert throughput.scale_overrides(spec, 256) == []
    # 256 → 32 is three halvings: U-Nets 8 → 5 levels, energy 7 → 4 blocks, crop 32 of 36.
    assert throughput.scale_overrides(spec, 32) == [
        "data.train.size=32",
        "data.train.load_size=36",
        "teacher.arch.num_downs=5",
        "student.arch.num_downs=5",
        "method.deep_teacher.num_downs=5",
        "mi.energy.blocks=4",
    ]
    cyclegan = load_spec(throughput.REPO / throughput.SETTINGS["cyclegan"].specs["omgd"])
    assert throughput.scale_overrides(cyclegan, 64) == [
        "data.train.size=64",
        "data.train.load_size=72",
    ]


@pytest.mark.parametrize(
    ("setting", "tiny"),
    [
        ("pix2pix", TINY_PIX2PIX),
        (
            "cyclegan",
            [
                "teacher.arch.ngf=8",
                "student.arch.ngf=4",
                "method.perceptual=random_vgg16",
                "method.discriminator={type: patchgan, ndf: 8, norm: instance}",
            ],
        ),
    ],
)
def test_throughput_writes_its_json_and_table(tmp_path, capsys, setting, tiny):
    out = tmp_path / "throughput.json"
    argv = [
        "--settings", setting,
        "--size", "32",
        "--iterations", "2",
        "--warmup", "1",
        "--repeats", "2",
        "--device", "cpu",
        "--threads", "1",
        "--perceptual", "random_vgg16",
        *[x for s in tiny for x in ("--set", s)],
        "--vem-set", "mi.energy.width=4",
        "--sides", *throughput.SIDES,
        "--malloc", "default",  # leave the test process's allocator alone
        "--output", str(out),
        "--quiet",
    ]  # fmt: skip
    assert throughput.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"| {setting} | cpu | 32² |" in printed and "perceptual network random_vgg16" in printed
    report = json.loads(out.read_text())
    assert report["machine"]["devices"] == ["cpu"] and report["machine"]["threads"] == 1
    assert report["perceptual"] == "random_vgg16" and report["size"] == 32
    assert report["targets"] == {"pix2pix_vem_over_omgd": 1.08, "pix2pix_fp32_over_vem": 1.2}
    (res,) = report["results"]
    assert res["setting"] == setting and res["device"] == "cpu"
    assert res["sides"]["omgd"]["mi"]["type"] == "none"
    assert res["sides"]["vem"]["mi"]["type"] == "vem"
    assert res["sides"]["vem"]["mi"]["energy"]["width"] == 4
    # The fp32 side: the same OMGD+VEM spec with every lower-precision option off.
    fp32 = res["sides"]["vem_fp32"]
    assert fp32["mi"]["type"] == "vem" and fp32["mi"]["energy"]["width"] == 4
    assert fp32["mi"]["autocast"] == "none" and fp32["perceptual_autocast"] == "none"
    assert res["sides"]["vem"]["mi"]["autocast"] == "sampler"
    assert res["sides"]["vem"]["perceptual_autocast"] == "bf16"
    assert res["sides"]["omgd_fp32"]["perceptual_autocast"] == "none"
    assert res["sides"]["omgd_fp32"]["mi"]["type"] == "none"
    assert res["sides"]["omgd"]["resolution"] == 32
    assert res["sides"]["omgd"]["batch_size"] == (4 if setting == "pix2pix" else 1)
    for side in throughput.SIDES:
        runs = res["samples"][side]
        assert len(runs) == 2 and all(len(r) == 2 for r in runs)
        assert all(v > 0 for r in runs for v in r)
        assert _finite(res["iterations_per_second"][side])
        assert res["seconds_per_iteration"][side]["n"] == 4
    ratio = res["vem_over_omgd"]
    assert _finite(ratio["ratio"]) and len(ratio["per_repeat"]) == 2
    assert _finite(res["vem_added_seconds"])
    for key in ("fp32_over_vem", "fp32_vem_over_omgd", "fp32_over_omgd", "fp32_vem_over_rest"):
        assert _finite(res[key]["ratio"]) and len(res[key]["per_repeat"]) == 2
    assert "The fp32 sides; OMGD without its perceptual terms" in printed
    assert res["rest_overrides"] == ["method.style_weight=0", "method.feature_weight=0"]
    assert res["losses"] is None  # --losses 0


@pytest.mark.slow  # a probe, 2 cells and 2 FID evaluations
def test_gpu_ablation_probes_a_budget_runs_and_resumes_at_a_tiny_size_on_the_cpu(tmp_path, capsys):
    from benchmarks import ablation_gpu

    data = tmp_path / "e2s"
    _write_aligned(data, "train", 8, 32, seed=0)
    _write_aligned(data, "test", 4, 32, seed=1)
    sets = [
        f"data.train.root={data}",
        f"data.eval.root={data}",
        "data.train.size=32",
        "data.eval.size=32",
        "data.eval.labels=null",
        "teacher.arch.num_downs=5",
        "student.arch.num_downs=5",
        "method.deep_teacher.num_downs=5",
        "mi.energy.blocks=4",
        "mi.energy.width=4",
        *TINY_PIX2PIX,
    ]
    argv = [
        "--minutes", "1",
        "--arms", "none", "vem",
        "--seeds", "0",
        "--jobs", "1",
        "--threads", "1",
        "--device", "cpu",
        "--fid-samples", "4",
        "--probe-iterations", "4",
        "--max-iterations", "2",
        *[x for s in sets for x in ("--set", s)],
        "--runs", str(tmp_path / "runs"),
        "--output", str(tmp_path / "gpu.json"),
    ]  # fmt: skip
    assert ablation_gpu.main(argv, runner=_in_process) == 0
    captured = capsys.readouterr()
    assert "probe: 4 iterations" in captured.err and "| fid ↓ | vem | none | 1 |" in captured.out
    chosen = json.loads((tmp_path / "runs" / "gpu_budget.json").read_text())
    assert chosen["iterations"] == 2 and chosen["seconds_per_iteration"] > 0
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["setting"]["name"] == "gpu" and len(result["cells"]) == 2
    assert all(c["iterations"] == 2 for c in result["cells"])
    # Again: the budget is read back (no probe) and every cell is skipped.
    assert ablation_gpu.main(argv, runner=_in_process) == 0
    said = capsys.readouterr().err
    assert "budget from" in said and "probe:" not in said and "2/2 cell(s) already finished" in said
