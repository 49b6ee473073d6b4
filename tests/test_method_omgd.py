"""The ``omgd`` method end to end: its phases, terms and groups for pix2pix and CycleGAN, what the
student may read, short runs that log every named term, exact resume with the image pools, the
paper specs' network sizes, and a 2-iteration run of every OMGD spec in specs/ (paper,
ablations, quickstart) at a tiny size through ``--set`` overrides."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests._engine_util import (
    make_aligned,
    make_registry,
    make_spec,
    make_unaligned,
    merge,
    same_tensors,
    single_thread,  # noqa: F401 - autouse fixture
    weights,
)
from vemkit.engine import hookspecs, resume
from vemkit.engine import run as run_engine
from vemkit.engine.program import compile
from vemkit.engine.state import State
from vemkit.errors import VemkitError
from vemkit_plugins.methods.omgd import ORDER_DISCRIMINATOR_AFTER_TEACHER
from vemkit_plugins.methods.omgd_losses import gan_loss_d, ssim_loss, tv_loss
from vemkit_plugins.methods.options import MOBILE_RESNET_CD_TAPS, UNET_CD_TAPS

ROOT = Path(__file__).resolve().parents[1]
PAPER = sorted((ROOT / "specs" / "paper").glob("*omgd*.yaml"))
SIZE = 32


@pytest.fixture(scope="module")
def reg():
    return make_registry()


@pytest.fixture(scope="module")
def aligned_root(tmp_path_factory):
    return make_aligned(tmp_path_factory.mktemp("aligned"), n=4, size=SIZE)


@pytest.fixture(scope="module")
def unaligned_root(tmp_path_factory):
    return make_unaligned(tmp_path_factory.mktemp("unaligned"), size=SIZE, seed=7)


def output(run_dir: Path, **changes) -> dict:
    base = {"dir": str(run_dir), "checkpoint_every": 0, "sample_every": 0, "log_every": 1}
    return {**base, **changes}


def pix2pix_config(root: Path, run_dir: Path, **method) -> dict:
    """OMGD's pix2pix setting at 32 px, ngf 4: wide U-Net + U-Net-deepest, two-head D."""
    return {
        "name": "omgd-pix2pix",
        "seed": 1,
        "task": "paired",
        "data": {"train": {"type": "aligned", "root": str(root), "size": SIZE}},
        "teacher": {"arch": {"type": "unet", "ngf": 4, "num_downs": 5}, "mode": "online"},
        "student": {"arch": {"type": "unet", "ngf": 2, "num_downs": 5}},
        "method": {
            "type": "omgd",
            "perceptual": "random_vgg16",
            "deep_teacher": {"type": "unet_deepest", "ngf": 2, "num_downs": 5},
            "discriminator": {"type": "omgd_patchgan", "input_nc": 6, "ndf": 4, "heads": 2},
            **method,
        },
        "train": {"iterations": 2, "batch_size": 2},
        "eval": {"every": 0, "samples": 0},
        "output": output(run_dir),
    }


def cyclegan_config(root: Path, run_dir: Path, **method) -> dict:
    """OMGD's CycleGAN setting at 32 px: Mobile ResNet teacher pair (ngf 4), student ngf 2."""
    return {
        "name": "omgd-cyclegan",
        "seed": 2,
        "task": "unpaired",
        "data": {"train": {"type": "unaligned", "root": str(root), "size": SIZE}},
        "teacher": {"arch": {"type": "mobile_resnet", "ngf": 4}, "mode": "online"},
        "student": {"arch": {"type": "mobile_resnet", "ngf": 2}},
        "method": {
            "type": "omgd",
            "perceptual": "random_vgg16",
            "deep_teacher": None,
            "lambda_cd": 500.0,
            "discriminator": {"type": "patchgan", "ndf": 4, "norm": "instance"},
            "pool_size": 2,
            **method,
        },
        "train": {"iterations": 3, "batch_size": 1},
        "eval": {"every": 0, "samples": 0},
        "output": output(run_dir),
    }


VEM = {
    "type": "vem",
    "weight": 0.1,
    "energy": {"type": "conv_sn", "width": 4, "blocks": 2, "downsample": 0},
    "sampler": {"type": "langevin", "steps": 2},
}

