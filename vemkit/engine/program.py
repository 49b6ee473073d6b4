"""Spec -> Program: the compile stage (DESIGN.md §4).

A :class:`Program` is plain data a test can inspect: the built modules (teacher, student,
discriminators, energy nets, adapters) with the group that trains each, one optimizer and
schedule per trainable group, the ordered phases of one iteration with their named, weighted
loss terms, the named tensor producers and the feature taps. The core builds what every run
has (teacher, student, the ``student`` group and phase, the standard producers); the run's
method, MI term and callbacks add the rest through the hooks of
:mod:`vemkit.engine.hookspecs`; the spec's ``losses:`` add terms of the user's own. Every name
a spec refers to (a tap path, a loss input, a phase) is checked here, before any training,
with did-you-mean suggestions.
"""

from __future__ import annotations

import contextlib
import difflib
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from vemkit.engine import hookspecs
from vemkit.engine.state import State
from vemkit.errors import VemkitError

TermFn = Callable[[State], Any]
"""``fn(state) -> Tensor`` or ``-> (Tensor, {name: diagnostic})``."""

PhaseFilter = Callable[["Phase", int], bool]
"""``fn(phase, step) -> bool``: whether ``phase`` may run in the iteration after ``step``
completed ones (see :meth:`Program.add_phase_filter`)."""

Scorer = Callable[[str, Sequence[Any], "str | None"], dict[str, float]]
"""``fn(fake, metrics, real) -> scores``, installed by the trainer (see :meth:`Program.score`)."""

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP / DataParallel and torch.compile wrappers


@dataclass
class ModuleEntry:
    """A module of the run. ``group`` names the optimizer group that trains it (None: frozen,
    kept in eval mode without gradients)."""

    name: str
    module: nn.Module
    role: str = "other"
    """teacher | student | discriminator | energy | adapter | mi | loss | other."""
    group: str | None = None
    config: Any = None
    """The component options it was built from (shown by ``vemkit plan``), if any."""
    source: str = "core"

    @property
    def trainable(self) -> bool:
        return self.group is not None


@dataclass
class Group:
    """Parameters stepped by one optimizer with one learning-rate schedule."""

    name: str
    optimizer_config: Any
    scheduler_config: Any
    grad_clip: float | None = None
    extra_params: list[nn.Parameter] = field(default_factory=list)
    source: str = "core"
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    params: list[nn.Parameter] = field(default_factory=list)
    """Filled when the program is finalised: the group's modules' parameters + extras."""


@dataclass
class Term:
    """A named, weighted loss term of a phase."""

    name: str
    fn: TermFn
    weight: float = 1.0
    source: str = "core"
    note: str = ""


@dataclass
class Phase:
    """One update of an iteration: the weighted sum of ``terms``, back-propagated into the
    parameters of ``groups`` only, whose optimizers then step; every ``every`` iterations."""

    name: str
    order: float
    groups: list[str]
    every: int = 1
    terms: list[Term] = field(default_factory=list)
    source: str = "core"
    params: list[nn.Parameter] = field(default_factory=list)
    retain_graph: bool = False
    """Keep this phase's autograd graph after its backward, for a later phase of the same
    iteration that back-propagates through a part of it (into its own parameters only)."""

    def runs_at(self, step: int) -> bool:
        """Whether the phase runs in the iteration after ``step`` completed ones."""
        return step % self.every == 0


@dataclass
class Producer:
    """A named tensor, computed by ``fn(state)`` the first time an iteration asks for it."""

    name: str
    fn: Callable[[State], Tensor]
    no_grad: bool = False
    source: str = "core"


@dataclass
class Tap:
    """A forward hook that captures the output of ``owner``'s submodule at ``path``."""

    key: str
    owner: str
    path: str
    handle: Any = None


@dataclass
class Stage:
    """Work done once before distillation (pruning, a search), ``fn(program, context)``."""

    name: str
    fn: Callable[[Program, dict[str, Any]], None]
    source: str = "core"


