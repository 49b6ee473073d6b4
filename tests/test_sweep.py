"""``vemkit sweep``: grids, type switches, located errors, resumption, the paired statistics."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vemkit import cli
from vemkit import sweep as sweeps
from vemkit.errors import SpecError, VemkitError
from vemkit.sweep_report import paired_difference, verdict

TINY_SPEC = """\
vemkit: 1
name: tiny-sweep
seed: 0
task: paired
data:
  train: {{type: aligned, root: {data}, split: train, size: 32}}
  eval: {{type: aligned, root: {data}, split: test, size: 32}}
teacher:
  arch: {{type: unet, ngf: 4, num_downs: 5}}
  mode: online
student:
  arch: {{type: unet, ngf: 2, num_downs: 5}}
method: {{type: kd}}
mi:
  type: vem
  weight: 0.1
  positive: target
  energy: {{type: conv_sn, width: 4, blocks: 3}}
  sampler: {{type: langevin, steps: 2}}
train: {{iterations: 3, batch_size: 2}}
eval:
  every: 0
  metrics: [{{type: psnr}}, {{type: l1}}]
output:
  dir: runs/tiny
  checkpoint_every: 1
  sample_every: 0
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A tiny paired spec on random 32 px pairs (8 training, 4 evaluation)."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for split, n in (("train", 8), ("test", 4)):
        (data / split).mkdir(parents=True)
        for i in range(n):
            pair = rng.integers(0, 256, size=(32, 64, 3), dtype=np.uint8)
            Image.fromarray(pair).save(data / split / f"{i:03d}.png")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_SPEC.format(data=data), encoding="utf-8")
    return spec


def in_process(args: list[str], log: Path) -> int:
    """The sweep's runner for tests: ``vemkit ARGS`` in this process, output to ``log``."""
    with (
        open(log, "a", encoding="utf-8") as f,
        contextlib.redirect_stdout(f),
        contextlib.redirect_stderr(f),
    ):
        return cli.main(args)


# -- grid syntax ----------------------------------------------------------------------------------
def test_values_split_at_top_level_commas_only():
    assert sweeps.split_values("none,vid, crd") == ["none", "vid", "crd"]
    assert sweeps.split_values("[1, 2],{type: fid, n: 3},'a,b'") == [
        "[1, 2]",
        "{type: fid, n: 3}",
        "'a,b'",
    ]


def test_grid_and_arms_make_axes_with_folder_safe_names():
    axes = sweeps.build_axes(
        ["mi.type=none,vem", "data.train.root=/a/b c"],
        [["t1", "mi.type=vem", "mi.sampler.noise_std=auto"]],
    )
    assert [a.name for a in axes] == ["mi.type", "data.train.root", "arm"]
    assert [r.name for r in axes[0].arms] == ["mi.type=none", "mi.type=vem"]
    assert axes[0].arms[1].overrides == ("mi.type=vem",)
    assert axes[1].arms[0].name == "data.train.root=_a_b_c"
    assert axes[2].arms[0].overrides == ("mi.type=vem", "mi.sampler.noise_std=auto")


@pytest.mark.parametrize(
    ("grids", "arms", "message"),
    [
        (["mi.type"], [], "--grid mi.type: write --grid dotted.key=value1,value2"),
        (["mi.type=a,,b"], [], "empty value"),
        (["mi.type=a,a"], [], "listed twice"),
        (["mi.weight=1", "mi.weight=2"], [], "the key is given twice"),
        ([], [["x"]], "--arm x: write --arm NAME"),
        ([], [["a/b", "mi.type=vem"]], "an arm name is a folder name"),
        ([], [["a", "mi.type"]], "'mi.type' is not an override"),
        ([], [["a", "seed=1"], ["a", "seed=2"]], "--arm a: the name is used twice"),
        ([], [], "give at least one --grid"),
    ],
)
def test_bad_grid_syntax_is_one_clear_error(grids, arms, message):
    with pytest.raises(VemkitError, match=message):
        sweeps.build_axes(grids, arms)


