"""The ``cat`` method: CAT's MAC count without building the network, its pruning (budget, floors,
the kept weights, the re-initialisation), the kernel-alignment term's wiring, the stages' phases,
a tiny recipe end to end with an exact resume inside a stage, and every CAT paper spec run through
all its stages at a tiny size."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from tests._engine_util import (
    make_aligned,
    make_registry,
    make_spec,
    make_unaligned,
    same_tensors,
    single_thread,  # noqa: F401 - autouse fixture
    weights,
)
from vemkit.engine import resume
from vemkit.engine import run as run_engine
from vemkit.engine.hookspecs import ORDER_DISCRIMINATOR, ORDER_STUDENT, ORDER_TEACHER
from vemkit.engine.program import compile
from vemkit.engine.state import State
from vemkit.errors import VemkitError
from vemkit.profile import count_macs
from vemkit.spec_model import spec_model
from vemkit.stages import recipe_of, stage_spec_data
from vemkit_plugins.archs.inception import cat_macs
from vemkit_plugins.methods.cat import (
    cat_prune,
    find_threshold,
    inception_macs,
    prune_scores,
    pruned_inception,
    widths_at,
)
from vemkit_plugins.methods.cat_losses import kernel_alignment

ROOT = Path(__file__).resolve().parents[1]
PAPER = sorted((ROOT / "specs" / "paper").glob("*_cat*.yaml"))
SIZE = 32
TAPS = ["down_sampling.9", "features.0", "features.1", "features.2"]  # CAT's taps of 3 blocks


@pytest.fixture(scope="module")
def reg():
    return make_registry()


@pytest.fixture(scope="module")
def unaligned_root(tmp_path_factory):
    return make_unaligned(tmp_path_factory.mktemp("unaligned"), size=SIZE, seed=7)


@pytest.fixture(scope="module")
def aligned_root(tmp_path_factory):
    return make_aligned(tmp_path_factory.mktemp("aligned"), n=4, size=SIZE)


def inception(reg, **options) -> nn.Module:
    return reg.build("arch", {"type": "inception_resnet", **options})


def random_scales(net: nn.Module, seed: int) -> None:
    """γ of every prunable norm drawn from U(0, 1): a teacher whose scales differ, as a trained
    one's do (an untrained one has γ = 1 everywhere)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.prunable_norms().values():
            module.weight.copy_(torch.rand(module.weight.shape, generator=gen))


# -- MACs ------------------------------------------------------------------------------------------
def test_the_analytic_count_equals_both_counters_on_built_networks(reg):
    rng = random.Random(3)
    ks = [1, 3, 5]
    for _ in range(2):
        widths = {
            "down": [rng.randint(1, 12), rng.randint(1, 12), rng.randint(1, 20)],
            "blocks": [
                {kind: [rng.choice([0, rng.randint(1, 7)]) for _ in ks] for kind in ("res", "dw")}
                for _ in range(3)
            ],
            "up": [rng.randint(1, 12), rng.randint(1, 12)],
        }
        widths["blocks"][0] = {"res": [0, 0, 0], "dw": [0, 0, 0]}  # a block with no branch
        for norm in ("instance", "batch"):
            net = inception(reg, widths=widths, norm=norm)
            x = torch.zeros(1, 3, 20, 28)
            paper, cat = inception_macs(widths, kernel_sizes=ks, height=20, width=28, norm=norm)
            assert paper == count_macs(net, x, "paper")
            assert cat == cat_macs(net, x)
            assert (cat > paper) == (norm == "instance")  # CAT charges the instance norms only


def test_the_analytic_count_gives_cats_teacher_figure(reg):
    with torch.device("meta"):
        teacher = inception(reg, ngf=64)
    # 43.53G as CAT counts (README, tests/test_cat_parts.py), 43.49G for the convs alone
    assert inception_macs(teacher.widths(), kernel_sizes=[1, 3, 5]) == (
        43_490_402_304,
        43_527_405_568,
    )


# -- pruning ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cat_teacher(reg):
    """CAT's horse→zebra teacher at full size (8.15M params)."""
    return inception(reg, ngf=64, init_type="default")


