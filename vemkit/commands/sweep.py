"""``vemkit sweep SPEC --grid KEY=V1,V2 --seeds 0,1,2``: a grid of runs, evaluated and compared."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from vemkit.commands._common import add_command, add_set_option, positive_int


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "sweep",
        help="train a grid of overrides × seeds, evaluate every cell, compare to a reference arm",
        description="Train every cell of a grid (the cartesian product of the --grid values and "
        "the --arm entries, times the seeds), each a plain `vemkit run` in a process of its "
        "own in OUT/<cell>/seed<k>; evaluate each cell with `vemkit eval`; write "
        "OUT/report/report.{md,html} with the paired difference of every arm to the reference "
        "arm per seed, its mean and 95 % t-interval, and the learning curves. The commands "
        "go to OUT/cells.json and OUT/commands.txt (one line per cell) so a cluster can run the "
        "same cells. Every cell is validated first. Run the same command again to continue: "
        "finished cells are skipped, stopped ones resumed, current evaluations reused (Ctrl-C "
        "or SIGTERM stops the running cells; they continue from their last checkpoint). An "
        "override that changes a component's type (mi.type=vid) keeps only the options the "
        "new type has.",
        examples="  vemkit sweep specs/quickstart.yaml --grid mi.type=none,vid,crd,vem "
        "--seeds 0,1,2 --jobs 2\n"
        "  vemkit sweep specs/quickstart.yaml --grid mi.type=none,vem --grid mi.weight=0.05,0.1 "
        "--set train.iterations=50 --dry-run\n"
        "  vemkit sweep specs/quickstart.yaml --arm none mi.type=none --arm vem mi.type=vem "
        "--arm vem-t1 mi.type=vem mi.sampler.noise_std=auto --metrics psnr,ssim,fid "
        "--eval-items 256\n"
        "  vemkit sweep specs/my_recipe.yaml --grid mi.type=none,vem --seeds 0,1,2 "
        "--from runs/shared:prune\n",
        func=run,
    )
    parser.add_argument("spec", metavar="SPEC", help="spec file every cell starts from")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="an axis: one arm per value (YAML-typed; commas inside [] or {} do not split); "
        "repeatable, the axes multiply",
    )
    parser.add_argument(
        "--arm",
        action="append",
        nargs="+",
        default=[],
        metavar=("NAME", "KEY=V"),
        help="a named arm of several overrides, e.g. --arm vem-t1 mi.type=vem "
        "mi.sampler.noise_std=auto; the --arm entries form one axis; repeatable",
    )
    parser.add_argument(
        "--seeds", default="0,1,2", metavar="S1,S2", help="seeds of every arm (default 0,1,2)"
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=1, metavar="N", help="processes at a time (default 1)"
    )
    parser.add_argument(
        "--threads-per-job",
        type=positive_int,
        default=1,
        metavar="N",
        help="train.threads of every cell and OMP_NUM_THREADS of its process (default 1)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="sweep folder (default runs/sweeps/<spec name>)"
    )
    add_set_option(parser, help="override every cell's spec (before its arms); repeatable")
    parser.add_argument(
        "--baseline",
        metavar="ARM",
        help="reference arm of the paired statistics: an arm name (mi.type=none) or an "
        "override one arm applies (default: the arm that sets mi.type=none)",
    )
    parser.add_argument(
        "--metrics",
        metavar="LIST",
        help="metrics of the evaluation instead of each cell's eval.metrics: names "
        "(psnr,ssim,fid) or YAML ('[{type: fid, num_samples: 256}]')",
    )
    parser.add_argument(
        "--eval-items",
        type=positive_int,
        metavar="N",
        help="evaluate every cell on the first N items of data.eval (FID/KID from N samples); "
        "default: all of them",
    )
    parser.add_argument(
        "--from",
        dest="start_from",
        metavar="RUN_DIR:STAGE",
        help="a recipe: every cell takes the stages up to STAGE (a teacher, a pruning) from "
        "RUN_DIR and trains only the stages after it, so the seeds vary the distillation alone; "
        "RUN_DIR is trained first (vemkit run --until STAGE, the first seed) unless it has "
        "finished STAGE. No arm may change those stages",
    )
    parser.add_argument("--title", help="report title")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, write cells.json and commands.txt, print the cells and their state; "
        "run nothing",
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="train nothing (cells run elsewhere, e.g. a Slurm array): evaluate the finished "
        "cells and write the report; an unfinished cell is an error",
    )


def _command_line(args: argparse.Namespace) -> str:
    """The sweep's command as the report states it (rebuilt from the parsed options)."""
    words = ["vemkit", *(x for p in getattr(args, "plugin", []) or [] for x in ("-p", p))]
    words += ["sweep", args.spec, *(x for g in args.grid for x in ("--grid", g))]
    words += [x for a in args.arm for x in ("--arm", *a)]
    words += ["--seeds", args.seeds, "--jobs", str(args.jobs)]
    words += ["--threads-per-job", str(args.threads_per_job)]
    words += [x for o in args.overrides for x in ("--set", o)]
    for flag, value in (
        ("--out", args.out),
        ("--baseline", args.baseline),
        ("--metrics", args.metrics),
        ("--eval-items", args.eval_items),
        ("--from", args.start_from),
        ("--title", args.title),
    ):
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words) + (" --collect" if args.collect else "")


def run(args: argparse.Namespace) -> int:
    from vemkit import sweep as sweeps
    from vemkit.evaluate import parse_metrics

    axes = sweeps.build_axes(args.grid, args.arm)
    seeds = sweeps.parse_seeds(args.seeds)
    plan = sweeps.plan(
        args.spec,
        axes,
        seeds,
        out=args.out,
        overrides=args.overrides,
        threads=args.threads_per_job,
        metrics=parse_metrics(args.metrics) if args.metrics else None,
        eval_items=args.eval_items,
        baseline=args.baseline,
        plugins=getattr(args, "plugin", []) or [],
        start_from=args.start_from,
    )
    if args.dry_run:
        cells, commands = plan.write_plan()
        print(sweeps.describe(plan))
        print(f"wrote {cells}")
        print(f"wrote {commands}")
        if plan.shared is not None:
            print(f"wrote {plan.out / sweeps.SHARED_FILE} (run it before the cells)")
        return 0
    command = _command_line(args)
    result = sweeps.run_sweep(
        plan, jobs=args.jobs, collect=args.collect, title=args.title, command=command
    )
    from vemkit.sweep_report import paired_summary_lines

    for line in paired_summary_lines(plan, result["evaluations"]):
        print(line)
    for key in ("md", "html", "json"):
        print(f"wrote {result['report'][key]}")
    return 0