def _print_message(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def _first_tensor(out: Any) -> Tensor:
    # Generators that also return latents, discriminators that return several scales.
    while isinstance(out, tuple | list) and out:
        out = out[0]
    if not isinstance(out, Tensor):
        raise VemkitError(f"expected a module to return a tensor, got {type(out).__name__}")
    return out


def normalise_path(path: str) -> str:
    """A dotted module path without wrapper prefixes (``module.`` of DDP, ``_orig_mod.``)."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if path.startswith(prefix):
                path, changed = path[len(prefix) :], True
    return path


def suggest(name: str, known: Iterable[str], n: int = 3) -> str:
    """``"; did you mean 'x'?"`` (or several) for ``name`` among ``known``, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


class Program:
    """The compiled run. Plugins extend it in their hooks; the engine runs it."""

    def __init__(self, spec: Any, registry: Any, *, meta: bool = False) -> None:
        self.spec = spec
        self.registry = registry
        self.meta = meta
        self.device = torch.device("meta" if meta else "cpu")
        self.modules: dict[str, ModuleEntry] = {}
        self.groups: dict[str, Group] = {}
        self.phases: list[Phase] = []
        self.producers: dict[str, Producer] = {}
        self.taps: dict[str, Tap] = {}
        self.stages: list[Stage] = []
        self.components: dict[str, Any] = {}
        """The run plugins by name (``method``, ``mi``, ``callback.0``, ...)."""
        self.notes: list[str] = []
        """Warnings found while compiling (printed by ``vemkit run`` and ``vemkit plan``)."""
        self.plugins: Any = None  # the per-run pluggy.PluginManager
        self.phase_filters: list[tuple[PhaseFilter, str, str]] = []
        """``(fn, description, source)``: a phase runs only where every filter agrees."""
        self.scorer: Scorer | None = None
        """Scores images over the evaluation set; set by the trainer that runs the program."""
        self.stage: Any = None
        """The recipe stage this program runs (a :class:`vemkit.stages.StageInfo`: ``name``,
        ``index``, ``options``), or None for a one-loop run. A method with a recipe reads it in
        its hooks to declare that stage's modules and phases."""
        self.evaluates = "student.out"
        """The tensor the spec's metrics score at every evaluation (``teacher.out`` in a stage
        that trains only the teacher)."""
        self.say: Callable[[str], None] = _print_message
        """Tell the user something while training (printed above the progress bar by the
        trainer, on rank 0 only): a method's block boundaries, a best-teacher choice."""
        self._source = "core"
        self._active: State | None = None

    # -- building ---------------------------------------------------------------------------
    def build(self, kind: str, config: Any, /, **context: Any) -> Any:
        """Build a registered component (``{type: name, ...}`` or validated options)."""
        return self.registry.build(kind, config, **context)

    def add_module(
        self,
        name: str,
        module: nn.Module,
        *,
        role: str = "other",
        group: str | None = None,
        config: Any = None,
    ) -> nn.Module:
        """Add ``module`` under ``name``; ``group`` (an existing group) trains it, None
        freezes it. Every module is saved in checkpoints as ``<name>.safetensors``."""
        if name in self.modules:
            raise VemkitError(
                f"module '{name}' is added twice (by {self.modules[name].source} and by "
                f"{self._source})"
            )
        if not isinstance(module, nn.Module):
            raise VemkitError(f"{self._source}: module '{name}' is not a torch.nn.Module")
        if group is not None and group not in self.groups:
            raise VemkitError(
                f"{self._source}: module '{name}' names group '{group}', which does not exist"
                f"{suggest(group, self.groups)} (add it with program.add_group first)"
            )
        if self.meta:
            module = _to_meta(module)
        self.modules[name] = ModuleEntry(name, module, role, group, config, self._source)
        return module

    def module(self, name: str) -> nn.Module:
        """The module called ``name``."""
        entry = self.modules.get(name)
        if entry is None:
            raise VemkitError(
                f"no module named '{name}'{suggest(name, self.modules)} "
                f"(modules: {', '.join(self.modules)})"
            )
        return entry.module

    def add_group(
        self,
        name: str,
        *,
        optimizer: Any = None,
        scheduler: Any = None,
        grad_clip: float | None = None,
        params: Iterable[nn.Parameter] = (),
    ) -> Group:
        """A trainable group with its own optimizer and schedule (``{type: ..., ...}``
        configs; default: the spec's ``train.optimizer`` / ``train.scheduler``). ``params``
        adds parameters that belong to no module of the program."""
        if name in self.groups:
            raise VemkitError(f"group '{name}' is added twice")
        train = self.spec.train
        group = Group(
            name,
            optimizer if optimizer is not None else train.optimizer,
            scheduler if scheduler is not None else train.scheduler,
            grad_clip if grad_clip is not None else train.grad_clip,
            list(params),
            self._source,
        )
        self.groups[name] = group
        return group

    def set_group(self, module: str, group: str | None) -> None:
        """Let ``group`` train the module called ``module`` (None: freeze it). E.g. a method
        whose run module ``student`` is an EMA copy (what evaluation and export use) freezes
        it and lets the ``student`` group train the generator it averages."""
        entry = self.modules.get(module)
        if entry is None:
            raise VemkitError(f"no module named '{module}'{suggest(module, self.modules)}")
        if group is not None and group not in self.groups:
            raise VemkitError(
                f"{self._source}: module '{module}' cannot join group '{group}', which does not "
                f"exist{suggest(group, self.groups)}"
            )
        entry.group = group

    def configure_group(
        self,
        name: str,
        *,
        optimizer: Any = None,
        scheduler: Any = None,
        grad_clip: float | None = None,
    ) -> Group:
        """Replace the optimizer, schedule or gradient clipping of an existing group (e.g. the
        ``student`` group a core built from ``train.optimizer``: StyleGAN2's lazy
        regularisation scales its learning rate and betas). Before the program is finalised."""
        group = self.groups.get(name)
        if group is None:
            raise VemkitError(f"no group named '{name}'{suggest(name, self.groups)}")
        if group.optimizer is not None:
            raise VemkitError(f"group '{name}': its optimizer is built already")
        if optimizer is not None:
            group.optimizer_config = optimizer
        if scheduler is not None:
            group.scheduler_config = scheduler
        if grad_clip is not None:
            group.grad_clip = grad_clip
        return group

    def add_producer(
        self,
        name: str,
        fn: Callable[[State], Tensor],
        *,
        no_grad: bool = False,
        replace: bool = False,
    ) -> None:
        """A named tensor, ``fn(state)``, computed once per iteration when first asked for.
        ``no_grad``: computed without autograd (frozen modules). ``replace`` swaps an
        existing producer (e.g. a method that feeds the student something else)."""
        if name in self.producers and not replace:
            raise VemkitError(
                f"tensor '{name}' already has a producer (from {self.producers[name].source}); "
                "pass replace=True to swap it"
            )
        self.producers[name] = Producer(name, fn, no_grad, self._source)

    def add_phase(
        self,
        name: str,
        *,
        order: float,
        groups: Sequence[str],
        every: int = 1,
        retain_graph: bool = False,
    ) -> Phase:
        """Declare a phase stepping ``groups`` every ``every`` iterations, run by ascending
        ``order`` (see the ``ORDER_*`` constants of :mod:`vemkit.engine.hookspecs`).
        ``retain_graph``: keep the phase's graph after its backward, so that a later phase can
        reuse tensors computed in it (OMGD's discriminator reuses the teachers' fake scores:
        the discriminator's weights have not changed in between, and its backward, restricted
        to its own parameters, never enters the teachers' part of the graph)."""
        if any(p.name == name for p in self.phases):
            raise VemkitError(f"phase '{name}' is added twice")
        if every < 1:
            raise VemkitError(f"phase '{name}': every must be at least 1, got {every}")
        phase = Phase(
            name,
            float(order),
            list(groups),
            int(every),
            source=self._source,
            retain_graph=retain_graph,
        )
        self.phases.append(phase)
        self.phases.sort(key=lambda p: p.order)  # stable: equal orders keep insertion order
        return phase

    def add_phase_filter(self, fn: PhaseFilter, description: str) -> None:
        """Let ``fn(phase, step)`` veto phases: a phase runs in the iteration after ``step``
        completed ones only when its ``every`` is due and every filter returns True. This is
        how a method alternates blocks of iterations (OMGD's CycleGAN schedule trains the
        teachers for a block, then the student for a block) without owning the loop.
        ``description`` is shown by ``vemkit plan``."""
        self.phase_filters.append((fn, description, self._source))

    def runs(self, phase: Phase, step: int) -> bool:
        """Whether ``phase`` runs in the iteration after ``step`` completed ones."""
        return phase.runs_at(step) and all(fn(phase, step) for fn, _, _ in self.phase_filters)

    def score(
        self, fake: str, metrics: Sequence[Any], *, real: str | None = "target"
    ) -> dict[str, float]:
        """Scores of the tensor ``fake`` (any producer: ``"teacher.out"``, a method's own)
        over the run's evaluation set, by ``metrics`` (built metric components, reset first),
        against the tensor ``real`` of the same batches (``None``: the metrics' own reference,
        e.g. FID ``real_dir``). Runs like an evaluation: modules in eval mode, no gradients,
        the training RNG untouched; under several processes rank 0 scores and every process
        gets its result. Only while a trainer runs the program."""
        if self.scorer is None:
            raise VemkitError(
                f"{self._source}: scoring '{fake}' needs a running trainer with an evaluation set"
            )
        return self.scorer(fake, metrics, real)

    def phase(self, name: str) -> Phase:
        """The phase called ``name``."""
        for phase in self.phases:
            if phase.name == name:
                return phase
        names = [p.name for p in self.phases]
        raise VemkitError(
            f"no phase named '{name}'{suggest(name, names)} (phases: {', '.join(names)})"
        )

    def add_term(
        self, phase: str, name: str, fn: TermFn, weight: float = 1.0, *, note: str = ""
    ) -> Term:
        """Add the loss term ``weight · fn(state)`` called ``name`` to ``phase``."""
        target = self.phase(phase)
        for other in self.phases:
            if any(t.name == name for t in other.terms):
                raise VemkitError(f"loss term '{name}' is added twice")
        term = Term(name, fn, float(weight), self._source, note)
        target.terms.append(term)
        return term

    def term(self, name: str) -> Term:
        """The term called ``name`` (in any phase)."""
        names = []
        for phase in self.phases:
            for term in phase.terms:
                if term.name == name:
                    return term
                names.append(term.name)
        raise VemkitError(f"no loss term named '{name}'{suggest(name, names)}")

    def add_stage(self, stage: Stage) -> None:
        stage.source = self._source
        self.stages.append(stage)

    # -- feature taps -------------------------------------------------------------------------
    def tap(self, spec: str, path: str | None = None) -> str:
        """Capture the output of a submodule by dotted path: ``tap("student:model.3")`` or
        ``tap("student", "model.3")``. Returns the tensor name (``"student:model.3"``), which
        producers, terms and the spec's ``losses:`` read like any tensor. A path that does not
        exist is an error with suggestions over ``named_modules()``."""
        owner, _, rest = spec.partition(":")
        path = rest if path is None else path
        if not path:
            raise VemkitError(f"a feature tap is written '<module>:<dotted.path>', got '{spec}'")
        entry = self.modules.get(owner)
        if entry is None:
            raise VemkitError(
                f"feature tap '{spec}': no module named '{owner}'{suggest(owner, self.modules)} "
                f"(modules: {', '.join(self.modules)})"
            )
        path = normalise_path(path)
        key = f"{owner}:{path}"
        if key in self.taps:
            return key
        names = {normalise_path(n): m for n, m in entry.module.named_modules() if n}
        sub = names.get(path)
        if sub is None:
            hint = suggest(path, names) or (
                f"; its top-level modules are: {', '.join(n for n in names if '.' not in n)}"
            )
            raise VemkitError(
                f"feature tap '{spec}': {owner} ({type(entry.module).__name__}) has no "
                f"submodule '{path}'{hint}"
            )
        tap = Tap(key, owner, path)
        tap.handle = sub.register_forward_hook(self._capture(key))
        self.taps[key] = tap
        self.add_producer(key, self._tap_producer(tap), replace=key in self.producers)
        return key

    def _capture(self, key: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            state = self._active
            if state is not None:
                state.cache[key] = _first_tensor(output)

        return hook

    def _tap_producer(self, tap: Tap) -> Callable[[State], Tensor]:
        driver = f"{tap.owner}.out"

        def produce(state: State) -> Tensor:
            if driver not in self.producers:
                raise VemkitError(
                    f"feature tap '{tap.key}': nothing runs module '{tap.owner}' (no tensor "
                    f"'{driver}')"
                )
            state[driver]
            value = state.cache.get(tap.key)
            if value is None:
                raise VemkitError(
                    f"feature tap '{tap.key}': the submodule did not run in {tap.owner}'s forward"
                )
            return value

        return produce

    @contextlib.contextmanager
    def activate(self, state: State | None) -> Iterator[State | None]:
        """Taps write into ``state`` while active."""
        previous, self._active = self._active, state
        try:
            yield state
        finally:
            self._active = previous

    # -- inspection ---------------------------------------------------------------------------
    def example_batch(self, n: int = 1) -> dict[str, Any]:
        """A batch of ``n`` random items shaped like the spec's data (for shape probes)."""
        from vemkit.profile import arch_channels, spec_input_size

        size = spec_input_size(self.spec)
        in_c = arch_channels(self.spec.student.arch)
        out_c = arch_channels(self.spec.student.arch, ("output_nc", "out_channels"))
        gen = torch.Generator().manual_seed(0)
        batch: dict[str, Any] = {
            "target": torch.rand(n, out_c, size, size, generator=gen).mul_(2).sub_(1),
            "index": torch.arange(n),
        }
        if getattr(self.module("student"), "z_dim", None) is None:
            batch["input"] = torch.rand(n, in_c, size, size, generator=gen).mul_(2).sub_(1)
        return {k: v.to(self.device) for k, v in batch.items()}

    def probe(self, names: Iterable[str], batch: dict[str, Any] | None = None) -> dict[str, Any]:
        """Shapes of the named tensors on a batch-1 example (modules in eval mode, no
        gradients, the global RNG untouched). On the meta device nothing is computed."""
        names = list(names)
        with torch.random.fork_rng(devices=[]), torch.no_grad(), self.eval_mode():
            state = State(self, batch or self.example_batch(1), 0, training=False)
            with self.activate(state):
                return {n: tuple(state[n].shape) for n in names}

    @contextlib.contextmanager
    def eval_mode(self) -> Iterator[None]:
        """Every module in eval mode, restored after."""
        modes = {m: m.training for e in self.modules.values() for m in e.module.modules()}
        for e in self.modules.values():
            e.module.eval()
        try:
            yield
        finally:
            for m, mode in modes.items():
                m.training = mode

    def parameters_of(self, group: str) -> list[nn.Parameter]:
        """The parameters a group's optimizer steps (unique, in module order)."""
        g = self.groups[group]
        seen: set[int] = set()
        out: list[nn.Parameter] = []
        for entry in self.modules.values():
            if entry.group != group:
                continue
            for p in entry.module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        for p in g.extra_params:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def describe(self) -> dict[str, Any]:
        """The plan of the run as plain data (``vemkit plan``)."""
        spec = self.spec
        modules = []
        for e in self.modules.values():
            modules.append(
                {
                    "name": e.name,
                    **_component(e.config, e.module),
                    "role": e.role,
                    "trainable": e.trainable,
                    "group": e.group,
                    "params": sum(p.numel() for p in e.module.parameters()),
                    "from": e.source,
                }
            )
        phases = [
            {
                "name": p.name,
                "order": p.order,
                "every": p.every,
                "updates": list(p.groups),
                "terms": [
                    {"name": t.name, "weight": t.weight, "from": t.source, "note": t.note}
                    for t in p.terms
                ],
                "from": p.source,
            }
            for p in self.phases
        ]
        optimizers = [
            {
                "group": g.name,
                "modules": [e.name for e in self.modules.values() if e.group == g.name],
                "params": sum(p.numel() for p in self.parameters_of(g.name)),
                "optimizer": _component(g.optimizer_config),
                "scheduler": _component(g.scheduler_config),
                "grad_clip": g.grad_clip,
            }
            for g in self.groups.values()
        ]
        return {
            "name": spec.name,
            "task": spec.task,
            "iterations": spec.train.iterations,
            "batch_size": spec.train.batch_size,
            "precision": spec.train.precision,
            "modules": modules,
            "method": _component(spec.method),
            "mi": _component(spec.mi),
            "phases": phases,
            "optimizers": optimizers,
            "tensors": sorted(self.producers),
            "taps": sorted(self.taps),
            "stages": [{"name": s.name, "from": s.source} for s in self.stages],
            "schedules": [{"about": d, "from": src} for _, d, src in self.phase_filters],
            "data": {
                "train": _component(spec.data.train),
                "eval": _component(spec.data.eval) if spec.data.eval else None,
            },
            "metrics": [_component(m) for m in spec.eval.metrics],
            "notes": list(self.notes),
        }

    # -- finalising -------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> Program:
        """Move every module to ``device`` (before optimizers are built)."""
        device = torch.device(device)
        if self.meta:
            return self
        for e in self.modules.values():
            e.module.to(device)
        self.device = device
        return self

    def finalise(self) -> None:
        """Freeze untrained modules, collect each phase's parameters, build the optimizers
        and schedules. Called by the engine after :meth:`to`."""
        owner: dict[int, str] = {}
        for e in self.modules.values():
            if e.group is None:
                continue
            for p in e.module.parameters():
                if owner.setdefault(id(p), e.group) != e.group:
                    raise VemkitError(
                        f"a parameter of module '{e.name}' belongs to groups '{owner[id(p)]}' "
                        f"and '{e.group}'"
                    )
        trained = {id(p) for g in self.groups for p in self.parameters_of(g)}
        for e in self.modules.values():
            if e.group is None:
                e.module.eval()
                for p in e.module.parameters():
                    if id(p) not in trained:
                        p.requires_grad_(False)
            else:
                e.module.train()
        total = self.spec.train.iterations
        for g in self.groups.values():
            g.params = self.parameters_of(g.name)
            if not g.params:
                continue
            g.optimizer = self.build("optimizer", g.optimizer_config, params=g.params)
            g.scheduler = self.build(
                "scheduler", g.scheduler_config, optimizer=g.optimizer, total_steps=total
            )
        for phase in self.phases:
            phase.params = [p for name in phase.groups for p in self.groups[name].params]
            if not phase.params:
                raise VemkitError(
                    f"phase '{phase.name}' updates {', '.join(phase.groups)}, which hold no "
                    "trainable parameters"
                )


# -- helpers ------------------------------------------------------------------------------------
def _component(options: Any, module: nn.Module | None = None) -> dict[str, Any]:
    if options is None:
        return {
            "kind": "module",
            "type": type(module).__name__ if module is not None else None,
            "options": {},
        }
    if isinstance(options, dict):
        data = dict(options)
        return {"kind": "?", "type": data.pop("type", None), "options": data}
    data = options.model_dump(mode="json")
    kind = getattr(type(options), "__vemkit_component__", ("?", data.get("type")))[0]
    return {"kind": kind, "type": data.pop("type", None), "options": data}


def _to_meta(module: nn.Module) -> nn.Module:
    return module.to("meta") if any(True for _ in module.parameters()) else module


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- the compile stage ----------------------------------------------------------------------
def compile(
    spec: Any,
    *,
    registry: Any = None,
    meta: bool = False,
    callbacks: Sequence[Any] = (),
    warm_start: bool = True,
    context: dict[str, Any] | None = None,
    stage: Any = None,
) -> Program:
    """Build the :class:`Program` of a validated spec.

    ``meta``: build every module on the meta device (no memory, no weights loaded) to
    describe the run cheaply. ``callbacks``: extra run plugins (objects with
    :data:`~vemkit.engine.hookspecs.hookimpl` methods). ``warm_start``: load
    ``teacher.checkpoint`` and ``student.init`` (off when a resumed run restores weights).
    ``context``: passed to the method's and MI term's factories besides ``spec`` and
    ``build`` (the run passes ``num_samples``, the training set size). ``stage``: the recipe
    stage compiled (:class:`vemkit.stages.StageInfo`): a training stage that trains no student
    has no ``student`` group or phase; a step stage gets its modules only (``vemkit_build``),
    no phases.
    """
    import pluggy

    from vemkit import registry as registry_module

    reg = registry or registry_module.default()
    seed_everything(spec.seed)
    program = Program(spec, reg, meta=meta)
    program.stage = stage
    steps_only = stage is not None and not stage.is_training
    trains_student = stage is None or (stage.is_training and stage.options.student)
    if not trains_student:
        program.evaluates = "teacher.out"
    device_ctx = torch.device("meta") if meta else contextlib.nullcontext()

    # -- what every run has -------------------------------------------------------------
    online = spec.teacher.mode == "online"
    with device_ctx:
        teacher = _build_arch(reg, spec.teacher.arch, "teacher.arch")
        student = _build_arch(reg, spec.student.arch, "student.arch")
    if trains_student:
        program.add_group("student")
    if online and not steps_only:
        program.add_group("teacher")
    program.add_module(
        "teacher",
        teacher,
        role="teacher",
        group="teacher" if online and not steps_only else None,
        config=spec.teacher.arch,
    )
    program.add_module(
        "student",
        student,
        role="student",
        group="student" if trains_student else None,
        config=spec.student.arch,
    )
    _standard_producers(program, online and not steps_only)
    if trains_student:
        program.add_phase("student", order=hookspecs.ORDER_STUDENT, groups=["student"])
    if warm_start and not meta:
        _warm_start(program)
    first_stage = stage is None or stage.index == 0  # later stages inherit earlier weights
    if not online and spec.teacher.checkpoint is None and first_stage:
        program.notes.append(
            "teacher.mode is frozen but teacher.checkpoint is null: the teacher keeps its "
            "random initialisation"
        )

    # -- the run plugins ------------------------------------------------------------------
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    program.plugins = pm
    with device_ctx:
        extra = dict(context or {})
        method = reg.build("method", spec.method, spec=spec, build=reg.build, **extra)
        with_mi = stage is None or stage.uses_mi
        mi = reg.build("mi", spec.mi, spec=spec, build=reg.build, **extra) if with_mi else None
    order: list[tuple[str, Any]] = [("method", method), ("mi", mi)]
    order += [(f"callback.{i}", cb) for i, cb in enumerate(callbacks)]
    for name, obj in order:
        program.components[name] = obj
        if obj is not None and not isinstance(obj, int | float | str):
            try:
                pm.register(obj, name=name)
            except (ValueError, pluggy.PluginValidationError) as exc:  # twice, or a bad hookimpl
                raise VemkitError(f"{name}: cannot take part in the run: {exc}") from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:  # a hookimpl named like no hook
        raise VemkitError(f"a run component implements an unknown hook: {exc}") from None
    names = [n for n, o in order if pm.has_plugin(n)]
    for kind, config in (("method", spec.method), ("mi", spec.mi)):
        if kind == "mi" and mi is None:
            continue
        silent = kind in names and not pm.get_hookcallers(pm.get_plugin(kind))
        # An MI term without weight (``none``) may well do nothing; anything else must act.
        if silent and (kind == "method" or float(getattr(config, "weight", 0.0) or 0.0) > 0):
            raise VemkitError(
                f"{kind}: '{config.type}' takes no part in the run: the object its factory "
                "returns implements none of the run hooks (vemkit.engine.hookspecs)"
            )

    def call(hook: str, **kwargs: Any) -> list[Any]:
        results = []
        for name in names:
            others = [pm.get_plugin(n) for n in names if n != name]
            caller = pm.subset_hook_caller(hook, remove_plugins=others)
            program._source = _label(name, spec)
            try:
                with device_ctx:
                    results += [r for r in caller(**kwargs) if r is not None]
            finally:
                program._source = "core"
        return results

    call("vemkit_build", program=program, spec=spec)
    if steps_only:
        return program
    call("vemkit_phases", program=program, spec=spec)
    program._source = "losses"
    with device_ctx:
        _spec_losses(program, reg)
    program._source = "core"
    problems = _check(program) + [
        p for r in call("vemkit_check", program=program, spec=spec) for p in r
    ]
    if problems:
        raise VemkitError("the run cannot be compiled:\n  " + "\n  ".join(problems))
    for stages in call("vemkit_stages", program=program, spec=spec):
        for stage in stages:
            program.add_stage(stage)
    return program


def _label(plugin_name: str, spec: Any) -> str:
    if plugin_name == "method":
        return f"method {spec.method.type}"
    if plugin_name == "mi":
        return f"mi {spec.mi.type}"
    return plugin_name


def _build_arch(reg: Any, config: Any, where: str) -> nn.Module:
    module = reg.build("arch", config)
    if not isinstance(module, nn.Module):
        raise VemkitError(f"{where}: arch '{config.type}' did not build a torch.nn.Module")
    return module


def _standard_producers(program: Program, online: bool) -> None:
    teacher = program.module("teacher")
    student = program.module("student")

    def make_input(state: State) -> Tensor:
        x = state.batch.get("input")
        if x is not None:
            return x
        z_dim = getattr(student, "z_dim", None)
        if z_dim is None:
            raise VemkitError(
                "the data has no 'input' and the student has no z_dim to sample noise for; "
                "use a conditional dataset or an unconditional generator"
            )
        n = len(state.batch["target"])
        return torch.randn(n, int(z_dim), device=state.device)

    def make_target(state: State) -> Tensor:
        y = state.batch.get("target")
        if y is None:
            raise VemkitError(
                f"the data has no 'target' (the batch holds: {', '.join(state.batch)})"
            )
        return y

    program.add_producer("input", make_input)
    program.add_producer("target", make_target)
    program.add_producer(
        "teacher.out", lambda s: _first_tensor(teacher(s["input"])), no_grad=not online
    )
    program.add_producer("student.out", lambda s: _first_tensor(student(s["input"])))


def _warm_start(program: Program) -> None:
    from vemkit.weights import load_weights

    spec = program.spec
    for name, path, where in (
        ("teacher", spec.teacher.checkpoint, "teacher.checkpoint"),
        ("student", spec.student.init, "student.init"),
    ):
        if path is None:
            continue
        try:
            load_weights(program.module(name), path)
        except VemkitError as exc:
            raise VemkitError(f"{where}: {exc}") from None


def _spec_losses(program: Program, reg: Any) -> None:
    """Terms of the spec's ``losses:`` list: the first input is trained, the others are
    detached targets; a ``conv1x1`` adapter maps the first input's channels to the second's."""
    spec = program.spec
    probes: list[tuple[int, Any, list[str]]] = []
    for i, cfg in enumerate(spec.losses):
        where = f"losses.{i}"
        inputs = list(getattr(cfg, "inputs", []) or [])
        if not inputs:
            raise VemkitError(f"{where}.inputs: a loss needs at least one input tensor")
        for j, name in enumerate(inputs):
            if name in program.producers:
                continue
            if ":" in name:
                try:
                    program.tap(name)
                except VemkitError as exc:
                    raise VemkitError(f"{where}.inputs.{j}: {exc}") from None
                continue
            known = sorted(program.producers)
            owner, _, rest = name.partition(".")
            submodules = (
                {normalise_path(n) for n, _ in program.modules[owner].module.named_modules()}
                if owner in program.modules
                else set()
            )
            if normalise_path(rest) in submodules - {""}:
                hint = f"; a feature tap is written '{owner}:{normalise_path(rest)}'"
            else:
                hint = suggest(name, known)
            raise VemkitError(
                f"{where}.inputs.{j}: no tensor named '{name}'{hint} (tensors: "
                f"{', '.join(known)}; taps: '<module>:<dotted.path>')"
            )
        try:
            program.phase(getattr(cfg, "phase", "student"))
        except VemkitError as exc:
            raise VemkitError(f"{where}.phase: {exc}") from None
        probes.append((i, cfg, inputs))

    reads_taps = any(":" in n for _, _, inputs in probes for n in inputs)
    wants_adapter = any(getattr(c, "adapter", "none") != "none" for _, c, _ in probes)
    shapes: dict[str, Any] = {}
    if reads_taps or wants_adapter:
        wanted = sorted({n for _, _, inputs in probes for n in inputs})
        try:
            shapes = program.probe(wanted)
        except VemkitError:
            raise
        except Exception as exc:  # a forward that fails on the example batch
            if not program.meta:
                raise VemkitError(
                    f"losses: could not run the networks on an example batch to check the "
                    f"shapes of {', '.join(wanted)}: {type(exc).__name__}: {exc}"
                ) from None
            # Some ops have no meta kernel: describe the run without the shape check.
            program.notes.append(f"losses: tensor shapes not checked on the meta device ({exc})")

    for i, cfg, inputs in probes:
        where = f"losses.{i}"
        phase = program.phase(getattr(cfg, "phase", "student"))
        loss = program.build("loss", cfg)
        adapter: nn.Module | None = None
        if len(inputs) >= 2 and shapes:
            a, b = shapes[inputs[0]], shapes[inputs[1]]
            if len(a) >= 2 and len(b) >= 2 and a[1] != b[1]:
                if getattr(cfg, "adapter", "none") != "conv1x1":
                    raise VemkitError(
                        f"{where}: '{inputs[0]}' has {a[1]} channels and '{inputs[1]}' has "
                        f"{b[1]}; set adapter: conv1x1 to learn a 1×1 projection"
                    )
                adapter = nn.Conv2d(a[1], b[1], kernel_size=1)
                program.add_module(
                    f"adapter.{where}", adapter, role="adapter", group=phase.groups[0]
                )
            elif a[2:] != b[2:] and len(a) == len(b):
                raise VemkitError(
                    f"{where}: '{inputs[0]}' is {list(a[1:])} and '{inputs[1]}' is "
                    f"{list(b[1:])}; their spatial sizes differ"
                )
        if isinstance(loss, nn.Module) and any(True for _ in loss.parameters()):
            program.add_module(f"loss.{where}", loss, role="loss", group=phase.groups[0])
        program.add_term(
            phase.name,
            f"{where}.{cfg.type}",
            _loss_term(loss, inputs, adapter),
            float(getattr(cfg, "weight", 1.0)),
        )


def _loss_term(loss: Callable[..., Tensor], inputs: list[str], adapter: nn.Module | None) -> TermFn:
    first, rest = inputs[0], inputs[1:]

    def term(state: State) -> Tensor:
        x = state[first]
        if adapter is not None:
            x = adapter(x)
        return loss(x, *(state.detached(n) for n in rest))

    return term


def _check(program: Program) -> list[str]:
    problems = []
    stepped = {g for p in program.phases for g in p.groups}
    for phase in program.phases:
        for g in phase.groups:
            if g not in program.groups:
                problems.append(
                    f"phase '{phase.name}' updates group '{g}', which does not exist"
                    f"{suggest(g, program.groups)}"
                )
        if not phase.terms:
            problems.append(
                f"phase '{phase.name}' has no loss terms (the method "
                f"'{program.spec.method.type}' adds none, and no spec loss targets it)"
            )
    for g in program.groups:
        if g in stepped:
            continue
        if g == "teacher":
            problems.append(
                f"teacher.mode: online, but method '{program.spec.method.type}' adds no phase "
                "that updates the teacher; set teacher.mode: frozen"
            )
        else:
            problems.append(f"group '{g}' (from {program.groups[g].source}) is trained by no phase")
    for phase in program.phases:
        if phase.terms and all(t.weight == 0 for t in phase.terms):
            program.notes.append(f"every term of phase '{phase.name}' has weight 0")
    return problems