@pytest.mark.parametrize("seed", range(10))
def test_full_size_pruning_lands_within_one_percent_under_the_budget(cat_teacher, seed):
    random_scales(cat_teacher, seed)
    found = find_threshold(cat_teacher, 2.6e9, (3, 256, 256), min_channels=16, tolerance=1e-5)
    assert 0.99 * 2.6e9 <= found.macs_after <= 2.6e9, found.macs_after
    assert found.macs_before == 43_527_405_568
    assert min(found.widths["down"]) >= 16 and min(found.widths["up"]) >= 16
    branches = [c for b in found.widths["blocks"] for kind in ("res", "dw") for c in b[kind]]
    assert max(branches) < 42  # every branch was pruned; the floor does not apply to them
    # CAT's loop: each step halves the interval; the result is the last midpoint within budget
    assert found.history[-1]["macs"] == found.macs_after
    assert found.threshold == found.history[-1]["threshold"]
    # CAT's own stopping rule (interval < 1e-3 of its lower end) stops earlier: within budget,
    # up to ~1.2 % under it on these teachers (CAT's horse→zebra students: 1.5-1.9 % under)
    cat_rule = find_threshold(cat_teacher, 2.6e9, (3, 256, 256), min_channels=16)
    assert 0.985 * 2.6e9 <= cat_rule.macs_after <= found.macs_after
    assert cat_rule.steps < found.steps


def test_the_reported_counts_are_the_built_students(reg, cat_teacher):
    random_scales(cat_teacher, 0)
    found = find_threshold(cat_teacher, 2.6e9, (3, 256, 256), min_channels=16)
    with torch.device("meta"):
        student = inception(reg, widths=found.widths)
    x = torch.empty(1, 3, 256, 256, device="meta")
    assert cat_macs(student, x) == found.macs_after
    assert count_macs(student, x, "paper") == found.paper_after


def test_branches_may_vanish_and_are_dropped(reg):
    teacher = inception(reg, ngf=8, n_blocks=3, init_type="default")
    random_scales(teacher, 5)
    with torch.no_grad():  # every scale of block 1's k=3 plain branch below any threshold
        teacher.features[1].res_ops[1][1][1].weight.mul_(1e-3)
    scores = prune_scores(teacher)
    widths = widths_at(teacher, scores, 0.1, min_channels=4)
    assert widths["blocks"][1]["res"][1] == 0
    student = inception(reg, widths=widths)
    assert len(student.features[1].res_ops) == sum(1 for c in widths["blocks"][1]["res"] if c)


def test_the_floor_keeps_the_largest_scales_and_is_capped_at_the_layer(reg):
    teacher = inception(reg, ngf=8, n_blocks=2, init_type="default")
    random_scales(teacher, 1)
    scores = prune_scores(teacher)
    widths = widths_at(teacher, scores, 2.0, min_channels=12)  # above every |γ|
    assert widths["down"] == [8, 12, 12] and widths["up"] == [12, 8]  # stem and up 2 are 8 wide
    assert all(c == 0 for b in widths["blocks"] for kind in ("res", "dw") for c in b[kind])


def test_a_budget_below_the_floors_is_refused(reg, cat_teacher):
    teacher = cat_teacher
    random_scales(teacher, 0)
    with pytest.raises(VemkitError, match=r"target_macs.*smallest network"):
        find_threshold(teacher, 1e8, (3, 256, 256), min_channels=16)


def _silence_pruned_channels(teacher: nn.Module, threshold: float, floor: int) -> None:
    """Zero γ and β of every channel the threshold removes (and whatever only they feed), so
    that the pruned network computes exactly what the teacher computes."""
    scores = prune_scores(teacher)
    with torch.no_grad():
        for name, norm in teacher.prunable_norms().items():
            s = scores[name]
            drop = s <= threshold
            if name.startswith(("down_sampling", "up_sampling")) and int((~drop).sum()) < floor:
                keep = torch.sort(s, descending=True, stable=True).indices[:floor]
                drop = torch.ones_like(drop)
                drop[keep] = False
            norm.weight[drop] = 0
            norm.bias[drop] = 0
        trunk_drop = teacher.down_sampling[8].weight == 0
        for block in teacher.features:
            block.pw_bn.weight[trunk_drop] = 0
            block.pw_bn.bias[trunk_drop] = 0
            for op in [*block.res_ops, *block.dw_ops]:
                first = op[1][1] if op in list(block.res_ops) else op[0][1]
                if not first.weight.any():  # a dropped branch: its last conv's bias remains
                    op[4].bias.zero_()


