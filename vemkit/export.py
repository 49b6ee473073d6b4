"""Export a trained student alone: ONNX, TorchScript or safetensors.

Every export is checked before it is kept: the written artefact is loaded back (onnxruntime,
or onnx's reference evaluator, for ONNX; ``torch.jit.load`` for TorchScript; a fresh module
for safetensors), run on the same batch-1 input, and its output compared with PyTorch's; the
largest absolute difference is reported, and an artefact off by more than ``atol`` is not
written. Files are written to a temporary name beside the target and renamed into place.

Where the student comes from (:func:`load_student`):

* a **run directory** as the engine writes it::

      RUN_DIR/spec.resolved.yaml                       the resolved spec of the run
      RUN_DIR/checkpoints/last/student.safetensors     the student's latest weights

* a **student .safetensors file** plus the spec (or an ``arch`` config) that builds its network.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from vemkit.errors import VemkitError
from vemkit.fileio import atomic_path

Format = Literal["onnx", "torchscript", "safetensors"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "safetensors")
EXTENSIONS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "safetensors": ".safetensors"}

RUN_SPEC = "spec.resolved.yaml"
RUN_STUDENT = Path("checkpoints") / "last" / "student.safetensors"
DEFAULT_ATOL = 1e-4


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_module` wrote and how well the artefact reproduces PyTorch."""

    path: Path
    format: str
    input_shape: tuple[int, ...]
    """Shape of the example input, batch included."""
    max_abs_diff: float | None
    """Largest |exported - PyTorch| over the example output; None when nothing could run it."""
    verified_with: str
    bytes: int


@dataclass
class Student:
    """A student network ready to export, and where it came from."""

    module: nn.Module
    input_shape: tuple[int, ...]
    """Input shape without batch, e.g. ``(3, 256, 256)``."""
    arch: dict[str, Any]
    """The arch config that builds it (``{type: ..., ...}``), stored in safetensors metadata."""
    weights: Path


# -- loading --------------------------------------------------------------------------------
def _arch_config(arch: Any) -> dict[str, Any]:
    if isinstance(arch, Mapping):
        return dict(arch)
    return arch.model_dump(mode="json")


