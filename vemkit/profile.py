"""Parameters, MACs and latency of a module, with the MAC convention named.

Two conventions, both counted by one dispatch-level counter (torch's ``FlopCounterMode``, which
sees every ``aten`` convolution and matrix product a forward runs, whether it comes from an
``nn.Conv2d``, a parametrised layer such as ``spectral_norm``, a wrapper that calls an inner
``forward`` directly, or a functional ``F.conv2d`` / attention ``bmm``):

``paper``
    The rule of torchprofile, which GAN-compression papers report (reference/baselines.md §0):
    every convolution costs ``prod(output shape) * C_in/groups * k^2``; a transposed
    convolution is therefore counted at its *output* resolution, ``stride^2`` times its true
    cost. Linear layers and matrix products cost ``prod(output) * K``. Norms, activations and
    element-wise ops are ignored. (torchprofile also charges one MAC per output element of an
    eval-mode BatchNorm: +0.003G on the pix2pix U-Net, 18.143G against our 18.140G; both print
    as the tables' 18.14G.)
``exact``
    True multiply-accumulates: ``FlopCounterMode`` FLOPs / 2 (transposed convolutions counted
    at their input resolution, biases free).
``thop_legacy``
    What thop ≤ 0.0.31 printed for GCC's networks (the SAGAN row: 23.45M at ngf 64, 15.62M at
    ngf 48; reference/baselines.md §0), counted with forward hooks as thop did: conv and
    transposed conv = ``out.numel() * (C_in/groups * k^2 + [bias])`` (output-based), Linear =
    ``in_features * out.numel()``, eval BatchNorm = ``2 * in.numel()``, everything else 0 —
    and a layer wrapped in spectral norm (a parametrised weight, or an old-style
    ``weight_orig`` hook) counts 0, because GCC's wrapper called the inner ``forward`` directly
    and thop's hooks never saw it. Only for reproducing that row; it is not a cost.

Counting runs on the meta device (no memory for activations, no arithmetic), in eval mode,
under ``no_grad``; a module that cannot run on meta is counted with real zeros instead.

**Named conventions of an architecture.** Some papers count their network analytically (CAGC
counts StyleGAN2's modulated 3×3 convs and toRGB 1×1 only). A module that defines
``named_macs() -> {name: MACs}`` reports such counts itself; :func:`profile_module` records them
beside the two generic counts and the table prints one ``MACs (name)`` column per name. The core
does not know any of them: the architecture's code owns its paper's rule.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

Convention = Literal["paper", "exact", "thop_legacy"]
CONVENTIONS: tuple[str, ...] = ("paper", "exact", "thop_legacy")

Shape = tuple[int, ...]


# -- parameters --------------------------------------------------------------------------
def count_params(module: nn.Module) -> int:
    """All parameters of ``module`` (shared tensors counted once), as the papers report them."""
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


# -- MACs --------------------------------------------------------------------------------
def _paper_conv_flops(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    _bias: Any,
    _stride: Any,
    _padding: Any,
    _dilation: Any,
    transposed: bool,
    *args: Any,
    out_shape: Sequence[int] | None = None,
    **kwargs: Any,
) -> int:
    """torchprofile's convolution rule, in FLOPs (= 2 MACs) for ``FlopCounterMode``."""
    assert out_shape is not None
    if transposed:
        # ConvTranspose weight: (C_in, C_out/groups, *k). Charged per *output* position.
        c_in, c_out_per_group, *kernel = w_shape
        groups = max(1, out_shape[1] // c_out_per_group)
        c_in_per_group = c_in // groups
    else:
        # Conv weight: (C_out, C_in/groups, *k).
        _, c_in_per_group, *kernel = w_shape
    return 2 * math.prod(out_shape) * c_in_per_group * math.prod(kernel)


def _flop_mapping(convention: str) -> dict[Any, Callable[..., int]]:
    if convention in ("exact", "thop_legacy"):
        return {}
    if convention == "paper":
        aten = torch.ops.aten
        ops = (
            aten.convolution,
            aten._convolution,
            aten.cudnn_convolution,
            aten.convolution_overrideable,
            aten._slow_conv2d_forward,
        )
        return {op: _paper_conv_flops for op in ops}
    raise ValueError(f"unknown MAC convention {convention!r}; use one of {', '.join(CONVENTIONS)}")


def _as_tuple(inputs: Any) -> tuple[Any, ...]:
    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs)
    raise TypeError(
        f"inputs must be a tensor or a sequence of tensors, got {type(inputs).__name__}"
    )


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's own flag afterwards."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in flags:
            m.training = training


