"""``vemkit.run(spec)`` / ``vemkit run``: compile a spec and train it, or continue a run.

Two ways to start from earlier weights, never mixed (LightlyTrain's split):

* **resume** (``vemkit run --resume RUN_DIR``, :func:`resume`): the exact continuation of a
  stopped or killed run from its newest valid checkpoint: weights, optimizers, schedules, RNG,
  data position, the components' state. The run directory's spec is used; a spec given
  besides must be the same (same hash), otherwise the resume is refused.
* **warm start** (``teacher.checkpoint``, ``student.init`` in the spec): a new run that loads
  weights and nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vemkit.errors import VemkitError

if TYPE_CHECKING:
    from vemkit.engine.recipe import StartFrom

SPEC_FILE = "spec.resolved.yaml"
RUN_INFO = "run.json"


@dataclass
class RunResult:
    """What :func:`run` did."""

    run_dir: Path | None
    status: str
    """``finished`` or ``stopped`` (``stop_at`` reached)."""
    step: int
    checkpoint: Path | None
    """The last checkpoint written (or resumed from)."""
    eval: dict[str, float] = field(default_factory=dict)
    """The last evaluation's scores."""
    program: Any = None
    stage: str | None = None
    """A recipe: the stage the run ended in (its last stage when finished)."""


# -- spec identity --------------------------------------------------------------------------
def spec_hash(spec: Any) -> str:
    """SHA-256 of the resolved spec (defaults filled in): equal specs, equal hashes."""
    text = json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            sub = f"{path}.{k}" if path else str(k)
            if k not in a or k not in b:
                out.append(sub)
            else:
                out += _diff(a[k], b[k], sub)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in _diff(x, y, f"{path}.{i}")]
    return [] if a == b else [path or "<root>"]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_info(spec: Any, registry: Any) -> dict[str, Any]:
    """Spec hash, versions and plugins of a run (``run.json`` and every checkpoint)."""
    import torch

    from vemkit import __version__

    return {
        "spec_hash": spec_hash(spec),
        "vemkit": __version__,
        "torch": torch.__version__,
        "git": _git_commit(),
        "plugins": {
            name: {"distribution": p.distribution, "version": p.version, "ok": p.ok}
            for name, p in sorted(getattr(registry, "plugins", {}).items())
        },
    }


def resolved_yaml(spec: Any, info: dict[str, Any]) -> str:
    """The resolved spec with a comment header naming versions (loadable by ``load_spec``)."""
    plugins = ", ".join(f"{n} {p['version'] or '?'}" for n, p in info["plugins"].items() if p["ok"])
    header = [
        f"# resolved spec of run '{spec.name}' (defaults filled in)",
        f"# vemkit {info['vemkit']}, torch {info['torch']}"
        + (f", git {info['git']}" if info.get("git") else ""),
        f"# plugins: {plugins or 'none'}",
        f"# spec sha256: {info['spec_hash']}",
    ]
    return "\n".join(header) + "\n" + spec.to_yaml()


def _read_run_spec(run_dir: Path, registry: Any, overrides: Sequence[str] = ()) -> Any:
    from vemkit.errors import SpecError
    from vemkit.spec import validate_source
    from vemkit.spec_source import read_source

    path = run_dir / SPEC_FILE
    if not path.is_file():
        raise VemkitError(f"{run_dir}: not a run directory (no {SPEC_FILE})")
    spec, problems = validate_source(read_source(path), overrides, reg=registry)
    if problems:
        raise SpecError(problems)
    return spec