def load_weights(module: nn.Module, path: Path) -> None:
    """Load a safetensors state dict into ``module``; mismatches name the file and the keys."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise VemkitError(f"{path}: no such weights file")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise VemkitError(f"{path}: not a readable safetensors file ({exc})") from None
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys ({_some(missing)})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys ({_some(unexpected)})")
    if wrong:
        problems.append(f"{len(wrong)} shapes differ, file vs arch ({_some(wrong)})")
    if problems:
        raise VemkitError(f"{path}: weights do not fit the student's arch: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


def _some(keys: Sequence[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def load_student(
    source: str | Path,
    *,
    spec: str | Path | None = None,
    arch: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    overrides: Iterable[str] = (),
) -> Student:
    """The student of a run directory, or of a ``.safetensors`` file with ``spec`` or ``arch``.

    ``input_shape`` (without batch) overrides the one derived from the spec
    (``data.train.size`` and the arch's input channels; 3x256x256 without a spec).
    """
    from vemkit import registry
    from vemkit.engine.recipe import final_stage_dir, is_recipe_dir
    from vemkit.profile import spec_input_shape

    source = Path(source)
    if is_recipe_dir(source):
        # A recipe exports its last stage's student, built from the architecture it recorded.
        source = final_stage_dir(source)
    if source.is_dir():
        spec_path = source / RUN_SPEC
        weights = source / RUN_STUDENT
        if not spec_path.is_file():
            raise VemkitError(
                f"{source}: not a run directory (no {RUN_SPEC}); give a run directory or a "
                "student .safetensors file with --spec"
            )
        if spec is not None or arch is not None:
            raise VemkitError(f"{source}: a run directory carries its spec; drop --spec/--arch")
        spec = spec_path
    elif source.suffix == ".safetensors":
        weights = source
        if (spec is None) == (arch is None):
            raise VemkitError(
                f"{source}: a weights file needs the spec (--spec SPEC) or the arch (--arch) "
                "that builds the student"
            )
    elif not source.exists():
        raise VemkitError(f"{source}: no such run directory or file")
    else:
        raise VemkitError(f"{source}: expected a run directory or a .safetensors file")

    if spec is not None:
        from vemkit.spec import load_spec

        loaded = load_spec(spec, overrides)
        config = _arch_config(loaded.student.arch)
        shape = tuple(input_shape) if input_shape else spec_input_shape(loaded)
        module = registry.build("arch", loaded.student.arch)
    else:
        assert arch is not None
        from pydantic import ValidationError

        config = dict(arch)
        shape = tuple(input_shape) if input_shape else (3, 256, 256)
        try:
            module = registry.build("arch", config)
        except ValidationError as exc:
            raise VemkitError(
                "\n".join(f"arch.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            ) from None
    load_weights(module, weights)
    return Student(module=module.eval(), input_shape=shape, arch=config, weights=weights)


# -- writing -------------------------------------------------------------------------------
def default_output(source: str | Path, fmt: str) -> Path:
    """``RUN_DIR/export/student.<ext>``, or ``<dir>/export/<stem>.<ext>`` beside a weights file."""
    source = Path(source)
    if source.is_dir():
        return source / "export" / f"student{EXTENSIONS[fmt]}"
    return source.parent / "export" / f"{source.stem}{EXTENSIONS[fmt]}"


_atomic_target = atomic_path


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise VemkitError(f"the student returns {type(out).__name__}, not a tensor: cannot export")


def _max_diff(a: Any, b: Any) -> float:
    ta = torch.as_tensor(a, dtype=torch.float32)
    tb = torch.as_tensor(b, dtype=torch.float32)
    if ta.shape != tb.shape:
        raise VemkitError(
            f"exported output has shape {tuple(ta.shape)}, PyTorch's {tuple(tb.shape)}"
        )
    return float((ta - tb).abs().max())


def _export_onnx(
    module: nn.Module, example: torch.Tensor, tmp: Path, dynamic_batch: bool
) -> tuple[float | None, str]:
    try:
        import onnx
    except ImportError:
        raise VemkitError(
            "ONNX export needs the packages onnx and onnxscript: pip install onnx onnxscript "
            "(and onnxruntime to verify the export)"
        ) from None
    dynamic = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    try:
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            dynamo=True,
            external_data=False,
            verbose=False,
            dynamic_shapes=dynamic,
        )
    except ImportError as exc:
        raise VemkitError(f"ONNX export needs {exc.name or exc}: pip install onnxscript") from None
    model = onnx.load(str(tmp))
    onnx.checker.check_model(model)
    feed = example.numpy()
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        out = session.run(None, {session.get_inputs()[0].name: feed})[0]
        how = f"onnxruntime {ort.__version__}"
    else:
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(model)
        out = evaluator.run(None, {model.graph.input[0].name: feed})[0]
        how = f"onnx.reference (onnx {onnx.__version__})"
    return _max_diff(out, _first_tensor(module(example))), how


def _export_torchscript(
    module: nn.Module, example: torch.Tensor, tmp: Path
) -> tuple[float | None, str]:
    with warnings.catch_warnings():
        # torch 2.14 marks jit.trace deprecated; TorchScript remains what C++/mobile runtimes load.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        traced = torch.jit.trace(module, (example,), check_trace=False)
        torch.jit.save(traced, str(tmp))
        loaded = torch.jit.load(str(tmp), map_location="cpu")
    diff = _max_diff(_first_tensor(loaded(example)), _first_tensor(module(example)))
    return diff, "torch.jit.load"


def _export_safetensors(
    module: nn.Module, example: torch.Tensor, tmp: Path, metadata: Mapping[str, str]
) -> tuple[float | None, str]:
    from safetensors.torch import save_file

    # Clone: safetensors refuses tensors sharing storage, and a state dict may hold views.
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    save_file(state, str(tmp), metadata=dict(metadata))
    fresh = copy.deepcopy(module)
    load_weights(fresh, tmp)
    fresh.eval()
    return _max_diff(_first_tensor(fresh(example)), _first_tensor(module(example))), (
        "safetensors reload"
    )


def export_module(
    module: nn.Module,
    input_shape: Sequence[int],
    fmt: str,
    out: str | Path,
    *,
    atol: float = DEFAULT_ATOL,
    metadata: Mapping[str, Any] | None = None,
    dynamic_batch: bool = True,
) -> ExportResult:
    """Export ``module`` (eval mode, CPU, fp32) for inputs of ``input_shape`` (no batch dim).

    ``fmt`` is ``onnx`` (dynamo exporter, batch dimension dynamic unless ``dynamic_batch`` is
    False), ``torchscript`` (traced) or ``safetensors`` (weights plus ``metadata`` as JSON
    strings, e.g. the arch config). Raises :class:`VemkitError`, writing nothing, when the
    reloaded artefact's output differs from PyTorch's by more than ``atol``.
    """
    if fmt not in FORMATS:
        raise VemkitError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)
    module = module.cpu().eval()
    gen = torch.Generator().manual_seed(0)
    example = torch.randn((1, *input_shape), generator=gen).clamp_(-1, 1)
    meta = {
        "format": "pt",
        "vemkit.input_shape": "x".join(str(d) for d in input_shape),
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()},
    }
    with torch.no_grad(), _atomic_target(out) as tmp:
        if fmt == "onnx":
            diff, how = _export_onnx(module, example, tmp, dynamic_batch)
        elif fmt == "torchscript":
            diff, how = _export_torchscript(module, example, tmp)
        else:
            diff, how = _export_safetensors(module, example, tmp, meta)
        if diff is not None and not diff <= atol:
            raise VemkitError(
                f"{out}: the exported {fmt} model differs from PyTorch by {diff:.3g} "
                f"(> atol {atol:g}); nothing written"
            )
        size = tmp.stat().st_size
    return ExportResult(
        path=out,
        format=fmt,
        input_shape=tuple(example.shape),
        max_abs_diff=diff,
        verified_with=how,
        bytes=size,
    )
