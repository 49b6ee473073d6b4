"""``vemkit sweep``: a grid of spec overrides × seeds, each cell a plain ``vemkit run``.

A sweep has **axes**, each a list of **arms** (one value of the axis: a name and the overrides
it applies): ``--grid mi.type=none,vid`` is an axis of two arms named ``mi.type=none`` and
``mi.type=vid``; ``--arm vem-t1 mi.type=vem mi.sampler.noise_std=auto`` adds an arm of several
overrides to the ``arm`` axis. The cells are the cartesian product of the axes × the seeds. Each
cell is trained by ``vemkit run SPEC --set ...`` in a process of its own, in
``OUT/<cell>/seed<k>``, and evaluated by ``vemkit eval``; the exact argument lists are written to
``OUT/cells.json`` and, one shell line per cell, to ``OUT/commands.txt`` so that a cluster
scheduler can run the same cells. Every cell is validated before anything runs.

An override that changes a component's ``type`` (``mi.type=vid`` on a spec whose ``mi`` is a VEM
term) rebuilds that component's section for the new type: the options the new type also has
(``weight``, ``positive``) are kept, the others (``energy``, ``sampler``) are dropped, and the
cell's override is written out as the whole section (``mi={"type": "vid", ...}``), so its
command line says exactly what runs.

A cell is *finished* when its run directory holds a run of the cell's resolved spec (the hash
in ``run.json``) whose last checkpoint is at ``train.iterations``; a run of the same spec that
stopped earlier is continued with ``vemkit run --resume``; a run of another spec is an error
(nothing is deleted). An evaluation is reused when ``eval.json`` scored that final checkpoint
with the same metrics on the same number of items.

A recipe's sweep may share its first stages (``--from RUN_DIR:STAGE``): every cell takes the
finished stages up to ``STAGE`` (a pre-trained teacher, a pruning) from ``RUN_DIR`` and runs
only the stages after it (``vemkit run --from RUN_DIR:STAGE --reseed``), so the seeds vary the
distillation alone and the shared stages are trained once. When ``RUN_DIR`` has not finished
``STAGE``, the sweep trains it first (``vemkit run SPEC --until STAGE``, the sweep's ``--set``
overrides and its first seed). No arm may change those stages (checked before anything runs).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vemkit.errors import Problem, SpecError, VemkitError

CELLS_FILE = "cells.json"
COMMANDS_FILE = "commands.txt"
RESULTS_FILE = "sweep.json"
LOGS = "logs"
FORMAT = 1
ARM_AXIS = "arm"
"""Name of the axis that ``--arm`` entries form."""
SHARED_FILE = "shared.txt"
"""The shell line that trains the shared stages (``--from``), to run before ``commands.txt``."""
SAMPLES = 4
"""Items drawn into each cell's evaluation sample grid (the report shows them)."""
_NAME_OK = re.compile(r"^[A-Za-z0-9._=+,-]+$")


# -- axes and arms --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arm:
    """One value of an axis: its name (a folder-safe label) and the overrides it applies."""

    name: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class Axis:
    """A list of arms; the cells take one arm of every axis."""

    name: str
    arms: tuple[Arm, ...]


def split_values(text: str) -> list[str]:
    """Split ``a,b,[1, 2],{type: x, n: 3}`` at the commas outside brackets and quotes."""
    out: list[str] = []
    depth = 0
    quote = ""
    start = 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    out.append(text[start:].strip())
    return out


def folder_name(label: str) -> str:
    """``label`` as a folder name: unsafe characters become ``_``; a long label is cut and
    made unique by a hash of the whole."""
    name = re.sub(r"[^A-Za-z0-9._=+,-]+", "_", label).strip("_.") or "arm"
    if len(name) > 60:
        name = name[:51] + "-" + hashlib.sha256(label.encode()).hexdigest()[:8]
    return name