def _stored_hash(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / RUN_INFO).read_text(encoding="utf-8"))["spec_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _refuse_other_spec(run_dir: Path, spec: Any, stored: Any) -> None:
    if spec_hash(spec) == spec_hash(stored):
        return
    changed = _diff(stored.to_dict(), spec.to_dict())
    raise VemkitError(
        f"{run_dir} holds a run of a different spec (changed: {', '.join(changed[:8])}"
        f"{', ...' if len(changed) > 8 else ''}); a resume continues the same spec exactly. "
        "Start a new run with another output.dir, or warm-start from its weights with "
        "student.init / teacher.checkpoint."
    )


# -- running --------------------------------------------------------------------------------
def run(
    spec: Any,
    *,
    run_dir: str | Path | None = None,
    callbacks: Sequence[Any] = (),
    registry: Any = None,
    progress: bool | None = None,
    stop_at: int | None = None,
    overwrite: bool = False,
    start_from: str | tuple[str | Path, str] | None = None,
    stop_in: str | None = None,
    reseed: bool = False,
    until: str | None = None,
) -> RunResult:
    """Train a new run of ``spec`` in ``run_dir`` (default: the spec's ``output.dir``).

    A run directory that already holds a run is refused (continue it with :func:`resume`)
    unless ``overwrite``. ``stop_at`` stops after that many iterations, with a checkpoint, as
    if the run had been interrupted there (in a recipe: iterations of the stage ``stop_in``,
    by default the first training stage that runs). ``callbacks``: extra run plugins (objects
    with ``vemkit.engine.hookspecs.hookimpl`` methods). ``start_from`` (``"RUN_DIR:STAGE"``
    or a pair): a recipe takes that run's finished stages up to ``STAGE`` and runs only the
    stages after it; ``reseed``: that run may have had another seed (see
    :func:`vemkit.engine.recipe.check_start`). ``until``: a recipe stops once that stage is
    finished (``--resume`` continues with the stages after it).
    """
    from vemkit import registry as registry_module

    reg = registry or registry_module.default()
    directory = Path(run_dir) if run_dir is not None else Path(spec.run_dir())
    fresh = "overwrite" if overwrite else "new"
    origin = _parse_start(start_from, spec, reseed)  # checked before anything is written
    _check_until(spec, until)
    return _train(
        spec,
        directory,
        reg,
        callbacks,
        progress,
        stop_at,
        checkpoint=None,
        fresh=fresh,
        start_from=origin,
        stop_in=stop_in,
        until=until,
    )


def _parse_start(start_from: Any, spec: Any, reseed: bool) -> StartFrom | None:
    """The earlier run's stages that ``spec`` takes (a ``StartFrom``), or None."""
    from vemkit.engine.recipe import check_start, parse_from
    from vemkit.stages import recipe_of

    if start_from is None:
        return None
    folder, stage = parse_from(start_from) if isinstance(start_from, str) else start_from
    if not recipe_of(spec):
        raise VemkitError(
            f"--from {folder}:{stage}: method '{spec.method.type}' is one training loop, not a "
            "recipe of stages; warm-start from its weights with student.init / "
            "teacher.checkpoint instead"
        )
    return check_start((Path(folder), str(stage)), spec, reseed=reseed)


def _check_until(spec: Any, until: str | None) -> None:
    """Refuse ``--until`` on a one-loop method or a stage the recipe lacks, before anything is
    written."""
    from vemkit.engine.recipe import check_stage_name
    from vemkit.stages import recipe_of

    if until is None:
        return
    recipe = recipe_of(spec)
    if not recipe:
        raise VemkitError(
            f"--until {until}: method '{spec.method.type}' is one training loop, not a recipe "
            "of stages; stop it earlier with --set train.iterations=N"
        )
    check_stage_name(recipe, until, "--until")


def _claim(directory: Path, spec: Any, overwrite: bool) -> None:
    """Refuse a run directory that holds a run (or clear it with ``overwrite``)."""
    if not any((directory / n).exists() for n in (RUN_INFO, "checkpoints", "stages")):
        return
    if not overwrite:
        same = _stored_hash(directory) == spec_hash(spec)
        elsewhere = "choose another output.dir (--set output.dir=...)"
        raise VemkitError(
            f"{directory} already holds a run of this spec: continue it with "
            f"`vemkit run --resume {directory}`, or {elsewhere}"
            if same
            else f"{directory} already holds a run of a different spec: {elsewhere}, or remove "
            "that folder"
        )
    for name in ("checkpoints", "samples", "tensorboard", "metrics.jsonl", RUN_INFO, "stages"):
        target = directory / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def resume(
    run_dir: str | Path,
    *,
    spec: Any = None,
    overrides: Sequence[str] = (),
    callbacks: Sequence[Any] = (),
    registry: Any = None,
    progress: bool | None = None,
    stop_at: int | None = None,
    stop_in: str | None = None,
    until: str | None = None,
) -> RunResult:
    """Continue the run in ``run_dir`` exactly from its newest valid checkpoint (a run killed
    before its first checkpoint starts again from step 0, which is the same thing). A recipe
    continues inside the stage that was interrupted; finished stages are not run again."""
    from vemkit import registry as registry_module
    from vemkit.engine import checkpoint as ckpt
    from vemkit.stages import recipe_of

    reg = registry or registry_module.default()
    directory = Path(run_dir)
    if not directory.is_dir():
        raise VemkitError(f"--resume {directory}: no such run directory")
    if (directory / "DONE.json").exists() or directory.parent.name == "stages":
        raise VemkitError(
            f"--resume {directory}: this is one stage of a recipe; continue the whole recipe "
            f"with `vemkit run --resume {directory.parent.parent}`"
        )
    stored = _read_run_spec(directory, reg)
    if spec is not None or overrides:
        candidate = spec if spec is not None else _read_run_spec(directory, reg, overrides)
        _refuse_other_spec(directory, candidate, stored)
    recorded = _stored_hash(directory)
    if recorded is not None and recorded != spec_hash(stored):
        raise VemkitError(
            f"{directory}/{SPEC_FILE} was modified after the run started (its hash differs from "
            f"{RUN_INFO}); restore it, or start a new run"
        )
    _check_until(stored, until)
    if recipe_of(stored):
        return _train(
            stored,
            directory,
            reg,
            callbacks,
            progress,
            stop_at,
            checkpoint=None,
            stop_in=stop_in,
            until=until,
        )
    path, skipped = ckpt.latest(directory)
    for problem in skipped:
        print(f"warning: skipping {problem}", flush=True)
    checkpoint = ckpt.load(path) if path is not None else None
    if checkpoint is not None and checkpoint.info.get("spec_hash") != spec_hash(stored):
        raise VemkitError(f"{path}: was written by a run of a different spec")
    return _train(stored, directory, reg, callbacks, progress, stop_at, checkpoint=checkpoint)


def _train(
    spec: Any,
    run_dir: Path,
    reg: Any,
    callbacks: Sequence[Any],
    progress: bool | None,
    stop_at: int | None,
    *,
    checkpoint: Any,
    fresh: str | None = None,
    start_from: StartFrom | None = None,
    stop_in: str | None = None,
    until: str | None = None,
) -> RunResult:
    from vemkit.engine import distributed
    from vemkit.engine.checkpoint import write_text_atomic
    from vemkit.stages import recipe_of

    if spec.eval.metrics and spec.data.eval is None:
        raise VemkitError("eval.metrics: evaluation needs data.eval (an evaluation dataset)")
    want_cuda = spec.train.device == "cuda" or (spec.train.device == "auto" and _cuda_available())
    dist = distributed.setup("cuda" if want_cuda else "cpu")
    try:
        if spec.train.threads is not None:
            import torch

            torch.set_num_threads(spec.train.threads)
        info = run_info(spec, reg)
        spec_yaml = resolved_yaml(spec, info)
        if fresh is not None:
            # Every process looks before any writes (the barrier), so all refuse together.
            if dist.main or fresh == "new":
                _claim(run_dir, spec, overwrite=fresh == "overwrite" and dist.main)
            distributed.barrier(dist)
        if dist.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run_dir / SPEC_FILE, spec_yaml)
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_text_atomic(
                run_dir / RUN_INFO, json.dumps({**info, "started": started}, indent=1) + "\n"
            )
        if recipe_of(spec):
            from vemkit.engine.recipe import RecipeRun, run_recipe

            job = RecipeRun(spec, run_dir, reg, callbacks, progress, stop_at, stop_in, until)

            def train_stage(stage_spec: Any, folder: Path, **kwargs: Any) -> RunResult:
                return _train_stage(job, dist, stage_spec, folder, **kwargs)

            return run_recipe(job, train=train_stage, dist=dist, start_from=start_from)
        return _train_in(
            dist, spec, run_dir, reg, callbacks, progress, stop_at, checkpoint, spec_yaml, info
        )
    finally:
        distributed.teardown(dist)


