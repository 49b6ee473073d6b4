"""Coupled channel groups ("channel spaces") derived from a network's module graph.

A :class:`ChannelSpace` is a set of channels that must be pruned together: a producer's output
channels (Conv weight dim 0, ConvTranspose weight dim 1, Linear dim 0, with their biases), the
norms that act on them, the depthwise convs and pass-through ops they flow through, every
tensor an element-wise op adds or multiplies them with (residuals merge both operands' spaces),
and the input channels of every consumer that reads them (Conv weight dim 1, ConvTranspose
weight dim 0, Linear dim 1). ``torch.cat`` along the channel axis makes a consumer's input a
sequence of *segments*, each its own space, at its own offset.

The graph is read with ``torch.fx`` (leaf modules are ``torch.nn`` layers) and every tensor's
shape is propagated once on the meta device (no memory, no arithmetic). The analysis is
conservative: a space that reaches the network's output, meets the network's input, passes an
op it does not understand (an unknown function, indexing, a reduction, softmax over its axis, a
reshape that splits or merges its axis, a grouped but not depthwise conv, a parametrization
other than spectral norm, an old-style weight hook) or a tensor of fixed width is marked
**unprunable**, with the reason. What it does understand beyond plain layers: reshapes that
keep the channel axis whole (``flatten(2)``, ``view(n, c, h, w)``), transposes/permutes, and
matrix products (the rows of ``A @ B`` keep ``A``'s spaces; a contracted axis couples both
operands' spaces), which is what makes SAGAN's self-attention prunable.
"""

from __future__ import annotations

import builtins
import difflib
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils import parametrize

from vemkit.errors import VemkitError
from vemkit.profile import thop_hidden

__all__ = [
    "ChannelGraph",
    "ChannelSpace",
    "Layer",
    "MatmulOp",
    "analyze",
    "channel_spaces",
    "check_widths",
    "trace_inputs",
]

TRACE_BATCH = 2
"""Batch size of the shape propagation: 2, so that a reshape that merges the batch with the
channel axis cannot be mistaken for one that keeps it (with a batch of 1 both look alike)."""

Layout = tuple[int, ...]
"""Channel layout of one tensor axis: the union-find nodes of its segments, in order."""


# -- public records -------------------------------------------------------------------------
@dataclass
class ChannelSpace:
    """One coupled group of channels: pruned together or not at all."""

    name: str
    """Stable name: the dotted path of the group's first producer in graph order."""
    size: int
    """Number of channels."""
    prunable: bool
    """False when any member forbids pruning (see ``reason``)."""
    reason: str | None = None
    """Why the space is unprunable (the first cause found), None when prunable."""
    producers: list[str] = field(default_factory=list)
    """Modules whose output channels are this space (conv, transposed conv, linear)."""
    norms: list[str] = field(default_factory=list)
    """Norm layers acting on it (the whole space, or a segment of a concatenation)."""
    depthwise: list[str] = field(default_factory=list)
    """Depthwise convs it flows through (their output space is their input space)."""
    consumers: list[str] = field(default_factory=list)
    """Modules that read it as (a segment of) their input channels."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Layer:
    """One parametrised layer the analysis resizes: how its channel axes map to spaces."""

    path: str
    kind: str
    """``conv``, ``conv_transpose``, ``linear`` or ``norm``."""
    module_type: type[nn.Module]
    depthwise: bool
    out_layout: Layout
    """Segments of the output channels (a producer: one node of its own)."""
    in_layout: Layout
    """Segments of the input channels (a norm or depthwise conv: the same as ``out_layout``)."""
    resizable: bool
    """False for layers whose channels may not change (grouped convs, unknown
    parametrizations): all their spaces are unprunable, and slicing leaves them alone."""
    calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    """(input shape, output shape) of every call during the trace, batch = :data:`TRACE_BATCH`."""
    kernel: int = 1
    """Kernel elements (k_h · k_w) of a conv; 1 otherwise."""
    groups: int = 1
    bias: bool = False
    c_in: int = 0
    """Full input channels (in_features of a linear, num_features of a norm)."""
    c_out: int = 0
    thop_hidden: bool = False
    """Weight wrapped in spectral norm (or another parametrization): old thop never saw it."""


@dataclass
class MatmulOp:
    """One matrix product ``A @ B``: its output shape and the layouts that scale its cost."""

    node: str
    out_shape: tuple[int, ...]
    out_layouts: dict[int, Layout]
    """Output axes that carry spaces."""
    k: int
    """Size of the contracted axis."""
    k_layout: Layout | None
    """The contracted axis's spaces (None: fixed)."""