def test_seeds():
    assert sweeps.parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("0,x", "1,1", "", "-1"):
        with pytest.raises(VemkitError, match="--seeds"):
            sweeps.parse_seeds(bad)


# -- planning -------------------------------------------------------------------------------------
def test_a_type_switch_keeps_the_options_the_new_type_has(tiny, tmp_path):
    axes = sweeps.build_axes(["mi.type=none,vid,vem"], [])
    plan = sweeps.plan(tiny, axes, [0], out=tmp_path / "sw")
    none, vid, vem = plan.cells
    # `none` has no options: the whole section is replaced.
    assert none.overrides[0] == 'mi={"type": "none"}' and none.spec.mi.type == "none"
    # VID shares weight and positive with the spec's VEM term, not its energy and sampler.
    section = json.loads(vid.overrides[0].partition("=")[2])
    assert section == {"type": "vid", "weight": 0.1, "positive": "target"}
    assert vem.overrides[0] == "mi.type=vem"  # the spec's own type: no switch
    assert vem.overrides[1:] == ["seed=0", f"output.dir={tmp_path / 'sw' / 'mi.type=vem'}/seed0",
                                 "train.threads=1"]  # fmt: skip
    arms = sweeps.build_axes([], [["none", "mi.type=none"],
                                  ["t1", "mi.type=vem", "mi.sampler.noise_std=auto"]])  # fmt: skip
    plan = sweeps.plan(tiny, arms, [0, 1], out=tmp_path / "sw2")
    t1 = plan.cells[2]
    assert t1.config == "t1" and t1.seed == 0 and plan.baseline.name == "none"
    assert t1.spec.mi.sampler.noise_std == "auto" and t1.spec.mi.energy.width == 4


def test_bad_keys_are_located_errors_before_anything_is_written(tiny, tmp_path):
    out = tmp_path / "sw"
    axes = sweeps.build_axes(["mi.typ=none,vem", "train.iterations=2,x"], [])
    with pytest.raises(SpecError) as info:
        sweeps.plan(tiny, axes, [0, 1], out=out)
    lines = str(info.value).splitlines()
    assert "--grid mi.typ: unknown key 'typ'; did you mean 'type'?" in lines[0]
    assert any(line.startswith("--grid train.iterations: Input should be a valid integer")
               for line in lines)  # fmt: skip
    assert len(lines) == len(set(lines)) == 2  # once per key, not once per cell and seed
    assert not out.exists()
    with pytest.raises(SpecError, match=r"--arm t1 mi.sampler: unknown key 'sampler'"):
        sweeps.plan(tiny, sweeps.build_axes([], [["t1", "mi.type=vid", "mi.sampler.steps=3"]]),
                    [0], out=out)  # fmt: skip
    with pytest.raises(SpecError, match=r"--set train.batch_sise: unknown key"):
        sweeps.plan(tiny, sweeps.build_axes(["seed=1"], []), [0], overrides=["train.batch_sise=1"])
    with pytest.raises(SpecError, match=r"--metrics eval.metrics.0.type: unknown metric 'psrn'"):
        sweeps.plan(tiny, axes[1:2] and sweeps.build_axes(["seed=1"], []), [0],
                    metrics=[{"type": "psrn"}])  # fmt: skip
    with pytest.raises(VemkitError, match=r"--baseline mi\.type=vdi: no such arm"):
        sweeps.plan(tiny, sweeps.build_axes(["mi.type=none,vem"], []), [0], baseline="mi.type=vdi")


