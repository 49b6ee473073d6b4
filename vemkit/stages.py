"""Stages: a run as an ordered recipe of training segments and one-shot steps (DESIGN.md §4b).

GCC, GAN-Compression, CAT and CAGC are recipes (pre-train → prune or search → distil); OMGD and
KD are one training loop. A method declares a recipe **statically, in its options**: its
options model has a field ``stages`` holding a model whose fields are the stages in order,
each an options model derived from :class:`TrainingStage` (iterations, phases, optimizers,
schedules and evaluation of its own: all of today's engine) or :class:`StepStage` (prune,
search, score: a function of the modules so far). Because the recipe is part of the spec's
validated data, every stage's budget and options are overridden like any key, with
did-you-mean (``--set method.stages.supernet.iterations=3000``), they appear in the JSON
Schema, and ``vemkit plan`` can list them without building anything.

What a stage *does* comes from the method's run hooks: a training stage is compiled like a
one-loop run, with ``program.stage`` naming it, so ``vemkit_build``/``vemkit_phases`` declare
that stage's modules and phases; a step stage calls ``vemkit_stage_step``
(:mod:`vemkit.engine.hookspecs`). This module is torch-free (``vemkit validate`` imports it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from vemkit.options import Options


class StageOptions(Options):
    """Options every stage has."""

    kind: ClassVar[str] = "stage"
    changes: ClassVar[tuple[str, ...]] = ()
    """Modules whose architecture this stage may replace (shown by ``vemkit plan``)."""

    enabled: bool = True
    """Run this stage; ``false`` skips it (e.g. a teacher stage when ``teacher.checkpoint``
    already holds a trained teacher)."""

    def describe(self, spec: Any) -> str:
        """One line for ``vemkit plan`` and the run's log: what the stage does with these
        options (a method's stage model overrides it, e.g. "prune the student to ≤ 3.0G MACs";
        empty: the description of the stage's field in the method's ``stages`` model)."""
        return ""


class TrainingStage(StageOptions):
    """A training segment: phases, optimizers, schedules and evaluation of its own."""

    kind: ClassVar[str] = "train"

    iterations: Annotated[int, Field(gt=0)] | None = None
    """Iterations of this stage; ``null``: the spec's ``train.iterations``."""
    batch_size: Annotated[int, Field(gt=0)] | None = None
    """Images per iteration per process in this stage; ``null``: the spec's
    ``train.batch_size`` (CAT trained its teacher at 32 and its student at 80)."""
    teacher: Literal["online", "frozen"] | None = None
    """The teacher in this stage: trained alongside (``online``) or fixed (``frozen``);
    ``null``: the spec's ``teacher.mode``."""
    student: bool = True
    """Whether this stage trains the student (``false``: e.g. a teacher pre-training stage;
    its evaluation then scores the teacher)."""
    inherit: list[str] | None = None
    """Modules that start from the weights an earlier stage left (the newest one holding
    them); ``null``: every module whose name and shapes match an earlier stage's; ``[]``:
    none — a fresh initialisation (GCC and CAT re-initialise the pruned student)."""
    eval_every: Annotated[int, Field(ge=0)] | None = None
    """Evaluate every this many iterations of the stage (0: at its end only); ``null``: the
    spec's ``eval.every``."""
    output: Literal["last", "best"] = "last"
    """The weights this stage hands to the stages after it: its last checkpoint, or its best
    by ``eval.best`` (CAT and GAN-Compression hand on their best-FID teacher; the last one
    when no evaluation picked a best)."""
    mi: bool | None = None
    """Whether the spec's MI term (``mi:``, e.g. VEM) takes part in this stage; ``null``: only
    in the recipe's last stage that trains the student (the distillation the paper adds VEM
    to), never in a stage that trains no student."""


class StepStage(StageOptions):
    """A one-shot step (prune, search, score) computed from the modules of the stages before."""

    kind: ClassVar[str] = "step"