def parse_grid(text: str) -> Axis:
    """``--grid KEY=V1,V2,...``: one arm ``KEY=Vi`` per value (values YAML-typed)."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise VemkitError(f"--grid {text}: write --grid dotted.key=value1,value2,...")
    items = split_values(values)
    if any(not v for v in items):
        raise VemkitError(f"--grid {text}: empty value (values are separated by commas)")
    if len(set(items)) != len(items):
        raise VemkitError(f"--grid {text}: a value is listed twice")
    return Axis(key, tuple(Arm(folder_name(f"{key}={v}"), (f"{key}={v}",)) for v in items))


def parse_arm(tokens: Sequence[str]) -> Arm:
    """``--arm NAME KEY=V [KEY=V ...]``: a named arm of several overrides."""
    if len(tokens) < 2:
        raise VemkitError(
            f"--arm {' '.join(tokens)}: write --arm NAME dotted.key=value [dotted.key=value ...]"
        )
    name, overrides = tokens[0], tuple(tokens[1:])
    if not _NAME_OK.match(name):
        raise VemkitError(
            f"--arm {name}: an arm name is a folder name (letters, digits and . _ = + , -)"
        )
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise VemkitError(f"--arm {name}: '{bad[0]}' is not an override (dotted.key=value)")
    return Arm(name, overrides)


def build_axes(grids: Sequence[str], arms: Sequence[Sequence[str]]) -> list[Axis]:
    """The axes of ``--grid`` (in order) and, when given, the ``arm`` axis of ``--arm``."""
    axes = [parse_grid(g) for g in grids]
    if arms:
        parsed = [parse_arm(a) for a in arms]
        names = [a.name for a in parsed]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise VemkitError(f"--arm {twice[0]}: the name is used twice")
        axes.append(Axis(ARM_AXIS, tuple(parsed)))
    keys = [a.name for a in axes]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise VemkitError(f"--grid {twice[0]}: the key is given twice (list its values once)")
    if not axes:
        raise VemkitError("give at least one --grid KEY=V1,V2 or --arm NAME KEY=V")
    return axes


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2``."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise VemkitError(f"--seeds {text}: write seeds as integers, e.g. --seeds 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise VemkitError(f"--seeds {text}: give distinct non-negative integers, e.g. 0,1,2")
    return seeds


# -- overrides that switch a component's type ----------------------------------------------------
def _get(data: Any, path: Sequence[str]) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def expand_override(data: dict[str, Any], override: str, reg: Any = None) -> str:
    """``override`` as the cell applies it to the raw spec ``data`` (which it updates).

    An override ``a.b.type=NEW`` that changes the type of the component at ``a.b`` becomes
    ``a.b={"type": NEW, ...}`` holding the options of the old section that NEW also has;
    any other override is returned as it is. An unknown NEW is left to validation (which names
    the registered ones).
    """
    from vemkit.spec import apply_overrides, model_at
    from vemkit.spec_model import spec_model

    key, _, raw = override.partition("=")
    parts = key.strip().split(".")
    section = _get(data, parts[:-1]) if len(parts) > 1 else None
    if parts[-1] != "type" or not isinstance(section, dict) or "type" not in section:
        apply_overrides(data, [override])
        return override
    import yaml

    from vemkit.spec_source import load_yaml

    try:
        new = load_yaml(raw)
    except yaml.YAMLError:
        apply_overrides(data, [override])  # validation reports the bad YAML with its place
        return override
    if new == section.get("type"):
        return override
    trial = copy.deepcopy(data)
    apply_overrides(trial, [f"{key}={raw}"])
    where = tuple(int(p) if p.isdigit() else p for p in parts[:-1])
    model = model_at(spec_model(reg), trial, where)
    if model is None or "type" not in model.model_fields:
        apply_overrides(data, [override])
        return override
    rebuilt = {"type": new}
    rebuilt.update({k: v for k, v in section.items() if k != "type" and k in model.model_fields})
    expanded = f"{'.'.join(parts[:-1])}={json.dumps(rebuilt, separators=(', ', ': '))}"
    apply_overrides(data, [expanded])
    return expanded


# -- cells ------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One run of the sweep: an arm of every axis and a seed."""

    index: int
    """1-based position (the line of ``commands.txt``; ``SLURM_ARRAY_TASK_ID``)."""
    arms: tuple[Arm, ...]
    seed: int
    run_dir: Path
    overrides: list[str]
    """Every ``--set`` of the cell's command, in order."""
    spec: Any = field(default=None, repr=False)
    """The validated spec (after the overrides)."""

    @property
    def config(self) -> str:
        """The arm names joined with ``+`` (the cell without its seed; the folder name)."""
        return "+".join(a.name for a in self.arms)

    @property
    def name(self) -> str:
        return f"{self.config}/seed{self.seed}"