def test_the_pruned_weights_compute_what_the_teacher_computes(reg):
    teacher = inception(reg, ngf=8, n_blocks=3).eval()
    random_scales(teacher, 2)
    threshold, floor = 0.45, 3
    _silence_pruned_channels(teacher, threshold, floor)
    widths = widths_at(teacher, prune_scores(teacher), threshold, floor)
    student = inception(reg, ngf=8, n_blocks=3, widths=widths).eval()
    pruned_inception(teacher, student, threshold, min_channels=floor, copy_pw_bn=True)
    assert sum(p.numel() for p in student.parameters()) < sum(
        p.numel() for p in teacher.parameters()
    )
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(student(x), teacher(x), atol=1e-5, rtol=1e-4)


def test_cats_reinitialisation_keeps_only_the_instance_norm_affines(reg):
    arch = {"type": "inception_resnet", "ngf": 8, "n_blocks": 3}
    teacher = reg.build("arch", arch)
    random_scales(teacher, 4)
    with torch.no_grad():
        for module in teacher.modules():
            if isinstance(module, nn.InstanceNorm2d):
                module.bias.normal_()
    torch.manual_seed(0)
    macs = inception_macs(teacher.widths(), kernel_sizes=[1, 3, 5], height=SIZE, width=SIZE)[1]
    student, config, found = cat_prune(
        teacher,
        arch,
        0.5 * macs,
        (3, SIZE, SIZE),
        build=lambda c: reg.build("arch", c),
        min_channels=4,
    )
    assert config["widths"] == found.widths and found.macs_after <= 0.5 * macs
    keep = torch.nonzero(teacher.down_sampling[2].weight.abs() > found.threshold).flatten()
    if keep.numel() < 4:
        keep = torch.sort(
            torch.sort(teacher.down_sampling[2].weight.abs(), descending=True, stable=True).indices[
                :4
            ]
        ).values
    # instance norms keep the teacher's pruned γ and β ...
    assert torch.equal(student.down_sampling[2].weight, teacher.down_sampling[2].weight[keep])
    assert torch.equal(student.down_sampling[2].bias, teacher.down_sampling[2].bias[keep])
    # ... each block's pw_bn starts as freshly built (CAT rebuilds it) ...
    for block in student.features:
        assert torch.equal(block.pw_bn.weight, torch.ones_like(block.pw_bn.weight))
        assert torch.equal(block.pw_bn.bias, torch.zeros_like(block.pw_bn.bias))
    # ... and every conv is re-drawn: N(0, 0.02), biases 0, not the teacher's slice
    conv = student.down_sampling[1]
    assert not torch.equal(conv.weight, teacher.down_sampling[1].weight[keep])
    assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    weights_all = torch.cat(
        [
            m.weight.flatten()
            for m in student.modules()
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
        ]
    )
    assert abs(float(weights_all.detach().std()) - 0.02) < 0.002


