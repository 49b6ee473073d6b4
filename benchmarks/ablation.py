"""The MI ablation (paper Table 4's protocol) on the offline demo tasks: a thin caller of
``vemkit sweep``.

For every method (``--methods``: ``omgd``, and the recipe methods ``gcc``, ``cat``, ``cagc``)
on each of its tasks (``METHODS``; ``--tasks`` narrows them) it sweeps one spec,
``specs/ablations/<setting>/<task>_<method>.yaml``, over the MI arms (``--arms``: ``none``,
``vid``, ``crd``, ``vem`` and two VEM sampler variants) × the seeds, with ``vemkit.sweep``:
every cell a plain ``vemkit run`` in ``<runs>/<method>/<task>/<arm>/seed<k>``, several at a time
(``--jobs``), then ``vemkit eval`` on the first ``--fid-samples`` evaluation items (FID/KID
from that many samples; PSNR/SSIM against the true targets where the task has them: the shoes,
or the held-out true pairs of the emoji set; FID/KID only for the unconditional tasks), then the
sweep's report with the paired differences to ``none``. Where the method shares the setting's
teacher spec (``<task>_teacher.yaml``: the frozen pre-trained teachers every arm shares), it is
trained first, once, in ``<runs>/teachers/<task>``. The recipe methods share their stages before
the distillation instead (``vemkit sweep --from``): the teacher, the pruning or the supernet and
its search are trained once, in ``<runs>/<method>/<task>/shared`` with the first seed, and every
cell runs only the distillation stage on them, so the seeds and arms vary the distillation
alone. The recipe methods have the ``cpu`` setting only.

Resumable: run the same command again; finished cells and the finished teacher are skipped,
stopped ones resumed, current evaluations reused. Prints the sweep's tables per (method, task)
and writes ``benchmarks/results/ablation.json`` (machine, load, wall time, budget, every cell's
scores and every paired statistic); each sweep's report is in ``<runs>/<method>/<task>/report/``.

Run from the repository root (the specs' data roots are relative):
``python -m benchmarks.ablation --seeds 0 1 2 --jobs 2``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the package `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _timing
from vemkit.commands._common import add_set_option

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUTPUT = RESULTS / "ablation.json"
DEFAULT_RUNS = RESULTS / "ablation"


ARMS: dict[str, tuple[str, ...]] = {
    "none": ("mi.type=none",),
    # The VEM authors' VID: a Gaussian q(t|s) on the output images, mean = the student image.
    "vid": ("mi.type=vid", "mi.regressor=none"),
    "crd": ("mi.type=crd",),
    "vem": ("mi.type=vem",),  # the paper's sampler: sigma 0.005 at step 100, temperature ~1e-7
    # Temperature 1 (sigma = sqrt(2 step)): exp(-E) is then the density the bound is about;
    # step 0.1 so that step x K = 1, what the known-answer tests need (reference/mi_known_answer).
    "vem-t1": ("mi.type=vem", "mi.sampler.noise_std=auto", "mi.sampler.step_size=0.1"),
    # ... with the chains started from the batch's positives shuffled (marginal samples).
    "vem-t1-marginal": (
        "mi.type=vem",
        "mi.sampler.noise_std=auto",
        "mi.sampler.step_size=0.1",
        "mi.sampler.init=marginal",
    ),
}
PAPER_ARMS = ("none", "vid", "crd", "vem")


@dataclass(frozen=True)
class Setting:
    """Where a setting's specs are: ``{task}`` and ``{method}`` stand for the names."""

    spec: str
    teacher: str | None
    about: str


SETTINGS = {
    "cpu": Setting(
        "specs/ablations/cpu/{task}_{method}.yaml",
        "specs/ablations/cpu/{task}_teacher.yaml",
        "CPU-sized: 4x narrower nets than the paper; the teachers (and a recipe's pruning or "
        "search) trained once and shared by every cell (see each spec's header)",
    ),
    "gpu": Setting(
        "specs/ablations/{task}_{method}_vem.yaml",
        None,
        "the paper's widths (teachers ngf 64 (+ deep 16), student 16, energy c = 32), online "
        "teachers as OMGD trains them, on the 64 px demo sets",
    ),
}


