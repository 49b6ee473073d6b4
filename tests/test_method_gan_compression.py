"""The ``gan_compression`` recipe: the config ↔ channel-space mapping against the released
sub-networks, L1 channel selection, the supernet's sliced distillation taps, the search finding a
configuration constructed to be best, a tiny recipe end to end with an exact resume and a
resumed search that rescores nothing, the export of the fine-tuned student as a plain
``sub_mobile_resnet``, and every paper spec run stage by stage at a tiny size."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from tests._engine_util import (
    base_config,
    make_aligned,
    make_registry,
    make_spec,
    make_unaligned,
    merge,
    same_tensors,
    single_thread,  # noqa: F401 - autouse fixture
    weights,
)
from vemkit.engine import resume
from vemkit.engine import run as run_engine
from vemkit.engine.state import State
from vemkit.errors import VemkitError
from vemkit.profile import count_macs, count_params
from vemkit_plugins.compress.channels import analyze
from vemkit_plugins.compress.macs import WidthMacs
from vemkit_plugins.compress.supernet import SuperNet
from vemkit_plugins.methods.gan_compression import (
    GanCompression,
    config_string,
    config_widths,
    l1_channel_transfer,
)
from vemkit_plugins.methods.recipe_options import GAN_COMPRESSION_CHANNELS, GanCompressionOptions

ROOT = Path(__file__).resolve().parents[1]
PAPER = sorted((ROOT / "specs" / "paper").glob("summer2winter_gan_compression*.yaml"))
SIZE = 32
CPU = torch.device("cpu")
D_PAIRED = {"type": "patchgan", "input_nc": 6, "ndf": 4, "n_layers": 2, "norm": "instance"}
D_UNPAIRED = {"type": "patchgan", "input_nc": 3, "ndf": 4, "n_layers": 2, "norm": "instance"}


@pytest.fixture(scope="module")
def reg():
    return make_registry()


@pytest.fixture(scope="module")
def aligned_root(tmp_path_factory):
    return make_aligned(tmp_path_factory.mktemp("aligned"), n=4, size=SIZE)


@pytest.fixture(scope="module")
def unaligned_root(tmp_path_factory):
    return make_unaligned(tmp_path_factory.mktemp("unaligned"), size=SIZE, seed=7)


# -- the config string and the channel spaces ---------------------------------------------------
# baselines.md §0: torchprofile MACs at 256 px and params of the released sub-networks.
RELEASED = [
    ("16_16_32_16_32_32_16_16", 2.53e9, 356_867),  # horse→zebra, 2.53G (README 2.55G)
    ("32_32_48_32_48_48_16_16", 4.96e9, 822_051),  # edges→shoes, 4.96G (README 4.99G)
    ("32_32_48_32_32_48_24_24", 5.56e9, 780_819),  # Cityscapes, 5.56G (README 5.59G)
]


@pytest.mark.parametrize(("config", "macs", "params"), RELEASED)
def test_released_configs_map_to_their_published_sizes(reg, config, macs, params):
    teacher = reg.build("arch", {"type": "mobile_resnet", "ngf": 64})
    graph = analyze(teacher, (3, 256, 256))
    widths = config_widths([int(v) for v in config.split("_")])
    assert set(widths) == {s.name for s in graph.prunable()}  # every space, none unknown
    counted = WidthMacs(graph)(widths)
    assert round(counted / 1e9, 2) == round(macs / 1e9, 2)
    sub = reg.build("arch", {"type": "sub_mobile_resnet", "config": config})
    assert counted == count_macs(sub, torch.zeros(1, 3, 256, 256), "paper")
    extracted = SuperNet(teacher, graph=graph).extract(widths)
    assert count_params(extracted) == count_params(sub) == params
    # the first-k sub-network is a plain sub_mobile_resnet: same keys and shapes, strict load
    sub.load_state_dict(extracted.state_dict(), strict=True)
    assert config_string([int(v) for v in config.split("_")]) == config


def test_channel_sets_are_gan_compressions():
    assert GanCompressionOptions(channels="channels-48").channel_choices()[6] == [48, 32, 24, 16]
    assert GanCompressionOptions().channel_choices() == [[32, 24, 16]] * 8
    assert len(GAN_COMPRESSION_CHANNELS["channels-64-cycleGAN"]) == 8
    with pytest.raises(ValueError, match="unknown set 'channels-40'"):
        GanCompressionOptions(channels="channels-40")
    with pytest.raises(ValueError):
        GanCompressionOptions(channels=[[16]] * 7)


def test_l1_transfer_keeps_the_filters_of_largest_l1_norm(reg):
    torch.manual_seed(0)
    teacher = reg.build("arch", {"type": "mobile_resnet", "ngf": 8})
    student = reg.build("arch", {"type": "mobile_resnet", "ngf": 4})
    l1_channel_transfer(teacher, student, (3, SIZE, SIZE))
    t, s = teacher.state_dict(), student.state_dict()
    stem = t["model.1.weight"].abs().sum((1, 2, 3)).topk(4).indices.sort().values
    assert torch.equal(s["model.1.weight"], t["model.1.weight"][stem])
    assert torch.equal(s["model.1.bias"], t["model.1.bias"][stem])
    down = t["model.4.weight"].abs().sum((1, 2, 3)).topk(8).indices.sort().values
    assert torch.equal(s["model.4.weight"], t["model.4.weight"][down][:, stem])
    # the residual stream is ranked by the conv that opens it (model.7), as GAN-Compression
    trunk = t["model.7.weight"].abs().sum((1, 2, 3)).topk(16).indices.sort().values
    assert torch.equal(s["model.7.weight"], t["model.7.weight"][trunk][:, down])
    assert torch.equal(
        s["model.10.conv_block.1.conv.0.weight"], t["model.10.conv_block.1.conv.0.weight"][trunk]
    )
    with pytest.raises(VemkitError, match="narrower student"):
        l1_channel_transfer(student, teacher, (3, SIZE, SIZE))


# -- the search -----------------------------------------------------------------------------------
class _Images(torch.utils.data.Dataset):
    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input": self.inputs[i], "target": self.targets[i]}


CHOICES = [[4, 2], [4, 2], [4, 2], [4], [4, 2], [4], [4, 2], [4]]  # 32 configurations


@pytest.mark.parametrize("algorithm", ["exhaustive", "evolution"])
def test_search_finds_the_configuration_built_to_be_best(reg, aligned_root, tmp_path, algorithm):
    from vemkit.engine.recipe import score_images

    cfg = merge(
        base_config(aligned_root, tmp_path / "unused", size=SIZE),
        {"method": {"type": "gan_compression", "channels": CHOICES}},
    )
    cfg["student"]["arch"] = {"type": "mobile_resnet", "ngf": 4}
    spec = make_spec(reg, cfg)
    torch.manual_seed(0)
    student = reg.build("arch", {"type": "mobile_resnet", "ngf": 4}).eval()
    best = [4, 2, 4, 4, 2, 4, 2, 4]
    net = SuperNet(student, (3, SIZE, SIZE))
    inputs = torch.rand(3, 3, SIZE, SIZE) * 2 - 1
    with torch.no_grad():  # the targets are the best sub-network's images: its MAE is 0
        targets = net(inputs, config_widths(best))
    held = _Images(inputs, targets)
    budget = WidthMacs(analyze(student, (3, 256, 256)))(config_widths(best))  # best fits exactly
    stage = SimpleNamespace(
        algorithm=algorithm, budget=float(budget), resolution=256, population=8, iterations=6,
        mutate_prob=0.3, parent_ratio=0.25, mutation_ratio=0.5, metric={"type": "fake_mae"},
        score="mae", holdout=0.5, seed=1, top=5, max_images=None,
    )  # fmt: skip
    context = {
        "registry": reg,
        "holdout": lambda fraction: (None, held),
        "score": lambda fake, metrics, dataset, **kw: score_images(
            fake, metrics, dataset, device=CPU, batch_size=3, registry=reg, seed=0, **kw
        ),
        "run_dir": tmp_path,
        "device": torch.device("cpu"),
        "progress": False,
        "say": lambda _: None,
    }
    program = SimpleNamespace(spec=spec, module=lambda name: student)
    method = GanCompression(spec.method, spec)
    result = method._search(program, stage, context)
    assert result.archs["student"]["type"] == "sub_mobile_resnet"
    assert result.archs["student"]["config"] == config_string(best)
    assert result.summary["score"]["mae"] == 0.0
    assert result.summary["after"]["macs"] <= budget
    rows = result.tables["candidates"]
    assert rows[0]["config"] == "4_2_4_4_2_4_2_4" and all(r["macs"] <= budget for r in rows)
    assert len({r["score"] for r in rows}) > 1
    if algorithm == "exhaustive":  # every configuration under the budget was scored once
        assert result.summary["scored_now"] == result.summary["evaluated"] > 10
    # the cache in the stage folder: the same search again scores nothing new
    again = method._search(program, stage, context)
    assert again.summary["scored_now"] == 0
    assert again.archs == result.archs
    assert json.loads((tmp_path / "search_scores.json").read_text())


# -- a tiny recipe end to end ---------------------------------------------------------------------
def recipe_config(root: Path, run_dir: Path, **stages: Any) -> dict:
    cfg = merge(
        base_config(root, run_dir, size=SIZE),
        {
            "task": "paired",
            "method": {
                "type": "gan_compression",
                "channels": [[4, 2]] * 8,
                "discriminator": D_PAIRED,
                "stages": merge(
                    {
                        "teacher": {"iterations": 2},
                        "distill": {"enabled": True, "iterations": 2},
                        "supernet": {"iterations": 3},
                        "search": {"population": 4, "iterations": 2, "budget": 1.5e8,
                                   "metric": {"type": "fake_mae"}, "score": "mae"},
                        "finetune": {"iterations": 2},
                    },
                    stages,
                ),
            },
            "train": {"deterministic": True},
            "output": {"checkpoint_every": 1, "keep": 1},
        },
    )  # fmt: skip
    cfg["teacher"]["arch"] = {"type": "mobile_resnet", "ngf": 8}
    cfg["student"]["arch"] = {"type": "mobile_resnet", "ngf": 4}
    return cfg


def last(run_dir: Path, folder: str, module: str = "student") -> dict[str, torch.Tensor]:
    path = run_dir / "stages" / folder / "checkpoints" / "last" / f"{module}.safetensors"
    return weights(path)


FOLDERS = ("01-teacher", "02-distill", "03-supernet", "04-search", "05-finetune")


@pytest.mark.slow
def test_recipe_runs_resumes_exactly_and_exports_a_plain_sub_network(
    reg, aligned_root, tmp_path, monkeypatch
):
    import vemkit.registry
    from vemkit.export import export_module, load_student

    whole = tmp_path / "whole"
    result = run_engine(make_spec(reg, recipe_config(aligned_root, whole)), registry=reg)
    assert result.status == "finished"
    # the teacher stage trained the teacher and the discriminator; the distill stage inherited
    # both, the supernet stage the discriminator (same module name)
    done = {f: json.loads((whole / "stages" / f / "DONE.json").read_text()) for f in FOLDERS}
    arch = done["04-search"]["archs"]["student"]
    assert arch["type"] == "sub_mobile_resnet" and len(arch["config"].split("_")) == 8
    summary = json.loads((whole / "stages" / "04-search" / "summary.json").read_text())
    assert summary["after"]["macs"] <= 1.5e8 and summary["after"]["config"] == arch["config"]
    assert (whole / "stages" / "04-search" / "tables" / "candidates.csv").is_file()
    rows = [json.loads(x) for x in (whole / "stages" / "03-supernet" / "metrics.jsonl").open()]
    assert all(
        math.isfinite(r["gc.distill"]) and r["gc.distill"] > 0 for r in rows if "gc.distill" in r
    )
    # killed inside the supernet stage and resumed: every stage's weights bit for bit
    split = tmp_path / "split"
    spec = make_spec(reg, recipe_config(aligned_root, split))
    assert run_engine(spec, registry=reg, stop_at=2, stop_in="supernet").status == "stopped"
    assert resume(split, registry=reg).status == "finished"
    for folder in FOLDERS:
        assert same_tensors(last(whole, folder), last(split, folder)), folder
    assert same_tensors(
        last(whole, "05-finetune", "discriminator"), last(split, "05-finetune", "discriminator")
    )
    # ... and inside the pre-distillation and the fine-tune
    for stage in ("distill", "finetune"):
        other = tmp_path / stage
        spec = make_spec(reg, recipe_config(aligned_root, other))
        assert run_engine(spec, registry=reg, stop_at=1, stop_in=stage).status == "stopped"
        assert resume(other, registry=reg).status == "finished"
        assert same_tensors(last(whole, "05-finetune"), last(other, "05-finetune")), stage
    # a search interrupted after scoring resumes from its cache: nothing is scored again
    for folder in FOLDERS[3:]:
        (split / "stages" / folder / "DONE.json").unlink()
    assert resume(split, registry=reg).status == "finished"
    again = json.loads((split / "stages" / "04-search" / "summary.json").read_text())
    assert again["scored_now"] == 0 and again["after"] == summary["after"]
    # export: the fine-tuned student is a plain sub_mobile_resnet with GAN-Compression's string
    monkeypatch.setattr(vemkit.registry, "default", lambda: reg)
    student = load_student(whole)
    final = last(whole, "05-finetune")
    assert same_tensors(student.module.state_dict(), final)
    out = export_module(student.module, student.input_shape, "safetensors", tmp_path / "s.st")
    plain = reg.build("arch", {"type": "sub_mobile_resnet", "config": arch["config"]})
    plain.load_state_dict(weights(out.path), strict=True)


def test_supernet_trains_the_drawn_sub_network_and_distils_its_sliced_taps(
    reg, aligned_root, tmp_path
):
    cfg = recipe_config(aligned_root, tmp_path / "run", teacher={"enabled": False})
    cfg["output"]["checkpoint_every"] = 0
    result = run_engine(make_spec(reg, cfg), registry=reg, stop_at=1, stop_in="supernet")
    program = result.program
    assert program.stage.name == "supernet"
    method = program.components["method"]
    batch = program.example_batch(2)
    method.vemkit_iteration_start(program, None, 5)
    drawn = list(method.config)
    method.vemkit_iteration_start(program, None, 5)
    assert method.config == drawn  # a function of the step: a resumed run draws the same
    method.config = [4, 2, 2, 4, 2, 4, 2, 2]
    method.widths = config_widths(method.config)
    program.module("student").train()
    state = State(program, batch, 0, training=True)
    with program.activate(state):
        assert state["student:model.9"].shape[1] == 4 * 2  # the sub-network's trunk
        assert state["student:model.18"].shape[1] == 4 * 2
        assert state["teacher:model.9"].shape[1] == 4 * 8
        loss = program.term("gc.distill").fn(state)
        loss.backward()
    adapter = program.module("gc_adapters")[0]
    # only the first k input channels of the adapter take part
    assert adapter.weight.grad[:, :8].abs().sum() > 0
    assert adapter.weight.grad[:, 8:].abs().sum() == 0
    stem = program.module("student").model[1].weight.grad
    assert stem[:4].abs().sum() > 0 and stem[4:].abs().sum() == 0  # c0 = 4 of ngf 4: all
    pw = program.module("student").model[10].conv_block[1].conv[2].weight.grad
    assert pw[:16].abs().sum() > 0 and pw[16:].abs().sum() == 0  # blocks 1–3: 4·c3 = 16


def unpaired_config(root: Path, run_dir: Path, **stages: Any) -> dict:
    cfg = recipe_config(root, run_dir, **stages)
    cfg["task"] = "unpaired"
    cfg["data"]["train"] = {"type": "unaligned", "root": str(root), "size": SIZE}
    cfg["method"]["discriminator"] = D_UNPAIRED
    return cfg


def test_unpaired_teacher_stage_trains_cyclegan_and_resumes_with_its_pools(
    reg, unaligned_root, tmp_path
):
    stages = {"teacher": {"iterations": 5}, "distill": {"enabled": False}}
    whole = tmp_path / "whole"
    result = run_engine(
        make_spec(reg, unpaired_config(unaligned_root, whole, **stages)),
        registry=reg,
        stop_at=4,
        stop_in="teacher",
    )
    program = result.program
    assert {"teacher_B", "discriminator", "discriminator_B"} <= set(program.modules)
    assert program.module("discriminator_B").model[0].in_channels == 3
    phases = {p.name: [t.name for t in p.terms] for p in program.phases}
    assert phases["teacher"] == [
        "gc.teacher_gan.A", "gc.teacher_gan.B", "gc.cycle.A", "gc.cycle.B", "gc.idt.A", "gc.idt.B",
    ]  # fmt: skip
    assert phases["discriminator"] == ["gc.d.A", "gc.d.B"]
    order = [p.name for p in sorted(program.phases, key=lambda p: p.order)]
    assert order.index("teacher") < order.index("discriminator")  # CycleGAN: G, then D
    assert len(program.components["method"].pools["B"]) == 8  # G_A's fakes: 4 batches of 2
    # stopped after 2 iterations and resumed: the same teacher pair and discriminators
    split = tmp_path / "split"
    spec = make_spec(reg, unpaired_config(unaligned_root, split, **stages))
    assert run_engine(spec, registry=reg, stop_at=2, stop_in="teacher").status == "stopped"
    resumed = resume(split, registry=reg, stop_at=4)
    assert resumed.step == 4
    for name in ("teacher", "teacher_B", "discriminator", "discriminator_B"):
        a = last(whole, "01-teacher", name)
        assert same_tensors(a, last(split, "01-teacher", name)), name


# -- the paper specs ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_spec_validates_with_the_papers_budget(path):
    from vemkit.spec import load_spec

    spec = load_spec(path)
    stages = spec.method.stages
    assert spec.method.type == "gan_compression" and spec.task == "unpaired"
    assert stages.search.budget == 2.55e9 and stages.teacher.enabled and stages.distill.enabled
    assert spec.teacher.arch.ngf == 64 and spec.student.arch.ngf == 32
    assert spec.mi.type == "none" or spec.mi.positive == "teacher"
    assert "Table 4" in path.read_text()


def tiny_overrides(path: Path, unaligned: Path, run_dir: Path) -> list[str]:
    """Shrink a paper spec to 32 px, ngf 8 → 4, 1–2 iterations per stage (same recipe)."""
    text = path.read_text()
    out = [
        f"data.train={{type: unaligned, root: {unaligned}, size: {SIZE}}}",
        "data.eval=null",
        "eval.metrics=[]",
        "eval.best=null",
        "eval.samples=0",
        "method.stages.teacher.iterations=1",
        "teacher.arch.ngf=8",
        "student.arch.ngf=4",
        f"output.dir={run_dir}",
        "output.checkpoint_every=0",
        "output.sample_every=0",
        "output.log_every=1",
        f"method.channels={json.dumps(CHOICES)}",
        f"method.discriminator={json.dumps(D_UNPAIRED)}",
        "method.stages.distill.iterations=1",
        "method.stages.supernet.iterations=2",
        "method.stages.search.budget=2e8",
        "method.stages.search.metric={type: fake_mae}",
        "method.stages.search.score=mae",
        "method.stages.finetune.iterations=2",
    ]
    if "type: vem" in text:
        out += ["mi.energy.width=4", "mi.energy.blocks=2", "mi.sampler.steps=2"]
    if "type: crd" in text:
        out += ["mi.bank_size=4"]
    return out


DEMOS = sorted((ROOT / "specs" / "ablations").glob("emoji_gan_compression_*.yaml"))
RUNS = [
    p if p.stem.endswith(("compression", "_vem")) else pytest.param(p, marks=pytest.mark.slow)
    for p in PAPER
] + [pytest.param(p, marks=pytest.mark.slow) for p in DEMOS]
# the paper's VID and CRD specs differ from the others by the MI term only; the demos are the
# same recipe at a CPU budget


@pytest.mark.parametrize("path", RUNS, ids=[f"{p.parent.name}/{p.stem}" for p in PAPER + DEMOS])
def test_paper_spec_runs_every_stage_at_a_tiny_size(
    path, reg, unaligned_root, tmp_path, monkeypatch
):
    import vemkit.registry
    from vemkit.spec import load_spec

    monkeypatch.setattr(vemkit.registry, "default", lambda: reg)  # the fake_mae test metric
    run_dir = tmp_path / "run"
    spec = load_spec(path, tiny_overrides(path, unaligned_root, run_dir))
    result = run_engine(spec, registry=reg, progress=False)
    assert result.status == "finished"
    index = json.loads((run_dir / "stages.json").read_text())
    names = ["teacher", "distill", "supernet", "search", "finetune"]
    if path.parent.name == "ablations":  # the demos skip the pre-distillation
        names.remove("distill")
    assert [s["name"] for s in index["stages"]] == names
    assert all(s["status"] == "done" for s in index["stages"])
    search, finetune = (f"{names.index(n) + 1:02d}-{n}" for n in ("search", "finetune"))
    arch = json.loads((run_dir / "stages" / search / "DONE.json").read_text())["archs"]
    assert arch["student"]["type"] == "sub_mobile_resnet"
    rows = [json.loads(x) for x in (run_dir / "stages" / finetune / "metrics.jsonl").open()]
    names = {t.name for p in result.program.phases for t in p.terms}
    assert {"gc.gan", "gc.recon", "gc.distill"} <= names
    if spec.mi.type != "none":  # the MI term joins the fine-tune stage
        assert any(n.startswith("mi.") for n in names)
    assert all(math.isfinite(v) for r in rows for k, v in r.items() if k in names)
    shutil.rmtree(run_dir)


def test_fast_variant_distils_the_supernet_from_a_resnet_teacher(reg, aligned_root, tmp_path):
    # GAN-Compression "fast": no pre-distillation, a student as wide as the teacher, the
    # supernet distilled directly from the original ResNet (same tap names, model.9/12/15/18).
    cfg = recipe_config(
        aligned_root,
        tmp_path / "run",
        teacher={"enabled": False},
        distill={"enabled": False},
        supernet={"iterations": 1},
        search={"algorithm": "exhaustive", "budget": 2.5e8},
        finetune={"iterations": 1},
    )
    cfg["teacher"]["arch"] = {"type": "resnet", "ngf": 4}
    cfg["method"]["channels"] = [[4], [4, 2], [4], [4, 2], [4], [4], [4], [4]]
    cfg["output"]["checkpoint_every"] = 0
    result = run_engine(make_spec(reg, cfg), registry=reg)
    assert result.status == "finished" and result.stage == "finetune"
    adapters = result.program.module("gc_adapters")
    assert [tuple(a.weight.shape[:2]) for a in adapters] == [(16, 16)] * 4
    rows = json.loads(
        (tmp_path / "run" / "stages" / "02-search" / "tables" / "candidates.json").read_text()
    )
    assert len(rows) == 4  # exhaustive: the 4 configurations, all under the budget