# -- union-find of channel segments -----------------------------------------------------------
class _Nodes:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.reason: dict[int, str] = {}

    def new(self, size: int, reason: str | None = None) -> int:
        n = len(self.parent)
        self.parent.append(n)
        self.size.append(size)
        if reason is not None:
            self.reason[n] = reason
        return n

    def find(self, n: int) -> int:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def fix(self, n: int, reason: str) -> None:
        self.reason.setdefault(self.find(n), reason)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] != self.size[rb]:
            # Cannot happen in a network that runs; stay safe anyway.
            self.fix(ra, "coupled with a tensor of another width")
            self.fix(rb, "coupled with a tensor of another width")
            return
        # Keep the lower id as root: it was created first, i.e. earlier in graph order.
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        if rb in self.reason:
            self.reason.setdefault(ra, self.reason.pop(rb))

    def unify(self, a: Layout, b: Layout, why: str) -> None:
        """Couple two layouts of one axis segment by segment (or fix both if they differ)."""
        if len(a) == len(b) and all(
            self.size[self.find(x)] == self.size[self.find(y)] for x, y in zip(a, b, strict=True)
        ):
            for x, y in zip(a, b, strict=True):
                self.union(x, y)
            return
        for n in (*a, *b):
            self.fix(n, why)


# -- the traced graph -------------------------------------------------------------------------
@dataclass
class ChannelGraph:
    """What :func:`analyze` finds: spaces, the layers they resize, and what their MACs scale."""

    spaces: list[ChannelSpace]
    layers: dict[str, Layer]
    matmuls: list[MatmulOp]
    root_of: dict[int, str]
    """Union-find root of every node -> the name of its space (only nodes in a named space)."""
    nodes: _Nodes
    input_shapes: list[tuple[int, ...]]
    """Example input shapes without the batch."""
    batch: int = TRACE_BATCH

    def space(self, name: str) -> ChannelSpace:
        for s in self.spaces:
            if s.name == name:
                return s
        raise KeyError(name)

    def space_of(self, node: int) -> str | None:
        """Name of the space node ``node`` belongs to (None: a fixed segment with no producer)."""
        return self.root_of.get(self.nodes.find(node))

    def node_size(self, node: int) -> int:
        return self.nodes.size[self.nodes.find(node)]

    def full_widths(self) -> dict[str, int]:
        return {s.name: s.size for s in self.spaces}

    def prunable(self) -> list[ChannelSpace]:
        return [s for s in self.spaces if s.prunable]


# -- op tables ------------------------------------------------------------------------------------
_PASS_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.ReflectionPad1d,
    nn.ReflectionPad2d,
    nn.ReflectionPad3d,
    nn.ReplicationPad1d,
    nn.ReplicationPad2d,
    nn.ReplicationPad3d,
    nn.ZeroPad2d,
    nn.ConstantPad1d,
    nn.ConstantPad2d,
    nn.ConstantPad3d,
    nn.Upsample,
    nn.UpsamplingNearest2d,
    nn.UpsamplingBilinear2d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
"""Modules that act on every channel alike and keep the channel axis where it is."""

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
          nn.InstanceNorm3d)  # fmt: skip
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)

_PASS_FUNCS: set[Any] = {
    torch.relu, torch.relu_, F.relu, F.relu_, F.relu6, F.leaky_relu, F.leaky_relu_, F.elu,
    F.selu, F.gelu, F.silu, F.mish, F.hardtanh, F.hardswish, F.hardsigmoid, F.softplus,
    torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, torch.clamp, torch.clip, torch.neg,
    operator.neg, torch.abs, torch.exp, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d,
    F.interpolate, F.upsample, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d,
    F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d, F.adaptive_max_pool2d,
}  # fmt: skip
_PASS_METHODS = {
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clamp", "clamp_", "clip",
    "clip_", "neg", "neg_", "abs", "abs_", "exp", "contiguous", "float", "double", "half",
    "bfloat16", "detach", "clone", "type_as",
}  # fmt: skip
_BINARY = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.isub,
    operator.imul, operator.itruediv, torch.add, torch.sub, torch.mul, torch.div,
}  # fmt: skip
_BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
_RESHAPE_FUNCS = {torch.flatten, torch.reshape, torch.unsqueeze, torch.squeeze}
_RESHAPE_METHODS = {"view", "reshape", "flatten", "unsqueeze", "squeeze", "expand", "view_as",
                    "expand_as"}  # fmt: skip
