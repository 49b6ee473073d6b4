"""The per-run extension contract: the hooks a training run calls.

``vemkit.hookspecs`` holds the *registration* hook (plugins add components to the registry).
This module holds the second half of the contract (DESIGN.md §3): what the active components
of **one run** may contribute. When a spec is compiled, the engine builds the run's method
(``registry.build("method", spec.method, spec=spec)``), its MI term (same for ``spec.mi``) and
any callbacks given to :func:`vemkit.run`, and registers each of them as a plugin on a fresh
``pluggy.PluginManager`` of the project ``vemkit_run``. A component takes part by carrying
methods marked with :data:`hookimpl` (from this module) named after the hooks below; a component
with no marked method simply contributes nothing.

What a plugin builds, it builds through the :class:`~vemkit.engine.program.Program` it is
handed: ``program.add_module`` (discriminators, extra teachers, energy nets, adapters),
``program.add_group`` (an optimizer + schedule per trainable group; ``program.set_group`` and
``program.configure_group`` change a module's group or a group's optimizer),
``program.add_producer`` (named tensors computed lazily once per iteration), ``program.tap``
(a forward hook by dotted module path), ``program.add_phase`` / ``program.add_term`` (the
phases of one iteration and their named, weighted loss terms), ``program.add_phase_filter``
(which phases run at which iteration: alternating blocks of iterations), and, while training,
``program.score`` (metrics of any named tensor over the evaluation set, e.g. to pick a best
teacher). The engine owns the *how*: devices, precision, backward, gradient clipping, the NaN
guard, optimizer and scheduler steps, logging, checkpoints.

Order of calls for one run::

    (a recipe: the calls below once per training stage, ``program.stage`` naming it; a step
    stage: vemkit_build, then vemkit_stage_step)
    compile:  vemkit_build -> vemkit_phases -> vemkit_check -> vemkit_stages
    resume:   vemkit_load_state_dict (only when continuing a run)
    train:    (each stage once, before the first iteration of a fresh run)
              per iteration: vemkit_iteration_start -> phases in order -> vemkit_iteration_end
              at every evaluation: vemkit_evaluate
              at every checkpoint: vemkit_state_dict
    end:      vemkit_run_end

Standard names every run has (the core creates them before ``vemkit_build``):

* modules ``teacher`` (frozen unless ``teacher.mode: online``) and ``student``;
* groups ``student`` (always) and ``teacher`` (online teachers only);
* the ``student`` phase (order :data:`ORDER_STUDENT`, steps the ``student`` group, no terms);
* tensor producers ``input``, ``target`` (when the batch has one), ``teacher.out``,
  ``student.out``; taps ``<module>:<dotted.path>``.

Phase orders used by the built-ins (an iteration runs phases by ascending order; the OMGD
pix2pix code's order is discriminator/teacher update, then energy update, then student update):
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from vemkit.engine.program import Program, Stage
    from vemkit.engine.recipe import StepResult
    from vemkit.engine.state import State
    from vemkit.stages import StageInfo

PROJECT = "vemkit_run"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Mark a method of a run component as the implementation of one of the hooks below."""

ORDER_DISCRIMINATOR = 100
"""Discriminator updates (they see this iteration's fakes, detached)."""
ORDER_TEACHER = 200
"""The online teacher's own update (skipped for a frozen teacher)."""
ORDER_ENERGY = 300
"""The MI term's energy update (VEM), before the student so that the student term can reuse
the negatives it drew."""
ORDER_STUDENT = 400
"""The student update: the method's terms, the MI term's student term, the spec's ``losses:``."""


@hookspec
def vemkit_build(program: Program, spec: Any) -> None:
    """Add what this component needs to ``program`` before phases are declared.

    Called once per compile, for every run plugin (method first, then the MI term, then
    callbacks), after the core has built the teacher and the student and created the standard
    groups, producers and the ``student`` phase. Use ``program.add_module``,
    ``program.add_group``, ``program.add_producer`` and ``program.tap``; ``program.build(kind,
    config)`` builds another registered component (e.g. a discriminator arch).
    ``program.meta`` is True when the program is compiled only to be described (``vemkit
    plan``): modules live on the meta device and must not be run for values. Return nothing.
    """


@hookspec
def vemkit_phases(program: Program, spec: Any) -> None:
    """Add phases and loss terms to ``program``.

    Called once per compile after every ``vemkit_build``. ``program.add_phase(name,
    order=..., groups=[...], every=n)`` declares a phase that steps the optimizers of
    ``groups`` every ``n`` iterations; ``program.add_term(phase, name, fn, weight)`` adds a
    named term ``fn(state) -> Tensor`` (a 0-dim loss) or ``-> (Tensor, {name: value})`` (the
    dict is logged as diagnostics under ``<term>/<name>``). The phase's loss is the weighted
    sum of its terms; terms of weight 0 are not evaluated. A term reads tensors by name,
    ``state["student.out"]``, and may leave values for later phases of the same iteration in
    ``state.values`` (an energy phase stores its negatives for the student term). Terms may
    be added to phases declared by other plugins (the ``student`` phase above all). Return
    nothing.
    """