# -- the method in the engine ----------------------------------------------------------------------
def config(root: Path, run_dir: Path, *, task: str = "unpaired", mi: dict | None = None) -> dict:
    """CAT at 32 px: Inception teacher ngf 8 with 3 blocks, D ndf 4, 2 iterations per stage."""
    arch = {"type": "inception_resnet", "ngf": 8, "n_blocks": 3}
    paired = task == "paired"
    data = {"type": "aligned" if paired else "unaligned", "root": str(root), "size": SIZE}
    d_in = 6 if paired else 3
    return {
        "name": "cat-tiny",
        "seed": 1,
        "task": task,
        "data": {"train": data},
        "teacher": {"arch": arch, "mode": "online"},
        "student": {"arch": arch},
        "method": {
            "type": "cat",
            "taps": TAPS,
            "discriminator": {
                "type": "patchgan",
                "input_nc": d_in,
                "ndf": 4,
                "norm": "instance",
                "affine": True,
            },
            "pool_size": 2,
            "stages": {
                "teacher": {"iterations": 2},
                "prune": {"target_macs": 2.0e6, "min_channels": 4},
                "student": {"iterations": 2},
            },
        },
        "mi": mi or {"type": "none"},
        "train": {"iterations": 2, "batch_size": 2, "deterministic": True},
        "eval": {"every": 0, "samples": 0},
        "output": {
            "dir": str(run_dir),
            "checkpoint_every": 1,
            "keep": 2,
            "sample_every": 0,
            "log_every": 1,
        },
    }


VEM = {
    "type": "vem",
    "weight": 0.1,
    "positive": "teacher",
    "energy": {"type": "conv_sn", "width": 4, "blocks": 2, "downsample": 0},
    "sampler": {"type": "langevin", "steps": 2},
}


def stage_program(reg, cfg: dict, name: str):
    """The program of one stage, compiled as the recipe compiles it (the stage's spec)."""
    spec = make_spec(reg, cfg)
    stage = next(s for s in recipe_of(spec) if s.name == name)
    stage_spec = spec_model(reg).model_validate(stage_spec_data(spec, stage))
    return compile(stage_spec, registry=reg, stage=stage)


def phases(program) -> list[tuple[str, float, list[str], list[str]]]:
    return [(p.name, p.order, p.groups, [t.name for t in p.terms]) for p in program.phases]


def test_cyclegan_teacher_stage_updates_g_then_d(reg, unaligned_root, tmp_path):
    program = stage_program(reg, config(unaligned_root, tmp_path), "teacher")
    assert phases(program) == [
        (
            "teacher",
            ORDER_TEACHER,
            ["teacher"],
            [
                "cat.teacher_gan.A",
                "cat.teacher_gan.B",
                "cat.cycle.A",
                "cat.cycle.B",
                "cat.idt.A",
                "cat.idt.B",
            ],
        ),
        ("discriminator", ORDER_TEACHER + 50, ["discriminator"], ["cat.d.A", "cat.d.B"]),
    ]
    assert [t.weight for t in program.phase("teacher").terms] == [1, 1, 10, 10, 5, 5]
    assert {"teacher_B", "discriminator", "discriminator_B"} <= set(program.modules)
    d = program.module("discriminator")
    assert all(m.affine for m in d.modules() if isinstance(m, nn.InstanceNorm2d))


def test_pix2pix_teacher_stage_updates_d_then_g(reg, aligned_root, tmp_path):
    program = stage_program(reg, config(aligned_root, tmp_path, task="paired"), "teacher")
    assert phases(program) == [
        ("discriminator", ORDER_DISCRIMINATOR, ["discriminator"], ["cat.d"]),
        ("teacher", ORDER_TEACHER, ["teacher"], ["cat.teacher_gan", "cat.teacher_recon"]),
    ]
    assert program.term("cat.teacher_recon").weight == 100


@pytest.mark.parametrize(
    ("task", "weights_"), [("unpaired", (1.0, 5.0, 1.0)), ("paired", (1.0, 100.0, 0.5))]
)
def test_student_stage_has_cats_terms_and_weights_per_task(
    reg, aligned_root, unaligned_root, tmp_path, task, weights_
):
    root = aligned_root if task == "paired" else unaligned_root
    program = stage_program(reg, config(root, tmp_path, task=task, mi=VEM), "student")
    assert [(p.name, p.order) for p in program.phases] == [
        ("discriminator", ORDER_DISCRIMINATOR),
        ("energy", 300),
        ("student", ORDER_STUDENT),
    ]
    terms = {t.name: t.weight for t in program.phase("student").terms}
    assert (terms["cat.gan"], terms["cat.recon"], terms["cat.distill"]) == weights_
    assert "mi.vem" in terms
    assert program.modules["teacher"].group is None  # frozen