def _train_stage(
    job: Any,
    dist: Any,
    spec: Any,
    folder: Path,
    *,
    stage: Any,
    prepare: Any,
    stop_at: int | None,
) -> RunResult:
    """One training stage of a recipe in its own folder: fresh, or continued from its newest
    checkpoint (which must be of this very stage spec)."""
    from vemkit.engine import checkpoint as ckpt
    from vemkit.engine.checkpoint import write_text_atomic

    info = run_info(spec, job.registry)
    spec_yaml = resolved_yaml(spec, info)
    checkpoint = None
    path, skipped = ckpt.latest(folder)
    for problem in skipped:
        if dist.main:
            print(f"warning: skipping {problem}", flush=True)
    if path is not None:
        checkpoint = ckpt.load(path)
        if checkpoint.info.get("spec_hash") != spec_hash(spec):
            raise VemkitError(
                f"{path}: was written by another spec of stage '{stage.name}' (the recipe's "
                "spec or an earlier stage's result changed); start a new run"
            )
    if dist.main:
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / SPEC_FILE, spec_yaml)
        write_text_atomic(folder / RUN_INFO, json.dumps({**info, "stage": stage.name}, indent=1))
    return _train_in(
        dist,
        spec,
        folder,
        job.registry,
        job.callbacks,
        job.progress,
        stop_at,
        checkpoint,
        spec_yaml,
        info,
        stage=stage,
        prepare=prepare,
    )