class Stages(Options):
    """Base of a method's ``stages`` model (its fields, in order, are the recipe's stages).

    A stage given in a spec is laid over that stage's default, key by key: with
    ``distil: TrainingStage = TrainingStage.as_default(iterations=200_000, inherit=["teacher"])``,
    the override ``--set method.stages.distil.iterations=9`` keeps ``inherit`` (pydantic alone
    would build a fresh stage from ``{iterations: 9}`` and silently drop the other defaults)."""

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, field in cls.model_fields.items():
            given, default = merged.get(name), field.default
            if isinstance(given, dict) and isinstance(default, StageOptions):
                merged[name] = {**default.model_dump(exclude_unset=True), **given}
        return merged


@dataclass(frozen=True)
class StageInfo:
    """A stage of a run as the engine and the method's hooks see it."""

    name: str
    index: int
    """Position among the recipe's enabled stages (0-based)."""
    count: int
    """Number of enabled stages."""
    options: Any
    """The stage's validated options (a :class:`TrainingStage` or :class:`StepStage`)."""
    about: str = ""
    """The description of the stage's field in the method's ``stages`` model."""
    distils: bool = False
    """Whether this is the recipe's last training stage that trains the student."""

    @property
    def uses_mi(self) -> bool:
        """Whether the spec's MI term takes part in this stage (see ``TrainingStage.mi``)."""
        options = self.options
        if not isinstance(options, TrainingStage) or not options.student:
            return False
        return self.distils if options.mi is None else options.mi

    def describe(self, spec: Any) -> str:
        return self.options.describe(spec) or self.about

    @property
    def kind(self) -> str:
        return type(self.options).kind

    @property
    def is_training(self) -> bool:
        return isinstance(self.options, TrainingStage)

    @property
    def folder(self) -> str:
        """Its folder under ``RUN_DIR/stages/``: ``01-pretrain``."""
        return f"{self.index + 1:02d}-{self.name}"


def recipe_of(spec: Any) -> list[StageInfo]:
    """The enabled stages of ``spec`` in order; ``[]`` for a one-loop method."""
    holder = getattr(spec.method, "stages", None)
    if not isinstance(holder, BaseModel):
        return []
    fields = type(holder).model_fields
    chosen = [
        (name, getattr(holder, name))
        for name in fields
        if isinstance(getattr(holder, name), StageOptions) and getattr(holder, name).enabled
    ]
    students = [n for n, o in chosen if isinstance(o, TrainingStage) and o.student]
    last = students[-1] if students else None
    return [
        StageInfo(name, i, len(chosen), opts, fields[name].description or "", name == last)
        for i, (name, opts) in enumerate(chosen)
    ]


def stage_spec_data(
    spec: Any, stage: StageInfo, archs: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The spec a training or step stage runs as, as plain data: ``train.iterations``,
    ``teacher.mode`` and ``eval.every`` from the stage, and the teacher's and student's
    architectures as the stages before left them (``archs``: role → arch config)."""
    data = copy.deepcopy(spec.to_dict())
    options = stage.options
    if isinstance(options, TrainingStage):
        if options.iterations is not None:
            data["train"]["iterations"] = options.iterations
        if options.batch_size is not None:
            data["train"]["batch_size"] = options.batch_size
        if options.teacher is not None:
            data["teacher"]["mode"] = options.teacher
        if options.eval_every is not None:
            data["eval"]["every"] = options.eval_every
    for role, arch in (archs or {}).items():
        if role in ("teacher", "student"):
            data[role]["arch"] = copy.deepcopy(arch)
    return data


def stage_fingerprint_data(
    spec_data: dict[str, Any], upto: str, uses_mi: bool = True
) -> dict[str, Any]:
    """What a stage's result depends on: the spec without where it writes, without the
    options of the stages after ``upto`` (a later stage's budget does not change an earlier
    stage's result) and, when no stage up to it uses the MI term, without ``mi`` (a ``mi:
    none`` run's teacher and pruning serve a VEM run)."""
    data = copy.deepcopy(spec_data)
    data.pop("output", None)
    data.pop("name", None)
    if not uses_mi:
        data.pop("mi", None)
    stages = data.get("method", {}).get("stages")
    if isinstance(stages, dict):
        names = list(stages)
        if upto in names:
            for later in names[names.index(upto) + 1 :]:
                stages.pop(later)
    return data
