"""The MI ablation at the paper's network sizes on a GPU, for as many iterations as the minutes
allow: ``python -m benchmarks.ablation_gpu --minutes 12``.

The ``gpu`` setting of :mod:`benchmarks.ablation` (``specs/ablations/<task>_omgd_vem.yaml``:
OMGD's widths: online teachers U-Net ngf 64 + U-Net-deepest ngf 16 or Mobile ResNet ngf 64,
students ngf 16, the authors' energy nets; the 64 px demo sets, which must be in ``data/``:
``vemkit data get edges2shoes-fmnist``, ``vemkit data get emoji-google2twitter``), every arm ×
every seed, evaluated on ``--fid-samples`` items, ending in the same table as the CPU ablation.

The budget: a short probe run of the heaviest cell (the first task's ``vem`` arm) measures the
seconds per iteration on this device (steady state, from ``metrics.jsonl``'s clock); the
iterations per cell are then what fits ``--minutes`` (``--train-share`` of it for training, the
rest for start-up and evaluation) with ``--jobs`` cells at a time, rounded down to a multiple of
10. The choice is written to ``<runs>/gpu_budget.json`` and reused by every later invocation with
the same tasks, arms and seeds, so running the same command again resumes the same cells
(finished ones skipped, stopped ones continued) instead of starting a new budget.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the package `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _timing, ablation
from vemkit.commands._common import add_set_option

DEFAULT_RUNS = ablation.RESULTS / "ablation_gpu"
BUDGET_FILE = "gpu_budget.json"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.ablation_gpu",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--minutes", type=float, default=12.0, help="wall-clock budget (12)")
    p.add_argument(
        "--train-share",
        type=float,
        default=0.7,
        help="share of the budget given to training iterations (0.7)",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        choices=list(ablation.METHODS["omgd"].tasks),
        default=["edges2shoes-fmnist"],
    )
    p.add_argument(
        "--arms", nargs="+", choices=list(ablation.ARMS), default=list(ablation.PAPER_ARMS)
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2, help="cells at a time on the device (2)")
    p.add_argument("--fid-samples", type=int, default=1000)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=2, help="CPU threads per cell (2)")
    p.add_argument("--probe-iterations", type=int, default=20, help="iterations of the probe")
    p.add_argument(
        "--max-iterations", type=int, default=None, help="cap on the iterations per cell"
    )
    add_set_option(p, help="spec override for every cell and the probe (repeatable)")
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS)
    p.add_argument("--output", type=Path, default=ablation.RESULTS / "ablation_gpu.json")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.minutes <= 0 or not 0 < args.train_share <= 1:
        p.error("--minutes must be positive and --train-share in (0, 1]")
    if min(args.jobs, args.threads, args.fid_samples) < 1 or args.probe_iterations < 4:
        p.error("--jobs, --threads, --fid-samples must be at least 1, --probe-iterations 4")
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def _cell_overrides(iterations: int) -> list[str]:
    """What the GPU run changes in the GPU specs: the budget, PSNR/SSIM every tenth of it for
    the learning curves (FID once, by the sweep's evaluation), a checkpoint as often (resume)."""
    every = max(1, iterations // 10)
    return [
        f"train.iterations={iterations}",
        "eval.metrics=[{type: psnr}, {type: ssim}]",
        "eval.best=null",
        f"eval.every={every}",
        f"output.checkpoint_every={every}",
        "output.sample_every=0",
    ]


def probe(args: argparse.Namespace) -> float:
    """Steady-state seconds per iteration of the heaviest cell on ``args.device``."""
    import vemkit
    from vemkit.spec import load_spec

    task = ablation.TASKS[args.tasks[0]]
    path = ablation._path(ablation.SETTINGS["gpu"].spec, task, "omgd")
    n = args.probe_iterations
    with tempfile.TemporaryDirectory(prefix="vemkit-probe-") as tmp:
        overrides = [
            *args.overrides,
            *ablation.ARMS["vem"],
            f"train.iterations={n}",
            f"train.device={args.device}",
            f"train.threads={args.threads}",
            "eval.metrics=[]",
            "eval.best=null",
            "eval.every=0",
            "output.log_every=1",
            "output.checkpoint_every=0",
            "output.sample_every=0",
            f"output.dir={tmp}",
        ]
        spec = load_spec(path, overrides)
        vemkit.run(spec, run_dir=tmp, progress=False)
        lines = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    clock = {d["step"]: d["time"] for d in lines if "time" in d and "step" in d}
    # The first iterations pay for warm-up (cuDNN autotuning, allocator growth): skip 2.
    first = min(s for s in clock if s >= 2)
    return (clock[n] - clock[first]) / (n - first)


def budget(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    """The iterations per cell: read back from ``gpu_budget.json`` or chosen by a probe."""
    path = args.runs / BUDGET_FILE
    key = {"tasks": args.tasks, "arms": args.arms, "seeds": args.seeds, "device": args.device}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = None
    if isinstance(saved, dict) and saved.get("key") == key:
        log(f"budget from {path}: {saved['iterations']} iterations per cell")
        return saved
    log(f"probe: {args.probe_iterations} iterations of the heaviest cell on {args.device}")
    seconds = probe(args)
    cells = len(args.tasks) * len(args.arms) * len(args.seeds)
    rounds = math.ceil(cells / args.jobs)
    # Cells sharing the device run at about the speed of one each when they fit it together;
    # the probe ran alone, so the estimate errs towards fewer iterations.
    fit = args.minutes * 60 * args.train_share / (rounds * seconds)
    iterations = max(10, int(fit) // 10 * 10)
    if args.max_iterations is not None:
        iterations = min(iterations, args.max_iterations)
    chosen = {
        "key": key,
        "seconds_per_iteration": seconds,
        "cells": cells,
        "jobs": args.jobs,
        "minutes": args.minutes,
        "iterations": iterations,
        "machine": _timing.machine_info(args.device),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _timing.write_json_atomic(path, chosen)
    log(f"{seconds:.3f} s/iteration; {cells} cells, {args.jobs} at a time: {iterations} iterations")
    return chosen


def main(argv: Sequence[str] | None = None, *, runner: Any = None) -> int:
    args = parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    chosen = budget(args, log)
    sets = [*args.overrides, *_cell_overrides(chosen["iterations"])]
    forwarded = [
        "--setting", "gpu",
        "--methods", "omgd",  # the gpu setting's specs are OMGD's
        "--tasks", *args.tasks,
        "--arms", *args.arms,
        "--seeds", *map(str, args.seeds),
        "--iterations", str(chosen["iterations"]),
        "--fid-samples", str(args.fid_samples),
        "--jobs", str(args.jobs),
        "--threads", str(args.threads),
        "--device", args.device,
        "--runs", str(args.runs),
        "--output", str(args.output),
        *[x for s in sets for x in ("--set", s)],
    ]  # fmt: skip
    if args.quiet:
        forwarded.append("--quiet")
    return ablation.main(forwarded, runner=runner)


if __name__ == "__main__":
    sys.exit(main())
