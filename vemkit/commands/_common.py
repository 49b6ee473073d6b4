"""Arguments and helpers shared by commands."""

from __future__ import annotations

import argparse
import sys
from typing import Any

SET_HELP = (
    "override a spec value, e.g. --set train.iterations=100 --set mi.weight=0.2 "
    "(YAML-typed; lists and maps allowed); repeatable"
)


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts: argparse reports a bad one (exit code 2) before any
    command runs, so a dry run refuses it as a real run does."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_set_option(parser: argparse.ArgumentParser, help: str = SET_HELP) -> None:
    """``--set PATH=VALUE`` (repeatable) into ``args.overrides``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE", help=help
    )


def add_command(
    sub: Any, name: str, *, help: str, description: str, examples: str, func: Any
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=examples if examples.startswith("examples:") else "examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def load(path: str, overrides: list[str]) -> Any:
    """Load a spec or raise SpecError (printed by the CLI with every located problem)."""
    from vemkit.spec import load_spec

    return load_spec(path, overrides)


def err(message: str) -> None:
    print(message, file=sys.stderr)
