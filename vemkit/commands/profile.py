"""``vemkit profile``: params, MACs (convention named) and CPU latency of a spec's networks.

For a spec: the teacher and the student (ratios teacher/student as the papers print them,
``1.22G (15.3x)``), plus the discriminators of the method and the energy net of the MI term
when the spec has them. For one architecture: ``--arch '{type: unet, ngf: 16}'``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vemkit.commands._common import add_command
from vemkit.errors import VemkitError

EPILOG = """\
examples:
  vemkit profile specs/quickstart.yaml
  vemkit profile specs/paper/edges2shoes-omgd-vem.yaml --macs-convention exact --json
  vemkit profile specs/quickstart.yaml --set student.arch.ngf=8 --no-latency
  vemkit profile --arch '{type: unet, ngf: 16}' --input 3x256x256 --compile

MAC conventions: 'paper' (default) is torchprofile's rule the GAN-compression tables use
(transposed convolutions counted at their output resolution); 'exact' is the true count
(torch FlopCounterMode FLOPs / 2); 'thop_legacy' is GCC's old-thop figure, which never counted
spectral-normalised layers (the SAGAN row's 23.45M). An architecture may add counts of its own
papers' rule beside them (StyleGAN2: 'cagc_analytic', CAGC's analytic count of the modulated
3x3 convs and toRGB 1x1). Latency: batch 1, eval, inference_mode, median of N runs.
"""


def add_parser(subparsers: Any) -> None:
    p = add_command(
        subparsers,
        "profile",
        help="params, MACs and latency of a spec's networks or of one architecture",
        description=(__doc__ or "").splitlines()[0],
        examples=EPILOG,
        func=run,
    )
    p.add_argument(
        "spec",
        nargs="?",
        metavar="SPEC_OR_RUN_DIR",
        help="spec file (YAML or JSON), or a run directory (a recipe's: the networks of its "
        "last stage, e.g. the pruned student)",
    )
    p.add_argument(
        "--arch",
        metavar="YAML",
        help="profile one architecture instead of a spec, e.g. '{type: unet, ngf: 16}'",
    )
    p.add_argument(
        "--input",
        action="append",
        metavar="CxHxW",
        help="input shape without batch (with --arch; default 3x256x256, or the latent of an "
        "unconditional generator); repeat for a network of several inputs",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="a.b=c",
        dest="overrides",
        help="override a spec value (YAML-typed); repeatable",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--macs-convention",
        choices=("paper", "exact", "thop_legacy"),
        default="paper",
        help="MAC counting rule shown in the table (JSON also carries paper and exact)",
    )
    p.add_argument(
        "--latency-runs",
        type=int,
        default=10,
        metavar="N",
        help="timed forward passes per network (default 10)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=2,
        metavar="N",
        help="untimed forward passes before timing (default 2)",
    )
    p.add_argument("--no-latency", action="store_true", help="count only, do not time")
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time the torch.compile'd forward (falls back with a note)",
    )
    p.add_argument(
        "--device", default="cpu", choices=("cpu", "cuda"), help="device for latency (default cpu)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch intra-op threads for latency (default: torch's choice)",
    )


def run_spec_file(path: Path) -> Path:
    """The spec file of ``path``: itself, a run directory's resolved spec, or for a recipe the
    resolved spec of its last stage holding weights (with the architectures it recorded)."""
    from vemkit.engine.recipe import final_stage_dir, is_recipe_dir

    if is_recipe_dir(path):
        path = final_stage_dir(path)
    if path.is_dir():
        resolved = path / "spec.resolved.yaml"
        if not resolved.is_file():
            raise VemkitError(f"{path}: not a run directory (no spec.resolved.yaml)")
        return resolved
    return path


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3x256x256" -> (3, 256, 256)``."""
    try:
        dims = tuple(int(d) for d in text.lower().replace("×", "x").split("x"))
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise VemkitError(f"--input: expected a shape like 3x256x256, got {text!r}")
    return dims


def parse_arch(text: str) -> dict[str, Any]:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise VemkitError(f"--arch: not valid YAML: {exc}") from None
    if not isinstance(value, dict) or "type" not in value:
        raise VemkitError(f"--arch: expected {{type: <arch>, ...options}}, got {text!r}")
    return value


def build_arch(config: Any, where: str) -> Any:
    """Build an ``arch`` through the process-wide registry; errors name ``where``."""
    from pydantic import ValidationError

    from vemkit import registry

    try:
        return registry.build("arch", config)
    except ValidationError as exc:
        lines = [
            f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]
        raise VemkitError("\n".join(lines)) from None
    except VemkitError as exc:
        raise VemkitError(f"{where}: {exc}") from None


# -- what to profile ----------------------------------------------------------------------
def _discriminators(spec: Any) -> list[tuple[str, Any]]:
    """``(dotted path, arch options)`` of the method's discriminator fields, if any."""
    from vemkit import registry

    method = getattr(spec, "method", None)
    found: list[tuple[str, Any]] = []
    if method is None:
        return found
    arch_names = set(registry.names("arch"))
    for name in type(method).model_fields:
        if "discriminator" not in name:
            continue
        value = getattr(method, name)
        items = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(items):
            if getattr(item, "type", None) in arch_names:
                path = f"method.{name}" + (f".{i}" if len(items) > 1 else "")
                found.append((path, item))
    return found