def test_commands_are_plain_vemkit_runs_one_line_per_cell(tiny, tmp_path):
    axes = sweeps.build_axes(["mi.type=none,vem", "train.batch_size=1,2"], [])
    plan = sweeps.plan(tiny, axes, [0, 1], out=tmp_path / "sw", metrics=[{"type": "psnr"}],
                       eval_items=4, plugins=["my_plugin"])  # fmt: skip
    assert len(plan.cells) == 8 and [c.index for c in plan.cells] == list(range(1, 9))
    assert plan.baseline is not None and plan.baseline.name == "mi.type=none"
    cells_json, commands = plan.write_plan()
    lines = commands.read_text().splitlines()
    assert len(lines) == 8
    run_part, _, eval_part = lines[2].partition(" && ")
    argv = shlex.split(run_part)
    cell = plan.cells[2]
    assert argv == ["vemkit", "-p", "my_plugin", "run", str(tiny),
                    *[x for o in cell.overrides for x in ("--set", o)]]  # fmt: skip
    assert cell.config == "mi.type=none+train.batch_size=2" and cell.seed == 0
    assert shlex.split(eval_part)[:5] == ["vemkit", "-p", "my_plugin", "eval", str(cell.run_dir)]
    assert "--max-items" in eval_part and '[{"type":"psnr"}]' in eval_part
    data = json.loads(cells_json.read_text())
    assert data["cells"][2]["command"] == argv
    assert data["cells"][2]["resume_command"][-2:] == ["--resume", str(cell.run_dir)]
    assert data["baseline"] == "mi.type=none"


def test_dry_run_prints_the_cells_and_writes_the_plan(tiny, tmp_path, capsys):
    out = tmp_path / "sw"
    argv = ["sweep", str(tiny), "--grid", "mi.type=none,vem", "--arm", "a", "train.batch_size=1",
            "--seeds", "3", "--out", str(out), "--dry-run"]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "2 cells = 2 mi.type × 1 arm × 1 seeds; reference arm: mi.type=none"
    assert printed[1].split() == ["1", "new", "mi.type=none+a/seed3"]
    assert (out / "commands.txt").is_file() and not (out / "mi.type=none+a").exists()
    assert cli.main(["sweep", str(tiny), "--grid", "mi.typ=none", "--dry-run"]) == 2
    assert "--grid mi.typ: unknown key 'typ'" in capsys.readouterr().err
    for flag in ("--jobs", "--threads-per-job", "--eval-items"):
        bad = ["sweep", str(tiny), "--grid", "mi.type=none,vem", flag, "0", "--out",
               str(tmp_path / "zero"), "--dry-run"]  # fmt: skip
        with pytest.raises(SystemExit) as info:  # argparse: before any plan is made
            cli.main(bad)
        assert info.value.code == 2
        assert f"argument {flag}: must be a positive integer, got 0" in capsys.readouterr().err
    assert not (tmp_path / "zero").exists()  # nothing half-written


# -- statistics -----------------------------------------------------------------------------------
def test_paired_difference_against_hand_computed_values():
    # diffs 1, 2, -0.5 (seed 3 has no reference score and is left out): mean 5/6,
    # s = sqrt(((1/6)² + (7/6)² + (4/3)²) / 2) = sqrt(19/12) = 1.258306,
    # t(0.975, 2) = 4.302653 (tables), half-width 4.302653 · 1.258306 / sqrt(3) = 3.125805.
    stat = paired_difference({0: 10.0, 1: 12.0, 2: 11.0, 3: 9.0}, {0: 9.0, 1: 10.0, 2: 11.5})
    assert stat.n == 3 and stat.seeds == [0, 1, 2] and stat.differences == [1.0, 2.0, -0.5]
    assert stat.mean == pytest.approx(5 / 6, abs=1e-12)
    assert stat.sd == pytest.approx(1.258306, abs=1e-6)
    assert stat.low == pytest.approx(5 / 6 - 3.125805, abs=1e-5)
    assert stat.high == pytest.approx(5 / 6 + 3.125805, abs=1e-5)
    assert not stat.excludes_zero and verdict(stat, True) == "no difference shown"
    # diffs 1.0, 1.2, 0.8, 1.1: mean 1.025, s = sqrt(0.0875 / 3) = 0.170783,
    # t(0.975, 3) = 3.182446, half-width 3.182446 · 0.170783 / 2 = 0.271751.
    stat = paired_difference({0: 2.0, 1: 2.2, 2: 1.8, 3: 2.1}, {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0})
    assert stat.mean == pytest.approx(1.025, abs=1e-12)
    assert stat.sd == pytest.approx(0.170783, abs=1e-6)
    assert (stat.low, stat.high) == (pytest.approx(0.753249, abs=1e-5),
                                     pytest.approx(1.296751, abs=1e-5))  # fmt: skip
    assert stat.excludes_zero
    assert verdict(stat, True) == "better" and verdict(stat, False) == "worse"
    # A 90 % interval: t(0.95, 3) = 2.353363, half-width 0.200957.
    narrow = paired_difference({0: 2.0, 1: 2.2, 2: 1.8, 3: 2.1}, {s: 1.0 for s in range(4)}, 0.9)
    assert narrow.high - narrow.mean == pytest.approx(0.200957, abs=1e-5)
    one = paired_difference({0: 2.0}, {0: 1.5, 1: 1.0})
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.low)
    assert verdict(one, True) == "n < 2: no interval"
    assert paired_difference({0: math.nan}, {0: 1.0}).n == 0