@dataclass
class Sweep:
    """A planned sweep: the spec, the axes, the seeds and the cells."""

    spec_path: str
    axes: list[Axis]
    seeds: list[int]
    out: Path
    overrides: list[str]
    """``--set`` overrides applied to every cell before its arms."""
    threads: int | None
    metrics: list[dict[str, Any]] | None
    """Metrics of the evaluation; None: each cell's ``eval.metrics``."""
    eval_items: int | None
    """Evaluation items per cell (FID/KID samples); None: the whole ``data.eval``."""
    baseline: Arm | None
    baseline_axis: int | None
    plugins: list[str]
    cells: list[Cell]
    shared: Cell | None = None
    """The run whose stages up to ``shared_stage`` every cell takes (``--from``); None: none."""
    shared_stage: str | None = None

    # -- command lines -----------------------------------------------------------------------
    def _prefix(self) -> list[str]:
        return [x for p in self.plugins for x in ("-p", p)]

    def run_args(self, cell: Cell) -> list[str]:
        """``vemkit`` arguments that train ``cell`` from the start (the shared run: up to
        its stage)."""
        sets = [x for o in cell.overrides for x in ("--set", o)]
        args = [*self._prefix(), "run", self.spec_path, *sets]
        if self.shared is None:
            return args
        if cell is self.shared:
            return [*args, "--until", str(self.shared_stage)]
        return [*args, "--from", f"{self.shared.run_dir}:{self.shared_stage}", "--reseed"]

    def resume_args(self, cell: Cell) -> list[str]:
        args = [*self._prefix(), "run", "--resume", str(cell.run_dir)]
        return [*args, "--until", str(self.shared_stage)] if cell is self.shared else args

    def eval_args(self, cell: Cell) -> list[str]:
        args = [*self._prefix(), "eval", str(cell.run_dir), "--no-teacher", "--no-progress"]
        args += ["--samples", str(SAMPLES)]
        if self.metrics is not None:
            args += ["--metrics", json.dumps(self.metrics, separators=(",", ":"))]
        if self.eval_items is not None:
            args += ["--max-items", str(self.eval_items)]
        return args

    @staticmethod
    def shell(args: Sequence[str]) -> str:
        return "vemkit " + shlex.join(args)

    def command_line(self, cell: Cell) -> str:
        """The line of ``commands.txt``: train the cell, then evaluate it."""
        return f"{self.shell(self.run_args(cell))} && {self.shell(self.eval_args(cell))}"

    # -- files -------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "spec": self.spec_path,
            "cwd": str(Path.cwd()),
            "out": str(self.out),
            "overrides": self.overrides,
            "axes": [
                {
                    "name": a.name,
                    "arms": [{"name": r.name, "overrides": list(r.overrides)} for r in a.arms],
                }
                for a in self.axes
            ],
            "seeds": self.seeds,
            "threads_per_job": self.threads,
            "evaluation": {"metrics": self.metrics, "items": self.eval_items},
            "baseline": self.baseline.name if self.baseline else None,
            "shared": None
            if self.shared is None
            else {
                "run_dir": str(self.shared.run_dir),
                "stage": self.shared_stage,
                "seed": self.shared.seed,
                "command": ["vemkit", *self.run_args(self.shared)],
                "resume_command": ["vemkit", *self.resume_args(self.shared)],
            },
            "note": "run each command from the directory `cwd`; `vemkit` is the `vemkit` command "
            "(python -m vemkit) of the same environment"
            + ("" if self.shared is None else f"; run the line of {SHARED_FILE} first"),
            "cells": [
                {
                    "index": c.index,
                    "config": c.config,
                    "arms": [a.name for a in c.arms],
                    "seed": c.seed,
                    "run_dir": str(c.run_dir),
                    "overrides": c.overrides,
                    "command": ["vemkit", *self.run_args(c)],
                    "resume_command": ["vemkit", *self.resume_args(c)],
                    "eval_command": ["vemkit", *self.eval_args(c)],
                }
                for c in self.cells
            ],
        }

    def write_plan(self) -> tuple[Path, Path]:
        """``cells.json`` and ``commands.txt`` (one line per cell, in index order)."""
        from vemkit.fileio import write_text_atomic

        self.out.mkdir(parents=True, exist_ok=True)
        cells = write_text_atomic(
            self.out / CELLS_FILE, json.dumps(self.to_json(), indent=1) + "\n"
        )
        lines = [self.command_line(c) for c in self.cells]
        commands = write_text_atomic(self.out / COMMANDS_FILE, "\n".join(lines) + "\n")
        if self.shared is not None:
            write_text_atomic(self.out / SHARED_FILE, self.shell(self.run_args(self.shared)) + "\n")
        return cells, commands


