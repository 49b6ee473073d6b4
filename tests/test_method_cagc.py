"""The ``cagc`` recipe: the StyleGAN2 loop as phases (lazy R1/path, lazy Adam scaling, EMA
generator used by evaluation), the content-aware prune step and its MAC counts, the KD on the
same z and crossover for teacher and student, strict loading of a rosinality checkpoint, exact
resume inside a stage, and every paper spec run stage by stage at a tiny size."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests._engine_util import (
    make_registry,
    make_spec,
    merge,
    same_tensors,
    single_thread,  # noqa: F401 - autouse fixture
    weights,
)
from vemkit.engine import resume
from vemkit.engine import run as run_engine
from vemkit.engine.program import compile
from vemkit.engine.state import State
from vemkit.errors import VemkitError
from vemkit.stages import recipe_of, stage_spec_data
from vemkit_plugins.archs.stylegan2 import stylegan2_net_shape_macs
from vemkit_plugins.methods.lpips import FeatureDistance, lpips_form
from vemkit_plugins.methods.stylegan2_losses import ema_decay, lazy_adam_hparams

ROOT = Path(__file__).resolve().parents[1]
PAPER = sorted((ROOT / "specs" / "paper").glob("stylegan2_ffhq_cagc*.yaml"))
SIZE = 16
CHANNELS = {4: 16, 8: 16, 16: 8}
G = {"type": "stylegan2_generator", "size": SIZE, "style_dim": 16, "n_mlp": 2, "channels": CHANNELS}
D = {"type": "stylegan2_discriminator", "size": SIZE, "channels": CHANNELS}


@pytest.fixture(scope="module")
def reg():
    return make_registry()


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            root / f"{i}.png"
        )
    return root


def config(faces: Path, run_dir: Path, **method) -> dict:
    """A tiny CAGC recipe: 3 teacher iterations, prune by half, 3 retrain iterations."""
    stages = {
        "teacher": {"enabled": True, "iterations": 3},
        "prune": {"n_samples": 4, "batch_size": 2, "remove_ratio": 0.5},
        "retrain": {"iterations": 3},
    }
    return {
        "name": "cagc-tiny",
        "seed": 1,
        "task": "unconditional",
        "data": {
            "train": {"type": "folder", "root": str(faces), "size": SIZE},
            "eval": {"type": "folder", "root": str(faces), "size": SIZE, "max_items": 2},
        },
        "teacher": {"arch": G, "mode": "frozen"},
        "student": {"arch": {**G, "remove_ratio": 0.5}},
        "method": merge(
            {
                "type": "cagc",
                "perceptual": "random_vgg16",
                "discriminator": D,
                "training": {"r1_every": 2, "path_every": 2},
                "stages": stages,
            },
            method,
        ),
        "train": {"iterations": 3, "batch_size": 2, "deterministic": True},
        "eval": {"every": 0, "samples": 0, "metrics": [{"type": "fake_mae"}]},
        "output": {"dir": str(run_dir), "checkpoint_every": 0, "sample_every": 0, "log_every": 1},
    }


def stage_program(reg, spec, name: str):
    """The program of stage ``name`` as the recipe compiles it (the stage's own spec)."""
    stage = next(s for s in recipe_of(spec) if s.name == name)
    return compile(make_spec(reg, stage_spec_data(spec, stage)), registry=reg, stage=stage)


# -- the StyleGAN2 loop as phases ----------------------------------------------------------------


def test_retrain_phases_groups_and_lazy_optimizers(reg, faces, tmp_path):
    spec = make_spec(reg, config(faces, tmp_path / "r"))
    program = stage_program(reg, spec, "retrain")
    phases = {p.name: p for p in program.phases}
    assert [p.name for p in program.phases] == ["discriminator", "r1", "student", "path"]
    assert phases["r1"].every == 2 and phases["path"].every == 2
    assert program.term("cagc.r1").weight == 10 / 2 * 2  # γ/2 · interval
    assert program.term("cagc.path").weight == 2 * 2  # weight · interval
    assert program.term("cagc.kd_l1").weight == 3 and program.term("cagc.kd_perceptual").weight == 3
    assert "random VGG16" in program.term("cagc.kd_perceptual").note
    # the EMA generator is the run's student, out of every group; student_g is trained
    assert program.modules["student"].group is None
    assert program.modules["student_g"].group == "student"
    assert program.modules["teacher"].group is None
    lr, betas = lazy_adam_hparams(0.002, (0.0, 0.99), 2)
    for group in ("student", "discriminator"):
        cfg = program.groups[group].optimizer_config
        assert cfg["lr"] == pytest.approx(lr) and cfg["betas"] == pytest.approx(list(betas))
    assert lr == pytest.approx(0.002 * 2 / 3)
    # StyleGAN2 keeps the rate constant unless the spec asks for a schedule
    assert {program.groups[g].scheduler_config.type for g in ("student", "discriminator")} == {
        "constant"
    }
    decayed = make_spec(
        reg, config(faces, tmp_path / "d", training={"scheduler": {"type": "linear_decay"}})
    )
    program = stage_program(reg, decayed, "retrain")
    for group in ("student", "discriminator"):
        assert program.groups[group].scheduler_config.type == "linear_decay"


def test_teacher_stage_trains_teacher_g_and_keeps_teacher_as_its_ema(reg, faces, tmp_path):
    spec = make_spec(reg, config(faces, tmp_path / "t"))
    program = stage_program(reg, spec, "teacher")
    assert [p.name for p in program.phases] == ["discriminator", "r1", "teacher", "teacher_path"]
    assert program.modules["teacher"].group is None
    assert program.modules["teacher_g"].group == "teacher"
    assert "student" not in program.groups
    assert program.evaluates == "teacher.out"


def test_teacher_and_student_see_the_same_z_and_crossover(reg, faces, tmp_path):
    spec = make_spec(reg, config(faces, tmp_path / "s"))
    program = stage_program(reg, spec, "retrain")
    program.finalise()
    seen = {}
    for name in ("teacher", "student_g"):
        net = program.module(name)
        original = net.forward

        def record(z, *, _name=name, _f=original, **kw):
            seen[_name] = ([t.clone() for t in z], kw.get("inject_index"))
            return _f(z, **kw)

        net.forward = record
    torch.manual_seed(4)  # 0.9 mixing: draw until a mixed batch appears
    for step in range(20):
        state = State(program, {"target": torch.zeros(2, 3, SIZE, SIZE), "index": None}, step)
        with program.activate(state):
            state["teacher.out"], state["student.out"]
        (zt, it), (zs, is_) = seen["teacher"], seen["student_g"]
        assert it == is_ and len(zt) == len(zs)
        assert all(torch.equal(a, b) for a, b in zip(zt, zs, strict=True))
        if it is not None:
            assert len(zt) == 2 and 1 <= it < program.module("teacher").n_latent
            break
    else:
        pytest.fail("no style-mixed draw in 20 iterations at p = 0.9")


def test_evaluation_uses_the_ema_generator(reg, faces, tmp_path):
    spec = make_spec(reg, config(faces, tmp_path / "e"))
    program = stage_program(reg, spec, "retrain")
    program.finalise()
    with torch.no_grad():  # make the trained generator differ from the EMA one
        for p in program.module("student_g").parameters():
            p.add_(0.5)
    z = torch.randn(2, 16)
    state = State(program, {"target": torch.zeros(2, 3, SIZE, SIZE)}, 0, training=False)
    state.cache["input"] = z
    with torch.no_grad():
        expected = program.module("student")(z)
        other = program.module("student_g")(z)
        out = state["student.out"]
    # the noise maps are random per call: compare with a tolerance far below the 0.5 shift
    assert (out - expected).abs().mean() < (out - other).abs().mean()


def test_ema_is_accumulated_after_every_iteration(reg, faces, tmp_path):
    spec = make_spec(reg, config(faces, tmp_path / "a"))
    program = stage_program(reg, spec, "retrain")
    program.finalise()
    method = program.components["method"]
    ema, g = program.module("student"), program.module("student_g")
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in g.parameters():
            p.add_(1.0)
    method.vemkit_iteration_end(program=program, state=None, step=1, logs={})
    beta = ema_decay(32, 10.0)
    for name, p in ema.named_parameters():
        want = beta * before[name] + (1 - beta) * dict(g.named_parameters())[name]
        torch.testing.assert_close(p, want)
    # buffers (the fixed noise maps) are not averaged
    assert torch.equal(ema.noises.noise_0, before["noises.noise_0"])


# -- the recipe end to end, resume, checkpoints -------------------------------------------------


def test_tiny_recipe_runs_end_to_end_and_logs_every_term(reg, faces, tmp_path):
    spec = make_spec(reg, config(faces, tmp_path / "run"))
    result = run_engine(spec, registry=reg, progress=False)
    assert result.status == "finished" and result.stage == "retrain"
    stages = tmp_path / "run" / "stages"
    summary = json.loads((stages / "02-prune" / "summary.json").read_text())
    assert summary["before"]["channels"] == {
        "input": 16, "conv1": 16, "convs.0": 16, "convs.1": 16, "convs.2": 8, "convs.3": 8
    }  # fmt: skip
    assert summary["after"]["channels"]["convs.3"] == 4
    assert summary["after"]["macs"] == stylegan2_net_shape_macs([8, 8, 8, 8, 4, 4], 16, 2)
    assert summary["mask"] == "whole"
    done = json.loads((stages / "02-prune" / "DONE.json").read_text())
    assert done["archs"]["student"]["net_shape"] == [8, 8, 8, 8, 4, 4]
    rows = [json.loads(line) for line in (stages / "03-retrain" / "metrics.jsonl").open()]
    logged = set().union(*rows)
    for term in ("cagc.d_logistic", "cagc.r1", "cagc.g_nonsaturating", "cagc.kd_l1"):
        assert term in logged
    assert {"cagc.kd_perceptual", "cagc.path", "eval/mae"} <= logged
    teacher_rows = [json.loads(line) for line in (stages / "01-teacher" / "metrics.jsonl").open()]
    assert "loss/teacher_path" in set().union(*teacher_rows)
    # the retrained student's checkpoint: the EMA generator under `student`, its state
    last = stages / "03-retrain" / "checkpoints" / "last"
    student, trained = (
        weights(last / "student.safetensors"),
        weights(last / "student_g.safetensors"),
    )
    assert student.keys() == trained.keys()
    assert not same_tensors(student, trained)
    # the teacher the retraining saw is the teacher stage's EMA generator, unchanged
    t1 = weights(stages / "01-teacher" / "checkpoints" / "last" / "teacher.safetensors")
    assert same_tensors(t1, weights(last / "teacher.safetensors"))


def test_resume_inside_the_retrain_stage_is_bitwise_equal(reg, faces, tmp_path):
    full = make_spec(reg, config(faces, tmp_path / "full"))
    run_engine(full, registry=reg, progress=False)
    split = make_spec(reg, config(faces, tmp_path / "split"))
    assert run_engine(split, registry=reg, stop_at=2, stop_in="retrain").status == "stopped"
    assert resume(tmp_path / "split", registry=reg, progress=False).status == "finished"
    for name in ("student", "student_g", "discriminator", "mi"):
        a = tmp_path / "full" / "stages" / "03-retrain" / "checkpoints" / "last"
        b = tmp_path / "split" / "stages" / "03-retrain" / "checkpoints" / "last"
        if (a / f"{name}.safetensors").exists():
            assert same_tensors(
                weights(a / f"{name}.safetensors"), weights(b / f"{name}.safetensors")
            ), name


def test_rosinality_checkpoint_loads_strictly_into_teacher_and_discriminator(reg, faces, tmp_path):
    teacher = reg.build("arch", G)
    g_ema = reg.build("arch", G)
    d = reg.build("arch", D)
    path = tmp_path / "teacher.pt"
    # a rosinality training checkpoint: g, d, g_ema, optimizer states (DataParallel prefixes)
    torch.save(
        {
            "g": {f"module.{k}": v for k, v in teacher.state_dict().items()},
            "d": d.state_dict(),
            "g_ema": g_ema.state_dict(),
            "g_optim": {},
            "d_optim": {},
        },
        path,
    )
    cfg = config(faces, tmp_path / "ros", teacher_checkpoint=str(path))
    cfg["method"]["stages"] = {
        "prune": {"n_samples": 2, "batch_size": 2, "remove_ratio": 0.5},
        "retrain": {"enabled": False},
    }
    result = run_engine(make_spec(reg, cfg), registry=reg, progress=False)
    assert result.status == "finished" and result.stage == "prune"
    out = tmp_path / "ros" / "stages" / "01-prune" / "checkpoints" / "step_0000000"
    assert same_tensors(weights(out / "teacher.safetensors"), g_ema.state_dict())
    assert same_tensors(weights(out / "discriminator.safetensors"), d.state_dict())


def test_a_checkpoint_of_other_widths_is_refused(reg, faces, tmp_path):
    path = tmp_path / "wide.pt"
    wide = reg.build("arch", {**G, "channels": {4: 32, 8: 32, 16: 8}})
    torch.save({"g_ema": wide.state_dict()}, path)
    cfg = config(faces, tmp_path / "bad", teacher_checkpoint=str(path))
    cfg["method"]["stages"] = {"prune": {"n_samples": 2}, "retrain": {"enabled": False}}
    with pytest.raises(Exception, match="teacher_checkpoint"):
        run_engine(make_spec(reg, cfg), registry=reg, progress=False)


# -- the perceptual distances -------------------------------------------------------------------


def test_lpips_form_by_hand():
    a = [torch.tensor([[[[3.0]], [[4.0]]]])]  # one pixel, two channels: unit vector (.6, .8)
    b = [torch.tensor([[[[0.0]], [[2.0]]]])]  # unit vector (0, 1)
    # squared differences (.36, .04); uniform weights average them, learned ones weigh them
    assert lpips_form(a, b).item() == pytest.approx(0.2, abs=1e-6)
    w = [torch.tensor([1.0, 0.5])]
    assert lpips_form(a, b, w).item() == pytest.approx(0.36 + 0.02, abs=1e-6)


def test_feature_distance_is_zero_for_equal_images_and_upsamples_small_ones():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return [x]

    dist = FeatureDistance(Probe(), "probe", min_size=64)
    x = torch.rand(2, 3, 16, 16)
    assert dist(x, x).abs().max().item() == 0
    assert seen == [(64, 64), (64, 64)]


# -- 256 px: the prune stage's MAC counts -------------------------------------------------------


@pytest.mark.slow
def test_prune_stage_macs_at_256px_through_summary_and_profile(reg, tmp_path, capsys):
    from vemkit.commands import profile as profile_cmd

    faces = tmp_path / "faces256"
    faces.mkdir()
    Image.fromarray(np.zeros((256, 256, 3), dtype=np.uint8)).save(faces / "0.png")
    cfg = {
        "name": "cagc-256",
        "seed": 0,
        "task": "unconditional",
        "data": {"train": {"type": "folder", "root": str(faces), "size": 256}},
        "teacher": {"arch": {"type": "stylegan2_generator", "size": 256}, "mode": "frozen"},
        "student": {"arch": {"type": "stylegan2_generator", "size": 256, "remove_ratio": 0.7}},
        "method": {
            "type": "cagc",
            "stages": {
                "prune": {"n_samples": 1, "batch_size": 1, "remove_ratio": 0.7},
                "retrain": {"enabled": False},
            },
        },
        "train": {"batch_size": 1},
        "output": {"dir": str(tmp_path / "run")},
    }
    run_engine(make_spec(reg, cfg), registry=reg, progress=False)
    summary = json.loads((tmp_path / "run" / "stages" / "01-prune" / "summary.json").read_text())
    assert summary["before"]["macs"] == 45_124_673_536  # CAGC's GENERATOR_FLOPS_256PX
    assert summary["after"]["macs"] == pytest.approx(4.1e9, rel=0.02)
    assert summary["after"]["channels"]["convs.11"] == 39
    # the generic count (every layer, torchprofile's rule) beside CAGC's: 85.02G for the teacher
    assert summary["macs_generic"]["before"] == pytest.approx(85.02e9, rel=1e-3)
    assert summary["macs_generic"]["after"] < summary["macs_generic"]["before"] / 9
    parser = argparse.ArgumentParser(prog="vemkit")
    profile_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["profile", str(tmp_path / "run"), "--no-latency", "--json"])
    assert profile_cmd.run(args) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["teacher"]["macs_named"]["cagc_analytic"] == summary["before"]["macs"]
    assert rows["student"]["macs_named"]["cagc_analytic"] == summary["after"]["macs"]


