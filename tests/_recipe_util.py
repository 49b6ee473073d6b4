"""A small recipe method for the engine's stage tests: pre-train → shrink (a step that narrows
the student, keeping its first channels) → distil, on the tests' tiny conv net. It is written
as a third party would write a recipe, through the public contract only."""

from __future__ import annotations

import json
import os
import signal
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field

from tests._engine_util import TinyNet, make_registry
from vemkit.engine.hookspecs import hookimpl
from vemkit.engine.recipe import StepResult
from vemkit.hookspecs import hookimpl as register_hookimpl
from vemkit.options import Options
from vemkit.stages import Stages, StepStage, TrainingStage


class ShrinkStage(StepStage):
    """Narrow the student to ``width`` channels, keeping its first ones."""

    changes = ("student",)
    width: Annotated[int, Field(gt=0)] = 2
    """Channels the student keeps."""

    def describe(self, spec: Any) -> str:
        return f"keep the student's first {self.width} channels"


class ToyStages(Stages):
    """The recipe's stages, in order."""

    pretrain: TrainingStage = TrainingStage(iterations=3, teacher="frozen")
    """The student learns the targets alone."""
    shrink: ShrinkStage = ShrinkStage()
    """The step."""
    distil: TrainingStage = TrainingStage(iterations=4)
    """The narrowed student mimics the teacher."""


class ToyRecipeOptions(Options):
    """pretrain → shrink → distil."""

    stages: ToyStages = ToyStages()
    """Stages of the recipe."""


class ToyRecipe:
    def __init__(self, options: ToyRecipeOptions) -> None:
        self.options = options
        self.kill_at: tuple[str, int] | None = None
        env = os.environ.get("VEMKIT_TEST_KILL_AT")
        if env:
            name, _, step = env.partition(":")
            self.kill_at = (name, int(step))

    @hookimpl
    def vemkit_phases(self, program: Any, spec: Any) -> None:
        if program.stage.name == "pretrain":
            program.add_term(
                "student", "toy.recon", lambda s: F.l1_loss(s["student.out"], s["target"])
            )
        else:
            program.add_term(
                "student",
                "toy.kd",
                lambda s: F.l1_loss(s["student.out"], s.detached("teacher.out")),
            )

    @hookimpl
    def vemkit_iteration_end(self, program: Any, state: Any, step: int, logs: Any) -> None:
        # A real SIGKILL at a chosen point (the subprocess tests set VEMKIT_TEST_KILL_AT).
        if self.kill_at == (program.stage.name, step):
            os.kill(os.getpid(), signal.SIGKILL)

    @hookimpl
    def vemkit_stage_step(self, program: Any, stage: Any, context: Any) -> StepResult:
        width = stage.options.width
        old = program.module("student")
        arch = program.spec.student.arch.model_dump(mode="json")
        arch["width"] = width
        new = TinyNet(width, arch["input_nc"], arch["output_nc"])
        with torch.no_grad():
            for target, source in zip(
                new.state_dict().values(), old.state_dict().values(), strict=True
            ):
                slices = tuple(slice(0, n) for n in target.shape)
                target.copy_(source[slices] if source.dim() else source)
        if context["dist"].main:  # every process computes the step; one writes
            counter = context["run_dir"] / "step_calls.json"
            calls = json.loads(counter.read_text()) if counter.exists() else 0
            counter.write_text(json.dumps(calls + 1))
        if self.kill_at == (stage.name, 0):
            os.kill(os.getpid(), signal.SIGKILL)
        before = old.body[0].out_channels
        return StepResult(
            archs={"student": arch},
            modules={"student": new},
            summary={
                "before": {"channels": {"body.0": before}},
                "after": {"channels": {"body.0": width}},
            },
            tables={"kept": [{"layer": "body.0", "before": before, "after": width}]},
        )


def recipe_registry() -> Any:
    reg = make_registry()
    reg.add("method", "toy_recipe", options=ToyRecipeOptions, factory=lambda o, **_: ToyRecipe(o))
    return reg


@register_hookimpl
def vemkit_register(registry: Any) -> None:
    """``-p tests._recipe_util``: the toy recipe and the tiny net in a ``vemkit`` command (the
    sweep's cells are such commands)."""
    from tests._engine_util import FakeMAE, FakeMetricOptions, TinyOptions, build_tiny

    registry.add("arch", "tiny", options=TinyOptions, factory=build_tiny)
    registry.add("metric", "fake_mae", options=FakeMetricOptions, factory=lambda o, **_: FakeMAE())
    registry.add(
        "method", "toy_recipe", options=ToyRecipeOptions, factory=lambda o, **_: ToyRecipe(o)
    )