@contextlib.contextmanager
def _keep_plain_tensor_attributes(module: nn.Module) -> Iterator[None]:
    # Old-style hooks (torch.nn.utils.spectral_norm, weight_norm) store the computed weight as a
    # plain attribute on every forward; a meta forward would leave a meta tensor behind.
    saved = [
        (m, name, value)
        for m in module.modules()
        for name, value in vars(m).items()
        if isinstance(value, torch.Tensor)
    ]
    try:
        yield
    finally:
        for m, name, value in saved:
            setattr(m, name, value)


def _run_on_meta(module: nn.Module, args: tuple[Any, ...]) -> Any:
    state = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    meta_state = {k: torch.empty_like(v, device="meta") for k, v in state.items()}
    meta_args = tuple(
        torch.empty_like(a, device="meta") if isinstance(a, torch.Tensor) else a for a in args
    )
    with _keep_plain_tensor_attributes(module):
        return torch.func.functional_call(module, meta_state, meta_args, tie_weights=True)


def _count_flops(
    module: nn.Module, args: tuple[Any, ...], mapping: Mapping[Any, Any], meta: bool
) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with eval_mode(module), torch.no_grad():
        counter = FlopCounterMode(display=False, custom_mapping=dict(mapping))
        with counter:
            if meta:
                _run_on_meta(module, args)
            else:
                module(*args)
    return int(counter.get_total_flops())


def thop_hidden(module: nn.Module) -> bool:
    """Whether old thop missed ``module``: its weight is wrapped in spectral norm (or any
    parametrization / old-style ``weight_orig`` hook), which GCC's wrapper hid from thop."""
    from torch.nn.utils import parametrize

    return parametrize.is_parametrized(module) or hasattr(module, "weight_orig")


def _thop_legacy_macs(module: nn.Module, args: tuple[Any, ...]) -> int:
    total = 0

    def conv_hook(m: nn.Module, _args: Any, out: torch.Tensor) -> None:
        nonlocal total
        k = math.prod(m.kernel_size)
        total += out.numel() * (m.in_channels // m.groups * k + (m.bias is not None))

    def linear_hook(m: nn.Module, _args: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += m.in_features * out.numel()

    def bn_hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], _out: Any) -> None:
        nonlocal total
        total += 2 * inputs[0].numel()

    handles = []
    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvNd) and not thop_hidden(m):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear) and not thop_hidden(m):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            handles.append(m.register_forward_hook(bn_hook))
    try:
        with eval_mode(module), torch.no_grad():
            try:
                _run_on_meta(module, args)
            except (NotImplementedError, RuntimeError):
                total = 0
                module(*(torch.zeros_like(a) if isinstance(a, torch.Tensor) else a for a in args))
    finally:
        for h in handles:
            h.remove()
    return total


def count_macs(module: nn.Module, inputs: Any, convention: str = "paper") -> int:
    """Multiply-accumulates of one forward of ``module`` on ``inputs`` (batch 1 by convention).

    ``inputs`` is a tensor or a tuple of positional tensors; only their shapes and dtypes
    matter. ``convention`` is ``"paper"`` (torchprofile's rule, what the tables print),
    ``"exact"`` (true MACs = FlopCounterMode FLOPs / 2) or ``"thop_legacy"`` (GCC's old-thop
    figure, spectral-norm layers uncounted); see the module docstring.
    """
    mapping = _flop_mapping(convention)
    args = _as_tuple(inputs)
    if convention == "thop_legacy":
        return _thop_legacy_macs(module, args)
    try:
        flops = _count_flops(module, args, mapping, meta=True)
    except (NotImplementedError, RuntimeError):
        # Data-dependent code (``.item()``, numpy) cannot run on meta: count with real zeros.
        real = tuple(torch.zeros_like(a) if isinstance(a, torch.Tensor) else a for a in args)
        flops = _count_flops(module, real, mapping, meta=False)
    return flops // 2


