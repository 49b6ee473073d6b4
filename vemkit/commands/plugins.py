"""``vemkit plugins``: what is loaded, from where, and what failed."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vemkit.commands._common import add_command


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "plugins",
        help="list plugins, their versions, their components by kind, and load failures",
        description="List every plugin vemkit tried to load (built-ins included), the "
        "distribution and version it comes from, the components it registered by kind, and "
        "the error of any plugin that failed to load.",
        examples="  vemkit plugins\n  vemkit plugins --json | jq '.components.arch'\n"
        "  VEMKIT_DISABLE_PLUGIN_AUTOLOAD=1 vemkit -p builtins plugins\n",
        func=run,
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from vemkit import registry

    reg = registry.default()
    plugins = [
        {
            "name": p.name,
            "module": p.module,
            "distribution": p.distribution,
            "version": p.version,
            "ok": p.ok,
            "error": p.error,
            "components": [f"{k}:{n}" for k, n in p.components],
        }
        for p in reg.plugins.values()
    ]
    if args.json:
        # A summary defaults to the options model's docstring: only --json imports them all.
        components = {
            kind: [
                {"name": c.name, "plugin": c.plugin, "summary": c.summary}
                for c in reg.components(kind)
            ]
            for kind in reg.kinds()
        }
        print(json.dumps({"plugins": plugins, "components": components}, indent=2))
        return 0
    print("plugins:")
    for p in plugins:
        origin = f"{p['distribution']} {p['version']}" if p["distribution"] else p["module"]
        state = "ok" if p["ok"] else f"FAILED: {p['error']}"
        print(f"  {p['name']:<16} {origin:<28} {state}")
    print("\ncomponents:")
    for kind in reg.kinds():
        names = ", ".join(reg.names(kind)) or "-"
        print(f"  {kind:<10} {names}")
    return 0
