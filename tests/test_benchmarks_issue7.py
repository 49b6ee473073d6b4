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


def test_ablation_runs_evaluates_summarises_and_resumes(tmp_path, capsys):
    data = tmp_path / "e2s"
    _write_aligned(data, "train", 8, 32, seed=0)
    _write_aligned(data, "test", 4, 32, seed=1)
    out = tmp_path / "ablation.json"
    sets = [
        f"data.train.root={data}",
        f"data.eval.root={data}",
        "data.train.size=32",
        "data.eval.size=32",
        "data.eval.labels=null",
        "teacher.arch.num_downs=5",
        "student.arch.num_downs=5",
        "method.deep_teacher.num_downs=5",
        *TINY_PIX2PIX,
    ]
    argv = [
        "--tasks", "edges2shoes-fmnist",
        "--mi", "none", "vem",
        "--seeds", "0",
        "--iterations", "2",
        "--fid-samples", "4",
        "--eval-batch-size", "4",
        *[x for s in sets for x in ("--set", s)],
        "--mi-set", "vem", "mi.energy.blocks=4",
        "--mi-set", "vem", "mi.energy.width=8",
        "--runs", str(tmp_path / "runs"),
        "--output", str(out),
        "--no-report",
        "--quiet",
    ]  # fmt: skip
    assert ablation.main(argv) == 0
    printed = capsys.readouterr().out
    assert "**edges2shoes-fmnist**" in printed and "| vem | 1 |" in printed
    result = json.loads(out.read_text())
    assert {"cpu", "cores", "torch", "threads"} <= set(result["machine"])
    assert result["machine"]["threads"] == 1
    assert len(result["load_before"]) == 3 and _finite(result["wall_seconds"])
    assert result["run_seconds_total"] > 0
    budget = result["budget"]
    assert budget["iterations"] == 2 and budget["seeds"] == [0] and budget["fid_samples"] == 4
    assert budget["batch_size"] == {"edges2shoes-fmnist": 4} and budget["threads"] == 1
    assert [(r["mi"], r["seed"], r["reused"]) for r in result["runs"]] == [
        ("none", 0, False),
        ("vem", 0, False),
    ]
    for run in result["runs"]:
        assert run["iterations"] == 2 and run["eval_items"] == 4
        assert set(run["metrics"]) == {"fid", "kid_mean", "psnr", "ssim"}
        assert all(_finite(v) for v in run["metrics"].values())
        run_dir = Path(run["run_dir"])
        assert (run_dir / "eval.json").is_file() and not (run_dir / "checkpoints").exists()
    summary = {r["mi"]: r for r in result["summary"]}
    assert set(summary) == {"none", "vem"}
    vem = summary["vem"]
    assert vem["metrics"]["fid"]["values"] == [result["runs"][1]["metrics"]["fid"]]
    assert vem["metrics"]["psnr"]["mean"] == pytest.approx(result["runs"][1]["metrics"]["psnr"])
    assert vem["delta_vs_none"]["fid"] == pytest.approx(
        result["runs"][1]["metrics"]["fid"] - result["runs"][0]["metrics"]["fid"]
    )
    assert summary["none"]["delta_vs_none"]["fid"] == 0.0

    # The same command again trains nothing: both runs are read back from their eval.json.
    assert ablation.main(argv) == 0
    again = json.loads(out.read_text())
    assert [r["reused"] for r in again["runs"]] == [True, True]
    assert [r["metrics"] for r in again["runs"]] == [r["metrics"] for r in result["runs"]]


def test_ablation_rejects_an_override_for_an_unknown_mi_term():
    with pytest.raises(SystemExit):
        ablation.parse_args(["--mi-set", "vdi", "mi.weight=0.2"])


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
    assert report["targets"] == {"pix2pix_vem_over_omgd": 1.08}
    (res,) = report["results"]
    assert res["setting"] == setting and res["device"] == "cpu"
    assert res["sides"]["omgd"]["mi"]["type"] == "none"
    assert res["sides"]["vem"]["mi"]["type"] == "vem"
    assert res["sides"]["vem"]["mi"]["energy"]["width"] == 4
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