def output_shapes(module: nn.Module, inputs: Any) -> list[Shape]:
    """Shapes of the tensors a forward returns, computed on the meta device (no arithmetic)."""
    with eval_mode(module), torch.no_grad():
        out = _run_on_meta(module, _as_tuple(inputs))
    tensors = out if isinstance(out, (tuple, list)) else [out]
    return [tuple(t.shape) for t in tensors if isinstance(t, torch.Tensor)]


# -- latency -----------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    module: nn.Module,
    inputs: Any,
    runs: int = 10,
    warmup: int = 2,
    compiled: bool = False,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Median and 90th-percentile wall time of one forward (eval, ``inference_mode``).

    ``module`` is moved to ``device`` (in place) and timed on ``inputs`` moved there too, after
    ``warmup`` untimed calls. With ``compiled=True`` the forward goes through
    ``torch.compile``; when compiling is impossible here (no compiler, an unsupported op) the
    result says so in ``note`` and ``compiled`` is False, with no times. Returns
    ``{median_s, p90_s, runs, compiled, device, note}``.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    dev = torch.device(device)
    module.to(dev)
    args = tuple(a.to(dev) if isinstance(a, torch.Tensor) else a for a in _as_tuple(inputs))
    result: dict[str, Any] = {
        "median_s": None,
        "p90_s": None,
        "runs": 0,
        "compiled": compiled,
        "device": str(dev),
        "note": None,
    }
    with eval_mode(module), torch.inference_mode():
        fn: Callable[..., Any] = module
        if compiled:
            try:
                fn = torch.compile(module)
                fn(*args)  # compilation happens on the first call
            except Exception as exc:  # any backend failure means "not available here"
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                result.update(
                    compiled=False,
                    note=f"torch.compile unavailable: {type(exc).__name__}: {first}"[:300],
                )
                return result
        for _ in range(warmup):
            fn(*args)
        _sync(dev)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn(*args)
            _sync(dev)
            times.append(time.perf_counter() - start)
    times.sort()
    result.update(
        median_s=statistics.median(times),
        p90_s=times[min(len(times) - 1, math.ceil(0.9 * len(times)) - 1)],
        runs=runs,
    )
    return result


# -- formatting --------------------------------------------------------------------------
def format_macs(n: float) -> str:
    """``1219000000 -> "1.22G"``, as the papers print MACs."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}"
    return f"{n:.0f}"


def format_params(n: float) -> str:
    """``3404451 -> "3.40M"``, ``137347 -> "0.14M"``: millions, as the papers print them."""
    if abs(n) >= 1e4:
        return f"{n / 1e6:.2f}M"
    if abs(n) >= 1e3:
        return f"{n / 1e3:.2f}K"
    return f"{n:.0f}"


def format_ratio(reference: float, value: float) -> str:
    """Compression ratio original/compressed as the papers print it: ``"15.3x"``."""
    if not value:
        return "-"
    return f"{reference / value:.1f}x"


def with_ratio(text: str, reference: float, value: float) -> str:
    """``"1.22G (15.3x)"``."""
    return f"{text} ({format_ratio(reference, value)})"


def format_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1.0:
        return f"{s:.2f}s"
    return f"{s * 1e3:.1f}ms"


# -- what a spec's networks run on (small lookups the spec format may move) ----------------
DEFAULT_SIZE = 256
IN_CHANNELS = ("input_nc", "in_channels", "input_channels")


def spec_input_size(spec: Any) -> int:
    """Square image side the spec's networks run at: ``data.train.size``, else 256."""
    size = getattr(getattr(getattr(spec, "data", None), "train", None), "size", None)
    return int(size) if isinstance(size, int) and size > 0 else DEFAULT_SIZE


