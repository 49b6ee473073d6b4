"""``vemkit report``: write report.html/report.md for one or more run directories."""

from __future__ import annotations

import argparse
from typing import Any

from vemkit.commands._common import add_command
from vemkit.errors import VemkitError


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "report",
        help="write report.html/report.md for one or more run directories",
        description="write report.html/report.md for one or more run directories.",
        examples="  vemkit report runs/quickstart\n",
        func=run,
    )
    parser.add_argument("targets", nargs="+", metavar="SPEC_OR_RUN_DIR")


def run(args: argparse.Namespace) -> int:
    raise VemkitError("'vemkit report' is not available in this version yet")
