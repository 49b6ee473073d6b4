"""The ``gcc`` method: the wiring of GCC's pieces into its recipe (phases and groups, the
distillation over generator taps and teacher-D features, the gates, the sparsity gradient, the
EMA schedule), pruning the paper's SAGAN under its budget, every GCC paper spec run through all
its stages at a tiny size, and exact resume inside the distillation stage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests._engine_util import same_tensors, single_thread, weights  # noqa: F401 - fixture
from vemkit import registry
from vemkit.engine import resume
from vemkit.engine import run as run_engine
from vemkit.engine.program import compile
from vemkit.engine.state import State
from vemkit.spec import load_spec
from vemkit.spec_model import spec_model
from vemkit.stages import recipe_of, stage_spec_data
from vemkit_plugins.methods.gcc import features_of
from vemkit_plugins.methods.gcc_losses import add_sparsity_grad
from vemkit_plugins.methods.omgd_losses import gram

ROOT = Path(__file__).resolve().parents[1]
PAPER = sorted((ROOT / "specs" / "paper").glob("*gcc*.yaml"))
DEMOS = sorted((ROOT / "specs" / "ablations").glob("*gcc*.yaml"))
SPECS = [*PAPER, *(pytest.param(p, marks=pytest.mark.slow) for p in DEMOS)]  # demo: same recipe
SAGAN = ROOT / "specs" / "paper" / "sagan_celeba_gcc.yaml"
N_IMAGES = 6


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """Six random 64 px RGB images: an unconditional image folder."""
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """Four random 32 px A|B pairs in the aligned layout."""
    root = tmp_path_factory.mktemp("pairs")
    (root / "train").mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        pixels = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "train" / f"{i}.png")
    return root


def tiny(path: Path, faces: Path, pairs: Path, run_dir: Path, iterations: int = 2) -> list[str]:
    """Shrink a GCC spec (the recipe is unchanged): 64 px SAGAN ngf 8 / D ndf 2, or a 32 px
    U-Net ngf 4 / PatchGAN ndf 4; every stage runs ``iterations`` steps."""
    common = [
        "data.eval=null",
        "eval.metrics=[]",
        "eval.best=null",
        "eval.samples=0",
        "train.batch_size=2",
        f"output.dir={run_dir}",
        "output.checkpoint_every=0",
        "output.sample_every=0",
        "output.log_every=1",
        f"method.stages.pretrain.iterations={iterations}",
        f"method.stages.distil.iterations={iterations}",
    ]
    text = path.read_text()
    if "type: vem" in text:
        common += ["mi.energy.width=4", "mi.energy.blocks=2", "mi.sampler.steps=2"]
    if "task: unconditional" in text:
        return [
            *common,
            f"data.train={{type: folder, root: {faces}, size: 64}}",
            "teacher.arch.ngf=8",
            "student.arch.ngf=8",
            "method.discriminator={type: sagan_discriminator, ndf: 2}",
            "method.stages.prune.budget=9.0e5",  # of 1.80M (thop_legacy)
        ]
    return [
        *common,
        f"data.train={{type: aligned, root: {pairs}, size: 32}}",
        "teacher.arch={type: unet, ngf: 4, num_downs: 5, use_dropout: true}",
        "student.arch={type: unet, ngf: 4, num_downs: 5, use_dropout: true}",
        "method.discriminator={type: patchgan, input_nc: 6, ndf: 4, n_layers: 3}",
        "method.stages.prune.budget=7.0e5",  # of 1.42M (thop_legacy)
    ]


def stage_program(spec, name: str):
    stage = next(s for s in recipe_of(spec) if s.name == name)
    stage_spec = spec_model(registry.default()).model_validate(stage_spec_data(spec, stage))
    return compile(stage_spec, stage=stage, context={"num_samples": N_IMAGES}), stage


def logged(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# -- wiring -------------------------------------------------------------------------------------


def test_distil_stage_phases_groups_and_gates(faces, pairs, tmp_path):
    spec = load_spec(SAGAN, tiny(SAGAN, faces, pairs, tmp_path / "run"))
    program, _ = stage_program(spec, "distil")
    program.finalise()
    # GCC's order: teacher D, teacher G, student D, (energy), student G, then the gate update
    assert [p.name for p in program.phases] == [
        "teacher_discriminator",
        "teacher",
        "discriminator",
        "student",
        "gates",
    ]
    terms = {p.name: [t.name for t in p.terms] for p in program.phases}
    assert terms["student"] == ["gcc.gan", "gcc.content", "gcc.gram"]
    assert terms["gates"] == ["gcc.gates"]
    method = program.components["method"]
    alphas = {id(a) for a in method.gated.gate_parameters()}
    # the D optimizer never steps the gates and the gate optimizer nothing else
    assert {id(p) for p in program.phase("gates").params} == alphas
    assert not alphas & {id(p) for p in program.phase("discriminator").params}
    assert program.groups["discriminator"].optimizer.param_groups[0]["lr"] == pytest.approx(4e-4)
    assert program.groups["discriminator_gates"].optimizer.param_groups[0]["lr"] == 1e-4
    # GCC's SAGAN gates: after each spectral-normalised conv of the main path, threshold 0.1
    assert method.gated.layers == ("l1.0", "l2.0", "l3.0", "l4.0")
    assert method.gated.gates[0].threshold == pytest.approx(0.1)
    # a closed gate zeroes its channel in the student D's forward
    with torch.no_grad():
        method.gated.gates[0].alpha[1] = 0.05
        d = program.module("discriminator").eval()
        _, (feat,) = features_of(d, ["l1.0"], torch.randn(2, 3, 64, 64))
    assert feat[:, 1].abs().max() == 0 and feat[:, 0].abs().max() > 0


def test_student_terms_are_gccs_distillation_by_hand(faces, pairs, tmp_path):
    spec = load_spec(SAGAN, tiny(SAGAN, faces, pairs, tmp_path / "run"))
    program, _ = stage_program(spec, "distil")
    program.finalise()
    torch.manual_seed(0)
    batch = {"target": torch.rand(2, 3, 64, 64) * 2 - 1, "index": torch.arange(2)}
    state = State(program, batch, 0)
    # spectral norm's power iteration advances on every training forward: run both ways from
    # the same u vectors
    nets = [program.module(n) for n in ("student", "teacher", "teacher_discriminator")]
    saved = [{k: v.clone() for k, v in net.state_dict().items()} for net in nets]
    with program.activate(state):
        content = program.term("gcc.content").fn(state)
        style = program.term("gcc.gram").fn(state)
        z = state["input"]
    # by hand: the generator taps l2 / attn2 through the adapters, then the teacher D's l2 /
    # attn2 on the student's image vs the teacher's, √MSE of features and of Grams
    student, teacher = program.module("student"), program.module("teacher")
    t_d = program.module("teacher_discriminator")
    adapters = list(program.module("adapters"))
    for net, sd in zip(nets, saved, strict=True):
        net.load_state_dict(sd)
    with torch.no_grad():
        s_img, s_feats = features_of(student, ["l2", "attn2"], z)
        t_img, t_feats = features_of(teacher, ["l2", "attn2"], z)
        s_feats = [a(f) for a, f in zip(adapters, s_feats, strict=True)]
        s_feats += features_of(t_d, ["l2", "attn2"], s_img)[1]
        t_feats += features_of(t_d, ["l2", "attn2"], t_img)[1]
    want_content = sum(F.mse_loss(s, t).sqrt() for s, t in zip(s_feats, t_feats, strict=True))
    want_gram = sum(
        F.mse_loss(gram(s), gram(t)).sqrt() for s, t in zip(s_feats, t_feats, strict=True)
    )
    torch.testing.assert_close(content.detach(), want_content)
    torch.testing.assert_close(style.detach(), want_gram)
    # the adapters map the student's widths (4·8, 8) to the teacher's (4·8, 8) without bias
    assert [tuple(a.weight.shape) for a in adapters] == [(32, 32, 1, 1), (8, 8, 1, 1)]


def test_sparsity_term_gradient_is_exactly_gccs_sign_term(faces, pairs, tmp_path):
    spec = load_spec(SAGAN, tiny(SAGAN, faces, pairs, tmp_path / "run"))
    program, _ = stage_program(spec, "pretrain")
    program.finalise()
    student = program.module("student")
    with torch.no_grad():
        student.l1[1].weight[:3] = torch.tensor([0.0, -0.5, 0.25])  # a zero γ gets no push
    state = State(program, {"target": torch.zeros(1, 3, 64, 64)}, 0)
    term = program.term("gcc.sparsity")
    assert term.weight == pytest.approx(1e-2)
    (term.weight * term.fn(state)).backward()
    got = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    student.zero_grad(set_to_none=True)
    add_sparsity_grad(student, 1e-2, on="scale")  # GCC's operation on .grad
    want = {n: p.grad for n, p in student.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys() and len(got) == 4  # the four BatchNorm scales
    assert all(torch.equal(got[k], want[k]) for k in got)
    assert got["l1.1.weight"][0] == 0 and got["l1.1.weight"][1] == -1e-2


def test_teacher_gap_ema_beta_follows_gccs_epochs(faces, pairs, tmp_path):
    spec = load_spec(
        SAGAN,
        [*tiny(SAGAN, faces, pairs, tmp_path / "run"), "method.stages.distil.iterations=30"],
    )
    program, _ = stage_program(spec, "distil")
    method = program.components["method"]
    # 6 images, batch 2: 3 iterations an epoch, 10 epochs; beta 1 during the first epoch, then
    # 1 - epoch/10 (GCC's adaptive_ema_beta after each epoch)
    betas = [method.ema_beta(step) for step in (0, 2, 3, 5, 6, 29)]
    assert betas == pytest.approx([1.0, 1.0, 0.9, 0.9, 0.8, 0.1])


# -- pruning the paper's network ----------------------------------------------------------------


def test_prune_step_puts_the_papers_sagan_under_its_budget():
    spec = load_spec(SAGAN, [])
    program, stage = stage_program(spec, "prune")
    torch.manual_seed(0)
    with torch.no_grad():  # a pre-trained student's spread of scales, some near zero
        for m in program.module("student").modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand_like(m.weight))
    said = []
    result = program.components["method"].vemkit_stage_step(
        program=program, stage=stage, context={"say": said.append}
    )
    summary = result.summary
    # Table 3: ngf 48 is 15.62M old-thop MACs; GCC's pruned student 15.45M
    assert summary["before"]["macs_thop_legacy"] == 15_624_192
    assert summary["budget"] == 15_450_000
    assert 0.98 * 15.45e6 <= summary["after"]["macs"] <= 15.45e6
    assert summary["after"]["macs"] == summary["after"]["macs_thop_legacy"]
    assert summary["after"]["macs_paper"] < summary["before"]["macs_paper"]
    assert summary["after"]["macs_exact"] < summary["before"]["macs_exact"]
    assert min(summary["after"]["channels"].values()) >= 1  # no empty layer
    arch = result.archs["student"]
    assert arch["type"] == "pruned" and arch["input"] == [128]
    rebuilt = registry.default().build("arch", arch)
    rebuilt.load_state_dict(result.modules["student"].state_dict())  # strict
    assert rebuilt(torch.randn(2, 128)).shape == (2, 3, 64, 64)
    assert "thop_legacy" in said[0]


def test_plan_shows_the_stages_budget_and_both_conventions(capsys):
    from vemkit.cli import main

    assert main(["plan", str(ROOT / "specs" / "paper" / "sagan_celeba_gcc_vem.yaml")]) == 0
    out = capsys.readouterr().out
    assert "1. pretrain" in out and "2. prune" in out and "3. distil" in out
    assert "≤ 15.45M MACs (thop_legacy)" in out
    assert "15.62M thop_legacy, 318.1M paper" in out
    assert "gcc.gates" in out and "mi.vem" in out


# -- end to end ---------------------------------------------------------------------------------


def _spec_id(p) -> str:
    path = p.values[0] if hasattr(p, "values") else p
    return f"{path.parent.name}/{path.stem}"


@pytest.mark.parametrize("path", SPECS, ids=[_spec_id(p) for p in SPECS])
def test_paper_spec_runs_every_stage_at_a_tiny_size(path, faces, pairs, tmp_path):
    run_dir = tmp_path / "run"
    spec = load_spec(path, tiny(path, faces, pairs, run_dir))
    result = run_engine(spec, progress=False)
    assert result.status == "finished"
    stages = run_dir / "stages"
    summary = json.loads((stages / "02-prune" / "summary.json").read_text())
    assert summary["after"]["macs"] <= summary["budget"] < summary["before"]["macs"]
    assert min(summary["after"]["channels"].values()) >= 1
    done = json.loads((stages / "02-prune" / "DONE.json").read_text())
    assert done["archs"]["student"]["type"] == "pruned"
    # the distilled student has the pruned shapes, but fresh weights (GCC re-initialises)
    pruned = weights(stages / "02-prune" / "checkpoints" / "last" / "student.safetensors")
    final = weights(stages / "03-distil" / "checkpoints" / "last" / "student.safetensors")
    assert {k: v.shape for k, v in pruned.items()} == {k: v.shape for k, v in final.items()}
    assert not any(torch.equal(pruned[k], final[k]) for k in pruned if k.endswith("l1.1.bias"))
    pre = set().union(*logged(stages / "01-pretrain"))
    assert {"gcc.gan", "gcc.d_real", "gcc.d_fake", "gcc.sparsity"} <= pre
    rows = logged(stages / "03-distil")
    names = set().union(*rows)
    want = {"gcc.gan", "gcc.content", "gcc.gram", "gcc.teacher_gan", "gcc.gates"}
    want |= {"gcc.gates/student_gap", "gcc.gates/teacher_gap"}
    if spec.task == "paired":
        want |= {"gcc.recon", "gcc.teacher_recon"}
    if spec.mi.type != "none":
        want.add(f"mi.{spec.mi.type}")
    assert want <= names
    assert all(math.isfinite(v) for row in rows for k, v in row.items() if k.startswith("gcc."))


@pytest.mark.slow
def test_resume_inside_distil_is_bitwise_equal(faces, pairs, tmp_path):
    extra = ["train.deterministic=true", "output.checkpoint_every=1", "output.keep=1"]
    whole = tmp_path / "whole"
    spec = load_spec(SAGAN, [*tiny(SAGAN, faces, pairs, whole, iterations=3), *extra])
    assert run_engine(spec, progress=False).status == "finished"
    split = tmp_path / "split"
    spec = load_spec(SAGAN, [*tiny(SAGAN, faces, pairs, split, iterations=3), *extra])
    assert run_engine(spec, progress=False, stop_at=2, stop_in="distil").status == "stopped"
    assert resume(split, progress=False).status == "finished"
    last = Path("stages") / "03-distil" / "checkpoints" / "last"
    for module in ("student", "teacher", "discriminator", "discriminator_gates", "adapters"):
        a = weights(whole / last / f"{module}.safetensors")
        b = weights(split / last / f"{module}.safetensors")
        assert same_tensors(a, b), module
    # the gates moved (the gate step ran on every iteration) and stayed in [0, 1]
    alphas = weights(whole / last / "discriminator_gates.safetensors")
    assert any(not torch.all(a == 1) for a in alphas.values())
    assert all(float(a.min()) >= 0 for a in alphas.values())