PIX2PIX_STUDENT = [
    f"omgd.{kind}.{teacher}"
    for teacher in ("wide", "deep")
    for kind in ("ssim", "style", "feature", "tv")
] + ["omgd.cd"]
CYCLEGAN_STUDENT = ["omgd.ssim", "omgd.style", "omgd.feature", "omgd.tv", "omgd.cd"]


def phases(program) -> list[tuple[str, float, list[str], int]]:
    return [(p.name, p.order, p.groups, p.every) for p in program.phases]


def terms(program, phase: str) -> list[tuple[str, float]]:
    return [(t.name, t.weight) for t in program.phase(phase).terms]


def batch_state(program, batch: dict) -> State:
    return State(program, batch, 0)


def example(program, n: int = 2) -> dict:
    torch.manual_seed(0)
    return {
        "input": torch.rand(n, 3, SIZE, SIZE) * 2 - 1,
        "target": torch.rand(n, 3, SIZE, SIZE) * 2 - 1,
        "index": torch.arange(n),
    }


# -- compile: phases, terms, groups ---------------------------------------------------------------
def test_pix2pix_with_vem_compiles_to_omgd_order_terms_and_groups(reg, aligned_root, tmp_path):
    config = merge(pix2pix_config(aligned_root, tmp_path, n_dis=3), {"mi": VEM})
    program = compile(make_spec(reg, config), registry=reg)
    # OMGD: teachers+D every n_dis steps, then (VEM's energy), then the student
    assert phases(program) == [
        ("teacher", hookspecs.ORDER_TEACHER, ["teacher"], 3),
        ("discriminator", ORDER_DISCRIMINATOR_AFTER_TEACHER, ["discriminator"], 3),
        ("energy", hookspecs.ORDER_ENERGY, ["mi"], 1),
        ("student", hookspecs.ORDER_STUDENT, ["student"], 1),
    ]
    # weights: lambda_gan 1, lambda_rec 100 (OMGD's pix2pix defaults)
    assert terms(program, "teacher") == [
        ("omgd.teacher_gan.wide", 1.0),
        ("omgd.teacher_l1.wide", 100.0),
        ("omgd.teacher_gan.deep", 1.0),
        ("omgd.teacher_l1.deep", 100.0),
    ]
    assert terms(program, "discriminator") == [("omgd.d.wide", 1.0), ("omgd.d.deep", 1.0)]
    # AGD_weights 1e1, 1e4, 1e1, 1e-5 per teacher; lambda_CD 10; VEM's term last
    assert terms(program, "student") == [
        (name, {"ssim": 10.0, "style": 1e4, "feature": 10.0, "tv": 1e-5, "cd": 10.0}[kind])
        for name in PIX2PIX_STUDENT
        for kind in [name.split(".")[1]]
    ] + [("mi.vem", 1.0)]
    groups = {n: (e.role, e.group) for n, e in program.modules.items()}
    assert groups == {
        "teacher": ("teacher", "teacher"),
        "student": ("student", "student"),
        "deep_teacher": ("teacher", "teacher"),
        "discriminator": ("discriminator", "discriminator"),
        "cd_adapters": ("adapter", "student"),
        "mi": ("energy", "mi"),
    }
    assert set(program.groups) == {"student", "teacher", "discriminator", "mi"}
    # the perceptual network is the method's attribute, never a module of the run
    assert program.components["method"].extractor is not None
    assert not any(type(e.module).__name__.startswith("VGG") for e in program.modules.values())


def test_cd_adapters_take_their_widths_from_the_taps(reg, aligned_root, tmp_path):
    program = compile(make_spec(reg, pix2pix_config(aligned_root, tmp_path)), registry=reg)
    # student ngf 2, teacher ngf 4: taps are 2/8/16/4·ngf wide (OMGD's mapping_layers)
    adapters = program.module("cd_adapters")
    assert [(a[0].in_channels, a[0].out_channels) for a in adapters] == [
        (4, 8),
        (16, 32),
        (32, 64),
        (8, 16),
    ]
    assert all(a[0].bias is None and isinstance(a[1], torch.nn.BatchNorm2d) for a in adapters)
    assert sorted(program.taps) == sorted(
        [f"student:{t}" for t in UNET_CD_TAPS] + [f"teacher:{t}" for t in UNET_CD_TAPS]
    )