def _relabel(problems: Sequence[Problem], origins: Sequence[tuple[str, str]]) -> list[Problem]:
    """Name the option an override came from (``--grid``, ``--arm NAME``) instead of ``--set``:
    ``origins`` pairs each override with its option; the longest matching key wins."""
    out = []
    for p in problems:
        if p.source == "--set":
            best = ""
            for override, where in origins:
                key = override.partition("=")[0].strip()
                if (p.path == key or p.path.startswith(key + ".")) and len(key) >= len(best):
                    best, source = key, where
            if best:
                p = Problem(p.path, p.message, source)
        out.append(p)
    return out


def _find_baseline(axes: Sequence[Axis], name: str | None) -> tuple[Arm | None, int | None]:
    """The reference arm: ``name`` (an arm name or one of its overrides), or by default the
    arm that sets ``mi.type=none``."""
    wanted = name if name is not None else "mi.type=none"
    for i, axis in enumerate(axes):
        for arm in axis.arms:
            if arm.name == wanted or wanted in arm.overrides:
                return arm, i
    if name is not None:
        known = ", ".join(a.name for axis in axes for a in axis.arms)
        raise VemkitError(f"--baseline {name}: no such arm (the arms: {known})")
    return None, None


def plan(
    spec_path: str | Path,
    axes: Sequence[Axis],
    seeds: Sequence[int],
    *,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    threads: int | None = 1,
    metrics: Sequence[dict[str, Any]] | None = None,
    eval_items: int | None = None,
    baseline: str | None = None,
    plugins: Sequence[str] = (),
    registry: Any = None,
    start_from: str | None = None,
) -> Sweep:
    """Validate every cell of the sweep (raising one :class:`SpecError` with every problem,
    each named by the option it came from) and return the plan. Nothing is run or written.
    ``start_from`` (``"RUN_DIR:STAGE"``): the cells share the stages up to ``STAGE`` of that
    run (see the module's text)."""
    from vemkit.spec import apply_overrides, validate_source
    from vemkit.spec_source import read_source

    if threads is not None and threads < 1:
        raise VemkitError("--threads-per-job must be at least 1")
    if eval_items is not None and eval_items < 1:
        raise VemkitError("--eval-items must be at least 1")
    source = read_source(spec_path)
    if source.problems:
        raise SpecError(list(source.problems))
    base = copy.deepcopy(source.data)
    problems, _ = apply_overrides(base, overrides)
    if problems:
        raise SpecError(problems)
    spec, problems = validate_source(copy.deepcopy(source), overrides, reg=registry)
    if problems:
        raise SpecError(problems)
    assert spec is not None
    if out is None:
        out = Path("runs") / "sweeps" / spec.name
    out = Path(out)
    base_arm, base_axis = _find_baseline(axes, baseline)

    problems_all: list[Problem] = []
    if metrics is not None:
        trial = [*overrides, f"eval.metrics={json.dumps(list(metrics))}"]
        _, found = validate_source(copy.deepcopy(source), trial, reg=registry)
        for p in found:
            problems_all.append(Problem(p.path, p.message, "--metrics"))

    cells: list[Cell] = []
    for combo in itertools.product(*(a.arms for a in axes)):
        data = copy.deepcopy(base)
        expanded = [[expand_override(data, o, registry) for o in arm.overrides] for arm in combo]
        arm_overrides = [o for group in expanded for o in group]
        config = "+".join(a.name for a in combo)
        reported = False
        for seed in seeds:
            run_dir = out / config / f"seed{seed}"
            fixed = [f"seed={seed}", f"output.dir={run_dir}"]
            if threads is not None:
                fixed.append(f"train.threads={threads}")
            cell_overrides = [*overrides, *arm_overrides, *fixed]
            spec, found = validate_source(copy.deepcopy(source), cell_overrides, reg=registry)
            if found and not reported:  # one report per arm combination, not per seed
                reported = True
                origins = [(o, "--set") for o in overrides] + [
                    (o, "--grid" if axis.name != ARM_AXIS else f"--arm {arm.name}")
                    for axis, arm, group in zip(axes, combo, expanded, strict=True)
                    for o in group
                ]
                problems_all += _relabel(found, origins)
            cells.append(Cell(len(cells) + 1, tuple(combo), seed, run_dir, cell_overrides, spec))
    if problems_all:
        unique: dict[str, Problem] = {str(p): p for p in problems_all}
        raise SpecError(list(unique.values()))
    shared, stage = (None, None)
    if start_from is not None:
        shared, stage = _plan_shared(
            source, spec, start_from, overrides, seeds, threads, cells, registry
        )
    return Sweep(
        spec_path=str(spec_path),
        axes=list(axes),
        seeds=list(seeds),
        out=out,
        overrides=list(overrides),
        threads=threads,
        metrics=list(metrics) if metrics is not None else None,
        eval_items=eval_items,
        baseline=base_arm,
        baseline_axis=base_axis,
        plugins=list(plugins),
        cells=cells,
        shared=shared,
        shared_stage=stage,
    )


