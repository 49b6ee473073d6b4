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
        "  vemkit run specs/my_recipe.yaml --until prune --set output.dir=runs/shared\n"
        "  vemkit run specs/my_recipe.yaml --from runs/shared:prune --reseed --set seed=1\n"
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
    parser.add_argument(
        "--reseed",
        action="store_true",
        help="with --from: the earlier run may have had another seed; its stages keep what "
        "they got from it, the stages after STAGE run with this spec's seed (e.g. seeds of the "
        "distillation alone on one shared teacher)",
    )
    parser.add_argument(
        "--until",
        metavar="STAGE",
        help="a recipe: stop once STAGE is finished; the stages after it stay pending "
        "(continue with --resume, or start other runs from it with --from RUN_DIR:STAGE)",
    )
    add_set_option(parser)


def run(args: argparse.Namespace) -> int:
    from vemkit.engine.run import run_command

    return run_command(args)