_MATMUL = {operator.matmul, torch.matmul, torch.bmm}
_SOFTMAX = {torch.softmax, F.softmax, torch.log_softmax, F.log_softmax}
_CAT = {torch.cat, torch.concat, torch.concatenate}


def _is_resizable_weight(module: nn.Module) -> tuple[bool, str | None]:
    """Spectral norm (parametrization) is understood; other weight transforms are not."""
    if any(hasattr(module, a) for a in ("weight_orig", "weight_g", "weight_v")):
        return False, f"'{type(module).__name__}' carries an old-style weight hook"
    if parametrize.is_parametrized(module):
        for name, plist in module.parametrizations.items():
            if name != "weight" or any(type(p).__name__ != "_SpectralNorm" for p in plist):
                return False, f"parametrization of '{name}' other than spectral norm"
    return True, None


class _MetaShapes(fx.Interpreter):
    """Runs the traced graph on meta tensors and stores every node's shape in ``node.meta``."""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        n.meta["vk_value"] = tuple(result.shape) if isinstance(result, torch.Tensor) else None
        n.meta["vk_is_tensor"] = isinstance(result, torch.Tensor)
        return result

    def call_module(self, target: str, args: Any, kwargs: Any) -> Any:
        module = self.fetch_attr(target)
        state = {
            k: torch.empty_like(v, device="meta")
            for k, v in [*module.named_parameters(), *module.named_buffers()]
        }
        return torch.func.functional_call(module, state, tuple(args), dict(kwargs))

    def get_attr(self, target: str, args: Any, kwargs: Any) -> Any:
        value = self.fetch_attr(target)
        if isinstance(value, torch.Tensor):
            return torch.empty_like(value, device="meta")
        return value


