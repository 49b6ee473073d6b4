"""``vemkit eval``: weights from a run's checkpoints or a spec, scores checked against values
computed here by hand, params/MACs, fixed latents for unconditional generators, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from tests._engine_util import single_thread  # noqa: F401 - autouse fixture
from vemkit.cli import main
from vemkit.engine import checkpoint as ckpt
from vemkit.errors import VemkitError
from vemkit.evaluate import (
    Source,
    evaluate,
    evaluate_target,
    find_checkpoint,
    parse_metrics,
    read_eval,
)
from vemkit.options import Options
from vemkit.profile import count_macs, count_params
from vemkit.registry import Registry
from vemkit.spec_model import spec_model
from vemkit.weights import save_weights

SIZE = 32
STUDENT = {"type": "unet", "ngf": 4, "num_downs": 5}


# -- two test generators -----------------------------------------------------------------------
class CopyOptions(Options):
    """Returns its input times a learnable gain (1 at init): a generator with a known output."""


class Copy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


class LatentOptions(Options):
    """A linear unconditional generator of 3×32×32 images from a 16-d latent."""


class Latent(nn.Module):
    z_dim = 16

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 3 * SIZE * SIZE)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(z)).view(-1, 3, SIZE, SIZE)


@pytest.fixture(scope="module")
def reg() -> Registry:
    from vemkit_plugins import builtins

    r = Registry()
    builtins.vemkit_register(registry=r)
    r.add("arch", "copy", options=CopyOptions, factory=lambda o, **_: Copy())
    r.add("arch", "latent", options=LatentOptions, factory=lambda o, **_: Latent())
    return r


# -- data and runs -----------------------------------------------------------------------------
def write_pairs(folder: Path, n: int, same_halves: bool, seed: int) -> None:
    """``n`` A|B images of SIZE px; with ``same_halves`` B equals A (a copy is then perfect)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        a = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        b = a if same_halves else rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    write_pairs(root / "train", 2, same_halves=False, seed=1)
    write_pairs(root / "val", 3, same_halves=True, seed=2)
    images = root / "faces"
    images.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            images / f"{i}.png"
        )
    return root


def config(data_root: Path, run_dir: Path, teacher: dict[str, Any], **extra: Any) -> dict:
    aligned = {"type": "aligned", "root": str(data_root), "size": SIZE}
    out = {
        "name": "eval-test",
        "seed": 5,
        "data": {"train": aligned, "eval": {**aligned, "split": "val"}},
        "teacher": {"arch": teacher, "mode": "frozen"},
        "student": {"arch": STUDENT},
        "method": {"type": "kd"},
        "train": {"iterations": 2, "batch_size": 2, "device": "cpu"},
        "eval": {"every": 0, "samples": 0, "metrics": [{"type": "psnr"}, {"type": "l1"}]},
        "output": {"dir": str(run_dir), "checkpoint_every": 0, "sample_every": 0},
    }
    out.update(extra)
    return out


def make_run(reg, cfg: dict, steps: dict[int, int], best: int | None = None) -> Path:
    """A run directory in the engine's layout with one checkpoint per ``{step: weight seed}``."""
    spec = spec_model(reg).model_validate(cfg)
    run_dir = Path(cfg["output"]["dir"])
    run_dir.mkdir(parents=True)
    text = spec.to_yaml()
    (run_dir / "spec.resolved.yaml").write_text(text)
    for step, seed in steps.items():
        torch.manual_seed(seed)
        modules = {
            role: reg.build("arch", getattr(spec, role).arch).state_dict()
            for role in ("teacher", "student")
        }
        ckpt.save(run_dir, step, modules=modules, state={}, info={"step": step}, spec_yaml=text)
    if best is not None:
        ckpt.point(run_dir / "checkpoints", "best", ckpt.step_name(best))
    return run_dir