def arch_channels(arch: Any, names: Sequence[str] = IN_CHANNELS, default: int = 3) -> int:
    """The first of ``names`` that the ``arch`` options carry (``input_nc``, ...), else default.

    An arch that wraps another (``pruned``: its ``base``) answers with the wrapped one's.
    """
    for name in names:
        value = getattr(arch, name, None)
        if isinstance(value, int) and value > 0:
            return value
    base = getattr(arch, "base", None)
    if base is not None and base is not arch:
        return arch_channels(base, names, default)
    return default


def spec_input_shape(spec: Any) -> Shape:
    """The student's input shape without batch: ``(C, size, size)``."""
    size = spec_input_size(spec)
    return (arch_channels(spec.student.arch), size, size)


# -- rows and tables ---------------------------------------------------------------------
def _batched(input_shape: Sequence[int] | Sequence[Sequence[int]]) -> list[Shape]:
    """Per-input shapes without batch -> with batch 1; one shape or a list of shapes."""
    shapes = input_shape
    if shapes and all(isinstance(d, int) for d in shapes):
        shapes = [shapes]  # type: ignore[list-item]
    out = []
    for s in shapes:
        dims = tuple(int(d) for d in s)  # type: ignore[union-attr]
        if not dims or any(d <= 0 for d in dims):
            raise ValueError(f"invalid input shape {s!r}")
        out.append((1, *dims))
    return out


def example_inputs(
    input_shape: Sequence[int] | Sequence[Sequence[int]], device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, ...]:
    """Batch-1 random inputs for shapes given without the batch dimension (``(3, 256, 256)``)."""
    gen = torch.Generator().manual_seed(0)
    return tuple(
        torch.randn(s, generator=gen).mul_(0.5).clamp_(-1, 1).to(device)
        for s in _batched(input_shape)
    )


@dataclass
class ProfileRow:
    """Size and cost of one module at one input size."""

    name: str
    """Role in the spec (``teacher``, ``student``, ``energy``, ...) or the user's label."""
    params: int
    macs_paper: int
    macs_exact: int
    input_shapes: list[Shape]
    """Shapes of the forward's inputs, batch included."""
    convention: str = "paper"
    """Which MAC count :attr:`macs` and the table show."""
    macs_thop_legacy: int | None = None
    """GCC's old-thop count, computed only when ``convention`` is ``thop_legacy``."""
    arch: str | None = None
    generator: bool = True
    """Ratios against the teacher are printed for generators only."""
    latency: dict[str, Any] | None = None
    latency_compiled: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    macs_named: dict[str, int] = field(default_factory=dict)
    """The module's own named conventions (``named_macs()``), e.g. ``cagc_analytic``."""

    @property
    def macs(self) -> int:
        if self.convention == "thop_legacy" and self.macs_thop_legacy is not None:
            return self.macs_thop_legacy
        return self.macs_exact if self.convention == "exact" else self.macs_paper

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["macs"] = self.macs
        data["input_shapes"] = [list(s) for s in self.input_shapes]
        return data


def profile_module(
    name: str,
    module: nn.Module,
    input_shape: Sequence[int] | Sequence[Sequence[int]],
    *,
    convention: str = "paper",
    latency_runs: int = 0,
    warmup: int = 2,
    compiled: bool = False,
    device: str = "cpu",
    arch: str | None = None,
    generator: bool = True,
) -> ProfileRow:
    """Params, both MAC counts and (``latency_runs > 0``) eager/compiled latency of ``module``.

    ``input_shape`` has no batch dimension: ``(3, 256, 256)``, or a list of such shapes for a
    module of several inputs (an energy net ``E(t, s)``). Batch 1 throughout.
    """
    _flop_mapping(convention)  # reject an unknown convention before any work
    inputs = example_inputs(input_shape)
    row = ProfileRow(
        macs_named=named_macs(module, inputs),
        name=name,
        params=count_params(module),
        macs_paper=count_macs(module, inputs, "paper"),
        macs_exact=count_macs(module, inputs, "exact"),
        input_shapes=[tuple(t.shape) for t in inputs],
        convention=convention,
        arch=arch,
        generator=generator,
    )
    if convention == "thop_legacy":
        row.macs_thop_legacy = count_macs(module, inputs, "thop_legacy")
    if latency_runs > 0:
        row.latency = measure_latency(module, inputs, latency_runs, warmup, False, device)
        if compiled:
            row.latency_compiled = measure_latency(
                module, inputs, latency_runs, warmup, True, device
            )
            if row.latency_compiled["note"]:
                row.notes.append(f"{name}: {row.latency_compiled['note']}")
    return row