def _train_in(
    dist: Any,
    spec: Any,
    run_dir: Path,
    reg: Any,
    callbacks: Sequence[Any],
    progress: bool | None,
    stop_at: int | None,
    checkpoint: Any,
    spec_yaml: str,
    info: dict[str, Any],
    *,
    stage: Any = None,
    prepare: Any = None,
) -> RunResult:
    """Compile ``spec`` and train it in ``run_dir`` (continuing from ``checkpoint``);
    ``prepare(program)`` runs on a fresh program before it is moved and finalised (a recipe
    stage loads the weights earlier stages left)."""
    import sys

    from vemkit.engine import distributed
    from vemkit.engine.loop import Trainer, deterministic, pick_device
    from vemkit.engine.program import compile as compile_program

    device = pick_device(spec.train.device, dist)
    train_set = reg.build("dataset", spec.data.train, seed=spec.seed)
    program = compile_program(
        spec,
        registry=reg,
        callbacks=callbacks,
        warm_start=checkpoint is None,
        context={"num_samples": len(train_set)},
        stage=stage,
    )
    for note in program.notes:
        if dist.main:
            print(f"note: {note}", file=sys.stderr, flush=True)
    if prepare is not None and checkpoint is None:
        prepare(program)
    program.to(device)
    if spec.train.compile:
        # imported so that deterministic mode reaches the inductor's settings
        pass
    with deterministic(spec.train.deterministic, device):
        if spec.train.compile:
            for name in ("teacher", "student"):
                program.module(name).compile()
        program.finalise()
        distributed.broadcast_modules(
            dist, [e.module for e in program.modules.values() if e.trainable]
        )
        eval_set = (
            reg.build("dataset", spec.data.eval, seed=spec.seed, augment=False)
            if spec.data.eval is not None
            else None
        )
        metrics = [reg.build("metric", m) for m in spec.eval.metrics]
        trainer = Trainer(
            program,
            run_dir=run_dir,
            dist=dist,
            train_set=train_set,
            eval_set=eval_set,
            metrics=metrics,
            spec_yaml=spec_yaml,
            info=info,
            progress_bar=sys.stderr.isatty() if progress is None else progress,
            stop_at=stop_at,
        )
        if checkpoint is not None:
            trainer.restore(checkpoint)
        status = trainer.train()
    return RunResult(
        run_dir,
        status,
        trainer.progress.step,
        trainer.last_checkpoint,
        trainer.last_eval,
        program,
    )


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# -- the command ------------------------------------------------------------------------------
def run_command(args: argparse.Namespace) -> int:
    """``vemkit run SPEC [--set ...]`` or ``vemkit run --resume RUN_DIR [SPEC]``."""
    from vemkit.spec import load_spec

    overrides = list(getattr(args, "overrides", []) or [])
    start_from = getattr(args, "start_from", None)
    until = getattr(args, "until", None)
    if args.resume and start_from:
        raise VemkitError("--from starts a new run; it cannot be combined with --resume")
    if getattr(args, "reseed", False) and not start_from:
        raise VemkitError("--reseed goes with --from RUN_DIR:STAGE")
    if args.resume:
        spec = load_spec(args.spec, overrides) if args.spec else None
        result = resume(
            args.resume, spec=spec, overrides=() if args.spec else overrides, until=until
        )
    else:
        if not args.spec:
            raise VemkitError("give a spec file (vemkit run SPEC), or --resume RUN_DIR")
        result = run(
            load_spec(args.spec, overrides),
            start_from=start_from,
            reseed=getattr(args, "reseed", False),
            until=until,
        )
    if until is not None and result.stage == until and result.status == "stopped":
        print(
            f"stopped after stage '{until}' (--until); run directory {result.run_dir}; continue "
            f"with `vemkit run --resume {result.run_dir}`, or start runs from it with "
            f"--from {result.run_dir}:{until}"
        )
        return 0
    total = result.program.spec.train.iterations if result.program is not None else "?"
    scores = ", ".join(f"{k} {v:.4g}" for k, v in result.eval.items())
    where = f" of stage '{result.stage}'" if result.stage else ""
    print(
        f"{result.status} at step {result.step}/{total}{where}; run directory {result.run_dir}"
        + (f"; last checkpoint {result.checkpoint}" if result.checkpoint else "")
        + (f"; eval: {scores}" if scores else "")
    )
    return 0
