"""``vemkit plan SPEC``: what a run of the spec will build and do."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vemkit.commands._common import add_command, add_set_option, load


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "plan",
        help="show the compiled program: modules, phases, loss terms, optimizers",
        description="Validate the spec and print what a run builds: the modules with their "
        "components, the phases of one iteration with their weighted loss terms, and the "
        "optimizers and schedules. --format mermaid emits a graph for Markdown viewers.",
        examples="  vemkit plan specs/quickstart.yaml\n"
        "  vemkit plan specs/quickstart.yaml --format json\n"
        "  vemkit plan specs/quickstart.yaml --format mermaid > plan.mmd\n",
        func=run,
    )
    parser.add_argument("spec", metavar="SPEC")
    parser.add_argument("--format", choices=("text", "json", "mermaid"), default="text")
    add_set_option(parser)


def run(args: argparse.Namespace) -> int:
    from vemkit.plan import plan_of, render

    spec = load(args.spec, args.overrides)
    plan = plan_of(spec)
    if args.format == "json":
        print(json.dumps(plan, indent=2))
    else:
        print(render(plan, args.format))
    return 0
