"""``vemkit eval``: evaluate teacher and student with the spec's metrics."""

from __future__ import annotations

import argparse
from typing import Any

from vemkit.commands._common import add_command
from vemkit.errors import VemkitError


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "eval",
        help="evaluate teacher and student with the spec's metrics",
        description="Evaluate teacher and student of a spec or run directory with its metrics.",
        examples="  vemkit eval runs/quickstart\n",
        func=run,
    )
    parser.add_argument("targets", nargs="+", metavar="SPEC_OR_RUN_DIR")


def run(args: argparse.Namespace) -> int:
    raise VemkitError("'vemkit eval' is not available in this version yet")