def test_the_distill_term_is_minus_the_sum_of_kernel_alignments(reg, unaligned_root, tmp_path):
    cfg = config(unaligned_root, tmp_path)
    program = stage_program(reg, cfg, "student")
    torch.manual_seed(0)
    batch = {
        "input": torch.rand(3, 3, SIZE, SIZE) * 2 - 1,
        "target": torch.rand(3, 3, SIZE, SIZE) * 2 - 1,
    }
    state = State(program, batch, 0)
    with program.activate(state):
        value = program.term("cat.distill").fn(state)
    feats: dict[str, dict[str, torch.Tensor]] = {"student": {}, "teacher": {}}
    hooks = []
    for owner in feats:
        net = program.module(owner)
        for path in TAPS:
            hooks.append(
                net.get_submodule(path).register_forward_hook(
                    lambda m, a, out, owner=owner, path=path: feats[owner].__setitem__(path, out)
                )
            )
    with torch.no_grad():
        program.module("student")(batch["input"])
        program.module("teacher")(batch["input"])
    for h in hooks:
        h.remove()
    expected = -sum(kernel_alignment(feats["student"][p], feats["teacher"][p]) for p in TAPS)
    torch.testing.assert_close(value.detach(), expected, rtol=1e-5, atol=1e-6)
    assert -len(TAPS) <= float(value.detach()) < 0
    value.backward()  # the student learns from it, the frozen teacher does not
    assert program.module("student").down_sampling[1].weight.grad.abs().sum() > 0
    assert program.module("teacher").down_sampling[1].weight.grad is None


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"train": {"batch_size": 1}}, "method.ka_chunks"),
        ({"method": {"recon_target": "target"}}, "method.recon_target"),
        ({"method": {"discriminator_checkpoint": "d.safetensors"}}, "discriminator_checkpoint"),
    ],
)
def test_problems_are_reported_before_training(reg, unaligned_root, tmp_path, change, says):
    cfg = config(unaligned_root, tmp_path)
    for key, value in change.items():
        cfg[key] = {**cfg[key], **value}
    with pytest.raises(VemkitError, match=says):
        stage_program(reg, cfg, "student")


def test_a_partial_stage_override_keeps_the_stages_own_defaults(reg, unaligned_root, tmp_path):
    spec = make_spec(reg, config(unaligned_root, tmp_path))
    stages = spec.method.stages
    assert (stages.teacher.teacher, stages.teacher.student) == ("online", False)
    assert stages.student.teacher == "frozen"


def final(run_dir: Path, folder: str, module: str = "student") -> dict[str, torch.Tensor]:
    return weights(run_dir / "stages" / folder / "checkpoints" / "last" / f"{module}.safetensors")


def logged(run_dir: Path, folder: str) -> list[dict]:
    path = run_dir / "stages" / folder / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def whole(reg, unaligned_root, tmp_path_factory):
    """The tiny recipe with VEM, run uninterrupted."""
    run_dir = tmp_path_factory.mktemp("cat") / "whole"
    result = run_engine(make_spec(reg, config(unaligned_root, run_dir, mi=VEM)), registry=reg)
    assert result.status == "finished"
    return run_dir


def test_tiny_recipe_runs_every_stage(whole):
    summary = json.loads((whole / "stages" / "02-prune" / "summary.json").read_text())
    assert summary["after"]["macs_cat"] <= 2.0e6 < summary["before"]["macs_cat"]
    assert summary["after"]["macs"] < summary["after"]["macs_cat"]  # paper convention: no norms
    assert summary["after"]["params"] < summary["before"]["params"]
    done = json.loads((whole / "stages" / "02-prune" / "DONE.json").read_text())
    arch = done["archs"]["student"]
    assert arch["type"] == "inception_resnet" and arch["widths"] == summary["widths"]
    rows = logged(whole, "03-student")
    assert all(math.isfinite(r[k]) for r in rows for k in ("cat.gan", "cat.recon", "cat.distill"))
    assert all(r["cat.distill"] < 0 for r in rows) and "mi.vem" in rows[-1]
    teacher_rows = logged(whole, "01-teacher")
    assert {"cat.cycle.A", "cat.d.A", "cat.d.B"} <= set(teacher_rows[-1])
    # the teacher the student learns from is the teacher stage's, unchanged (frozen)
    trained = final(whole, "01-teacher", "teacher")
    assert same_tensors(final(whole, "02-prune", "teacher"), trained)
    assert same_tensors(final(whole, "03-student", "teacher"), trained)