# -- the paper specs ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_spec_keeps_the_papers_setting(reg, path):
    data = yaml.safe_load(path.read_text())
    spec = make_spec(reg, data)
    assert [s.name for s in recipe_of(spec)] == ["prune", "retrain"]
    m = spec.method
    assert m.stages.prune.remove_ratio == 0.7 and m.stages.prune.n_samples == 400
    assert m.stages.prune.mask.type == "face_parser"
    assert m.kd_l1_weight == 3 and m.kd_perceptual_weight == 3 and m.perceptual == "lpips"
    assert spec.train.batch_size == 16 and m.stages.retrain.iterations == 450_000
    assert m.training.r1_every == 16 and m.training.path_every == 4 and m.training.mixing == 0.9
    student = reg.build("arch", spec.student.arch)
    assert student.named_macs()["cagc_analytic"] == pytest.approx(4.1e9, rel=0.02)
    if spec.mi.type != "none":
        assert spec.mi.positive == "teacher"
    if spec.mi.type == "vem":
        assert spec.mi.sampler.step_size == 50


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_spec_runs_each_stage_at_a_tiny_size(reg, path, faces, tmp_path):
    """The spec as written, shrunk: 16 px networks, a rosinality checkpoint made here for the
    teacher, the offline mask and a test perceptual network, two retrain iterations."""
    data = yaml.safe_load(path.read_text())
    teacher, d = reg.build("arch", G), reg.build("arch", D)
    ckpt = tmp_path / "teacher.pt"
    torch.save(
        {"g": teacher.state_dict(), "d": d.state_dict(), "g_ema": teacher.state_dict()}, ckpt
    )
    data["data"] = {
        "train": {"type": "folder", "root": str(faces), "size": SIZE},
        "eval": {"type": "folder", "root": str(faces), "size": SIZE, "max_items": 2},
    }
    data["teacher"]["arch"] = G
    data["student"]["arch"] = {**G, "remove_ratio": 0.7}
    method = data["method"]
    method.update(teacher_checkpoint=str(ckpt), perceptual="random_vgg16", discriminator=D)
    method.pop("lpips_weights")
    method["stages"]["prune"].update(mask={"type": "saliency"}, n_samples=2, batch_size=2)
    method["stages"]["retrain"]["iterations"] = 2
    if data["mi"]["type"] == "vem":
        data["mi"]["energy"] = {"type": "conv_sn", "width": 4, "blocks": 2, "downsample": 1}
        data["mi"]["sampler"]["steps"] = 2
    if data["mi"]["type"] == "crd":
        data["mi"]["num_negatives"] = 4
    data["train"] = {"iterations": 2, "batch_size": 2}
    data["eval"] = {"every": 0, "samples": 0, "metrics": [{"type": "fake_mae"}]}
    data["output"] = {"dir": str(tmp_path / "run"), "checkpoint_every": 0, "log_every": 1}
    result = run_engine(make_spec(reg, data), registry=reg, progress=False)
    assert result.status == "finished" and result.stage == "retrain"
    rows = (tmp_path / "run" / "stages" / "02-retrain" / "metrics.jsonl").read_text()
    assert "cagc.kd_l1" in rows
    if data["mi"]["type"] != "none":
        assert f"mi.{data['mi']['type']}" in rows


