"""``vemkit schema``: the JSON Schema of the spec."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vemkit.commands._common import add_command
from vemkit.fileio import write_text_atomic


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "schema",
        help="print the JSON Schema of the spec (or update/check schemas/spec.schema.json)",
        description="Print the JSON Schema (draft 2020-12) of the spec with the loaded plugins. "
        "--write and --check use the built-in plugin only, the content of the checked-in file.",
        examples="  vemkit schema > my.schema.json\n"
        "  vemkit schema --write      # after changing an options model\n"
        "  vemkit schema --check      # CI: exit 1 when schemas/spec.schema.json is stale\n",
        func=run,
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="update the checked-in schema file")
    group.add_argument(
        "--check", action="store_true", help="exit 1 if the checked-in file is stale"
    )
    parser.add_argument(
        "--file",
        default=None,
        help="schema file for --write/--check (default: schemas/spec.schema.json)",
    )


def run(args: argparse.Namespace) -> int:
    from vemkit import registry
    from vemkit.schema import CHECKED_IN, builtin_registry, dumps, spec_schema

    if not (args.write or args.check):
        sys.stdout.write(dumps(spec_schema(registry.default())))
        return 0
    target = Path(args.file) if args.file else _repo_root() / CHECKED_IN
    text = dumps(spec_schema(builtin_registry()))
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != text:
            print(
                f"{target} is stale: the spec models changed. Run `vemkit schema --write` and "
                "commit the result.",
                file=sys.stderr,
            )
            return 1
        print(f"{target}: up to date")
        return 0
    write_text_atomic(target, text)
    print(f"wrote {target}")
    return 0


def _repo_root() -> Path:
    # The checked-in schema sits in the source tree (editable install); fall back to the cwd.
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()