@dataclass(frozen=True)
class Task:
    """One demo task of the ablation."""

    name: str
    stem: str
    """The task's part of the spec file names."""
    about: str
    metrics: tuple[str, ...] = ("fid", "psnr", "ssim")
    """What the evaluation measures: ``fid`` (with KID), and ``psnr``/``ssim`` where the task
    has true targets (an unconditional task has none: FID/KID only)."""


TASKS = {
    "edges2shoes-fmnist": Task(
        "edges2shoes-fmnist",
        "edges2shoes_fmnist",
        "paired: pix2pix on edges -> Fashion-MNIST shoes, 64 px; PSNR/SSIM to the true shoes",
    ),
    "emoji": Task(
        "emoji",
        "emoji",
        "unpaired: Google -> Twitter emoji, 64 px; PSNR/SSIM on the held-out true pairs",
    ),
    "emoji-twitter": Task(
        "emoji-twitter",
        "emoji_twitter",
        "unconditional: the 1,697 Twitter emoji, 64 px; FID/KID against the training emoji",
        ("fid",),
    ),
    "fmnist32": Task(
        "fmnist32",
        "fmnist32",
        "unconditional: Fashion-MNIST, 32 px; FID/KID against the test images",
        ("fid",),
    ),
}


def metric_configs(fid_samples: int, task: Task) -> list[dict[str, Any]]:
    """The evaluation of ``task``: FID/KID from ``fid_samples`` images, and PSNR and SSIM on the
    same items where the task has true targets."""
    return [
        {"type": "fid", "num_samples": fid_samples} if m == "fid" else {"type": m}
        for m in task.metrics
    ]


def pairs(methods: Sequence[str], tasks: Sequence[str] | None) -> list[tuple[str, str]]:
    """The (method, task) sweeps: each method on its own tasks, or on those of ``tasks`` (all
    given) that it runs. A method that runs none of the given tasks is an error."""
    from vemkit.errors import VemkitError

    out = []
    for method in methods:
        own = METHODS[method].tasks
        chosen = own if tasks is None else tuple(t for t in tasks if t in own)
        if not chosen:
            raise VemkitError(
                f"--tasks {' '.join(tasks or ())}: method {method} runs none of them "
                f"(its tasks: {', '.join(own)})"
            )
        out += [(method, t) for t in chosen]
    return out


