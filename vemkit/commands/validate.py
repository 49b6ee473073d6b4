"""``vemkit validate SPEC...``: check specs without building anything."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vemkit.commands._common import add_command, add_set_option


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "validate",
        help="check one or more specs and report every problem with its place",
        description="Validate specs against the registered components. Every problem is printed "
        "as FILE:LINE:COL dotted.path: message; the exit code is 2 when any spec is invalid.",
        examples="  vemkit validate specs/quickstart.yaml\n"
        "  vemkit validate specs/paper/*.yaml --set train.iterations=10\n",
        func=run,
    )
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (.yaml or .json)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    add_set_option(parser)


def run(args: argparse.Namespace) -> int:
    from vemkit.spec import validate

    status = 0
    for path in args.specs:
        problems = validate(path, args.overrides)
        if problems:
            status = 2
            for problem in problems:
                print(problem, file=sys.stderr)
        elif not args.quiet:
            print(f"{path}: ok")
    return status