def test_cyclegan_compiles_to_a_teacher_pair_with_two_discriminators(reg, unaligned_root, tmp_path):
    config = merge(
        cyclegan_config(unaligned_root, tmp_path), {"mi": {**VEM, "positive": "teacher"}}
    )
    program = compile(make_spec(reg, config), registry=reg)
    assert [p[:3] for p in phases(program)] == [
        ("teacher", hookspecs.ORDER_TEACHER, ["teacher"]),
        ("discriminator", ORDER_DISCRIMINATOR_AFTER_TEACHER, ["discriminator"]),
        ("energy", hookspecs.ORDER_ENERGY, ["mi"]),
        ("student", hookspecs.ORDER_STUDENT, ["student"]),
    ]
    # CycleGAN: lambda_A = lambda_B = 10, identity 0.5 · 10
    assert terms(program, "teacher") == [
        ("omgd.teacher_gan.A", 1.0),
        ("omgd.teacher_gan.B", 1.0),
        ("omgd.cycle.A", 10.0),
        ("omgd.cycle.B", 10.0),
        ("omgd.idt.A", 5.0),
        ("omgd.idt.B", 5.0),
    ]
    assert terms(program, "discriminator") == [("omgd.d.A", 1.0), ("omgd.d.B", 1.0)]
    assert [n for n, _ in terms(program, "student")] == [*CYCLEGAN_STUDENT, "mi.vem"]
    assert dict(terms(program, "student"))["omgd.cd"] == 500.0
    groups = {n: (e.role, e.group) for n, e in program.modules.items()}
    assert groups == {
        "teacher": ("teacher", "teacher"),
        "student": ("student", "student"),
        "teacher_B": ("teacher", "teacher"),
        "discriminator_A": ("discriminator", "discriminator"),
        "discriminator_B": ("discriminator", "discriminator"),
        "cd_adapters": ("adapter", "student"),
        "mi": ("energy", "mi"),
    }
    # defaults for unpaired data: LSGAN, a PatchGAN per direction on 3-channel images
    method = program.components["method"]
    assert method.gan_mode == "lsgan" and set(method.pools) == {"A", "B"}
    assert sorted(program.taps) == sorted(
        [f"{o}:{t}" for o in ("student", "teacher") for t in MOBILE_RESNET_CD_TAPS]
    )


def test_a_frozen_teacher_has_no_teacher_or_discriminator_phase(
    reg, aligned_root, unaligned_root, tmp_path
):
    for config in (
        pix2pix_config(aligned_root, tmp_path),
        cyclegan_config(unaligned_root, tmp_path),
    ):
        config["teacher"]["mode"] = "frozen"
        program = compile(make_spec(reg, config), registry=reg)
        assert [p.name for p in program.phases] == ["student"]
        assert not any(e.role == "discriminator" for e in program.modules.values())
        assert {e.group for e in program.modules.values() if e.role == "teacher"} == {None}
        assert set(program.groups) == {"student"}


def test_frozen_pix2pix_notes_an_uninitialised_deep_teacher(reg, aligned_root, tmp_path):
    config = pix2pix_config(aligned_root, tmp_path)
    config["teacher"]["mode"] = "frozen"
    program = compile(make_spec(reg, config), registry=reg)
    assert any("deep teacher keeps its random initialisation" in n for n in program.notes)
    assert [n for n, _ in terms(program, "student")] == PIX2PIX_STUDENT


def test_one_teacher_pix2pix_names_its_terms_without_suffix(reg, aligned_root, tmp_path):
    config = pix2pix_config(aligned_root, tmp_path, deep_teacher=None, discriminator=None)
    program = compile(make_spec(reg, config), registry=reg)
    assert [n for n, _ in terms(program, "teacher")] == ["omgd.teacher_gan", "omgd.teacher_l1"]
    assert [n for n, _ in terms(program, "student")] == CYCLEGAN_STUDENT
    # the default discriminator: OMGD's shared PatchGAN on concat(A, B), one head per teacher
    net = program.module("discriminator")
    assert (net.heads, net.n_share) == (1, 5)
    assert net.block1s[0].block[0].in_channels == 6 and net.block1s[0].block[0].out_channels == 128