def _plan_shared(
    source: Any,
    spec: Any,
    start_from: str,
    overrides: Sequence[str],
    seeds: Sequence[int],
    threads: int | None,
    cells: Sequence[Cell],
    registry: Any,
) -> tuple[Cell, str]:
    """The run that trains the shared stages (``--from RUN_DIR:STAGE``), after checking that
    no cell would have run those stages differently (its seed aside)."""
    from vemkit.engine.recipe import (
        check_stage_name,
        check_start,
        parse_from,
        stage_differences,
        stage_finished,
    )
    from vemkit.spec import validate_source
    from vemkit.stages import recipe_of

    folder, stage = parse_from(start_from)
    recipe = recipe_of(spec)
    if not recipe:
        raise VemkitError(
            f"--from {start_from}: method '{spec.method.type}' is one training loop, not a recipe "
            "of stages; share a pre-trained teacher through teacher.checkpoint instead"
        )
    check_stage_name(recipe, stage, f"--from {start_from}")
    if stage == recipe[-1].name:
        raise VemkitError(
            f"--from {start_from}: '{stage}' is the recipe's last stage; the cells would train "
            "nothing after it"
        )
    fixed = [f"seed={seeds[0]}", f"output.dir={folder}"]
    if threads is not None:
        fixed.append(f"train.threads={threads}")
    shared_overrides = [*overrides, *fixed]
    shared_spec, problems = validate_source(copy.deepcopy(source), shared_overrides, reg=registry)
    if problems or shared_spec is None:
        raise SpecError(list(problems))
    wrong = []
    for cell in cells:
        if cell.seed != seeds[0]:
            continue  # the seed is the one thing the cells may change in the shared stages
        changed = stage_differences(shared_spec, cell.spec, stage)
        if changed:
            wrong.append(f"{cell.config} changes {', '.join(changed[:6])}")
    if wrong:
        raise VemkitError(
            f"--from {start_from}: the cells share the stages up to '{stage}', but "
            + "; ".join(wrong)
            + f" (in those stages); move such overrides to the stages after '{stage}', or "
            "sweep without --from"
        )
    if stage_finished(folder, stage):
        check_start((folder, stage), cells[0].spec, reseed=True)
    return Cell(0, (Arm("shared", ()),), seeds[0], folder, shared_overrides, shared_spec), stage


# -- the state of a cell --------------------------------------------------------------------------
def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def last_step(run_dir: Path) -> int | None:
    """Step of the run's ``checkpoints/last`` (from its ``COMPLETE`` marker; the files are not
    re-hashed here: ``vemkit run --resume`` and ``vemkit eval`` verify what they load)."""
    done = _json(run_dir / "checkpoints" / "last" / "COMPLETE")
    step = (done or {}).get("step")
    return step if isinstance(step, int) else None


def result_dir(run_dir: Path) -> Path:
    """Where a cell's result lives: the run folder, or a recipe's last stage with weights."""
    from vemkit.engine.recipe import final_stage_dir, is_recipe_dir

    if is_recipe_dir(run_dir):
        try:
            return final_stage_dir(run_dir)
        except VemkitError:
            return run_dir
    return run_dir


def _final_step(cell: Cell) -> int | None:
    """The step a finished cell's last checkpoint is at (a recipe: its last stage's)."""
    from vemkit.engine.recipe import is_recipe_dir, read_index

    if not is_recipe_dir(cell.run_dir):
        return cell.spec.train.iterations
    stages = read_index(cell.run_dir).get("stages", [])
    if not stages or any(s.get("status") != "done" for s in stages):
        return None
    return last_step(result_dir(cell.run_dir))


def planned_iterations(spec: Any) -> int:
    """The iterations a cell trains last: a recipe's last training stage's, else
    ``train.iterations``."""
    from vemkit.stages import recipe_of

    training = [s for s in recipe_of(spec) if s.is_training]
    if training and training[-1].options.iterations is not None:
        return int(training[-1].options.iterations)
    return int(spec.train.iterations)