@hookspec
def vemkit_check(program: Program, spec: Any) -> list[str] | None:
    """Problems that make this run impossible, found before anything trains.

    Called once per compile after ``vemkit_phases``. Return a list of messages (each naming
    the spec path it concerns, e.g. ``"method.gan_mode: ..."``) or None. All problems of all
    plugins are reported together as one :class:`~vemkit.errors.VemkitError`.
    """


@hookspec
def vemkit_stages(program: Program, spec: Any) -> list[Stage] | None:
    """One-shot work inside a one-loop run, before its first iteration (an in-place change of
    the initial weights), in the order returned, plugins in registration order. Multi-stage
    work (pre-train → prune or search → distil), whose steps change architectures and are each
    checkpointed, is a recipe instead: see :mod:`vemkit.stages` and ``vemkit_stage_step``.

    Called once per compile. Return a list of :class:`~vemkit.engine.program.Stage` (a name and
    a function ``fn(program, context)``; ``context`` carries ``run_dir``, ``device``, ``dist``
    and ``data``, the training batches: ``context["data"].next()``) or None. Stages run in a
    fresh run only; what they change must live in module weights or in this component's
    ``vemkit_state_dict`` so that a resumed run does not need them again.
    """


@hookspec(firstresult=True)
def vemkit_stage_step(program: Program, stage: StageInfo, context: dict[str, Any]) -> StepResult:
    """Do the one-shot work of the recipe's step stage ``stage`` (prune, search, score).

    A method whose options declare a recipe (``stages``, see :mod:`vemkit.stages`) implements
    this for each of its :class:`~vemkit.stages.StepStage` stages (``stage.name``,
    ``stage.options``). ``program`` holds the modules as the stages before left them (built
    from the architectures they recorded, weights loaded, in eval mode, on ``context
    ["device"]``); nothing trains. ``context``: ``run_dir`` (the stage's folder: a long step
    keeps a cache of finished work there, so that a resumed run does not redo it), ``device``,
    ``dist``, ``data`` (a stream of training batches: ``context["data"].next()``),
    ``train_set``, ``eval_set``, ``batch_size``, ``say`` (tell the user), ``progress`` (show a
    progress bar), ``registry``, ``holdout(fraction)`` (the training split without
    augmentation, split by the spec's seed into (the rest, a held-out ``fraction``): a search
    scores its candidates there, never on the test split) and ``score(fake, metrics, dataset,
    real="target", limit=None)`` (any registered metrics, ``[{type: fid}]``, of the images
    ``fake(batch)`` over ``dataset``). The global RNG is seeded for the stage. Under several
    processes every process computes the step from the same seed and data, so all end with the
    same result; write files only where ``context["dist"].main``.

    Return a :class:`vemkit.engine.recipe.StepResult`: the new architecture of the teacher or
    the student as an arch config (``{"type": "pruned", ...}``, a searched
    ``{"type": "sub_mobile_resnet", ...}``), the replaced modules with their weights, a summary
    and tables for the report. The engine saves them as the stage's output; the stages after
    build from them. Only the first non-None result counts (the method's).
    """


@hookspec
def vemkit_iteration_start(program: Program, state: State, step: int) -> None:
    """Called at the start of every iteration, after the batch is loaded and before the first
    phase; ``step`` counts completed iterations (0 for the first). Return nothing."""


@hookspec
def vemkit_iteration_end(program: Program, state: State, step: int, logs: dict[str, Any]) -> None:
    """Called after every iteration's phases and schedule steps; ``step`` is the number of
    completed iterations (1 after the first). ``logs`` maps names to this iteration's
    scalars (0-dim tensors or floats: each term's value, ``lr/<group>``); a plugin may add
    entries, which are averaged and written to ``metrics.jsonl`` every ``output.log_every``
    iterations. Return nothing."""


@hookspec
def vemkit_evaluate(program: Program, step: int, run_dir: str | None) -> dict[str, float] | None:
    """Extra evaluation scores of this component at ``step`` (completed iterations).

    Called at every evaluation (``eval.every`` and at the end), after the spec's metrics, with
    the modules in eval mode and gradients off. Return ``{name: value}`` (logged as
    ``eval/<name>`` and usable as ``eval.best``) or None.
    """


@hookspec
def vemkit_state_dict(program: Program) -> dict[str, Any] | None:
    """State of this component that is not in a module's weights, for exact resume (image
    pools, counters, schedules of its own, a memory bank kept outside modules).

    Called at every checkpoint. Return ``{key: value}`` with keys unique across plugins
    (prefix them with the component's name) and values made of tensors, numbers, strings,
    bools, None, lists, tuples and dicts (tensors go to safetensors, the rest to JSON; nothing
    is pickled), or None. Module buffers (a sampler's replay buffer) need nothing here: every
    module added with ``program.add_module`` is saved whole.
    """


@hookspec
def vemkit_load_state_dict(program: Program, state: dict[str, Any]) -> None:
    """Restore what ``vemkit_state_dict`` returned; ``state`` is the merged dict of every
    plugin (take your own keys). Called once when a run resumes, after modules, optimizers
    and schedules are restored and before the first iteration. Return nothing."""


@hookspec
def vemkit_run_end(program: Program, status: str, run_dir: str | None) -> None:
    """Called once when training stops: ``status`` is ``"finished"``, ``"stopped"`` (a
    requested stop or an interrupt) or ``"failed"`` (an error, e.g. the NaN guard). Return
    nothing."""