def named_macs(module: nn.Module, inputs: Sequence[torch.Tensor] = ()) -> dict[str, int]:
    """The architecture's own MAC conventions, ``module.named_macs()`` — or
    ``module.named_macs(*inputs)`` for a count that depends on the input size (CAT's) —, if it
    defines one."""
    import inspect

    method = getattr(module, "named_macs", None)
    if not callable(method):
        return {}
    takes_inputs = bool(inspect.signature(method).parameters)
    counts = method(*inputs) if takes_inputs else method()
    return {str(k): int(v) for k, v in dict(counts).items()}


def _median(lat: dict[str, Any] | None) -> float | None:
    return None if lat is None else lat.get("median_s")


def table_data(rows: Sequence[ProfileRow], reference: str = "teacher") -> list[dict[str, Any]]:
    """Rows as dicts with ratios (reference/row) for generators: MACs, params, speedups."""
    ref = next((r for r in rows if r.name == reference), None)
    out = []
    for row in rows:
        data = row.to_dict()
        if ref is not None and row.generator and ref.generator:
            data["macs_ratio"] = ref.macs / row.macs if row.macs else None
            data["params_ratio"] = ref.params / row.params if row.params else None
            for key, attr in (("speedup", "latency"), ("speedup_compiled", "latency_compiled")):
                mine, theirs = _median(getattr(row, attr)), _median(getattr(ref, attr))
                data[key] = theirs / mine if mine and theirs else None
        out.append(data)
    return out


def format_table(rows: Sequence[ProfileRow], reference: str = "teacher") -> str:
    """An aligned text table: MACs and params with the paper's ratios, latency and speedup."""
    ref = next((r for r in rows if r.name == reference), None)
    show_latency = any(r.latency for r in rows)
    show_compiled = any(r.latency_compiled and r.latency_compiled["median_s"] for r in rows)
    convention = rows[0].convention if rows else "paper"
    named = list(dict.fromkeys(name for r in rows for name in r.macs_named))
    header = ["module", "arch", f"MACs ({convention})", *(f"MACs ({n})" for n in named)]
    header += ["params", "input"]
    if show_latency:
        header += ["latency", "speedup"]
    if show_compiled:
        header += ["compiled", "speedup"]
    lines = [header]
    for row in rows:
        ratios = ref is not None and row.generator and ref.generator
        macs, params = format_macs(row.macs), format_params(row.params)
        if ratios:
            macs = with_ratio(macs, ref.macs, row.macs)
            params = with_ratio(params, ref.params, row.params)
        shape = ", ".join("x".join(str(d) for d in s[1:]) for s in row.input_shapes)
        extra = []
        for n in named:
            value = row.macs_named.get(n)
            text = "-" if value is None else format_macs(value)
            ref_value = ref.macs_named.get(n) if ratios else None
            if value and ref_value:
                text = with_ratio(text, ref_value, value)
            extra.append(text)
        cells = [row.name, row.arch or "-", macs, *extra, params, shape]
        for flag, attr in ((show_latency, "latency"), (show_compiled, "latency_compiled")):
            if not flag:
                continue
            mine = _median(getattr(row, attr))
            theirs = _median(getattr(ref, attr)) if ratios else None
            cells += [
                format_seconds(mine),
                f"{theirs / mine:.1f}x" if mine and theirs else "-",
            ]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for n, line in enumerate(lines):
        # Text columns left-aligned, numbers right-aligned.
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
        if n == 0:
            text.append("  ".join("-" * w for w in widths))
    notes = [note for row in rows for note in row.notes]
    return "\n".join(text + notes)