def cell_state(cell: Cell) -> str:
    """``finished``, ``partial`` (continue with ``--resume``), ``new``, or ``other`` (the
    folder holds a run of a different spec)."""
    from vemkit.engine.run import RUN_INFO, spec_hash

    info = _json(cell.run_dir / RUN_INFO)
    if info is None:
        return "other" if (cell.run_dir / "checkpoints").exists() else "new"
    if info.get("spec_hash") != spec_hash(cell.spec):
        return "other"
    final = _final_step(cell)
    done = final is not None and last_step(result_dir(cell.run_dir)) == final
    return "finished" if done else "partial"


def _same_metrics(done: Any, wanted: Sequence[dict[str, Any]]) -> bool:
    if not isinstance(done, list) or len(done) != len(wanted):
        return False
    return all(
        isinstance(c, dict) and all(c.get(k) == v for k, v in m.items())
        for c, m in zip(done, wanted, strict=True)
    )


def wanted_metrics(sweep: Sweep, cell: Cell) -> list[dict[str, Any]]:
    """The metric configs the cell's evaluation uses (as given, or the spec's)."""
    if sweep.metrics is not None:
        return sweep.metrics
    return [m.model_dump(mode="json") for m in cell.spec.eval.metrics]


def evaluation_current(sweep: Sweep, cell: Cell) -> dict[str, Any] | None:
    """The cell's ``eval.json`` when it scored the final checkpoint with the sweep's metrics on
    the sweep's number of items; else None."""
    from vemkit.evaluate import EVAL_FILE

    where = result_dir(cell.run_dir)
    path = where / EVAL_FILE
    data = _json(path)
    if data is None or data.get("step") != _final_step(cell):
        return None
    if not _same_metrics(data.get("metric_configs"), wanted_metrics(sweep, cell)):
        return None
    if sweep.eval_items is not None and data.get("items") != sweep.eval_items:
        return None
    marker = where / "checkpoints" / "last" / "COMPLETE"
    # A run retrained after its evaluation (same step, new weights) is evaluated again.
    if marker.exists() and marker.stat().st_mtime > path.stat().st_mtime:
        return None
    return data


# -- running processes ----------------------------------------------------------------------------
Runner = Callable[[list[str], Path], int]
"""Runs ``vemkit`` with these arguments, its output to that log file; returns the exit code."""


@dataclass
class _Job:
    cell: Cell
    what: str
    args: list[str]
    log: Path
    note: str = ""
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0


def _env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if threads is not None:
        # OpenMP/MKL pools of the child start at this size (torch.set_num_threads follows).
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def run_jobs(
    jobs: Sequence[_Job],
    *,
    parallel: int,
    threads: int | None,
    log: Callable[[str], None],
    total: int,
    done_before: int = 0,
    runner: Runner | None = None,
) -> list[_Job]:
    """Run ``jobs`` as ``python -m vemkit ...`` processes, ``parallel`` at a time, a line per
    finished job; returns the failed ones. Ctrl-C stops the running processes (SIGINT, the
    runs keep their checkpoints) and re-raises. ``runner(args, log_path) -> exit code``
    replaces the processes (one job after the other; the tests run cells in-process)."""
    queue = list(jobs)
    running: list[_Job] = []
    failed: list[_Job] = []
    finished = done_before

    def report(job: _Job, code: int) -> None:
        took = _minutes(time.perf_counter() - job.started)
        where = f"[{finished}/{total}] {job.cell.name}"
        if code == 0:
            log(f"{where}: {job.what} in {took}{job.note}")
        else:
            failed.append(job)
            log(f"{where}: {job.what} FAILED (exit {code}) after {took}; log {job.log}:")
            log(_tail(job.log))

    if runner is not None:
        for job in queue:
            job.log.parent.mkdir(parents=True, exist_ok=True)
            job.started = time.perf_counter()
            code = runner(job.args, job.log)
            finished += 1
            report(job, code)
        return failed
    env = _env(threads)
    try:
        while queue or running:
            while queue and len(running) < parallel:
                job = queue.pop(0)
                job.log.parent.mkdir(parents=True, exist_ok=True)
                with open(job.log, "ab") as f:
                    f.write(f"\n$ {Sweep.shell(job.args)}\n".encode())
                    f.flush()
                    job.proc = subprocess.Popen(
                        [sys.executable, "-m", "vemkit", *job.args],
                        stdout=f,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=env,
                        # Its own session: a Ctrl-C in the terminal reaches the sweep only,
                        # which forwards exactly one SIGINT to each cell (below).
                        start_new_session=True,
                    )
                job.started = time.perf_counter()
                running.append(job)
            time.sleep(0.1)
            for job in list(running):
                assert job.proc is not None
                code = job.proc.poll()
                if code is None:
                    continue
                running.remove(job)
                finished += 1
                report(job, code)
    except KeyboardInterrupt:
        for job in running:
            if job.proc is not None and job.proc.poll() is None:
                job.proc.send_signal(signal.SIGINT)
        for job in running:
            if job.proc is None:
                continue
            try:
                job.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                job.proc.kill()
                job.proc.wait()
        raise
    return failed