def pairs(data_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The val split read here directly: inputs and targets in [-1, 1]."""
    xs, ys = [], []
    for path in sorted((data_root / "val").glob("*.png")):
        ab = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1
        t = torch.from_numpy(ab).permute(2, 0, 1)
        xs.append(t[:, :, :SIZE])
        ys.append(t[:, :, SIZE:])
    return torch.stack(xs), torch.stack(ys)


def student_scores(reg, seed: int, data_root: Path) -> dict[str, float]:
    """l1 and psnr of the student of weight seed ``seed``, computed here without vemkit's
    metrics: psnr per image on [0, 1] (data range 1), then averaged."""
    torch.manual_seed(seed)
    reg.build("arch", {"type": "copy"})  # the same draws as make_run: teacher first
    net = reg.build("arch", STUDENT).eval()
    x, y = pairs(data_root)
    with torch.no_grad():
        out = net(x).double()
    y = y.double()
    mse = (((out + 1) / 2).clamp(0, 1) - (y + 1) / 2).pow(2).flatten(1).mean(1)
    return {
        "l1": float((out - y).abs().mean()),
        "psnr": float((10 * torch.log10(1 / mse)).mean()),
        "params": count_params(net),
        "macs": count_macs(net, torch.zeros(1, 3, SIZE, SIZE), "paper"),
    }


# -- tests -------------------------------------------------------------------------------------
def test_eval_of_a_run_matches_scores_computed_by_hand(reg, data_root, tmp_path):
    run_dir = make_run(reg, config(data_root, tmp_path / "run", {"type": "copy"}), {4: 11})
    data, path = evaluate_target(run_dir, registry=reg)

    assert path == run_dir / "eval.json"
    assert read_eval(path) == json.loads(json.dumps(data))
    assert data["step"] == 4 and data["checkpoint"].endswith("step_0000004")
    assert data["items"] == 3 and data["macs_convention"] == "paper"
    assert data["higher_is_better"] == {"psnr": True, "l1": False}
    # The copy teacher on pairs whose halves are equal: a perfect translation. PSNR of identical
    # images is capped at the metric's max_db (100 dB by default, plugins/metrics/pixel.py).
    assert data["teacher"]["metrics"] == {"psnr": 100.0, "l1": 0.0}
    assert data["teacher"]["params"] == 1
    expected = student_scores(reg, 11, data_root)
    scores = data["student"]["metrics"]
    assert scores["l1"] == pytest.approx(expected["l1"], rel=1e-6)
    assert scores["psnr"] == pytest.approx(expected["psnr"], rel=1e-6)
    assert data["student"]["params"] == expected["params"]
    assert data["student"]["macs"] == expected["macs"] > 0
    assert data["student"]["params_ratio"] == pytest.approx(1 / expected["params"])
    # The grid beside eval.json: 3 rows, input | teacher | student | target, 2 px padding.
    assert data["samples"]["columns"] == ["input", "teacher", "student", "target"]
    with Image.open(run_dir / "eval_samples.png") as grid:
        assert grid.size == (4 * (SIZE + 2) + 2, 3 * (SIZE + 2) + 2)


def test_checkpoint_choice_last_best_and_named(reg, data_root, tmp_path):
    run_dir = make_run(
        reg, config(data_root, tmp_path / "run", {"type": "copy"}), {2: 21, 4: 22}, best=2
    )
    assert find_checkpoint(run_dir).name == "step_0000004"
    assert find_checkpoint(run_dir, "best").name == "step_0000002"
    assert find_checkpoint(run_dir, "step_0000002").name == "step_0000002"
    with pytest.raises(VemkitError, match="no such checkpoint folder"):
        find_checkpoint(run_dir, "step_0000003")

    data, _ = evaluate_target(
        run_dir, registry=reg, checkpoint="best", metrics=[{"type": "l1"}], teacher=False
    )
    assert data["step"] == 2 and "teacher" not in data
    assert data["student"]["metrics"]["l1"] == pytest.approx(
        student_scores(reg, 21, data_root)["l1"], rel=1e-6
    )


def test_a_run_without_checkpoints_and_a_spec_without_eval_data(reg, data_root, tmp_path):
    cfg = config(data_root, tmp_path / "run", {"type": "copy"})
    run_dir = make_run(reg, cfg, {})
    with pytest.raises(VemkitError, match=r"no complete checkpoint.*vemkit run --resume"):
        evaluate_target(run_dir, registry=reg)
    with pytest.raises(VemkitError, match="no 'best' checkpoint"):
        find_checkpoint(run_dir, "best")

    cfg["data"] = {"train": cfg["data"]["train"]}
    spec = spec_model(reg).model_validate(cfg)
    with pytest.raises(VemkitError, match=r"data\.eval: the spec has no evaluation dataset"):
        evaluate(Source(spec), registry=reg)


def test_unconditional_latents_are_seeded_and_shared(reg, data_root, tmp_path):
    folder = {"type": "folder", "root": str(data_root / "faces"), "size": SIZE}
    cfg = config(
        data_root,
        tmp_path / "run",
        {"type": "latent"},
        task="unconditional",
        data={"train": folder, "eval": folder},
    )
    cfg["student"] = {"arch": {"type": "latent"}}
    spec = spec_model(reg).model_validate(cfg)
    torch.manual_seed(0)
    weights = tmp_path / "g.safetensors"
    save_weights(Latent(), weights)
    source = Source(spec, weights={"teacher": str(weights), "student": str(weights)})
    first = evaluate(source, registry=reg, metrics=[{"type": "l1"}], batch_size=2)
    again = evaluate(source, registry=reg, metrics=[{"type": "l1"}], batch_size=2)
    # Same weights and the same z for teacher and student: equal scores; and again next time.
    assert first["teacher"]["metrics"] == first["student"]["metrics"]
    assert again["student"]["metrics"] == first["student"]["metrics"]
    assert first["student"]["input_shape"] == [16]
    # The latents follow the spec's seed.
    other = Source(spec.model_copy(update={"seed": 6}), weights={"student": str(weights)}, notes=[])
    moved = evaluate(other, registry=reg, metrics=[{"type": "l1"}], teacher=False)
    assert moved["student"]["metrics"]["l1"] != first["student"]["metrics"]["l1"]
    assert not math.isnan(moved["student"]["metrics"]["l1"])


def test_parse_metrics():
    assert parse_metrics("psnr, ssim") == [{"type": "psnr"}, {"type": "ssim"}]
    assert parse_metrics("[{type: fid, num_samples: 10}, l1]") == [
        {"type": "fid", "num_samples": 10},
        {"type": "l1"},
    ]
    with pytest.raises(VemkitError, match="--metrics"):
        parse_metrics("[1, 2]")


def test_bad_metric_option_names_the_flag(reg, data_root, tmp_path):
    run_dir = make_run(reg, config(data_root, tmp_path / "run", {"type": "copy"}), {1: 1})
    with pytest.raises(VemkitError, match=r"--metrics\.0\.max_db"):
        evaluate_target(run_dir, registry=reg, metrics=[{"type": "psnr", "max_db": -1}])


def test_cli_eval_writes_out_and_reports_errors(data_root, tmp_path, capsys):
    from vemkit import registry

    reg = registry.default()
    teacher = {"type": "unet", "ngf": 8, "num_downs": 5}
    run_dir = make_run(reg, config(data_root, tmp_path / "run", teacher), {3: 7})
    out = tmp_path / "scores" / "e.json"
    code = main(["eval", str(run_dir), "--max-items", "2", "--metrics", "l1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    data = read_eval(out)
    assert data["items"] == 2 and list(data["student"]["metrics"]) == ["l1"]
    assert (out.parent / "e_samples.png").is_file()
    # The table: teacher 1.0x, the student's ratio, the metric with its direction.
    assert "| teacher (unet) | 1 |" in printed and "(1.0x)" in printed and "l1 ↓" in printed
    ratio = data["student"]["macs_ratio"]
    assert f"({ratio:.1f}x)" in printed

    empty = make_run(reg, config(data_root, tmp_path / "empty", teacher), {})
    assert main(["eval", str(empty)]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err
    spec_file = tmp_path / "spec.yaml"
    cfg = config(data_root, tmp_path / "r2", teacher)
    del cfg["data"]["eval"]
    spec_file.write_text(yaml.safe_dump(cfg))
    assert main(["eval", str(spec_file)]) == 2
    assert "data.eval" in capsys.readouterr().err


def test_end_to_end_run_eval_report(data_root, tmp_path, capsys):
    spec_file = tmp_path / "spec.yaml"
    run_dir = tmp_path / "run"
    cfg = config(data_root, run_dir, {"type": "unet", "ngf": 4, "num_downs": 5})
    cfg["teacher"]["mode"] = "online"
    cfg["eval"] = {"every": 1, "samples": 2, "metrics": [{"type": "psnr"}]}
    cfg["output"].update(sample_every=2, log_every=1)
    spec_file.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(spec_file)]) == 0
    assert main(["eval", str(run_dir), "--samples", "2"]) == 0
    data = read_eval(run_dir / "eval.json")
    # The run's own last evaluation used the same weights, data and metric.
    last = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    assert data["student"]["metrics"]["psnr"] == pytest.approx(last["eval/psnr"], rel=1e-9)
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    assert f"{data['student']['metrics']['psnr']:.2f}" in page
    assert page.count("data:image/png;base64,") >= 3  # overview, curves, grids
    capsys.readouterr()