def test_the_student_stage_starts_from_the_teacher_stages_discriminator(reg, whole, unaligned_root):
    from vemkit.engine.recipe import Inheritance

    cfg = config(unaligned_root, whole)
    program = stage_program(reg, cfg, "student")
    outputs = [
        (name, whole / "stages" / folder / "checkpoints" / "last")
        for name, folder in (("teacher", "01-teacher"), ("prune", "02-prune"))
    ]
    stage = next(s for s in recipe_of(make_spec(reg, cfg)) if s.name == "student")
    said = Inheritance(outputs).apply(program, stage)
    assert "discriminator from stage 'teacher'" in said
    assert same_tensors(
        program.module("discriminator").state_dict(), final(whole, "01-teacher", "discriminator")
    )


@pytest.mark.parametrize("stop_in", ["student", pytest.param("teacher", marks=pytest.mark.slow)])
def test_a_recipe_stopped_inside_a_stage_resumes_bit_for_bit(
    reg, whole, unaligned_root, tmp_path, stop_in
):
    split = tmp_path / "split"
    spec = make_spec(reg, config(unaligned_root, split, mi=VEM))
    assert run_engine(spec, registry=reg, stop_at=1, stop_in=stop_in).status == "stopped"
    assert resume(split, registry=reg).status == "finished"
    for folder in ("01-teacher", "02-prune", "03-student"):
        assert same_tensors(final(whole, folder), final(split, folder)), folder
    for module in ("discriminator", "mi"):
        assert same_tensors(final(whole, "03-student", module), final(split, "03-student", module))


def test_the_recipe_folder_opens_as_the_pruned_student(reg, unaligned_root, tmp_path, monkeypatch):
    import vemkit.registry
    from vemkit.export import load_student

    run_dir = tmp_path / "run"
    run_engine(make_spec(reg, config(unaligned_root, run_dir)), registry=reg)
    monkeypatch.setattr(vemkit.registry, "default", lambda: reg)
    student = load_student(run_dir)
    assert same_tensors(student.module.state_dict(), final(run_dir, "03-student"))
    summary = json.loads((run_dir / "stages" / "02-prune" / "summary.json").read_text())
    assert student.module.widths() == summary["widths"]


# -- the paper specs -------------------------------------------------------------------------------
def test_paper_specs_have_cats_sizes_and_budget():
    from vemkit.spec import load_spec

    assert [p.stem for p in PAPER] == [
        "horse2zebra_cat",
        "horse2zebra_cat_crd",
        "horse2zebra_cat_vem",
        "horse2zebra_cat_vid",
    ]
    for path in PAPER:
        spec = load_spec(path)
        with torch.device("meta"):
            teacher = make_registry().build("arch", spec.teacher.arch)
        assert sum(p.numel() for p in teacher.parameters()) == 8_154_255
        assert inception_macs(teacher.widths(), kernel_sizes=[1, 3, 5])[1] == 43_527_405_568
        assert spec.method.stages.prune.target_macs == 2.6e9
        assert spec.train.batch_size // spec.method.ka_chunks == 20  # CAT: 80 on 4 GPUs
        variant = path.stem.removeprefix("horse2zebra_cat").lstrip("_")
        assert spec.mi.type == (variant or "none")