def _log_path(sweep: Sweep, cell: Cell, what: str) -> Path:
    return sweep.out / LOGS / f"{cell.config}.seed{cell.seed}.{what}.log"


def train_cells(
    sweep: Sweep,
    *,
    jobs: int,
    log: Callable[[str], None],
    collect: bool = False,
    runner: Runner | None = None,
) -> dict[str, int]:
    """Train every cell that is not finished (continuing partial ones); counts by state.

    ``collect``: train nothing; an unfinished cell is an error."""
    states = {c.index: cell_state(c) for c in sweep.cells}
    other = [c for c in sweep.cells if states[c.index] == "other"]
    if other:
        listed = ", ".join(str(c.run_dir) for c in other[:4]) + (", ..." if len(other) > 4 else "")
        raise VemkitError(
            f"{len(other)} cell folder(s) hold a run of a different spec ({listed}): the spec, "
            "the --set/--grid/--arm values or --threads-per-job changed since they ran. Use "
            "another --out, or remove those folders"
        )
    todo = [c for c in sweep.cells if states[c.index] != "finished"]
    counts = {s: sum(1 for v in states.values() if v == s) for s in ("finished", "partial", "new")}
    if collect and todo:
        listed = ", ".join(c.name for c in todo[:6]) + (", ..." if len(todo) > 6 else "")
        raise VemkitError(
            f"--collect: {len(todo)} cell(s) are not finished ({listed}); run them (the lines "
            f"of {sweep.out / COMMANDS_FILE}) or drop --collect"
        )
    total = len(sweep.cells)
    done = total - len(todo)
    if todo and sweep.shared is not None:
        _train_shared(sweep, log=log, collect=collect, runner=runner)
    if done:
        log(f"{done}/{total} cell(s) already finished: skipped")
    work = []
    for c in todo:
        if states[c.index] == "partial":
            step = last_step(c.run_dir)
            note = f" (resumed from step {step})" if step is not None else " (restarted)"
            args = sweep.resume_args(c)
        else:
            note, args = "", sweep.run_args(c)
        it = planned_iterations(c.spec)
        work.append(_Job(c, f"trained to step {it}", args, _log_path(sweep, c, "run"), note))
    failed = run_jobs(
        work,
        parallel=jobs,
        threads=sweep.threads,
        log=log,
        total=total,
        done_before=done,
        runner=runner,
    )
    if failed:
        raise VemkitError(
            f"{len(failed)} cell(s) failed: "
            + "; ".join(f"{j.cell.name} (log {j.log})" for j in failed)
            + ". Fix the cause and run the same command again: finished cells are skipped"
        )
    return counts


def shared_state(sweep: Sweep) -> str:
    """``finished`` (its stage is done), ``partial``, ``new`` or ``other`` for the shared run."""
    from vemkit.engine.recipe import stage_finished
    from vemkit.engine.run import RUN_INFO, spec_hash

    shared = sweep.shared
    assert shared is not None and sweep.shared_stage is not None
    if stage_finished(shared.run_dir, sweep.shared_stage):
        return "finished"
    info = _json(shared.run_dir / RUN_INFO)
    if info is None:
        return "other" if (shared.run_dir / "stages").exists() else "new"
    return "partial" if info.get("spec_hash") == spec_hash(shared.spec) else "other"