def generator_input_shape(module: Any, image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Unconditional generators (an integer ``z_dim`` attribute) take a latent, others images."""
    z_dim = getattr(module, "z_dim", None)
    return (z_dim,) if isinstance(z_dim, int) else image_shape


def spec_modules(spec: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The networks of ``spec`` to profile, each ``{name, module, shape, arch, generator}``.

    Teacher and student always; discriminators (fields named ``*discriminator*`` of the method
    whose value is a registered arch) and the MI term's energy net when present. The energy net
    is profiled per (t, s) pair at the student's output shape. Returns (modules, notes).
    """
    from vemkit import registry
    from vemkit.profile import arch_channels, example_inputs, output_shapes, spec_input_shape

    t_arch, s_arch = spec.teacher.arch, spec.student.arch
    shape = spec_input_shape(spec)
    in_ch = shape[0]
    teacher = build_arch(t_arch, "teacher.arch")
    student = build_arch(s_arch, "student.arch")
    t_shape, s_shape = generator_input_shape(teacher, shape), generator_input_shape(student, shape)
    out_shape = output_shapes(student, example_inputs(s_shape))[0][1:]
    items = [
        dict(name="teacher", module=teacher, shape=t_shape, arch=t_arch.type, generator=True),
        dict(name="student", module=student, shape=s_shape, arch=s_arch.type, generator=True),
    ]
    notes: list[str] = []
    paired = getattr(spec, "task", "paired") == "paired"
    for path, d_arch in _discriminators(spec):
        # A pix2pix D sees concat(input, output); a CycleGAN / unconditional D the output only.
        default = in_ch + out_shape[0] if paired else out_shape[0]
        d_shape = (arch_channels(d_arch, default=default), *out_shape[1:])
        try:
            module = build_arch(d_arch, path)
        except VemkitError as exc:
            notes.append(f"{path}: not profiled: {exc}")
            continue
        items.append(
            dict(name=path, module=module, shape=d_shape, arch=d_arch.type, generator=False)
        )
    energy = getattr(getattr(spec, "mi", None), "energy", None)
    if getattr(energy, "type", None) is not None:
        try:
            module = registry.build("energy", energy)
        except Exception as exc:  # a plugin's factory may fail any way; report, keep the table
            notes.append(f"mi.energy: not profiled: {type(exc).__name__}: {exc}")
        else:
            items.append(
                dict(
                    name="mi.energy",
                    module=module,
                    shape=[out_shape, out_shape],
                    arch=energy.type,
                    generator=False,
                )
            )
    return items, notes


# -- the command --------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    if bool(args.spec) == bool(args.arch):
        raise VemkitError("profile: give a SPEC file or --arch '{type: ...}' (one of them)")
    if args.latency_runs < 1 and not args.no_latency:
        raise VemkitError("--latency-runs must be at least 1 (or use --no-latency)")
    if args.warmup < 0:
        raise VemkitError("--warmup must be 0 or more")

    import torch

    from vemkit.profile import format_table, profile_module, table_data

    if args.threads is not None:
        if args.threads < 1:
            raise VemkitError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise VemkitError("--device cuda: no CUDA device is available")

    notes: list[str] = []
    if args.arch:
        if args.overrides:
            raise VemkitError("--set applies to a SPEC, not to --arch")
        config = parse_arch(args.arch)
        module = build_arch(config, "--arch")
        if args.input:
            shapes = [parse_shape(s) for s in args.input]
        else:  # an unconditional generator takes its latent, anything else a 256 px image
            shapes = [generator_input_shape(module, (3, 256, 256))]
        items = [
            dict(
                name=str(config["type"]),
                module=module,
                shape=shapes[0] if len(shapes) == 1 else shapes,
                arch=str(config["type"]),
                generator=True,
            )
        ]
    else:
        if args.input:
            raise VemkitError("--input applies to --arch; a spec's size comes from data.train")
        from vemkit.spec import load_spec

        spec = load_spec(run_spec_file(Path(args.spec)), args.overrides)
        items, notes = spec_modules(spec)

    runs = 0 if args.no_latency else args.latency_runs
    rows = []
    for item in items:
        row = profile_module(
            item["name"],
            item["module"],
            item["shape"],
            convention=args.macs_convention,
            latency_runs=runs,
            warmup=args.warmup,
            compiled=args.compile,
            device=args.device,
            arch=item["arch"],
            generator=item["generator"],
        )
        rows.append(row)
        del item["module"]  # free the teacher before timing the next one

    if args.json:
        payload = {
            "convention": args.macs_convention,
            "device": args.device,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "rows": table_data(rows),
            "notes": notes,
        }
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(rows))
        for note in notes:
            print(note)
        if runs:
            print(
                f"latency: batch 1, {args.device}, {torch.get_num_threads()} threads, "
                f"median of {runs} runs after {args.warmup} warm-up"
            )
    return 0
