"""``vemkit eval``: evaluate teacher and student with the spec's metrics."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vemkit.commands._common import add_command, add_set_option
from vemkit.errors import VemkitError


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub,
        "eval",
        help="evaluate teacher and student with the spec's metrics",
        description="Evaluate the teacher and the student of a run directory (weights of its "
        "last checkpoint by default) or of a spec file (weights from teacher.checkpoint and "
        "student.init) on data.eval with eval.metrics, and write eval.json: the scores, params "
        "and MACs (paper convention, ratios teacher/student) and a sample grid "
        "(input | teacher | student | target) beside it. The paper reports each run's best "
        "evaluation during training: use --checkpoint best for that.",
        examples="  vemkit eval runs/quickstart\n"
        "  vemkit eval runs/quickstart --checkpoint best --metrics psnr,ssim,fid\n"
        "  vemkit eval runs/quickstart --metrics '[{type: fid, num_samples: 200}]' "
        "--max-items 200\n"
        "  vemkit eval specs/quickstart.yaml --set student.init=student.safetensors "
        "--out eval-init.json\n",
        func=run,
    )
    parser.add_argument("target", metavar="SPEC_OR_RUN_DIR", help="a run directory or a spec")
    parser.add_argument(
        "--checkpoint",
        metavar="PATH|last|best",
        default=None,
        help="which checkpoint of a run: last (default), best (eval.best), a step folder "
        "name or a checkpoint folder path",
    )
    add_set_option(parser)
    parser.add_argument(
        "--metrics",
        metavar="LIST",
        help="metrics instead of the spec's eval.metrics: names (psnr,ssim) or YAML "
        "('[{type: fid, num_samples: 500}]')",
    )
    parser.add_argument(
        "--max-items", type=int, metavar="N", help="evaluate the first N eval items only"
    )
    parser.add_argument(
        "--batch-size", type=int, metavar="N", help="generation batch (default train.batch_size)"
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default=None,
        help="where to generate (default: the spec's train.device)",
    )
    parser.add_argument(
        "--latency",
        type=int,
        default=0,
        metavar="N",
        help="also time N batch-1 forwards of each network (median; default 0: no timing)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=8,
        metavar="N",
        help="items drawn into the sample grid beside eval.json (default 8; 0: none)",
    )
    parser.add_argument(
        "--no-teacher", action="store_true", help="evaluate the student only (no ratios)"
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="where to write eval.json (default RUN_DIR/eval.json; for a spec, in its output.dir)",
    )
    parser.add_argument("--json", action="store_true", help="print eval.json instead of a table")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.samples < 0:
        raise VemkitError("--samples must be 0 or more")
    if args.latency < 0:
        raise VemkitError("--latency must be 0 or more")
    import json

    from vemkit.evaluate import evaluate_target, parse_metrics
    from vemkit.report import eval_table

    metrics = parse_metrics(args.metrics) if args.metrics else None
    data, path = evaluate_target(
        args.target,
        overrides=args.overrides,
        checkpoint=args.checkpoint,
        out=args.out,
        metrics=metrics,
        max_items=args.max_items,
        batch_size=args.batch_size,
        device=args.device,
        teacher=not args.no_teacher,
        latency_runs=args.latency,
        samples=args.samples,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    where = f"checkpoint {data['checkpoint']} (step {data['step']})" if data["checkpoint"] else ""
    print(
        f"{data['spec']}: {data['items']} eval item(s) on {data['device']}"
        + (f", {where}" if where else "")
    )
    print(eval_table(data))
    for note in data["notes"]:
        print(f"note: {note}")
    print(f"wrote {path}")
    return 0