def _train_shared(
    sweep: Sweep, *, log: Callable[[str], None], collect: bool, runner: Runner | None
) -> None:
    """Train the shared stages (``--from``) unless their run has finished them."""
    shared, stage = sweep.shared, sweep.shared_stage
    assert shared is not None
    state = shared_state(sweep)
    if state == "finished":
        return
    if state == "other":
        raise VemkitError(
            f"--from {shared.run_dir}:{stage}: that folder holds an unfinished run of another "
            "spec; finish it (vemkit run --resume ... --until STAGE), remove it, or choose "
            "another folder"
        )
    if collect:
        raise VemkitError(
            f"--collect: the shared stages up to '{stage}' ({shared.run_dir}) are not finished; "
            f"run the line of {sweep.out / SHARED_FILE} first"
        )
    args = sweep.resume_args(shared) if state == "partial" else sweep.run_args(shared)
    note = " (resumed)" if state == "partial" else ""
    log(f"the shared stages up to '{stage}': trained once in {shared.run_dir}")
    job = _Job(
        shared, f"stages up to '{stage}' trained", args, _log_path(sweep, shared, "run"), note
    )
    failed = run_jobs([job], parallel=1, threads=sweep.threads, log=log, total=1, runner=runner)
    if failed:
        raise VemkitError(
            f"the shared stages up to '{stage}' failed (log {job.log}); fix the cause and run the "
            "same command again"
        )


def evaluate_cells(
    sweep: Sweep, *, jobs: int, log: Callable[[str], None], runner: Runner | None = None
) -> dict[int, dict[str, Any]]:
    """Evaluate every cell whose ``eval.json`` is not current; returns each cell's."""
    todo = [c for c in sweep.cells if evaluation_current(sweep, c) is None]
    total = len(sweep.cells)
    if total - len(todo):
        log(f"{total - len(todo)}/{total} evaluation(s) current: reused")
    work = [_Job(c, "evaluated", sweep.eval_args(c), _log_path(sweep, c, "eval")) for c in todo]
    failed = run_jobs(
        work,
        parallel=jobs,
        threads=sweep.threads,
        log=log,
        total=total,
        done_before=total - len(todo),
        runner=runner,
    )
    if failed:
        raise VemkitError(
            f"{len(failed)} evaluation(s) failed: "
            + "; ".join(f"{j.cell.name} (log {j.log})" for j in failed)
        )
    out = {}
    for c in sweep.cells:
        data = evaluation_current(sweep, c)
        if data is None:
            got = (_json(result_dir(c.run_dir) / "eval.json") or {}).get("items")
            raise VemkitError(
                f"{c.run_dir}: the evaluation scored {got} item(s), not --eval-items "
                f"{sweep.eval_items}: data.eval holds fewer; give --eval-items {got} or less"
                if sweep.eval_items is not None and isinstance(got, int)
                else f"{c.run_dir}: no current eval.json after `vemkit eval`"
            )
        out[c.index] = data
    return out


# -- the whole sweep ------------------------------------------------------------------------------
def describe(sweep: Sweep) -> str:
    """The plan as text: the axes, and every cell with its state."""
    lines = [
        f"{len(sweep.cells)} cells = "
        + " × ".join(f"{len(a.arms)} {a.name}" for a in sweep.axes)
        + f" × {len(sweep.seeds)} seeds; reference arm: "
        + (sweep.baseline.name if sweep.baseline else "none")
    ]
    if sweep.shared is not None:
        lines.append(
            f"  shared   {shared_state(sweep):8s}  stages up to '{sweep.shared_stage}' in "
            f"{sweep.shared.run_dir} (seed {sweep.shared.seed}), taken by every cell"
        )
    for c in sweep.cells:
        lines.append(f"  {c.index:3d}  {cell_state(c):8s}  {c.name}")
    return "\n".join(lines)


def run_sweep(
    sweep: Sweep,
    *,
    jobs: int = 1,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
    collect: bool = False,
    title: str | None = None,
    command: str | None = None,
    runner: Runner | None = None,
) -> dict[str, Any]:
    """Write the plan, train the unfinished cells, evaluate them, write the report.

    Returns ``{"counts": cells by state before training, "evaluations": {index: eval.json},
    "report": paths written}``."""
    from vemkit import sweep_report

    if jobs < 1:
        raise VemkitError("--jobs must be at least 1")
    started = time.perf_counter()
    sweep.write_plan()
    counts = train_cells(sweep, jobs=jobs, log=log, collect=collect, runner=runner)
    evaluations = evaluate_cells(sweep, jobs=jobs, log=log, runner=runner)
    paths = sweep_report.write_report(
        sweep,
        evaluations,
        title=title,
        command=command,
        jobs=jobs,
        seconds=time.perf_counter() - started,
    )
    return {"counts": counts, "evaluations": evaluations, "report": paths}
