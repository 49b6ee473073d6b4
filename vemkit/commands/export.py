"""``vemkit export``: write the trained student alone as ONNX, TorchScript or safetensors.

The source is a run directory (``RUN_DIR/spec.resolved.yaml`` +
``RUN_DIR/checkpoints/last/student.safetensors``, the layout the engine writes) or a student
``.safetensors`` file with ``--spec`` (or ``--arch``) to build its network. The exported file is
loaded back and run; its output must match PyTorch's within ``--atol``.
"""

from __future__ import annotations

import argparse
from typing import Any

from vemkit.commands._common import add_command
from vemkit.errors import VemkitError

EPILOG = """\
examples:
  vemkit export runs/edges2shoes-omgd-vem --format onnx
  vemkit export runs/edges2shoes-omgd-vem --format torchscript --out student.pt
  vemkit export student.safetensors --spec specs/quickstart.yaml --format onnx
  vemkit export student.safetensors --arch '{type: unet, ngf: 16}' --input 3x256x256 \\
      --format safetensors

default output: RUN_DIR/export/student.<ext>, or export/<name>.<ext> beside a weights file
(.onnx, .torchscript.pt, .safetensors). ONNX needs the packages onnx and onnxscript; it is
verified with onnxruntime when installed, else with onnx's reference evaluator.
"""


def add_parser(subparsers: Any) -> None:
    p = add_command(
        subparsers,
        "export",
        help="export the trained student as ONNX, TorchScript or safetensors",
        description=(__doc__ or "").splitlines()[0],
        examples=EPILOG,
        func=run,
    )
    p.add_argument(
        "source",
        metavar="RUN_DIR|CHECKPOINT",
        help="a run directory, or a student .safetensors file (with --spec/--arch)",
    )
    p.add_argument(
        "--format",
        required=True,
        choices=("onnx", "torchscript", "safetensors"),
        help="artefact to write",
    )
    p.add_argument("--out", metavar="PATH", help="output file (default: see below)")
    p.add_argument("--spec", metavar="SPEC", help="spec that builds the student of a weights file")
    p.add_argument(
        "--arch",
        metavar="YAML",
        help="the student's arch instead of a spec, e.g. '{type: unet, ngf: 16}'",
    )
    p.add_argument(
        "--input",
        metavar="CxHxW",
        help="input shape without batch (default: from the spec, else 3x256x256)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="a.b=c",
        dest="overrides",
        help="override a value of the spec (YAML-typed); repeatable",
    )
    p.add_argument(
        "--atol",
        type=float,
        default=None,
        metavar="X",
        help="largest |exported - PyTorch| accepted (default 1e-4)",
    )
    p.add_argument(
        "--static-batch",
        action="store_true",
        help="ONNX: fix the batch dimension to 1 instead of leaving it dynamic",
    )


def run(args: argparse.Namespace) -> int:
    from vemkit.commands.profile import parse_arch, parse_shape

    arch = parse_arch(args.arch) if args.arch else None
    shape = parse_shape(args.input) if args.input else None
    if args.overrides and args.spec is None and arch is not None:
        raise VemkitError("--set applies to a spec, not to --arch")

    from vemkit.export import DEFAULT_ATOL, default_output, export_module, load_student

    atol = DEFAULT_ATOL if args.atol is None else args.atol
    if not atol >= 0:
        raise VemkitError("--atol must be 0 or more")
    student = load_student(
        args.source, spec=args.spec, arch=arch, input_shape=shape, overrides=args.overrides
    )
    out = args.out or default_output(args.source, args.format)
    result = export_module(
        student.module,
        student.input_shape,
        args.format,
        out,
        atol=atol,
        metadata={"vemkit.arch": student.arch, "vemkit.source": str(student.weights)},
        dynamic_batch=not args.static_batch,
    )
    diff = "n/a" if result.max_abs_diff is None else f"{result.max_abs_diff:.3g}"
    print(
        f"wrote {result.path} ({result.format}, {result.bytes / 1e6:.2f} MB, input "
        f"{'x'.join(str(d) for d in result.input_shape)}); verified with "
        f"{result.verified_with}: max |exported - PyTorch| = {diff}"
    )
    return 0