@dataclass(frozen=True)
class Method:
    """One distillation method of the ablation: which tasks and settings it has specs for."""

    about: str
    tasks: tuple[str, ...]
    """The tasks (keys of ``TASKS``) it runs: a spec per task under each of its settings."""
    settings: tuple[str, ...] = ("cpu", "gpu")
    """The settings (keys of ``SETTINGS``) it has specs for."""
    shared_teacher: bool = True
    """Whether the cells share the setting's pre-trained teacher (``<task>_teacher.yaml``);
    False where the method's recipe trains its own teacher inside every cell."""
    iterations_key: str = "train.iterations"
    """The spec key that ``--iterations`` sets (a recipe's stage length for staged methods)."""
    arm_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Extra overrides for an arm on this method's specs (e.g. CRD's negatives where there
    is no dataset item to key a memory bank by)."""
    cpu_only_reason: str = ""
    """Why it has no ``gpu`` setting (said in the error when one is asked for)."""
    shared_stages: str | None = None
    """A recipe's last stage before the distillation: every cell takes the stages up to it
    from one run (``vemkit sweep --from``) and trains only the stages after it."""


# A fresh z every step (unconditional GANs) gives CRD no item to key its memory bank by: the
# negatives are the batch's other samples, as the methods' paper CRD specs have it.
_CRD_BATCH = {"crd": ("mi.negatives=batch",)}

METHODS: dict[str, Method] = {
    # Adding a method is one entry here, plus its spec files under its settings' patterns.
    "omgd": Method("OMGD (Ren et al., ICCV 2021)", ("edges2shoes-fmnist", "emoji")),
    "gcc": Method(
        "GCC (Li et al., NeurIPS 2021)",
        ("emoji-twitter",),
        settings=("cpu",),
        shared_teacher=False,
        iterations_key="method.stages.distil.iterations",
        arm_overrides=_CRD_BATCH,
        shared_stages="prune",
        cpu_only_reason="its paper specs (specs/paper/sagan_celeba_gcc*.yaml) are on CelebA, "
        "not an offline demo task; the demo widths are the cpu setting's",
    ),
    "cat": Method(
        "CAT (Jin et al., CVPR 2021)",
        ("emoji",),
        settings=("cpu",),
        shared_teacher=False,
        iterations_key="method.stages.student.iterations",
        shared_stages="prune",
        cpu_only_reason="its paper specs (specs/paper/horse2zebra_cat*.yaml) are on "
        "horse2zebra, not an offline demo task",
    ),
    "gan_compression": Method(
        "GAN-Compression (Li et al., CVPR 2020)",
        ("emoji",),
        settings=("cpu",),
        shared_teacher=False,
        iterations_key="method.stages.finetune.iterations",
        shared_stages="search",
        cpu_only_reason="its paper specs (specs/paper/summer2winter_gan_compression*.yaml) are "
        "on summer2winter, not an offline demo task",
    ),
    "cagc": Method(
        "CAGC (Liu et al., CVPR 2021)",
        ("fmnist32",),
        settings=("cpu",),
        shared_teacher=False,
        iterations_key="method.stages.retrain.iterations",
        arm_overrides=_CRD_BATCH,
        shared_stages="prune",
        cpu_only_reason="its paper specs (specs/paper/stylegan2_ffhq_cagc*.yaml) are on FFHQ, "
        "not an offline demo task",
    ),
}


def _path(pattern: str, task: Task, method: str) -> Path:
    return REPO / pattern.format(task=task.stem, method=method)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when below it (shorter JSON and labels)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def teacher_paths(cell_spec: Path, teacher_out: str, teacher_dir: Path) -> list[str]:
    """Overrides pointing every path of ``cell_spec`` below the teacher spec's ``output.dir``
    (its checkpoints: ``teacher.checkpoint``, a method's extra teacher weights) at
    ``teacher_dir``, where this ablation trained the teacher."""
    import yaml

    data = yaml.safe_load(cell_spec.read_text(encoding="utf-8"))
    prefix = teacher_out.rstrip("/") + "/"
    out: list[str] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, str(k)))
        elif isinstance(node, str) and node.startswith(prefix):
            out.append(f"{'.'.join(path)}={teacher_dir / node[len(prefix) :]}")

    walk(data, ())
    return out


def train_teacher(
    setting: Setting, task: Task, method: str, args: argparse.Namespace, *, log: Any, runner: Any
) -> list[str]:
    """Train the setting's teacher spec for ``task`` once (skipped when finished); the cell
    overrides that point at its weights."""
    from vemkit import sweep as sweeps

    if setting.teacher is None or not METHODS[method].shared_teacher:
        return []  # no shared teacher: the method's recipe trains one inside every cell
    spec_path = _path(setting.teacher, task, method)
    if not spec_path.is_file():
        return []
    from vemkit.spec import load_spec

    out = args.runs / "teachers" / task.name
    overrides = [*args.overrides, f"train.device={args.device}", *args.teacher_overrides]
    plan = sweeps.plan(
        spec_path,
        [sweeps.Axis("teacher", (sweeps.Arm("teacher", ()),))],
        [load_spec(spec_path, overrides).seed],
        out=out,
        overrides=overrides,
        threads=args.threads,
    )
    if not args.dry_run:
        log(f"{task.name}: teacher ({_shown(spec_path)}) in {_shown(plan.cells[0].run_dir)}")
        sweeps.train_cells(plan, jobs=1, log=log, runner=runner)
    # The cell spec names the teacher's weights below the teacher spec's own output.dir.
    original = load_spec(spec_path).run_dir()
    return teacher_paths(_path(setting.spec, task, method), original, plan.cells[0].run_dir)


def arm_overrides(method: str, arm: str) -> tuple[str, ...]:
    """The overrides of ``arm`` on ``method``'s specs: the arm's, then the method's own."""
    return (*ARMS[arm], *METHODS[method].arm_overrides.get(arm, ()))


def sweep_one(
    setting: Setting,
    task: Task,
    method: str,
    args: argparse.Namespace,
    *,
    log: Callable[[str], None],
    runner: Any,
) -> dict[str, Any]:
    """The sweep of one (method, task); its plan, results and report paths."""
    from vemkit import sweep as sweeps
    from vemkit.sweep_report import paired_summary_lines

    spec_path = _path(setting.spec, task, method)
    about = METHODS[method]
    if not spec_path.is_file():
        raise SystemExit(
            f"no {args.setting} spec for method {method} on task {task.name}: "
            f"{_shown(spec_path)} does not exist"
        )
    teacher = train_teacher(setting, task, method, args, log=log, runner=runner)
    arms = [
        sweeps.Arm(
            name, (*arm_overrides(method, name), *(o for a, o in args.mi_overrides if a == name))
        )
        for name in args.arms
    ]
    overrides = [*args.overrides, *teacher, f"train.device={args.device}"]
    if args.iterations is not None:
        overrides.append(f"{about.iterations_key}={args.iterations}")
    if args.batch_size is not None:
        overrides.append(f"train.batch_size={args.batch_size}")
    out = args.runs / method / task.name
    plan = sweeps.plan(
        spec_path,
        [sweeps.Axis(sweeps.ARM_AXIS, tuple(arms))],
        args.seeds,
        out=out,
        overrides=overrides,
        threads=args.threads,
        metrics=metric_configs(args.fid_samples, task),
        eval_items=args.fid_samples,
        baseline="none" if "none" in args.arms else None,
        start_from=f"{out / 'shared'}:{about.shared_stages}" if about.shared_stages else None,
    )
    if args.dry_run:
        plan.write_plan()
        print(sweeps.describe(plan))
        return {"plan": plan, "evaluations": None}
    title = f"MI ablation: {about.about} on {task.name} ({args.setting} setting)"
    result = sweeps.run_sweep(plan, jobs=args.jobs, log=log, runner=runner, title=title)
    lines = paired_summary_lines(plan, result["evaluations"])
    return {"plan": plan, "evaluations": result["evaluations"], "report": result["report"],
            "lines": lines}  # fmt: skip


# -- command line -------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.ablation",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="example: python -m benchmarks.ablation --tasks edges2shoes-fmnist --seeds 0 1 2 "
        "--jobs 2",
    )
    p.add_argument("--setting", choices=list(SETTINGS), default="cpu", help="spec set (cpu)")
    p.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=None,
        help="methods (default: every one that has the setting's specs)",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        choices=list(TASKS),
        default=None,
        help="tasks (default: each method's own; given, each method runs those it has)",
    )
    p.add_argument(
        "--arms",
        "--mi",
        dest="arms",
        nargs="+",
        choices=list(ARMS),
        default=list(ARMS),
        help="MI arms (default: all; the paper's are none vid crd vem)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="training iterations: the key each method names (train.iterations, or the "
        "distillation stage's length for cat and cagc; default: the spec's)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="default: the spec's")
    p.add_argument(
        "--fid-samples",
        type=int,
        default=256,
        help="evaluation items (FID/KID samples, PSNR/SSIM items) per cell, the same for all",
    )
    p.add_argument("--jobs", type=int, default=2, help="cells trained at a time (2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per cell (1)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    add_set_option(p, help="spec override for every cell and the teacher (repeatable)")
    p.add_argument(
        "--teacher-set",
        dest="teacher_overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="spec override for the teacher's run only (repeatable)",
    )
    p.add_argument(
        "--mi-set",
        dest="mi_overrides",
        nargs=2,
        action="append",
        default=[],
        metavar=("ARM", "PATH=VALUE"),
        help="spec override for the cells of one arm, e.g. --mi-set vem mi.weight=0.2",
    )
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="folder of the sweeps")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    p.add_argument("--dry-run", action="store_true", help="write and print the plans only")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    for name in ("fid_samples", "threads", "jobs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("iterations", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.methods is None:  # those with the setting's specs (and one of the given tasks)
        args.methods = [
            m
            for m, about in METHODS.items()
            if args.setting in about.settings
            and (args.tasks is None or set(args.tasks) & set(about.tasks))
        ]
        if not args.methods:
            p.error(f"--tasks: no method runs {' '.join(args.tasks)} in the {args.setting} setting")
    for method in args.methods:
        if args.setting not in METHODS[method].settings:
            p.error(
                f"--methods {method}: no {args.setting} setting (only "
                f"{', '.join(METHODS[method].settings)}): {METHODS[method].cpu_only_reason}"
            )
    for arm, _ in args.mi_overrides:
        if arm not in ARMS:
            p.error(f"--mi-set: unknown arm {arm!r} (one of {', '.join(ARMS)})")
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def main(argv: Sequence[str] | None = None, *, runner: Any = None) -> int:
    """``runner``: the sweep's process runner (None: ``python -m vemkit`` processes)."""
    from vemkit.cli import sigterm_interrupts, stopped
    from vemkit.errors import VemkitError

    args = parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    setting = SETTINGS[args.setting]
    load_before = _timing.load_average()
    started = _timing.now()
    done = []
    try:
        with sigterm_interrupts():  # SIGTERM stops the running cells, as Ctrl-C does
            for method, name in pairs(args.methods, args.tasks):
                done.append(
                    (method, TASKS[name], sweep_one(
                        setting, TASKS[name], method, args, log=log, runner=runner))
                )  # fmt: skip
    except VemkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return stopped(exc, ": run the same command again to continue")
    if args.dry_run:
        return 0
    wall = _timing.now() - started
    tasks = list({task.name: task for _, task, _ in done}.values())

    cells, statistics, reports = [], [], {}
    for method, task, got in done:
        plan, evaluations = got["plan"], got["evaluations"]
        summary = json.loads((plan.out / "sweep.json").read_text(encoding="utf-8"))
        # From the cells' own logs: a re-run that only re-renders finished cells keeps them.
        trained = {x["name"]: x["train_seconds"] for x in summary["configs"]}
        for c in plan.cells:
            data = evaluations[c.index]
            cells.append(
                {
                    "method": method,
                    "task": task.name,
                    "arm": c.config,
                    "seed": c.seed,
                    "run_dir": _shown(c.run_dir),
                    "iterations": data.get("step"),
                    "batch_size": c.spec.train.batch_size,
                    "eval_items": data.get("items"),
                    "train_seconds": trained.get(c.config, {}).get(str(c.seed)),
                    "eval_seconds": data.get("seconds"),
                    "metrics": data["student"]["metrics"],
                }
            )
        statistics += [{"method": method, "task": task.name, **r} for r in summary["statistics"]]
        reports[f"{method}/{task.name}"] = _shown(Path(got["report"]["md"]))

    result = {
        "benchmark": "ablation",
        "machine": _timing.machine_info(args.device),
        "load_before": load_before,
        "load_after": _timing.load_average(),
        "wall_seconds": wall,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "setting": {"name": args.setting, "about": setting.about},
        "budget": {
            "iterations": args.iterations,
            "seeds": args.seeds,
            "jobs": args.jobs,
            "threads": args.threads,
            "fid_samples": args.fid_samples,
            "overrides": args.overrides,
            "mi_overrides": [list(x) for x in args.mi_overrides],
        },
        "arms": {a: list(ARMS[a]) for a in args.arms},
        "arm_overrides": {
            m: {a: list(o) for a, o in METHODS[m].arm_overrides.items() if a in args.arms}
            for m in args.methods
        },
        "methods": {m: METHODS[m].about for m in args.methods},
        "iterations_keys": {m: METHODS[m].iterations_key for m in args.methods},
        "tasks": {task.name: task.about for task in tasks},
        "metrics": {task.name: metric_configs(args.fid_samples, task) for task in tasks},
        "cells": cells,
        "statistics": statistics,
        "reports": reports,
    }
    _timing.write_json_atomic(args.output, result)
    m = result["machine"]
    print(
        f"MI ablation ({args.setting} setting: {setting.about}); seeds {args.seeds}, "
        f"{args.fid_samples} evaluation items per cell; {m['cpu']} ({m['cores']} cores), "
        f"{args.jobs} cell(s) at a time with {args.threads} thread(s) each, torch {m['torch']}, "
        f"device {m['device']}; wall {wall / 60:.1f} min; load average {load_before} before, "
        f"{result['load_after']} after\n"
    )
    for method, task, got in done:
        print(f"**{METHODS[method].about}, {task.name}** ({task.about})\n")
        print("\n".join(got["lines"]))
    print(f"JSON: {args.output}; reports: {', '.join(reports.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