class _Tracer(fx.Tracer):
    """torch.nn layers are leaves (also parametrised ones, whose class lives in torch.nn)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, nn.Sequential | nn.ModuleList | nn.ModuleDict):
            return False
        return type(m).__module__.startswith("torch.nn") or super().is_leaf_module(
            m, module_qualified_name
        )


def trace_inputs(
    inputs: Any, batch: int = TRACE_BATCH
) -> tuple[list[tuple[int, ...]], tuple[torch.Tensor, ...]]:
    """(shapes without batch, meta tensors with ``batch``) from shapes or example tensors.

    ``inputs``: one shape without the batch (``(3, 256, 256)``, ``(128,)``), a list of them, a
    tensor or a tuple of tensors (their first axis is taken as the batch and replaced).
    """
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if (
        isinstance(inputs, (tuple, list))
        and inputs
        and all(isinstance(t, torch.Tensor) for t in inputs)
    ):
        shapes = [tuple(int(d) for d in t.shape[1:]) for t in inputs]
    elif isinstance(inputs, (tuple, list)) and inputs and all(isinstance(d, int) for d in inputs):
        shapes = [tuple(int(d) for d in inputs)]
    elif isinstance(inputs, (tuple, list)) and inputs:
        shapes = [tuple(int(d) for d in s) for s in inputs]
    else:
        raise VemkitError(
            f"example input: give a shape without the batch such as [3, 256, 256], got {inputs!r}"
        )
    if any(not s or any(d <= 0 for d in s) for s in shapes):
        raise VemkitError(f"example input: invalid shape in {shapes!r}")
    return shapes, tuple(torch.empty((batch, *s), device="meta") for s in shapes)


# -- the analysis ---------------------------------------------------------------------------------
class _Analysis:
    def __init__(self, model: nn.Module, gm: fx.GraphModule) -> None:
        self.model = model
        self.gm = gm
        self.nodes = _Nodes()
        self.env: dict[fx.Node, dict[int, Layout]] = {}
        self.layers: dict[str, Layer] = {}
        self.matmuls: list[MatmulOp] = []
        self.producer_of: dict[int, str] = {}  # producer node id -> module path
        self.role: list[tuple[str, str, Layout]] = []  # (role, path, layout) in graph order

    # helpers ------------------------------------------------------------------------------
    def shape(self, a: Any) -> tuple[int, ...] | None:
        if isinstance(a, fx.Node) and a.meta.get("vk_is_tensor"):
            return a.meta["vk_value"]
        return None

    def layout(self, a: Any) -> dict[int, Layout]:
        return self.env.get(a, {}) if isinstance(a, fx.Node) else {}

    def fix_all(self, args: Iterable[Any], why: str) -> None:
        for a in _flatten(args):
            for lay in self.layout(a).values():
                for n in lay:
                    self.nodes.fix(n, why)

    def fresh(self, size: int, why: str) -> Layout:
        return (self.nodes.new(size, why),)

    def channel_layout(self, a: Any, dim: int, path: str) -> Layout:
        """The layout of axis ``dim`` of ``a``; a new fixed segment when it has none."""
        lay = self.layout(a).get(dim)
        if lay is not None:
            return lay
        shape = self.shape(a)
        assert shape is not None
        return self.fresh(shape[dim], f"channels of a fixed-width tensor read by '{path}'")

    # the walk ------------------------------------------------------------------------------------
    def run(self) -> None:
        for node in self.gm.graph.nodes:
            try:
                self.visit(node)
            except VemkitError:
                raise
            except Exception as exc:  # a rule that does not fit: be conservative
                self.fix_all(node.args, f"could not analyse '{node.name}': {exc}")
                self.env[node] = {}

    def visit(self, node: fx.Node) -> None:
        op = node.op
        if op == "placeholder" or op == "get_attr":
            self.env[node] = {}
            return
        if op == "output":
            self.fix_all(node.args, "reaches the network's output")
            return
        if op == "call_module":
            self.visit_module(node)
            return
        target = node.target
        args, kwargs = node.args, node.kwargs
        if not any(self.layout(a) for a in _flatten((args, kwargs))):
            # Nothing with channels flows in (shapes, scalars, the input): nothing to track.
            self.env[node] = {}
            return
        name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
        out_shape = self.shape(node)
        if op == "call_function" and target is builtins.getattr:
            self.env[node] = {}  # reading .shape / .dtype
            return
        if op == "call_method" and target in ("size", "dim", "numel"):
            self.env[node] = {}
            return
        if (op == "call_function" and target in _PASS_FUNCS) or (
            op == "call_method" and target in _PASS_METHODS
        ):
            self.env[node] = dict(self.layout(args[0])) if out_shape is not None else {}
            self.fix_all((args[1:], kwargs), f"'{name}' with a channel-wide argument")
            return
        if op == "call_function" and target is F.pad:
            self.pad(node)
            return
        if (op == "call_function" and target in _BINARY) or (
            op == "call_method" and target in _BINARY_METHODS
        ):
            self.env[node] = self.broadcast(node, [args[0], args[1]], f"'{name}'")
            return
        if (op == "call_function" and target in _RESHAPE_FUNCS) or (
            op == "call_method" and target in _RESHAPE_METHODS
        ):
            self.env[node] = self.reshape(args[0], out_shape, f"'{name}'")
            return
        if (op == "call_function" and target is torch.transpose) or (
            op == "call_method" and target == "transpose"
        ):
            self.transpose(node)
            return
        if (op == "call_function" and target is torch.permute) or (
            op == "call_method" and target == "permute"
        ):
            self.permute(node)
            return
        if (op == "call_function" and target in _MATMUL) or (
            op == "call_method" and target in ("matmul", "bmm")
        ):
            self.matmul(node)
            return
        if (op == "call_function" and target in _SOFTMAX) or (
            op == "call_method" and target in ("softmax", "log_softmax")
        ):
            self.softmax(node)
            return
        if op == "call_function" and target in _CAT:
            self.cat(node)
            return
        self.fix_all((args, kwargs), f"passes through '{name}', which the analysis does not know")
        self.env[node] = {}

    # modules ------------------------------------------------------------------------------------
    def visit_module(self, node: fx.Node) -> None:
        path = str(node.target)
        module = self.gm.get_submodule(path)
        args = node.args
        x = args[0] if args else None
        in_shape, out_shape = self.shape(x), self.shape(node)
        extra = (args[1:], node.kwargs)
        if any(self.layout(a) for a in _flatten(extra)):
            self.fix_all(extra, f"second input of '{path}'")
        if in_shape is None or out_shape is None:
            self.fix_all((args, node.kwargs), f"'{path}' does not map a tensor to a tensor")
            self.env[node] = {}
            return
        lay = self.layout(x)
        if isinstance(module, _PASS_MODULES):
            self.env[node] = dict(lay)
            return
        if isinstance(module, (nn.Softmax, nn.LogSoftmax)):
            dim = module.dim if module.dim is not None else 1
            self.softmax_like(node, x, dim % len(in_shape), path)
            return
        if isinstance(module, nn.Flatten):
            self.env[node] = self.reshape(x, out_shape, f"'{path}'")
            return
        if isinstance(module, _NORMS):
            self.norm(node, path, module, x, in_shape, out_shape)
            return
        if isinstance(module, (*_CONVS, *_CONV_TS)):
            self.conv(node, path, module, x, in_shape, out_shape)
            return
        if isinstance(module, nn.Linear):
            self.linear(node, path, module, x, in_shape, out_shape)
            return
        self.fix_all(args, f"passes through '{path}' ({type(module).__name__}), not understood")
        self.env[node] = {}

    def record(
        self,
        path: str,
        kind: str,
        module: nn.Module,
        *,
        depthwise: bool,
        out_layout: Layout,
        in_layout: Layout,
        resizable: bool,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
    ) -> Layer:
        layer = self.layers.get(path)
        if layer is None:
            c_in = getattr(module, "in_channels", getattr(module, "in_features", None))
            c_out = getattr(module, "out_channels", getattr(module, "out_features", None))
            if kind == "norm":
                c_in = c_out = module.num_features
            layer = Layer(
                path, kind, type(module), depthwise, out_layout, in_layout, resizable, [],
                kernel=math.prod(getattr(module, "kernel_size", (1,))),
                groups=getattr(module, "groups", 1),
                bias=getattr(module, "bias", None) is not None,
                c_in=int(c_in), c_out=int(c_out), thop_hidden=thop_hidden(module),
            )  # fmt: skip
            self.layers[path] = layer
        else:
            # A module called twice reads both inputs with the same weights.
            self.nodes.unify(layer.in_layout, in_layout, f"'{path}' is called on two layouts")
        layer.calls.append((in_shape, out_shape))
        return layer

    def norm(self, node, path, module, x, in_shape, out_shape) -> None:
        lay = self.channel_layout(x, 1, path)
        layer = self.record(
            path, "norm", module, depthwise=False, out_layout=lay, in_layout=lay,
            resizable=True, in_shape=in_shape, out_shape=out_shape,
        )  # fmt: skip
        self.role.append(("norm", path, layer.out_layout))
        self.env[node] = {**self.layout(x), 1: layer.out_layout}

    def conv(self, node, path, module, x, in_shape, out_shape) -> None:
        transposed = isinstance(module, _CONV_TS)
        c_in = module.in_channels
        c_out = module.out_channels
        groups = module.groups
        ok, why = _is_resizable_weight(module)
        in_lay = self.channel_layout(x, 1, path)
        others = {d: v for d, v in self.layout(x).items() if d != 1}
        if others:
            self.fix_all([x], f"'{path}' convolves over a channel axis")
        depthwise = groups > 1 and groups == c_in == c_out
        if not ok or (groups > 1 and not depthwise):
            reason = why or f"'{path}' is a grouped conv ({groups} groups)"
            for n in in_lay:
                self.nodes.fix(n, reason)
            out = self.layers[path].out_layout if path in self.layers else self.fresh(c_out, None)
            self.nodes.fix(out[0], reason)
            self.producer_of.setdefault(out[0], path)
            self.record(
                path, "conv_transpose" if transposed else "conv", module, depthwise=False,
                out_layout=out, in_layout=in_lay, resizable=False, in_shape=in_shape,
                out_shape=out_shape,
            )  # fmt: skip
            self.role.append(("producer", path, out))
            self.role.append(("consumer", path, in_lay))
            self.env[node] = {1: out}
            return
        kind = "conv_transpose" if transposed else "conv"
        if depthwise:
            layer = self.record(
                path, kind, module, depthwise=True, out_layout=in_lay, in_layout=in_lay,
                resizable=True, in_shape=in_shape, out_shape=out_shape,
            )  # fmt: skip
            self.role.append(("depthwise", path, layer.out_layout))
            self.env[node] = {1: layer.out_layout}
            return
        out = self.layers[path].out_layout if path in self.layers else self.fresh(c_out, None)
        if path not in self.layers:
            self.producer_of[out[0]] = path
        self.record(
            path, kind, module, depthwise=False, out_layout=out, in_layout=in_lay,
            resizable=True, in_shape=in_shape, out_shape=out_shape,
        )  # fmt: skip
        self.role.append(("producer", path, out))
        self.role.append(("consumer", path, in_lay))
        self.env[node] = {1: out}

    def linear(self, node, path, module, x, in_shape, out_shape) -> None:
        last = len(in_shape) - 1
        ok, why = _is_resizable_weight(module)
        in_lay = self.channel_layout(x, last, path)
        out = (
            self.layers[path].out_layout
            if path in self.layers
            else self.fresh(module.out_features, None)
        )
        if path not in self.layers:
            self.producer_of[out[0]] = path
        if not ok:
            for n in (*in_lay, *out):
                self.nodes.fix(n, why or "weight transform not understood")
        self.record(
            path, "linear", module, depthwise=False, out_layout=out, in_layout=in_lay,
            resizable=ok, in_shape=in_shape, out_shape=out_shape,
        )  # fmt: skip
        self.role.append(("producer", path, out))
        self.role.append(("consumer", path, in_lay))
        self.env[node] = {**{d: v for d, v in self.layout(x).items() if d != last}, last: out}

    # functions ------------------------------------------------------------------------------------
    def broadcast(self, node: fx.Node, operands: Sequence[Any], what: str) -> dict[int, Layout]:
        out_shape = self.shape(node)
        if out_shape is None:
            self.fix_all(operands, f"{what} does not return a tensor")
            return {}
        nd = len(out_shape)
        result: dict[int, Layout] = {}
        for i in range(nd):
            found: list[Layout] = []
            fixed = False
            for a in operands:
                shape = self.shape(a)
                if shape is None:
                    continue  # a Python scalar
                j = i - (nd - len(shape))
                if j < 0:
                    continue
                lay = self.layout(a).get(j)
                if lay is not None:
                    found.append(lay)
                elif shape[j] != 1:
                    fixed = True  # a full-width operand with no channels of its own
            if not found:
                continue
            for other in found[1:]:
                self.nodes.unify(found[0], other, f"{what} of differently split channels")
            if fixed:
                for n in found[0]:
                    self.nodes.fix(n, f"{what} with a fixed-width tensor")
            result[i] = found[0]
        return result

    def reshape(self, x: Any, out_shape: tuple[int, ...] | None, what: str) -> dict[int, Layout]:
        in_shape = self.shape(x)
        lay = self.layout(x)
        if in_shape is None or out_shape is None:
            self.fix_all([x], f"{what} on a non-tensor")
            return {}
        result: dict[int, Layout] = {}
        for d, segs in lay.items():
            before = math.prod(in_shape[:d])
            for j in range(len(out_shape)):
                if math.prod(out_shape[:j]) == before and out_shape[j] == in_shape[d]:
                    result[j] = segs
                    break
            else:
                for n in segs:
                    self.nodes.fix(n, f"{what} splits or merges its channel axis")
        return result

    def pad(self, node: fx.Node) -> None:
        x = node.args[0]
        pad = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
        shape = self.shape(x)
        lay = dict(self.layout(x))
        if shape is None or not isinstance(pad, (tuple, list)):
            self.fix_all([x], "F.pad with unknown padding")
            self.env[node] = {}
            return
        touched = range(len(shape) - len(pad) // 2, len(shape))
        for d in list(lay):
            if d in touched:
                for n in lay.pop(d):
                    self.nodes.fix(n, "F.pad pads the channel axis")
        self.env[node] = lay

    def _dims(self, node: fx.Node) -> tuple[Any, list[int]]:
        args = list(node.args)
        x = args[0]
        rest = args[1:]
        if node.op == "call_method" and node.target == "permute":
            dims = rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest
        elif node.target is torch.permute:
            dims = rest[0] if rest else node.kwargs["dims"]
        else:  # transpose
            dims = rest or [node.kwargs["dim0"], node.kwargs["dim1"]]
        return x, [int(d) for d in dims]

    def transpose(self, node: fx.Node) -> None:
        x, (a, b) = self._dims(node)
        nd = len(self.shape(x) or ())
        a, b = a % nd, b % nd
        perm = list(range(nd))
        perm[a], perm[b] = perm[b], perm[a]
        self.env[node] = {perm.index(d): v for d, v in self.layout(x).items()}

    def permute(self, node: fx.Node) -> None:
        x, dims = self._dims(node)
        nd = len(self.shape(x) or ())
        perm = [d % nd for d in dims]
        self.env[node] = {perm.index(d): v for d, v in self.layout(x).items()}

    def matmul(self, node: fx.Node) -> None:
        a, b = node.args[0], node.args[1]
        sa, sb, so = self.shape(a), self.shape(b), self.shape(node)
        if sa is None or sb is None or so is None or len(sa) < 2 or len(sb) < 2:
            self.fix_all([a, b], "a vector product")
            self.env[node] = {}
            return
        la, lb = self.layout(a), self.layout(b)
        nd = len(so)
        result: dict[int, Layout] = {}
        # Batch axes broadcast like an element-wise op; couple them conservatively.
        for i in range(nd - 2):
            found = []
            for shp, lay in ((sa, la), (sb, lb)):
                j = i - (nd - len(shp))
                if j >= 0 and j in lay:
                    found.append(lay[j])
            for lay in found:
                for n in lay:
                    self.nodes.fix(n, "a batch axis of a matrix product")
        if len(sa) - 2 in la:
            result[nd - 2] = la[len(sa) - 2]
        if len(sb) - 1 in lb:
            result[nd - 1] = lb[len(sb) - 1]
        ka, kb = la.get(len(sa) - 1), lb.get(len(sb) - 2)
        if ka is not None and kb is not None:
            self.nodes.unify(ka, kb, "contracted against differently split channels")
        elif ka is not None or kb is not None:
            for n in ka or kb or ():
                self.nodes.fix(n, "contracted against a fixed-width tensor")
        self.env[node] = result
        self.matmuls.append(
            MatmulOp(node.name, so, dict(result), sa[-1], ka if ka is not None else kb)
        )

    def softmax(self, node: fx.Node) -> None:
        x = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        shape = self.shape(x) or ()
        if dim is None:
            self.fix_all([x], "softmax over an implicit axis")
            self.env[node] = {}
            return
        self.softmax_like(node, x, int(dim) % len(shape), str(node.target))

    def softmax_like(self, node: fx.Node, x: Any, dim: int, what: str) -> None:
        lay = dict(self.layout(x))
        if dim in lay:
            for n in lay.pop(dim):
                self.nodes.fix(n, f"'{what}' normalises over its channels")
        self.env[node] = lay

    def cat(self, node: fx.Node) -> None:
        tensors = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        out_shape = self.shape(node)
        if not isinstance(tensors, (tuple, list)) or out_shape is None:
            self.fix_all(node.args, "torch.cat of unknown operands")
            self.env[node] = {}
            return
        nd = len(out_shape)
        dim = int(dim) % nd
        segs: list[int] = []
        for t in tensors:
            shape = self.shape(t)
            assert shape is not None
            lay = self.layout(t).get(dim)
            segs.extend(lay if lay is not None else self.fresh(shape[dim], None))
        rest = self.broadcast_except(node, list(tensors), dim)
        self.env[node] = {**rest, dim: tuple(segs)}

    def broadcast_except(self, node: fx.Node, operands: list[Any], skip: int) -> dict[int, Layout]:
        out: dict[int, Layout] = {}
        for i in range(len(self.shape(node) or ())):
            if i == skip:
                continue
            found = [self.layout(a)[i] for a in operands if i in self.layout(a)]
            for other in found[1:]:
                self.nodes.unify(found[0], other, "torch.cat of differently split channels")
            if found and len(found) < len(operands):
                for n in found[0]:
                    self.nodes.fix(n, "torch.cat with a fixed-width tensor")
            if found:
                out[i] = found[0]
        return out

    # result -------------------------------------------------------------------------------------
    def spaces(self) -> tuple[list[ChannelSpace], dict[int, str]]:
        nodes = self.nodes
        by_root: dict[int, ChannelSpace] = {}
        order: list[int] = []
        # Producers name their space: the first producer in graph order wins.
        for role, path, lay in self.role:
            if role != "producer":
                continue
            root = nodes.find(lay[0])
            if root not in by_root:
                by_root[root] = ChannelSpace(path, nodes.size[root], True)
                order.append(root)
        for role, path, lay in self.role:
            for n in lay:
                space = by_root.get(nodes.find(n))
                if space is None:
                    continue
                bucket = {
                    "producer": space.producers,
                    "norm": space.norms,
                    "depthwise": space.depthwise,
                    "consumer": space.consumers,
                }[role]
                if path not in bucket:
                    bucket.append(path)
        # A fixed segment without a producer (the input) taints a space it is merged into.
        for root, space in by_root.items():
            reason = nodes.reason.get(root)
            if reason is not None:
                space.prunable = False
                space.reason = reason
        return [by_root[r] for r in order], {r: by_root[r].name for r in order}


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [x for v in value for x in _flatten(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    return [value]


def analyze(model: nn.Module, inputs: Any) -> ChannelGraph:
    """Trace ``model`` and derive its channel spaces, the layers they resize and their costs.

    ``inputs``: the example input's shape without the batch (``(3, 256, 256)``; ``(128,)`` for
    a latent), a list of shapes for several inputs, or example tensors. Only shapes matter; the
    trace runs on the meta device in eval mode. Raises :class:`VemkitError` when the model
    cannot be traced symbolically (data-dependent Python control flow).
    """
    shapes, meta_inputs = trace_inputs(inputs)
    try:
        graph = _Tracer().trace(model)
    except Exception as exc:
        raise VemkitError(
            f"cannot trace {type(model).__name__} with torch.fx to find its channel groups: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    gm = fx.GraphModule(model, graph)
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            _MetaShapes(gm).run(*meta_inputs)
    except Exception as exc:
        raise VemkitError(
            f"{type(model).__name__} does not run on an input of shape "
            f"{[list(s) for s in shapes]} (batch {TRACE_BATCH}): {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        for m, training in flags:
            m.training = training
    analysis = _Analysis(model, gm)
    analysis.run()
    spaces, root_of = analysis.spaces()
    return ChannelGraph(
        spaces=spaces,
        layers=analysis.layers,
        matmuls=analysis.matmuls,
        root_of=root_of,
        nodes=analysis.nodes,
        input_shapes=shapes,
    )


def channel_spaces(model: nn.Module, inputs: Any) -> list[ChannelSpace]:
    """The coupled channel groups of ``model`` in graph order (see :func:`analyze`)."""
    return analyze(model, inputs).spaces


def check_widths(graph: ChannelGraph, widths: Mapping[str, Any], where: str = "widths") -> None:
    """Raise one :class:`VemkitError` naming every bad entry of ``widths``."""
    names = {s.name: s for s in graph.spaces}
    problems = []
    for name, value in widths.items():
        space = names.get(name)
        if space is None:
            close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
            listed = ", ".join(list(names)[:8]) + (", ..." if len(names) > 8 else "")
            hint = f"; did you mean '{close[0]}'?" if close else f" (spaces: {listed})"
            problems.append(f"{where}.{name}: no such channel space{hint}")
            continue
        count = value if isinstance(value, int) else int(torch.as_tensor(value).numel())
        if not 1 <= count <= space.size:
            problems.append(f"{where}.{name}: {count} channels, must be 1..{space.size}")
        elif count != space.size and not space.prunable:
            problems.append(f"{where}.{name}: not prunable ({space.reason})")
    if problems:
        raise VemkitError("; ".join(problems))