# -- what each term reads -------------------------------------------------------------------
def test_student_terms_never_read_the_ground_truth(reg, aligned_root, tmp_path):
    program = compile(make_spec(reg, pix2pix_config(aligned_root, tmp_path)), registry=reg)
    program.finalise()
    state = batch_state(program, example(program))
    reads = []
    original = program.producers["target"].fn
    program.producers["target"].fn = lambda s: reads.append(1) or original(s)
    with program.activate(state):
        values = {t.name: t.fn(state) for t in program.phase("student").terms}
        student_loss = sum(program.term(n).weight * v for n, v in values.items())
        assert reads == []  # no GAN loss, no L1 to the ground truth
        for t in program.phase("teacher").terms:
            t.fn(state)
    assert reads  # the teachers do read it (lambda_rec · L1)
    grads = torch.autograd.grad(student_loss, state["student.out"], allow_unused=True)
    assert grads[0] is not None and bool(torch.isfinite(grads[0]).all())


def test_terms_read_the_right_teacher_images(reg, aligned_root, tmp_path):
    program = compile(make_spec(reg, pix2pix_config(aligned_root, tmp_path)), registry=reg)
    program.finalise()
    state = batch_state(program, example(program))
    with program.activate(state):
        value = {t.name: float(t.fn(state).detach()) for p in program.phases for t in p.terms}
        student, wide, deep = (
            state[n].detach() for n in ("student.out", "teacher.out", "deep_teacher.out")
        )
        target = state["target"]
    assert value["omgd.ssim.wide"] == pytest.approx(float(ssim_loss(student, wide)), rel=1e-5)
    assert value["omgd.ssim.deep"] == pytest.approx(float(ssim_loss(student, deep)), rel=1e-5)
    assert value["omgd.ssim.wide"] != pytest.approx(value["omgd.ssim.deep"], rel=1e-3)
    # OMGD adds the student's summed TV once per teacher
    tv = float(tv_loss(student, "sum"))
    assert value["omgd.tv.wide"] == value["omgd.tv.deep"] == pytest.approx(tv, rel=1e-5)
    assert value["omgd.teacher_l1.deep"] == pytest.approx(float(F.l1_loss(deep, target)), rel=1e-5)
    assert all(math.isfinite(v) for v in value.values())


def test_discriminator_reuses_scores_with_the_same_values_and_gradients(
    reg, aligned_root, tmp_path
):
    # The discriminator phase takes the fake scores from the teachers' GAN terms and scores the
    # real pairs once for both heads (all 5 blocks shared); against scoring everything anew,
    # loss and gradients must agree.
    program = compile(make_spec(reg, pix2pix_config(aligned_root, tmp_path)), registry=reg)
    method = program.components["method"]
    assert method.reuse_fake_scores and program.phase("teacher").retain_graph
    net = program.module("discriminator")
    params = [p for p in net.parameters()]
    state = batch_state(program, example(program))
    with program.activate(state):
        for term in program.phase("teacher").terms:
            term.fn(state)
        reused = sum(t.fn(state) for t in program.phase("discriminator").terms)
        assert "omgd.d_real" in state.values
        anew = 0.0
        for head, (_, name) in enumerate(method.teachers):
            real = net(torch.cat([state["input"], state["target"]], 1), head)
            fake = net(torch.cat([state["input"], state.detached(name)], 1), head)
            anew = anew + gan_loss_d(real, fake, "hinge")
    assert reused.item() == pytest.approx(anew.item(), rel=1e-6)
    got = torch.autograd.grad(reused, params, allow_unused=True)
    want = torch.autograd.grad(anew, params, allow_unused=True)
    for g, w in zip(got, want, strict=True):
        assert (g is None) == (w is None)
        if g is not None:
            assert torch.allclose(g, w, rtol=1e-5, atol=1e-7)


def test_cyclegan_teacher_taps_keep_the_activations_of_g_a_on_a(reg, unaligned_root, tmp_path):
    program = compile(make_spec(reg, cyclegan_config(unaligned_root, tmp_path)), registry=reg)
    program.finalise()
    batch = example(program, 1)
    state = batch_state(program, batch)
    g_a, g_b = program.module("teacher"), program.module("teacher_B")
    with program.activate(state):
        values = {t.name: float(t.fn(state).detach()) for t in program.phase("teacher").terms}
        tapped = state["teacher:model.9"]  # G_A ran on B (idt_A) and on G_B(B) (rec_B) since
    with torch.no_grad():
        assert torch.allclose(tapped, g_a.model[:10](batch["input"]), atol=1e-6)
        a, b = batch["input"], batch["target"]
        assert values["omgd.cycle.A"] == pytest.approx(float(F.l1_loss(g_b(g_a(a)), a)), rel=1e-5)
        assert values["omgd.cycle.B"] == pytest.approx(float(F.l1_loss(g_a(g_b(b)), b)), rel=1e-5)
        assert values["omgd.idt.A"] == pytest.approx(float(F.l1_loss(g_a(b), b)), rel=1e-5)