# -- running --------------------------------------------------------------------------------------
def test_a_2x2_sweep_runs_resumes_and_reports_paired_statistics(tiny, tmp_path):
    from vemkit.engine.run import run as train

    out = tmp_path / "sw"
    axes = sweeps.build_axes(["mi.type=none,vem"], [])
    plan = sweeps.plan(tiny, axes, [0, 1], out=out)
    first, second = plan.cells[0], plan.cells[1]
    assert [c.name for c in plan.cells] == [
        "mi.type=none/seed0",
        "mi.type=none/seed1",
        "mi.type=vem/seed0",
        "mi.type=vem/seed1",
    ]
    # A half-finished grid: cell 1 stopped at step 2 of 3, cell 2 finished, cells 3-4 not begun.
    train(first.spec, run_dir=first.run_dir, stop_at=2, progress=False)
    assert in_process(plan.run_args(second), tmp_path / "cell2.log") == 0
    assert [sweeps.cell_state(c) for c in plan.cells] == ["partial", "finished", "new", "new"]

    said: list[str] = []
    result = sweeps.run_sweep(plan, runner=in_process, log=said.append)
    assert result["counts"] == {"finished": 1, "partial": 1, "new": 2}
    assert said[0] == "1/4 cell(s) already finished: skipped"
    trained = [line for line in said if "trained to step 3" in line]
    assert len(trained) == 3 and "mi.type=none/seed0" in trained[0]
    assert trained[0].endswith("(resumed from step 2)")
    assert all(sweeps.last_step(c.run_dir) == 3 for c in plan.cells)
    assert (out / "cells.json").is_file() and len(
        (out / "commands.txt").read_text().splitlines()
    ) == 4

    # The statistics: per seed vem − none of every metric, from the cells' own eval.json.
    scores = {
        (c.config, c.seed): json.loads((c.run_dir / "eval.json").read_text())["student"]["metrics"]
        for c in plan.cells
    }
    report = json.loads((out / "sweep.json").read_text())
    rows = {r["metric"]: r for r in report["statistics"]}
    assert set(rows) == {"psnr", "l1"}
    for key, row in rows.items():
        diffs = [scores[("mi.type=vem", s)][key] - scores[("mi.type=none", s)][key] for s in (0, 1)]
        assert row["config"] == "mi.type=vem" and row["reference"] == "mi.type=none"
        assert row["n"] == 2 and row["differences"] == pytest.approx(diffs, abs=1e-12)
        assert row["mean"] == pytest.approx(sum(diffs) / 2, abs=1e-12)
        # n = 2: t(0.975, 1) = 12.706205, s = |d1 − d0| / sqrt(2), half-width t · s / sqrt(2).
        half = 12.706205 * abs(diffs[1] - diffs[0]) / 2
        assert row["high"] - row["mean"] == pytest.approx(half, rel=1e-5, abs=1e-12)
    assert rows["psnr"]["higher_is_better"] is True and rows["l1"]["higher_is_better"] is False
    md = (out / "report" / "report.md").read_text()
    assert "## Paired differences to the reference" in md and "| psnr ↑ | mi.type=vem |" in md
    assert "curves_train.png" in md and (out / "report" / "curves_train.png").is_file()
    assert "Paired differences" in (out / "report" / "report.html").read_text()
    # Every cell's training time, from its metrics.jsonl (the resumed cell's two processes).
    for config in report["configs"]:
        assert set(config["train_seconds"]) == {"0", "1"}
        assert all(0 < s < 600 for s in config["train_seconds"].values())
    assert "| # | cell | training (min) | run directory |" in md

    # Again: nothing is trained or evaluated; the same statistics.
    said.clear()
    again = sweeps.run_sweep(plan, runner=in_process, log=said.append)
    assert said == ["4/4 cell(s) already finished: skipped", "4/4 evaluation(s) current: reused"]
    assert again["counts"] == {"finished": 4, "partial": 0, "new": 0}
    assert json.loads((out / "sweep.json").read_text())["statistics"] == report["statistics"]


