"""Recipes built from the compression toolkit, each from one spec on a tiny U-Net:
pre-train → prune to a MAC budget → distil, and supernet → search → fine-tune."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated, Any

import pytest
import torch
import torch.nn.functional as F
from pydantic import Field

from tests._engine_util import (
    base_config,
    make_aligned,
    make_registry,
    make_spec,
    merge,
    same_tensors,
    single_thread,  # noqa: F401 - autouse fixture
    weights,
)
from vemkit.engine import resume
from vemkit.engine import run as run_engine
from vemkit.engine.hookspecs import hookimpl
from vemkit.engine.recipe import StepResult
from vemkit.options import Options
from vemkit.stages import StepStage, TrainingStage
from vemkit_plugins.compress.channels import analyze
from vemkit_plugins.compress.importance import norm_scale_scores
from vemkit_plugins.compress.macs import WidthMacs
from vemkit_plugins.compress.prune import prune_to_budget
from vemkit_plugins.compress.search import evolutionary_search
from vemkit_plugins.compress.supernet import SuperNet

SIZE = 32
UNET = {"type": "unet", "ngf": 4, "num_downs": 5}


def _input(spec: Any) -> tuple[int, int, int]:
    return (3, SIZE, SIZE)


def _l1_to(name: str):
    return lambda s: F.l1_loss(s["student.out"], s.detached(name))


# -- pre-train → prune → distil ---------------------------------------------------------------
class PruneStage(StepStage):
    """Prune the student by |γ| to a share of its MACs."""

    changes = ("student",)
    share: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """MAC budget as a share of the student's MACs."""

    def describe(self, spec: Any) -> str:
        return f"prune the student by |γ| to ≤ {self.share:.0%} of its MACs (paper convention)"


class PruneStages(Options):
    pretrain: TrainingStage = TrainingStage(iterations=3)
    """The wide student learns the targets."""
    prune: PruneStage = PruneStage()
    """Global |γ| threshold to the budget."""
    distil: TrainingStage = TrainingStage(iterations=3, inherit=["teacher"])
    """The pruned student, re-initialised, mimics the teacher."""


class PruneKDOptions(Options):
    """pretrain → prune → distil."""

    stages: PruneStages = PruneStages()
    """Stages."""


class PruneKD:
    def __init__(self, options: PruneKDOptions) -> None:
        self.options = options

    @hookimpl
    def vemkit_phases(self, program: Any, spec: Any) -> None:
        if program.stage.name == "pretrain":
            program.add_term("student", "t.recon", _l1_to("target"))
        else:
            program.add_term("student", "t.kd", _l1_to("teacher.out"))

    @hookimpl
    def vemkit_stage_step(self, program: Any, stage: Any, context: Any) -> StepResult:
        student = program.module("student")
        shape = _input(program.spec)
        graph = analyze(student, shape)
        full = WidthMacs(graph)()
        result = prune_to_budget(
            student, norm_scale_scores(student, graph), stage.options.share * full, graph=graph
        )
        base = program.spec.student.arch.model_dump(mode="json")
        table = [
            {"layer": r["name"], "before": r["before"], "after": r["after"]} for r in result.table
        ]
        return StepResult(
            archs={"student": result.arch_config(base)},
            modules={"student": result.apply(student, graph)},
            summary={
                "before": {"macs": result.macs_before, "params": result.params_before,
                           "channels": {r["layer"]: r["before"] for r in table}},
                "after": {"macs": result.macs_after, "params": result.params_after,
                          "channels": {r["layer"]: r["after"] for r in table}},
                "budget": result.budget,
            },
        )  # fmt: skip


# -- supernet → search → fine-tune ------------------------------------------------------------
class SearchStage(StepStage):
    """Evolutionary search of the supernet's configurations under a MAC budget."""

    changes = ("student",)
    share: Annotated[float, Field(gt=0, le=1)] = 0.6
    """MAC budget as a share of the full supernet's MACs."""


class OFAStages(Options):
    supernet: TrainingStage = TrainingStage(iterations=4)
    """Each iteration trains one uniformly drawn sub-network."""
    search: SearchStage = SearchStage()
    """Best configuration under the budget."""
    finetune: TrainingStage = TrainingStage(iterations=2)
    """The chosen sub-network, from the supernet's weights."""


class OFAOptions(Options):
    """supernet → search → fine-tune."""

    stages: OFAStages = OFAStages()
    """Stages."""