# -- checks before training ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"task": "unconditional"}, "method: omgd distils image-to-image generators"),
        ({"method": {"deep_teacher": {"type": "unet_deepest", "ngf": 2}}}, "one teacher pair"),
        ({"method": {"cd_student_taps": ["model.99"]}}, "method.cd_student_taps.0: feature tap"),
        (
            {"method": {"discriminator": {"type": "patchgan", "ndf": 4, "n_layers": 5}}},
            "method.discriminator: cannot score images of shape (3, 32, 32)",
        ),
    ],
)
def test_problems_are_reported_at_compile_time(reg, unaligned_root, tmp_path, change, says):
    config = merge(cyclegan_config(unaligned_root, tmp_path), change)
    with pytest.raises(VemkitError, match=None) as info:
        compile(make_spec(reg, config), registry=reg)
    assert says in str(info.value)


def test_too_few_discriminator_heads_are_refused(reg, aligned_root, tmp_path):
    d = {"type": "omgd_patchgan", "input_nc": 6, "ndf": 4, "heads": 1}
    config = pix2pix_config(aligned_root, tmp_path, discriminator=d)
    with pytest.raises(VemkitError, match=r"method.discriminator: 1 head\(s\) for 2 teachers"):
        compile(make_spec(reg, config), registry=reg)


