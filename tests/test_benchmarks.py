"""The benchmarks run end to end at the smallest settings and write what they promise.

No timing is asserted (a benchmark is not a test: STYLE.md); the structure of the JSON, the
finiteness of the ratios and the equality of the engine's and the hand loop's losses are.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import _timing
from benchmarks import engine_overhead as bench


def test_alternating_order_reverses_every_other_repeat():
    names = ["a", "b", "c"]
    orders = [_timing.alternating_order(names, r) for r in range(4)]
    assert orders == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"], ["c", "b", "a"]]


def test_paired_ratio_pairs_repeats_and_takes_the_median():
    a = [[2.0, 2.0, 9.0], [3.0], [1.0]]  # medians 2, 3, 1
    b = [[1.0], [1.0, 1.0], [2.0]]  # medians 1, 1, 2
    r = _timing.paired_ratio(a, b)
    assert r["per_repeat"] == [2.0, 3.0, 0.5]
    assert (r["ratio"], r["min"], r["max"]) == (2.0, 0.5, 3.0)


def test_summary_and_json_writing(tmp_path):
    s = _timing.summary([[1.0, 3.0], [2.0, 4.0]])
    assert (s["median"], s["min"], s["n"], s["per_repeat"]) == (2.5, 1.0, 4, [2.0, 3.0])
    path = _timing.write_json_atomic(tmp_path / "sub" / "x.json", {"a": math.nan, "b": [1.5]})
    assert json.loads(path.read_text()) == {"a": "nan", "b": [1.5]}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary file left


def test_energy_shape_follows_the_resolution():
    paper = bench.Setting(resolution=256)
    assert (paper.num_downs, paper.energy_blocks, paper.energy_downsample) == (8, 7, 1)
    small = bench.Setting(resolution=64)
    assert (small.num_downs, small.energy_blocks, small.energy_downsample) == (6, 6, 0)


def test_the_benchmark_writes_its_json_and_tables(tmp_path, capsys):
    out = tmp_path / "engine_overhead.json"
    argv = [
        "--resolutions", "32",
        "--repeats", "2",
        "--iterations", "2",
        "--warmup", "1",
        "--teacher-ngf", "8",
        "--student-ngf", "4",
        "--energy-width", "8",
        "--steps", "2",
        "--threads", "1",
        "--malloc", "default",  # leave the test process's allocator alone
        "--output", str(out),
        "--quiet",
    ]  # fmt: skip
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "Engine tax" in printed and "VEM's cost per iteration" in printed
    assert "| 32 px, b4, U-Net 8→4 | vem |" in printed
    report = json.loads(out.read_text())
    machine = report["machine"]
    assert {"cpu", "cores", "torch", "threads", "date", "device"} <= set(machine)
    assert machine["threads"] == 1 and machine["device"] == "cpu"
    assert machine["allocator"] == "default"
    assert len(report["load_before"]) == 3 and len(report["load_after"]) == 3
    assert report["targets"] == {"engine_tax": 1.03, "energy_phase_vs_floor": 1.1}
    (res,) = report["results"]
    assert res["setting"]["resolution"] == 32 and res["setting"]["energy_blocks"] == 5
    sides = set(bench.TRAINING_SIDES) | set(bench.ENERGY_SIDES)
    assert set(res["samples"]) == sides == set(res["seconds_per_iteration"])
    for runs in res["samples"].values():
        assert len(runs) == 2 and all(len(r) == 2 for r in runs)
        assert all(v > 0 for r in runs for v in r)
    ratios = [
        res["engine_tax"]["none"],
        res["engine_tax"]["vem"],
        res["vem_cost"]["engine_ratio"],
        res["vem_cost"]["hand_ratio"],
        res["energy_phase_vs_floor"],
    ]
    for r in ratios:
        assert math.isfinite(r["ratio"]) and r["ratio"] > 0
        assert len(r["per_repeat"]) == 2 and r["min"] <= r["ratio"] <= r["max"]
    assert math.isfinite(res["vem_cost"]["added_seconds"])
    assert res["vem_cost"]["floor_seconds"] > 0
    # The hand loop is the same computation: same modules, data, noise, hence the same losses
    # (the same kernels in the same order on one thread: equal to the last bit, in practice).
    assert set(res["loss_first_rel_diff"]) == {"none", "vem"}
    for diff in res["loss_max_rel_diff"].values():
        assert diff == pytest.approx(0.0, abs=1e-5)
