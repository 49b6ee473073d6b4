"""Running a recipe: the stages of a run one after the other, each resumable (DESIGN.md §4b).

Layout of a recipe's run directory::

    RUN_DIR/spec.resolved.yaml     the spec as given (the whole recipe)
    RUN_DIR/run.json               spec hash, versions, plugins
    RUN_DIR/stages.json            the recipe's index: each stage's kind, folder and status
    RUN_DIR/stages/01-pretrain/    a training stage: an ordinary run directory (its own
                                   spec.resolved.yaml — the spec as the stage runs it —,
                                   metrics.jsonl, samples/, checkpoints/)
    RUN_DIR/stages/02-prune/       a step stage: spec.resolved.yaml, checkpoints/step_0000000
                                   (every module after the step), summary.json, tables/
    RUN_DIR/stages/NN-name/DONE.json   written last, atomically: the stage is finished; names
                                   the checkpoint that is its output and the architectures
                                   (teacher, student) it leaves to the stages after it

A stage's spec is the recipe's spec with the stage's iterations, teacher mode and evaluation
cadence, and with the architectures the stages before it left (a pruned student is recorded as
an arch config, e.g. ``{type: pruned, base: ..., widths: ...}``), so that every stage folder
is something ``vemkit eval``/``export``/``profile`` can open on its own, and the recipe's
folder opens as its last stage.

Resume: finished stages (a valid ``DONE.json``) are never recomputed; a training stage
continues from its newest checkpoint exactly as a one-loop run does; a step stage starts again
(its work is a function of the stages before it, seeded; a long step such as a search keeps its
own cache of finished work in its folder). ``start_from`` copies an earlier run's finished
stages into a new run directory and runs only what follows.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vemkit.errors import VemkitError
from vemkit.stages import StageInfo, recipe_of, stage_fingerprint_data, stage_spec_data

STAGES_FILE = "stages.json"
STAGES_DIR = "stages"
DONE = "DONE.json"
SUMMARY = "summary.json"
TABLES = "tables"
ROLES = ("teacher", "student")


@dataclass
class StepResult:
    """What a step stage returns from ``vemkit_stage_step``.

    ``archs``: the new architecture of ``teacher`` and/or ``student`` as arch configs (plain
    data a registry builds: ``{"type": "pruned", "base": {...}, "widths": {...}}``);
    ``modules``: modules of the program replaced by this step, under their names (their weights
    are this stage's output; a module not named keeps the program's); ``summary``: JSON data
    shown by ``vemkit report`` (e.g. channels per layer before and after, MACs, the chosen
    configuration; keys ``before``/``after`` as ``{"macs": ..., "params": ..., "channels":
    {layer: n}}`` are drawn as a table); ``tables``: named lists of rows (dicts), written as
    JSON and CSV (a search's candidates)."""

    archs: dict[str, dict[str, Any]] = field(default_factory=dict)
    modules: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


# -- the recipe's index ---------------------------------------------------------------------
def is_recipe_dir(path: str | Path) -> bool:
    return (Path(path) / STAGES_FILE).is_file()


def read_index(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(run_dir) / STAGES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VemkitError(f"{run_dir}/{STAGES_FILE}: unreadable ({exc})") from None


def read_done(stage_dir: Path) -> dict[str, Any] | None:
    """The ``DONE.json`` of a finished stage whose output checkpoint is valid, else None."""
    from vemkit.engine import checkpoint as ckpt

    try:
        done = json.loads((stage_dir / DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    output = stage_dir / ckpt.CHECKPOINTS / str(done.get("checkpoint"))
    if ckpt.verify(output) is not None:
        return None
    return done


def stage_dirs(run_dir: Path) -> list[tuple[dict[str, Any], Path]]:
    """``(entry, folder)`` of every stage in a recipe's index, in order."""
    index = read_index(run_dir)
    return [(e, Path(run_dir) / STAGES_DIR / e["folder"]) for e in index.get("stages", [])]


def final_stage_dir(run_dir: Path) -> Path:
    """The folder of the last stage of a recipe that holds weights (what ``eval``, ``export``
    and ``profile`` of the recipe's folder open)."""
    from vemkit.engine import checkpoint as ckpt

    found = None
    for _, folder in stage_dirs(run_dir):
        if (folder / ckpt.CHECKPOINTS).is_dir():
            found = folder
    if found is None:
        raise VemkitError(
            f"{run_dir}: no stage of this recipe has written weights yet; continue it with "
            f"`vemkit run --resume {run_dir}`"
        )
    return found


def _write_json(path: Path, data: Any) -> None:
    from vemkit.fileio import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=False) + "\n")


def _index_data(spec: Any, recipe: list[StageInfo], status: dict[str, str]) -> dict[str, Any]:
    return {
        "recipe": spec.method.type,
        "stages": [
            {
                "name": s.name,
                "kind": s.kind,
                "folder": s.folder,
                "status": status.get(s.name, "pending"),
                "options": s.options.model_dump(mode="json"),
            }
            for s in recipe
        ],
    }


# -- weights handed from stage to stage -----------------------------------------------------
class Inheritance:
    """Loads, into a new stage's modules, the weights the newest earlier stage left for each."""

    def __init__(self, outputs: list[tuple[str, Path]]) -> None:
        self.outputs = outputs
        """``(stage name, checkpoint folder)`` of the finished stages, oldest first."""

    def source(self, module: str) -> tuple[str, Path] | None:
        for name, folder in reversed(self.outputs):
            if (folder / f"{module}.safetensors").is_file():
                return name, folder / f"{module}.safetensors"
        return None

    def apply(self, program: Any, stage: StageInfo) -> list[str]:
        """Load what ``stage.options.inherit`` asks for; returns lines for the user."""
        from safetensors.torch import load_file

        wanted = getattr(stage.options, "inherit", None)
        names = list(program.modules) if wanted is None else list(wanted)
        said = []
        for name in names:
            if name not in program.modules:
                raise VemkitError(
                    f"method.stages.{stage.name}.inherit: the stage has no module '{name}' "
                    f"(modules: {', '.join(program.modules)})"
                )
            found = self.source(name)
            if found is None:
                if wanted is not None:
                    raise VemkitError(
                        f"method.stages.{stage.name}.inherit: no earlier stage left weights "
                        f"of '{name}'"
                    )
                continue
            origin, path = found
            module = program.module(name)
            state = load_file(str(path))
            own = module.state_dict()
            fits = state.keys() == own.keys() and all(
                tuple(state[k].shape) == tuple(own[k].shape) for k in own
            )
            if not fits:
                if wanted is None:
                    continue  # another architecture now (pruned): starts afresh
                raise VemkitError(
                    f"method.stages.{stage.name}.inherit: '{name}' of stage '{origin}' does not "
                    "fit this stage's architecture"
                )
            module.load_state_dict(state)
            said.append(f"{name} from stage '{origin}'")
        return said


# -- running ----------------------------------------------------------------------------------
@dataclass
class RecipeRun:
    spec: Any
    run_dir: Path
    registry: Any
    callbacks: Sequence[Any]
    progress: bool | None
    stop_at: int | None
    stop_in: str | None
    """The stage ``stop_at`` counts in (default: the first training stage not finished)."""
    until: str | None = None
    """Stop once this stage is finished (``vemkit run --until``): the stages after it stay
    pending, for ``--resume`` or for other runs to start from (``--from RUN_DIR:STAGE``)."""


def run_recipe(
    job: RecipeRun,
    *,
    train: Callable[..., Any],
    dist: Any,
    start_from: StartFrom | None = None,
) -> Any:
    """Run (or continue) every stage of ``job.spec`` in ``job.run_dir``; ``train`` is the
    one-loop trainer (:func:`vemkit.engine.run._train_in`); ``start_from``: the earlier run's
    stages to copy, as :func:`check_start` accepted them (``--until`` is checked by the
    caller, before anything is written)."""
    from vemkit.engine import checkpoint as ckpt
    from vemkit.engine import distributed
    from vemkit.engine.run import RunResult

    spec, run_dir = job.spec, job.run_dir
    recipe = recipe_of(spec)
    root = run_dir / STAGES_DIR
    status: dict[str, str] = {}
    if start_from is not None and dist.main:
        _copy_finished(start_from, spec, run_dir)
    distributed.barrier(dist)

    archs = {role: getattr(spec, role).arch.model_dump(mode="json") for role in ROLES}
    outputs: list[tuple[str, Path]] = []
    last: Any = None
    say = _say(dist)
    for stage in recipe:
        if outputs and outputs[-1][0] == job.until:
            break  # --until: the stage before was the last to run
        folder = root / stage.folder
        done = read_done(folder)
        if done is not None:
            archs.update(done.get("archs", {}))
            outputs.append((stage.name, folder / ckpt.CHECKPOINTS / done["checkpoint"]))
            status[stage.name] = "done"
            continue
        status[stage.name] = "running"
        if dist.main:
            _write_json(run_dir / STAGES_FILE, _index_data(spec, recipe, status))
        stage_spec = _stage_spec(spec, stage, archs, job.registry)
        say(
            f"stage {stage.index + 1}/{stage.count} '{stage.name}' ({stage.kind}): "
            f"{stage.describe(spec)}"
        )
        inherit = Inheritance(outputs)
        if stage.is_training:
            stop_here = job.stop_at if job.stop_in in (None, stage.name) else None
            last = train(
                stage_spec,
                folder,
                stage=stage,
                prepare=lambda program, s=stage, i=inherit: _report_inherited(
                    say, i.apply(program, s)
                ),
                stop_at=stop_here,
            )
            if last.status != "finished":
                status[stage.name] = "stopped"
                if dist.main:
                    _write_json(run_dir / STAGES_FILE, _index_data(spec, recipe, status))
                return RunResult(
                    run_dir,
                    last.status,
                    last.step,
                    last.checkpoint,
                    last.eval,
                    last.program,
                    stage.name,
                )
            # Every process reads it from the folder (only rank 0 wrote it, before a barrier).
            output, _ = ckpt.latest(folder)
            best = folder / ckpt.CHECKPOINTS / "best"
            if stage.options.output == "best" and best.exists() and ckpt.verify(best) is None:
                output = best.resolve()
            if output is None:
                raise VemkitError(f"stage '{stage.name}' finished without writing its weights")
            summary = {"eval": last.eval, "step": last.step}
        else:
            output, summary = _run_step(job, stage, stage_spec, folder, inherit, dist, say)
        new_archs = {r: getattr(stage_spec, r).arch.model_dump(mode="json") for r in ROLES}
        if not stage.is_training:
            new_archs.update(summary.pop("__archs__", {}))
        archs.update(new_archs)
        if dist.main:
            _write_json(folder / SUMMARY, summary)
            _write_json(
                folder / DONE,
                {
                    "stage": stage.name,
                    "kind": stage.kind,
                    "checkpoint": output.name,
                    "archs": new_archs,
                    "fingerprint": _fingerprint(spec, stage.name),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
            )
        distributed.barrier(dist)
        outputs.append((stage.name, output))
        status[stage.name] = "done"
        if dist.main:
            _write_json(run_dir / STAGES_FILE, _index_data(spec, recipe, status))
    if job.until is not None and status.get(recipe[-1].name) != "done":
        if dist.main:
            _write_json(run_dir / STAGES_FILE, _index_data(spec, recipe, status))
        say(f"stopped after stage '{job.until}' (--until); the stages after it are pending")
        return RunResult(
            run_dir,
            "stopped",
            last.step if last is not None else 0,
            outputs[-1][1] if outputs else None,
            last.eval if last is not None else {},
            last.program if last is not None else None,
            job.until,
        )
    if dist.main:
        _write_json(run_dir / STAGES_FILE, _index_data(spec, recipe, status))
    final = outputs[-1][1] if outputs else None  # the last stage's weights, a step's too
    if last is None:  # every stage was finished already, or the recipe has only steps
        return RunResult(run_dir, "finished", 0, final, {}, None, recipe[-1].name)
    return RunResult(
        run_dir, "finished", last.step, final, last.eval, last.program, recipe[-1].name
    )


def _say(dist: Any) -> Callable[[str], None]:
    def say(message: str) -> None:
        if dist.main:
            print(message, file=sys.stderr, flush=True)

    return say


def _report_inherited(say: Callable[[str], None], lines: list[str]) -> None:
    if lines:
        say("  weights: " + "; ".join(lines))


def _stage_spec(spec: Any, stage: StageInfo, archs: dict[str, Any], registry: Any) -> Any:
    from vemkit.spec_model import spec_model

    data = stage_spec_data(spec, stage, archs)
    try:
        return spec_model(registry).model_validate(data)
    except Exception as exc:  # an architecture an earlier stage recorded that no longer builds
        raise VemkitError(f"stage '{stage.name}': its spec does not validate: {exc}") from None


def _uses_mi_upto(spec: Any, stage: str) -> bool:
    recipe = recipe_of(spec)
    names = [s.name for s in recipe]
    upto = recipe[: names.index(stage) + 1] if stage in names else recipe
    return any(s.uses_mi for s in upto)


def _fingerprint(spec: Any, stage: str) -> str:
    import hashlib

    data = stage_fingerprint_data(spec.to_dict(), stage, _uses_mi_upto(spec, stage))
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _run_step(
    job: RecipeRun,
    stage: StageInfo,
    stage_spec: Any,
    folder: Path,
    inherit: Inheritance,
    dist: Any,
    say: Callable[[str], None],
) -> tuple[Path, dict[str, Any]]:
    """Compile the stage's modules, hand them to the method's ``vemkit_stage_step``, save
    what it returns as the stage's checkpoint."""
    from vemkit.engine import checkpoint as ckpt
    from vemkit.engine.data import BatchStream
    from vemkit.engine.loop import pick_device
    from vemkit.engine.program import compile as compile_program
    from vemkit.engine.program import seed_everything
    from vemkit.engine.run import resolved_yaml, run_info

    reg = job.registry
    device = pick_device(stage_spec.train.device, dist)
    train_set = reg.build("dataset", stage_spec.data.train, seed=stage_spec.seed)
    program = compile_program(
        stage_spec,
        registry=reg,
        callbacks=job.callbacks,
        context={"num_samples": len(train_set)},
        stage=stage,
    )
    _report_inherited(say, inherit.apply(program, stage))
    program.to(device)
    for entry in program.modules.values():
        entry.module.eval()
    eval_set = (
        reg.build("dataset", stage_spec.data.eval, seed=stage_spec.seed, augment=False)
        if stage_spec.data.eval is not None
        else None
    )
    # Every process computes the same step from the same seed and the same data; rank 0 writes.
    # Seeded by the stage's name, not its position: disabling an earlier stage (a teacher
    # given as a checkpoint) does not change what a step draws.
    salt = zlib.crc32(stage.name.encode())
    seed_everything((stage_spec.seed + salt) % 2**31)
    stream = BatchStream(
        train_set, stage_spec.train.batch_size, seed=(stage_spec.seed + salt) % 2**31, device=device
    )
    if dist.main:
        folder.mkdir(parents=True, exist_ok=True)
    context = {
        "run_dir": folder,
        "device": device,
        "dist": dist,
        "data": stream,
        "train_set": train_set,
        "eval_set": eval_set,
        "batch_size": stage_spec.train.batch_size,
        "say": say,
        "progress": (sys.stderr.isatty() if job.progress is None else job.progress) and dist.main,
        "registry": reg,
        "holdout": lambda fraction: _holdout(reg, stage_spec, fraction),
        "score": lambda fake, metrics, dataset, **kw: score_images(
            fake,
            metrics,
            dataset,
            device=device,
            batch_size=stage_spec.train.batch_size,
            registry=reg,
            seed=stage_spec.seed,
            **kw,
        ),
    }
    try:
        result = program.plugins.hook.vemkit_stage_step(
            program=program, stage=stage, context=context
        )
    finally:
        stream.close()
    if result is None:
        raise VemkitError(
            f"method.stages.{stage.name}: method '{stage_spec.method.type}' implements no "
            "vemkit_stage_step for this step stage"
        )
    if not isinstance(result, StepResult):
        raise VemkitError(
            f"method '{stage_spec.method.type}': vemkit_stage_step must return a "
            f"vemkit.engine.recipe.StepResult, got {type(result).__name__}"
        )
    unknown = set(result.archs) - set(ROLES)
    if unknown:
        raise VemkitError(
            f"stage '{stage.name}': a step can record new architectures of the teacher and the "
            f"student only, not {sorted(unknown)}"
        )
    modules = {n: e.module for n, e in program.modules.items()}
    modules.update(result.modules)
    new_spec = _stage_spec(job.spec, stage, _merged_archs(stage_spec, result.archs), reg)
    info = run_info(new_spec, reg)
    path = folder / ckpt.CHECKPOINTS / ckpt.step_name(0)
    if dist.main:
        from vemkit.engine.checkpoint import write_text_atomic
        from vemkit.engine.run import SPEC_FILE

        spec_yaml = resolved_yaml(new_spec, info)
        write_text_atomic(folder / SPEC_FILE, spec_yaml)
        path = ckpt.save(
            folder,
            0,
            modules={n: m.state_dict() for n, m in modules.items()},
            state={"summary": result.summary},
            info={**info, "step": 0, "stage": stage.name},
            spec_yaml=spec_yaml,
        )
        _write_tables(folder, result.tables)
    summary = dict(result.summary)
    summary["__archs__"] = {r: getattr(new_spec, r).arch.model_dump(mode="json") for r in ROLES}
    return path, summary


def _holdout(reg: Any, spec: Any, fraction: float) -> tuple[Any, Any]:
    """(the rest, the held-out ``fraction``) of the training split, both without augmentation
    (for scoring), split by the spec's seed."""
    from vemkit.engine.data import Part, holdout_indices

    plain = reg.build("dataset", spec.data.train, seed=spec.seed, augment=False)
    rest, held = holdout_indices(len(plain), fraction, seed=spec.seed)
    return Part(plain, rest), Part(plain, held)


def score_images(
    fake: Callable[[dict[str, Any]], Any],
    metrics: Sequence[Any],
    dataset: Any,
    *,
    device: Any,
    batch_size: int,
    registry: Any,
    seed: int,
    real: str | None = "target",
    limit: int | None = None,
) -> dict[str, float]:
    """Scores of the images ``fake(batch)`` over ``dataset`` by ``metrics`` (metric configs,
    ``{type: fid, ...}``, or built metrics), against the batches' ``real`` field (None: the
    metric's own reference). No gradients; the global RNG is restored after (seeded by
    ``seed`` inside, so every candidate of a search sees the same noise)."""
    import torch

    from vemkit.engine.data import eval_batches

    built = [
        m if hasattr(m, "update") and hasattr(m, "compute") else registry.build("metric", m)
        for m in metrics
    ]
    for m in built:
        m.reset()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for batch in eval_batches(dataset, batch_size, device=device, limit=limit):
            reference = batch.get(real) if real is not None else None
            for m in built:
                m.update(fake(batch), reference)
    results: dict[str, float] = {}
    for m in built:
        results.update({k: float(v) for k, v in m.compute().items()})
    return results


def _merged_archs(stage_spec: Any, new: dict[str, Any]) -> dict[str, Any]:
    return {r: new.get(r, getattr(stage_spec, r).arch.model_dump(mode="json")) for r in ROLES}


def _write_tables(folder: Path, tables: dict[str, list[dict[str, Any]]]) -> None:
    import csv
    import io

    from vemkit.fileio import write_text_atomic

    if not tables:
        return
    (folder / TABLES).mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        _write_json(folder / TABLES / f"{name}.json", rows)
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        write_text_atomic(folder / TABLES / f"{name}.csv", text.getvalue())


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


# -- starting from an earlier run's stage ---------------------------------------------------
def parse_from(text: str) -> tuple[Path, str]:
    """``RUN_DIR:STAGE`` -> (folder, stage name)."""
    folder, sep, stage = text.rpartition(":")
    if not sep or not folder or not stage:
        raise VemkitError(f"--from {text}: write it RUN_DIR:STAGE, e.g. runs/hz-gc:supernet")
    return Path(folder), stage


def check_stage_name(recipe: list[StageInfo], name: str, option: str) -> None:
    """Refuse ``name`` unless it is a stage of ``recipe`` (with a did-you-mean)."""
    names = [s.name for s in recipe]
    if name not in names:
        from vemkit.engine.program import suggest

        raise VemkitError(
            f"{option}: this spec's recipe has no stage '{name}'{suggest(name, names)} "
            f"(stages: {', '.join(names)})"
        )


def source_seed(source: Path) -> int | None:
    """The seed the recipe run in ``source`` ran with (None: unreadable)."""
    from vemkit.engine.run import SPEC_FILE
    from vemkit.spec_source import read_source

    try:
        seed = read_source(source / SPEC_FILE).data.get("seed")
    except (VemkitError, AttributeError):
        return None
    return seed if isinstance(seed, int) else None


@dataclass(frozen=True)
class StartFrom:
    """An earlier run's finished stages that a new run takes (``--from RUN_DIR:STAGE``)."""

    source: Path
    stage: str
    taken: list[tuple[StageInfo, Path]]
    """The stages up to ``stage``, each with its folder in ``source``."""
    seed: int | None
    """The seed ``source`` ran with (None: unreadable)."""


def check_start(start_from: tuple[Path, str], spec: Any, *, reseed: bool = False) -> StartFrom:
    """The finished stages of ``start_from = (RUN_DIR, STAGE)`` that a run of ``spec`` takes;
    raises :class:`VemkitError` when ``spec`` would have run any of them differently. Only the
    stages after ``STAGE`` may differ. ``reseed``: the earlier run may also have had another
    ``seed`` — its stages keep what that seed gave them, and the stages after ``STAGE`` run
    with ``spec``'s seed (a sweep over seeds of the distillation alone, on one shared teacher
    and pruning)."""
    source, upto = start_from
    recipe = recipe_of(spec)
    check_stage_name(recipe, upto, f"--from {source}:{upto}")
    names = [s.name for s in recipe]
    if not is_recipe_dir(source):
        raise VemkitError(f"--from {source}:{upto}: {source} is not the folder of a recipe run")
    theirs = {e["name"]: (e, folder) for e, folder in stage_dirs(source)}
    seed = source_seed(source)
    compared = spec.model_copy(update={"seed": seed}) if reseed and seed is not None else spec
    taken = []
    for stage in recipe[: names.index(upto) + 1]:
        entry = theirs.get(stage.name)
        done = read_done(entry[1]) if entry else None
        if done is None:
            raise VemkitError(
                f"--from {source}:{upto}: stage '{stage.name}' of {source} is not finished"
            )
        if done.get("fingerprint") != _fingerprint(compared, stage.name):
            changed = _changed(source, compared, stage.name)
            hint = (
                "; add --reseed to run the stages after it with this spec's seed"
                if changed == "seed"
                else ""
            )
            raise VemkitError(
                f"--from {source}:{upto}: stage '{stage.name}' of {source} ran with other "
                f"settings than this spec gives it (changed: {changed}); only the stages after "
                f"it may differ{hint}"
            )
        taken.append((stage, entry[1]))
    return StartFrom(source, upto, taken, seed)


FROM_FILE = "from.json"
"""Where a run started with ``--from`` records it: source, stage, the source's seed."""


def _copy_finished(start: StartFrom, spec: Any, run_dir: Path) -> None:
    for stage, folder in start.taken:
        target = run_dir / STAGES_DIR / stage.folder
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(folder, target, symlinks=True)
        print(f"stage '{stage.name}': taken from {folder}", file=sys.stderr, flush=True)
    if start.seed is not None and start.seed != spec.seed:
        print(
            f"the stages up to '{start.stage}' ran with seed {start.seed}; the stages after it "
            f"run with seed {spec.seed}",
            file=sys.stderr,
            flush=True,
        )
    _write_json(
        run_dir / FROM_FILE,
        {
            "run": str(start.source),
            "stage": start.stage,
            "stages": [s.name for s, _ in start.taken],
            "seed": start.seed,
        },
    )


def stage_differences(a: Any, b: Any, upto: str) -> list[str]:
    """The spec keys (dotted) on which specs ``a`` and ``b`` would run the stages up to
    ``upto`` differently, their seeds aside: empty when ``b`` can take ``a``'s stages."""
    uses_mi = _uses_mi_upto(a, upto) or _uses_mi_upto(b, upto)
    data_a, data_b = a.to_dict(), b.to_dict()
    data_b["seed"] = data_a.get("seed")
    return _fingerprint_diff(data_a, data_b, upto, uses_mi)


def stage_finished(run_dir: Path, stage: str) -> bool:
    """Whether the recipe run in ``run_dir`` has finished ``stage`` (a valid ``DONE.json``)."""
    if not is_recipe_dir(run_dir):
        return False
    return any(e.get("name") == stage and read_done(f) is not None for e, f in stage_dirs(run_dir))


def _fingerprint_diff(a: dict[str, Any], b: dict[str, Any], upto: str, uses_mi: bool) -> list[str]:
    """The dotted keys where spec data ``a`` and ``b`` differ in what the stages up to
    ``upto`` depend on."""
    from vemkit.engine.run import _diff

    return _diff(stage_fingerprint_data(a, upto, uses_mi), stage_fingerprint_data(b, upto, uses_mi))


def _changed(source: Path, spec: Any, stage: str) -> str:
    from vemkit.engine.run import SPEC_FILE
    from vemkit.spec_source import read_source

    try:
        theirs = read_source(source / SPEC_FILE).data
    except VemkitError:
        return "unknown"
    changed = _fingerprint_diff(theirs, spec.to_dict(), stage, _uses_mi_upto(spec, stage))
    return ", ".join(changed[:8]) + (", ..." if len(changed) > 8 else "") or "unknown"
