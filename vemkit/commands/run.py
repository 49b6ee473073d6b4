"""``vemkit run SPEC``: train a student as the spec says."""

from __future__ import annotations

import argparse
from typing import Any

from vemkit.commands._common import add_command, add_set_option


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "run",
        help="train: compile the spec and run the energy/student/teacher loop",
        description="Validate and compile the spec, then train. Writes the run directory "
        "(resolved spec, metrics.jsonl, checkpoints, sample grids). --resume continues a killed "
        "run exactly (a recipe continues inside the interrupted stage); it refuses a run directory "
        "that holds a different spec.",
        examples="  vemkit run specs/quickstart.yaml\n"
        "  vemkit run specs/quickstart.yaml --set train.iterations=50 --set output.dir=runs/try\n"
        "  vemkit run --resume runs/quickstart\n"
        "  vemkit run specs/my_recipe.yaml --from runs/first:supernet "
        "--set method.stages.search.budget=2.5e9\n"
        "  torchrun --nproc_per_node 2 -m vemkit run specs/quickstart.yaml\n",
        func=run,
    )
    parser.add_argument("spec", nargs="?", metavar="SPEC", help="spec file")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument(
        "--from",
        dest="start_from",
        metavar="RUN_DIR:STAGE",
        help="a recipe: take the finished stages up to STAGE from an earlier run (their "
        "settings must be the same) and run only the stages after it",
    )
    add_set_option(parser)


def run(args: argparse.Namespace) -> int:
    from vemkit.engine.run import run_command

    return run_command(args)