# -- short runs -------------------------------------------------------------------------------
def logged(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_pix2pix_run_logs_every_named_term(reg, aligned_root, tmp_path):
    config = merge(pix2pix_config(aligned_root, tmp_path / "run"), {"mi": VEM})
    result = run_engine(make_spec(reg, config), registry=reg, progress=False)
    assert result.status == "finished"
    names = {t.name for p in result.program.phases for t in p.terms}
    assert len(names) == 4 + 2 + 1 + 10
    for row in logged(tmp_path / "run"):
        assert names <= set(row), names - set(row)
        assert all(math.isfinite(row[n]) for n in names)
    saved = {p.stem for p in (tmp_path / "run" / "checkpoints" / "last").glob("*.safetensors")}
    assert saved == {"teacher", "student", "deep_teacher", "discriminator", "cd_adapters", "mi"} | {
        "state"
    }  # the perceptual network is not saved


def test_cyclegan_run_logs_every_named_term(reg, unaligned_root, tmp_path):
    config = cyclegan_config(unaligned_root, tmp_path / "run")
    result = run_engine(make_spec(reg, config), registry=reg, progress=False)
    names = {t.name for p in result.program.phases for t in p.terms}
    assert names == {
        "omgd.teacher_gan.A",
        "omgd.teacher_gan.B",
        "omgd.cycle.A",
        "omgd.cycle.B",
        "omgd.idt.A",
        "omgd.idt.B",
        "omgd.d.A",
        "omgd.d.B",
        *CYCLEGAN_STUDENT,
    }
    rows = logged(tmp_path / "run")
    assert len(rows) == 3
    for row in rows:
        assert all(math.isfinite(row[n]) for n in names)
    pools = result.program.components["method"].pools
    assert len(pools["A"]) == len(pools["B"]) == 2  # pool_size 2, 3 fakes seen


def test_cyclegan_resumes_exactly_with_its_image_pools(reg, unaligned_root, tmp_path):
    def config(name: str) -> dict:
        c = cyclegan_config(unaligned_root, tmp_path / name)
        return merge(c, {"train": {"iterations": 4, "deterministic": True}})

    run_engine(make_spec(reg, config("whole")), registry=reg, progress=False)
    run_engine(make_spec(reg, config("split")), registry=reg, progress=False, stop_at=2)
    resume(tmp_path / "split", registry=reg, progress=False)
    for name in ("student", "teacher", "teacher_B", "discriminator_A", "cd_adapters", "state"):
        a = weights(tmp_path / "whole" / "checkpoints" / "last" / f"{name}.safetensors")
        b = weights(tmp_path / "split" / "checkpoints" / "last" / f"{name}.safetensors")
        assert same_tensors(a, b), name


# -- the paper specs -----------------------------------------------------------------------------
# Exact counts from reference/baselines.md §0 (torchprofile convention, all generator params);
# the paper's Tables 1/2 round them: U-Net 54.40M, student 3.40M, Mobile ResNet ngf 16 0.14M.
PARAMS = {
    ("unet", 64): 54_413_955,
    ("unet", 16): 3_404_451,
    ("unet_deepest", 16): 44_171_939,
    ("mobile_resnet", 64): 1_987_075,
    ("mobile_resnet", 16): 137_347,
}
PAPER_STUDENT = {"unet": 3.40, "mobile_resnet": 0.14}  # Tables 1 and 2, millions


def arch_params(arch) -> int:
    from vemkit import registry
    from vemkit.profile import count_params

    with torch.device("meta"):
        return count_params(registry.default().build("arch", arch))


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_spec_networks_have_the_papers_sizes(path):
    from vemkit.spec import load_spec

    spec = load_spec(path)
    for arch in (spec.teacher.arch, spec.student.arch, spec.method.deep_teacher):
        if arch is not None:
            assert arch_params(arch) == PARAMS[(arch.type, arch.ngf)], arch
    student = arch_params(spec.student.arch) / 1e6
    assert round(student, 2) == PAPER_STUDENT[spec.student.arch.type]
    assert spec.method.type == "omgd" and spec.teacher.mode == "online"
    assert (spec.task == "paired") == (spec.method.deep_teacher is not None)


def tiny_overrides(spec_path: Path, aligned: Path, unaligned: Path, run_dir: Path) -> list[str]:
    """Shrink an OMGD spec to 32 px, ngf 4, 2 iterations (the recipe is unchanged)."""
    text = spec_path.read_text()
    paired = "task: paired" in text
    common = [
        "data.eval=null",
        "eval.metrics=[]",
        "eval.best=null",
        "eval.samples=0",
        "train.iterations=2",
        f"output.dir={run_dir}",
        "output.checkpoint_every=0",
        "output.sample_every=0",
        "output.log_every=1",
        "teacher.arch.ngf=4",
        "student.arch.ngf=2",
        "method.perceptual=random_vgg16",
    ]
    if "type: vem" in text:
        common += ["mi.energy.width=4", "mi.energy.blocks=2", "mi.sampler.steps=2"]
    if paired:
        return [
            *common,
            f"data.train={{type: aligned, root: {aligned}, size: {SIZE}}}",
            "train.batch_size=2",
            "teacher.arch.num_downs=5",
            "student.arch.num_downs=5",
            "method.deep_teacher.ngf=2",
            "method.deep_teacher.num_downs=5",
            "method.discriminator={type: omgd_patchgan, input_nc: 6, ndf: 4, heads: 2}",
        ]
    unpaired = [
        *common,
        f"data.train={{type: unaligned, root: {unaligned}, size: {SIZE}}}",
        "method.discriminator={type: patchgan, ndf: 4, norm: instance}",
    ]
    if "best_teacher:" in text:  # one teacher iteration, then one student iteration
        unpaired += [
            f"data.eval={{type: unaligned, root: {unaligned}, size: {SIZE}}}",
            "method.best_teacher={teacher_iterations: 1, student_iterations: 1, "
            "metric: {type: psnr}, score: psnr}",
        ]
    return unpaired


ABLATIONS = sorted((ROOT / "specs" / "ablations").glob("*omgd*.yaml"))
SPECS = [
    *PAPER,
    *(pytest.param(p, marks=pytest.mark.slow) for p in ABLATIONS),  # same recipes as the paper's
    ROOT / "specs" / "ablations" / "quickstart_none.yaml",
    ROOT / "specs" / "quickstart.yaml",
]


def _spec_id(p) -> str:
    path = p.values[0] if hasattr(p, "values") else p
    return f"{path.parent.name}/{path.stem}"


@pytest.mark.parametrize("path", SPECS, ids=[_spec_id(p) for p in SPECS])
def test_spec_runs_two_iterations_at_a_tiny_size(path, aligned_root, unaligned_root, tmp_path):
    import vemkit
    from vemkit.spec import load_spec

    run_dir = tmp_path / "run"
    spec = load_spec(path, tiny_overrides(path, aligned_root, unaligned_root, run_dir))
    result = vemkit.run(spec, progress=False)
    assert (result.status, result.step) == ("finished", 2)
    rows = logged(run_dir)
    names = {t.name for p in result.program.phases for t in p.terms}
    assert {n for n in names if n.startswith("omgd.")} <= set().union(*rows)
    assert all(math.isfinite(v) for row in rows for k, v in row.items() if k in names)