class OFAKD:
    def __init__(self, options: OFAOptions) -> None:
        self.options = options
        self.supernet: SuperNet | None = None

    def _choices(self, graph: Any) -> dict[str, list[int]]:
        return {s.name: [s.size // 2, s.size] for s in graph.prunable()}

    @hookimpl
    def vemkit_build(self, program: Any, spec: Any) -> None:
        if program.stage.name != "supernet" or program.meta:
            return
        student = program.module("student")
        self.supernet = SuperNet(student, _input(spec))
        self.choices = self._choices(self.supernet.graph)
        self.config: dict[str, int] = {}
        net = self.supernet
        program.add_producer("student.out", lambda s: net(s["input"], self.config), replace=True)

    @hookimpl
    def vemkit_iteration_start(self, program: Any, state: Any, step: int) -> None:
        if self.supernet is not None:
            # A function of the step: the same draw in a resumed run.
            self.config = self.supernet.sample(random.Random(1000 + step), self.choices)

    @hookimpl
    def vemkit_phases(self, program: Any, spec: Any) -> None:
        program.add_term("student", "t.kd", _l1_to("teacher.out"))

    @hookimpl
    def vemkit_stage_step(self, program: Any, stage: Any, context: Any) -> StepResult:
        net = SuperNet(program.module("student"), _input(program.spec))
        macs = WidthMacs(net.graph)
        _, held = context["holdout"](0.5)  # scored on training images, never the test split

        def score(config: dict[str, int]) -> float:
            fake = lambda batch: net(batch["input"], config)  # noqa: E731
            return context["score"](fake, [{"type": "fake_mae"}], held)["mae"]

        result = evolutionary_search(
            self._choices(net.graph), macs, score, stage.options.share * macs(),
            population=6, iterations=2, seed=0, lower_is_better=True, progress=False,
        )  # fmt: skip
        base = program.spec.student.arch.model_dump(mode="json")
        arch = {"type": "pruned", "base": base, "input": list(_input(program.spec)),
                "widths": {k: v for k, v in result.best.items()}}  # fmt: skip
        return StepResult(
            archs={"student": arch},
            modules={"student": net.extract(result.best)},
            summary={"before": {"macs": macs()}, "after": {"macs": result.best_macs},
                     "score": result.best_score},
            tables={"candidates": result.table},
        )  # fmt: skip


@pytest.fixture(scope="module")
def reg():
    reg = make_registry()
    reg.add("method", "prune_kd_test", options=PruneKDOptions, factory=lambda o, **_: PruneKD(o))
    reg.add("method", "ofa_kd_test", options=OFAOptions, factory=lambda o, **_: OFAKD(o))
    return reg


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_aligned(tmp_path_factory.mktemp("data"), n=4, size=SIZE)


def config(data_root: Path, run_dir: Path, method: str) -> dict:
    out = merge(
        base_config(data_root, run_dir, size=SIZE),
        {
            "method": {"type": method},
            "train": {"deterministic": True},
            "output": {"checkpoint_every": 1, "keep": 1},
        },
    )
    out["teacher"]["arch"] = {**UNET, "ngf": 8}
    out["student"]["arch"] = dict(UNET)
    return out


def final(run_dir: Path, folder: str) -> dict[str, torch.Tensor]:
    return weights(run_dir / "stages" / folder / "checkpoints" / "last" / "student.safetensors")


def test_pretrain_prune_distil_lands_under_the_budget_and_rebuilds_from_the_run(
    reg, data_root, tmp_path, monkeypatch
):
    import vemkit.registry
    from vemkit.export import export_module, load_student

    run_dir = tmp_path / "prune"
    result = run_engine(make_spec(reg, config(data_root, run_dir, "prune_kd_test")), registry=reg)
    assert result.status == "finished"
    summary = json.loads((run_dir / "stages" / "02-prune" / "summary.json").read_text())
    assert summary["after"]["macs"] <= summary["budget"]
    assert summary["after"]["macs"] >= 0.9 * summary["budget"]
    assert min(summary["after"]["channels"].values()) >= 1
    done = json.loads((run_dir / "stages" / "02-prune" / "DONE.json").read_text())
    arch = done["archs"]["student"]
    assert arch["type"] == "pruned" and arch["widths"]
    # the distil stage re-initialised the pruned student (GCC/CAT): not the pruned weights
    pruned, distilled = final(run_dir, "02-prune"), final(run_dir, "03-distil")
    assert {k: v.shape for k, v in pruned.items()} == {k: v.shape for k, v in distilled.items()}
    # eval / export / profile rebuild the pruned network from the run folder alone
    monkeypatch.setattr(vemkit.registry, "default", lambda: reg)
    student = load_student(run_dir)
    assert same_tensors(student.module.state_dict(), distilled)
    exported = export_module(
        student.module, student.input_shape, "safetensors", tmp_path / "s.safetensors"
    )
    assert exported.path.is_file()


def test_supernet_search_finetune_finds_a_config_under_budget_and_resumes(reg, data_root, tmp_path):
    whole = tmp_path / "whole"
    run_engine(make_spec(reg, config(data_root, whole, "ofa_kd_test")), registry=reg)
    rows = json.loads((whole / "stages" / "02-search" / "tables" / "candidates.json").read_text())
    summary = json.loads((whole / "stages" / "02-search" / "summary.json").read_text())
    assert rows and rows[0]["macs"] <= 0.6 * summary["before"]["macs"]
    assert rows[0]["score"] == min(r["score"] for r in rows)
    assert len({r["score"] for r in rows}) > 1  # the candidates were really scored apart
    # stopped inside the supernet stage and resumed: the same search and the same result
    split = tmp_path / "split"
    spec = make_spec(reg, config(data_root, split, "ofa_kd_test"))
    assert run_engine(spec, registry=reg, stop_at=2, stop_in="supernet").status == "stopped"
    assert resume(split, registry=reg).status == "finished"
    for folder in ("01-supernet", "02-search", "03-finetune"):
        assert same_tensors(final(whole, folder), final(split, folder)), folder


def test_profile_of_a_recipe_folder_reports_the_pruned_student(
    reg, data_root, tmp_path, monkeypatch, capsys
):
    import vemkit.registry
    from vemkit.cli import main

    run_dir = tmp_path / "prune"
    run_engine(make_spec(reg, config(data_root, run_dir, "prune_kd_test")), registry=reg)
    summary = json.loads((run_dir / "stages" / "02-prune" / "summary.json").read_text())
    monkeypatch.setattr(vemkit.registry, "default", lambda: reg)
    capsys.readouterr()
    assert main(["profile", str(run_dir), "--no-latency", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["student"]["params"] == summary["after"]["params"]
    assert rows["student"]["macs_paper"] == summary["after"]["macs"]