def test_a_cell_folder_with_another_run_is_refused(tiny, tmp_path):
    plan = sweeps.plan(tiny, sweeps.build_axes(["mi.type=none,vem"], []), [0], out=tmp_path / "s")
    taken = plan.cells[1].run_dir
    taken.mkdir(parents=True)
    (taken / "run.json").write_text(json.dumps({"spec_hash": "0" * 64}))
    with pytest.raises(VemkitError, match=r"1 cell folder.* hold a run of a different spec"):
        sweeps.run_sweep(plan, runner=in_process, log=lambda _: None)
    assert not (plan.cells[0].run_dir / "run.json").exists()  # refused before anything ran
    with pytest.raises(VemkitError, match="--collect: 2 cell"):
        sweeps.train_cells(
            sweeps.plan(tiny, sweeps.build_axes(["mi.type=none,vem"], []), [0], out=tmp_path / "t"),
            jobs=1, log=lambda _: None, collect=True,
        )  # fmt: skip


def test_sigterm_is_handled_as_ctrl_c_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(cli.Terminated), cli.sigterm_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at the next bytecode: never reached
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_terminated_sweep_stops_its_running_cell_and_exits_143(tiny, tmp_path):
    # What a scheduler does at a job's time limit: SIGTERM to the sweep's process. Its cell runs
    # in a session of its own, so only the sweep can stop it; it must not be left running.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen(
        [sys.executable, "-m", "vemkit", "sweep", str(tiny), "--grid", "mi.type=none",
         "--seeds", "0", "--out", str(tmp_path / "sw"), "--set", "train.iterations=100000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    last = tmp_path / "sw" / "mi.type=none" / "seed0" / "checkpoints" / "last"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and sweep.poll() is None:
        time.sleep(0.1)
    assert sweep.poll() is None, sweep.stdout.read()
    sweep.send_signal(signal.SIGTERM)
    assert sweep.wait(timeout=60) == 128 + signal.SIGTERM
    assert sweep.stdout.read().rstrip().endswith("terminated")
    log = (tmp_path / "sw" / "logs" / "mi.type=none.seed0.run.log").read_text()
    assert log.rstrip().endswith("interrupted"), log  # the cell stopped itself: no orphan
    axes = sweeps.build_axes(["mi.type=none"], [])
    again = sweeps.plan(tiny, axes, [0], out=tmp_path / "sw", overrides=["train.iterations=100000"])
    cell = again.cells[0]
    assert sweeps.cell_state(cell) == "partial"  # the same command continues it


@pytest.mark.slow
def test_the_command_runs_cells_as_processes_in_parallel(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", str(tiny), "--grid", "mi.type=none,vid", "--seeds", "0", "--jobs", "2",
            "--out", "sw", "--eval-items", "4"]  # fmt: skip
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "| l1 ↓ | mi.type=vid | mi.type=none | 1 |" in captured.out
    assert "[2/2] mi.type=" in captured.err and "trained to step 3" in captured.err
    assert json.loads(Path("sw/mi.type=vid/seed0/eval.json").read_text())["items"] == 4
    md = Path("sw/report/report.md").read_text()
    assert f"command: `vemkit sweep {tiny} --grid mi.type=none,vid --seeds 0 --jobs 2" in md
    log = Path("sw/logs/mi.type=vid.seed0.run.log").read_text()
    assert log.startswith("\n$ vemkit run ") and "finished at step 3/3" in log


def test_convergence_rows_say_whether_each_arms_mean_curve_flattened(tmp_path):
    from types import SimpleNamespace

    from vemkit.sweep_report import Config, convergence_cells, convergence_rows

    def cell(name: str, psnr: list[float]) -> SimpleNamespace:
        run = tmp_path / name
        run.mkdir()
        (run / "spec.resolved.yaml").write_text("vemkit: 1\n")
        lines = [{"step": 100 * (i + 1), "eval/psnr": v, "eval/kid_std": 0.01 * i,
                  "eval/closed": 3} for i, v in enumerate(psnr)]  # fmt: skip
        (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        return SimpleNamespace(run_dir=run)

    # Mean curves at steps 100..500: flat arm 10, 12, 13, 13.5, 13.6: the line through its last
    # half (300..500) rises 0.003 per step, 0.24 over the last 20 % (80 steps), of a range of
    # 3.6; rising arm 10, 11, 12, 13, 14: 0.8 of 4.
    flat = Config("flat", ["flat"], cells=[cell("f0", [9, 12, 13, 13.4, 13.5]),
                                           cell("f1", [11, 12, 13, 13.6, 13.7])])  # fmt: skip
    rising = Config("rising", ["rising"], cells=[cell("r0", [10, 11, 12, 13, 14])])
    # Stopped early and noisy: its last two points differ by 40 % of its range, its trend is 0.
    noisy = Config("noisy", ["noisy"], cells=[cell("n0", [10, 12, 12.5, 11.5, 12.5, 12.5, 11.5])])
    # Stopped learning at once: its range is noise, its trend 29 % of it, but that trend's 95 %
    # interval (7 points, the line's standard error) includes 0.
    wobbly = Config("wobbly", ["wobbly"],
                    cells=[cell("w0", [13, 13.4, 12.8, 13.5, 12.6, 13.2, 12.5])])  # fmt: skip
    short = Config("short", ["short"], cells=[cell("s0", [10, 11])])
    # Bends flat: the line through its last half (600..1100) rises 0.0028 per step, 0.56 over
    # the last 200 steps; the last part's three points alone (900..1100) lie on a line of 0.2.
    bends = [0, 4, 7, 9, 10.5, 11.5, 12.2, 12.6, 12.8, 12.9, 13]
    bending = Config("bending", ["bending"], cells=[cell("b0", bends)])
    found = convergence_rows([flat, rising, noisy, wobbly, short, bending])
    # kid_std: a spread, not a score; closed: a constant, no learning curve
    assert {r["metric"] for r in found} == {"eval/psnr"}
    rows = {r["config"]: r for r in found}
    assert set(rows) == {"flat", "rising", "noisy", "wobbly", "bending"}  # 2 points: no curve
    assert rows["flat"]["seeds"] == 2 and rows["flat"]["trend_from_step"] == 300
    assert rows["flat"]["tail_change"] == pytest.approx(0.24)
    assert rows["flat"]["tail_share"] == pytest.approx(0.24 / 3.6)
    assert rows["flat"]["flattened"] is True
    assert rows["rising"]["tail_share"] == pytest.approx(0.2)
    # a straight line: no residual, the interval is the change itself
    assert rows["rising"]["tail_change_low"] == pytest.approx(0.8)
    assert rows["rising"]["tail_change_high"] == pytest.approx(0.8)
    assert rows["rising"]["change_shown"] is True and rows["rising"]["flattened"] is False
    # flat's line through 3 points: residuals -1/15, 2/15, -1/15, slope se sqrt(0.0267/20000),
    # t(0.975, 1) = 12.706: 0.24 +- 1.17
    assert rows["flat"]["tail_change_low"] == pytest.approx(-0.9337, abs=1e-3)
    assert rows["flat"]["tail_change_high"] == pytest.approx(1.4137, abs=1e-3)
    assert rows["wobbly"]["tail_share"] == pytest.approx(0.288)
    assert rows["wobbly"]["change_shown"] is False and rows["wobbly"]["flattened"] is True
    assert rows["noisy"]["tail_change"] == pytest.approx(0.0, abs=1e-12)
    assert rows["noisy"]["flattened"] is True
    assert rows["flat"]["steps"] == [100, 200, 300, 400, 500]
    assert rows["flat"]["mean"] == pytest.approx([10, 12, 13, 13.5, 13.6])
    bend = rows["bending"]
    assert bend["tail_change"] == pytest.approx(0.56) and bend["trend_from_step"] == 600
    assert bend["tail_from_step"] == 900
    assert bend["tail_alone_change"] == pytest.approx(0.2)
    # a straight line again: no residual, the interval is the change itself
    assert bend["tail_alone_low"] == pytest.approx(0.2)
    assert bend["tail_alone_high"] == pytest.approx(0.2)
    assert bend["tail_alone_share"] == pytest.approx(0.2 / 13)
    # the second reading needs 3 points in the last part; it never decides
    assert math.isnan(rows["flat"]["tail_alone_change"])
    header, body = convergence_cells([rows["flat"], rows["rising"], bend])
    assert body[1][-4:-1] == ["[+0.8, +0.8]", "20.0 %", "no"] and header[-2] == "flattened"
    assert body[0][2] == "100–500 (trend from 300)" and body[0][-1] == "—"
    assert body[2][-1] == "+0.2 [+0.2, +0.2], 1.5 %"


def test_training_time_sums_the_clocks_of_a_resumed_runs_processes():
    from vemkit.sweep_report import _minutes_range, training_seconds

    # A process logged to 30 s, was stopped, and its resume logged 0..50 s: 80 s; evaluation
    # lines (no time) and booleans are not times.
    log = [{"step": 1, "time": 10.0}, {"step": 2, "time": 30.0}, {"step": 2, "eval/psnr": 9},
           {"step": 3, "time": 5.0}, {"step": 4, "time": 50.0, "flag": True}]  # fmt: skip
    assert training_seconds(log) == pytest.approx(80.0)
    assert training_seconds([{"step": 1, "eval/psnr": 9}, {"step": 2, "time": True}]) is None
    assert _minutes_range([564.0, 600.0, 590.0]) == "9.4–10.0"
    assert _minutes_range([600.0, 601.0]) == "10.0" and _minutes_range([]) == "-"


def test_the_compact_table_has_an_arm_per_row_and_marks_what_the_seeds_show():
    from vemkit.sweep_report import compact_cells

    def row(config, metric, higher, mean, low, high):
        excludes = low > 0 or high < 0
        verdict_ = (
            ("better" if (mean > 0) == higher else "worse") if excludes else "no difference shown"
        )
        return {"config": config, "metric": metric, "higher_is_better": higher, "n": 3,
                "mean": mean, "low": low, "high": high, "excludes_zero": excludes,
                "verdict": verdict_}  # fmt: skip

    rows = [row("vem", "psnr", True, 0.5, 0.1, 0.9), row("vem", "fid", False, 2.0, -1.0, 5.0),
            row("vid", "psnr", True, -0.5, -0.9, -0.1)]  # fmt: skip
    header, body = compact_cells(rows)
    assert header == ["arm", "psnr ↑", "fid ↓"]
    assert body[0] == ["vem", "**+0.5 [+0.1, +0.9]** (better)", "+2.000 [-1.000, +5.000]"]
    assert body[1] == ["vid", "**-0.5 [-0.9, -0.1]** (worse)", "-"]


def test_scores_table_drops_a_spread_that_rounds_to_zero_everywhere():
    from vemkit.sweep_report import Config, scores_cells

    a = Config("none", ["none"], scores={"fid": {0: 300.0, 1: 310.0}, "kid_std": {0: 1e-7, 1: 0.0}})
    b = Config("vem", ["vem"], scores={"fid": {0: 305.0, 1: 290.0}, "kid_std": {0: 0.0, 1: 0.0}})
    header, body = scores_cells([a, b])
    assert header == ["arm", "seeds", "fid"]
    assert body[0][2] == "305.0 ± 7.1" and body[1][2] == "297.5 ± 10.6"
    b.scores["kid_std"][1] = 0.002
    header, body = scores_cells([a, b])
    assert header == ["arm", "seeds", "fid", "kid_std"]