def tiny_overrides(unaligned: Path, run_dir: Path, text: str) -> list[str]:
    """Shrink a CAT paper spec to 32 px, ngf 8, 1 iteration per stage (the recipe unchanged)."""
    out = [
        f"data.train={{type: unaligned, root: {unaligned}, size: {SIZE}}}",
        "data.eval=null",
        "eval.metrics=[]",
        "eval.best=null",
        "eval.samples=0",
        "train.batch_size=4",
        "method.ka_chunks=2",
        "teacher.arch.ngf=8",
        "student.arch.ngf=8",
        "method.discriminator={type: patchgan, ndf: 4, norm: instance, affine: true}",
        "method.pool_size=2",
        "method.stages.teacher.iterations=1",
        "method.stages.student.iterations=1",
        "method.stages.prune.target_macs=1.5e7",
        "method.stages.prune.min_channels=4",
        f"output.dir={run_dir}",
        "output.checkpoint_every=0",
        "output.sample_every=0",
        "output.log_every=1",
    ]
    if "type: vem" in text:
        out += ["mi.energy.width=4", "mi.energy.blocks=2", "mi.sampler.steps=2"]
    if "type: crd" in text:
        out += ["mi.bank_size=8"]
    return out


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_spec_runs_every_stage_at_a_tiny_size(path, unaligned_root, tmp_path):
    import vemkit
    from vemkit.spec import load_spec

    run_dir = tmp_path / "run"
    spec = load_spec(path, tiny_overrides(unaligned_root, run_dir, path.read_text()))
    result = vemkit.run(spec, progress=False)
    assert result.status == "finished"
    index = json.loads((run_dir / "stages.json").read_text())
    assert [(s["name"], s["status"]) for s in index["stages"]] == [
        ("teacher", "done"),
        ("prune", "done"),
        ("student", "done"),
    ]
    rows = logged(run_dir, "03-student")
    names = {t.name for p in result.program.phases for t in p.terms}
    assert {"cat.gan", "cat.recon", "cat.distill", "cat.d"} <= names <= set().union(*rows)
    assert all(math.isfinite(v) for row in rows for k, v in row.items() if k in names)
    if spec.mi.type != "none":
        assert f"mi.{spec.mi.type}" in names


@pytest.mark.slow  # two recipes at 32 px
def test_demo_recipes_run_and_the_vem_one_distils_the_first_ones_teacher(unaligned_root, tmp_path):
    import vemkit
    from vemkit.spec import load_spec

    demo = ROOT / "specs" / "demo"
    common = [
        f"data.train={{type: unaligned, root: {unaligned_root}, size: {SIZE}}}",
        "data.eval=null",
        "eval.metrics=[]",
        "teacher.arch.ngf=8",
        "student.arch.ngf=8",
        "method.stages.student.iterations=1",
        "method.stages.prune.target_macs=3e6",
        "output.checkpoint_every=0",
        "output.sample_every=0",
    ]
    none = tmp_path / "none"
    spec = load_spec(
        demo / "emoji_cat_none.yaml",
        [*common, "method.stages.teacher.iterations=1", f"output.dir={none}"],
    )
    assert vemkit.run(spec, progress=False).status == "finished"
    trained = none / "stages" / "01-teacher" / "checkpoints" / "last"
    vem = tmp_path / "vem"
    spec = load_spec(
        demo / "emoji_cat_vem.yaml",
        [
            *common,
            "mi.energy.blocks=2",
            "mi.sampler.steps=2",
            f"teacher.checkpoint={trained / 'teacher.safetensors'}",
            f"method.discriminator_checkpoint={trained / 'discriminator.safetensors'}",
            f"output.dir={vem}",
        ],
    )
    assert spec.mi.type == "vem" and not spec.method.stages.teacher.enabled
    assert vemkit.run(spec, progress=False).status == "finished"
    index = json.loads((vem / "stages.json").read_text())
    assert [s["name"] for s in index["stages"]] == ["prune", "student"]
    # the same teacher, and the same pruned architecture
    assert same_tensors(final(vem, "01-prune", "teacher"), weights(trained / "teacher.safetensors"))
    done = [
        json.loads((run / "stages" / f / "DONE.json").read_text())
        for run, f in ((none, "02-prune"), (vem, "01-prune"))
    ]
    assert done[0]["archs"]["student"] == done[1]["archs"]["student"]
    assert "mi.vem" in logged(vem, "02-student")[-1]