DEMO = sorted((ROOT / "specs").glob("cagc_demo*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", DEMO, ids=[p.stem for p in DEMO])
def test_demo_spec_runs_every_stage_briefly(reg, path, tmp_path):
    """The offline demo recipes as written (32 px networks, saliency mask), on random 32 px
    images, two iterations per training stage; the random VGG stands in for Inception."""
    faces = tmp_path / "fmnist32" / "train" / "0_class"
    faces.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(faces / f"{i}.png")
    data = yaml.safe_load(path.read_text())
    for split in ("train", "eval"):
        data["data"][split].update(root=str(tmp_path / "fmnist32"), split="train")
    stages = data["method"]["stages"]
    stages["teacher"]["iterations"] = stages["retrain"]["iterations"] = 2
    stages["prune"]["n_samples"] = 4
    data["method"]["perceptual"] = "random_vgg16"
    data["train"].update(iterations=2, batch_size=2)
    data["eval"] = {"every": 0, "samples": 2, "metrics": [{"type": "fake_mae"}]}
    data["output"] = {"dir": str(tmp_path / "run"), "checkpoint_every": 0, "sample_every": 0}
    result = run_engine(make_spec(reg, data), registry=reg, progress=False)
    assert result.status == "finished" and result.stage == "retrain"
    summary = json.loads((tmp_path / "run" / "stages" / "02-prune" / "summary.json").read_text())
    assert summary["after"]["channels"] == {
        "input": 16, "conv1": 16, "convs.0": 16, "convs.1": 16, "convs.2": 16, "convs.3": 16,
        "convs.4": 8, "convs.5": 8,
    }  # fmt: skip
    assert "eval/mae" in (tmp_path / "run" / "stages" / "03-retrain" / "metrics.jsonl").read_text()


def test_lpips_network_applies_scaling_taps_and_channel_weights(tmp_path):
    from vemkit_plugins.methods import lpips

    torch.manual_seed(0)
    trunk = lpips.vgg16_trunk(lpips._VGG16_CFG, inplace=False)
    lin = {
        f"lin{i}.model.1.weight": torch.full((1, c, 1, 1), 1.0 / c)
        for i, c in enumerate(lpips.LPIPS_CHANNELS)
    }
    net = lpips.LPIPS(trunk.state_dict(), lin)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def taps(x):
        x, out = (x - shift) / scale, []
        for i, layer in enumerate(trunk):
            x = layer(x)
            if i in (3, 8, 15, 22, 29):
                out.append(x)
        return out

    with torch.no_grad():
        got = net(a, b)
        want = lpips_form(taps(a), taps(b))  # weights 1/C = the uniform mean over channels
    assert got.shape == (2, 1, 1, 1)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert net(a, a).abs().max().item() == 0
    # files: an lpips vgg.pth and torchvision's VGG16 (features.* keys, classifier ignored)
    torch.save(lin, tmp_path / "vgg.pth")
    features = {f"features.{k}": v for k, v in trunk.state_dict().items()}
    torch.save({**features, "classifier.0.weight": torch.zeros(2, 2)}, tmp_path / "vgg16.pth")
    loaded = lpips.load_lpips(tmp_path / "vgg.pth", tmp_path / "vgg16.pth")
    with torch.no_grad():
        torch.testing.assert_close(loaded(a, b), got)
    torch.save({"lin0.model.1.weight": lin["lin0.model.1.weight"]}, tmp_path / "short.pth")
    with pytest.raises(VemkitError, match="lin1"):
        lpips.load_lpips(tmp_path / "short.pth", tmp_path / "vgg16.pth")
