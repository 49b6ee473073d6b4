"""``vemkit report``: paper-style tables (ratios, directions, mean ± std over seeds), curves,
embedded sample grids, from run directories in the engine's layout."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from vemkit.cli import main
from vemkit.errors import VemkitError
from vemkit.report import build_tables, format_values, load_run, write_report

SIDE = 16

BASE_SPEC: dict[str, Any] = {
    "vemkit": 1,
    "name": "e2s",
    "seed": 0,
    "task": "paired",
    "data": {
        "train": {"type": "aligned", "root": "data/edges2shoes", "split": "train", "size": SIDE},
        "eval": {"type": "aligned", "root": "data/edges2shoes", "split": "val", "size": SIDE},
    },
    "teacher": {"arch": {"type": "unet", "ngf": 64}, "mode": "online"},
    "student": {"arch": {"type": "unet", "ngf": 16}},
    "method": {"type": "omgd"},
    "mi": {"type": "vem", "weight": 0.2},
    "train": {"iterations": 20, "batch_size": 4, "device": "cpu"},
    "eval": {"every": 10, "metrics": [{"type": "fid"}]},
    "output": {"dir": "runs/e2s"},
}

# Edges->Shoes, Table 1 of the paper (reference/paper.md §8): the U-Net teacher is 18.60G MACs
# and 54.40M params; OMGD's student 1.22G (15.3x) and 3.40M (16.0x); FID 34.31 and 24.59.
TEACHER = {"arch": "unet", "params": 54_400_000, "macs": 18_600_000_000}
STUDENT = {"arch": "unet", "params": 3_400_000, "macs": 1_219_000_000}


def spec_with(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_SPEC)
    for dotted, value in changes.items():
        node = spec
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return spec


def grid_png(path: Path, columns: int = 4, rows: int = 2, seed: int = 0) -> None:
    """A grid of the engine's geometry: ``columns`` × ``rows`` tiles of SIDE px, 2 px padding."""
    rng = np.random.default_rng(seed)
    size = (rows * (SIDE + 2) + 2, columns * (SIDE + 2) + 2, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(path)


def fake_run(
    root: Path,
    name: str,
    spec: dict[str, Any],
    student_metrics: dict[str, float] | None,
    teacher_metrics: dict[str, float] | None = None,
    steps: int = 20,
) -> Path:
    """A run directory as the engine and ``vemkit eval`` write it, with known numbers."""
    run = root / name
    run.mkdir(parents=True)
    header = "# resolved spec of run (defaults filled in)\n"
    (run / "spec.resolved.yaml").write_text(header + yaml.safe_dump({**spec, "name": name}))
    lines = []
    for step in range(1, steps + 1):
        lines.append(
            {
                "step": step,
                "time": 0.1 * step,
                "loss/student": 1.0 / step,
                "loss/teacher": 2.0 / step,
                "omgd.ssim": 0.5 / step,
                "lr/student": 2e-4,
                "it_per_s": 10.0,
                "samples_per_s": 40.0,
            }
        )
        if step % 10 == 0:
            lines.append({"step": step, "time": 0.1 * step, "eval/fid": 100.0 / step})
    with open(run / "metrics.jsonl", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
        f.write('{"step": 21, "loss/stud')  # a line cut by a kill
    grid_png(run / "samples" / "step_0000010.png", seed=1)
    grid_png(run / "samples" / "step_0000020.png", seed=2)
    if student_metrics is not None:
        evaluation = {
            "format": 1,
            "spec": name,
            "method": spec["method"]["type"],
            "mi": spec["mi"]["type"],
            "step": steps,
            "items": 200,
            "macs_convention": "paper",
            "higher_is_better": {"fid": False, "psnr": True},
            "teacher": {**TEACHER, "metrics": teacher_metrics or {"fid": 34.31}},
            "student": {**STUDENT, "metrics": student_metrics},
            "samples": {"file": "eval_samples.png", "columns": ["teacher", "student"], "items": 2},
            "notes": [],
        }
        (run / "eval.json").write_text(json.dumps(evaluation))
        grid_png(run / "eval_samples.png", columns=2, seed=3)
    return run


def decoded_images(page: str) -> list[Image.Image]:
    import io

    out = []
    for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page):
        out.append(Image.open(io.BytesIO(base64.b64decode(data))))
    return out


def test_one_run_paper_table_curves_and_embedded_images(tmp_path):
    run = fake_run(tmp_path, "e2s-vem", BASE_SPEC, {"fid": 24.59, "psnr": 19.5})
    written = write_report([run])
    assert written["html"] == run / "report.html" and written["md"] == run / "report.md"

    md = written["md"].read_text()
    # Teacher 1.0x; the student with the paper's printed ratios.
    assert "| method | runs | MACs | params | fid ↓ | psnr ↑ |" in md
    assert "| teacher (unet) | 1 | 18.60G (1.0x) | 54.40M (1.0x) | 34.31 | - |" in md
    assert "| omgd + vem | 1 | 1.22G (15.3x) | 3.40M (16.0x) | 24.59 | 19.50 |" in md
    # PNGs beside report.md, linked relatively; the grids of the run are linked in place.
    for name in ("report_overview.png", "report_curves.png", "report_eval_curves.png"):
        assert f"]({name})" in md
        with Image.open(run / name) as img:
            assert img.format == "PNG" and img.size[0] > 300
    assert "](eval_samples.png)" in md and "](samples/step_0000020.png)" in md
    assert "(input | teacher | student | target)" in md  # inferred from the grid's geometry
    assert "(teacher | student)" in md  # named by eval.json

    page = written["html"].read_text()
    assert "<td>1.22G (15.3x)</td><td>3.40M (16.0x)</td><td>24.59</td>" in page
    assert "<th>fid ↓</th>" in page
    images = decoded_images(page)
    # overview, training curves, eval curves, eval grid, training grid: all embedded PNGs.
    assert len(images) == 5 and all(img.format == "PNG" for img in images)
    assert images[3].size == (2 * (SIDE + 2) + 2, 2 * (SIDE + 2) + 2)
    assert "<details><summary>e2s-vem: spec.resolved.yaml</summary>" in page
    assert "# resolved spec of run" in page
    assert 'src="report_' not in page and '.png"' not in page  # nothing linked from outside
    assert "skipped 1 unreadable line(s)" in page


def test_seeds_of_an_ablation_give_mean_and_std_per_row(tmp_path, capsys):
    runs = []
    for seed, fid in enumerate((10.0, 12.0, 14.0)):
        runs.append(fake_run(tmp_path / "runs", f"vem-s{seed}", spec_with(seed=seed), {"fid": fid}))
    for seed, fid in enumerate((20.0, 22.0, 24.0)):
        spec = spec_with(seed=seed, mi={"type": "none"})
        runs.append(fake_run(tmp_path / "runs", f"base-s{seed}", spec, {"fid": fid}))

    tables = build_tables([load_run(r) for r in runs])
    assert len(tables) == 1
    assert [row.label for row in tables[0].rows] == ["omgd + vem", "omgd"]
    assert tables[0].rows[0].values("fid") == [10.0, 12.0, 14.0]

    assert main(["report", *map(str, runs), "--title", "OMGD ablation"]) == 0
    out = tmp_path / "runs" / "report"  # beside the runs
    assert str(out / "report.html") in capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert md.startswith("# OMGD ablation")
    # mean ± sample std over the three seeds; the best (lowest FID) row in bold.
    assert "| omgd + vem | 3 | 1.22G (15.3x) | 3.40M (16.0x) | **12.00 ± 2.00** |" in md
    assert "| omgd | 3 | 1.22G (15.3x) | 3.40M (16.0x) | 22.00 ± 2.00 |" in md
    assert "| teacher (unet) | 6 | 18.60G (1.0x) | 54.40M (1.0x) | 34.31 ± 0.00 |" in md
    for name in ("vem-s1", "base-s2"):  # the per-run table
        assert f"| {name} |" in md
    page = (out / "report.html").read_text()
    assert "<td><b>12.00 ± 2.00</b></td>" in page and "<td>22.00 ± 2.00</td>" in page
    # Copies of every run's grids beside report.md.
    assert (out / "eval_samples_vem-s0.png").is_file() and (out / "samples_base-s2.png").is_file()


def test_rows_and_tables_are_told_apart(tmp_path):
    runs = [
        fake_run(tmp_path, "w01", spec_with(mi__weight=0.1), {"fid": 30.0}),
        fake_run(tmp_path, "w02", spec_with(mi__weight=0.2), {"fid": 25.0}),
        fake_run(
            tmp_path, "resnet", spec_with(teacher={"arch": {"type": "resnet"}}), {"fid": 50.0}
        ),
    ]
    tables = build_tables([load_run(r) for r in runs])
    assert [len(t.rows) for t in tables] == [2, 1]
    assert [r.label for r in tables[0].rows] == [
        "omgd + vem (mi.weight=0.1)",
        "omgd + vem (mi.weight=0.2)",
    ]
    assert tables[1].title == "paired: aligned edges2shoes/val, teacher resnet"


def test_a_run_without_eval_json_uses_its_last_evaluation(tmp_path):
    run = fake_run(tmp_path, "plain", BASE_SPEC, None)
    written = write_report([run], out_dir=tmp_path / "out")
    md = written["md"].read_text()
    # The last eval line of metrics.jsonl (fid 100/20), no sizes, and a note saying why.
    assert "| omgd + vem | 1 | - | - | 5.00 |" in md
    assert "no eval.json" in md and "vemkit eval" in md
    assert (tmp_path / "out" / "samples_plain.png").is_file()


def test_not_a_run_directory(tmp_path):
    with pytest.raises(VemkitError, match="not a run directory"):
        write_report([tmp_path])
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_format_values():
    assert format_values([10, 12, 14]) == "12.00 ± 2.00"  # sample std (n - 1)
    assert format_values([0.81234], 4) == "0.8123"
    assert format_values([]) == "-"
