"""Slice a network to a width configuration: smaller modules holding copies of the kept channels.

``apply_widths(model, keep, inputs)`` replaces every layer whose channels change with a smaller
one of the same class (convs keep stride/padding/..., depthwise convs their ``groups`` =
channels, norms their eps/momentum/affine flags, spectral norm its dim and its ``u``/``v``
vectors sliced to match), so the state-dict keys stay those of the full network. ``keep`` maps a
space name (:mod:`.channels`) to a channel count (the first k) or to the indices of the channels
that survive.

The ``pruned`` arch (:func:`build_pruned`) records a pruned network as data: its base arch, an
example input shape and the widths; built anywhere, it loads the pruned state dict strictly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from vemkit.errors import VemkitError
from vemkit_plugins.compress.channels import ChannelGraph, Layer, Layout, analyze, check_widths

__all__ = [
    "Keep",
    "apply_widths",
    "build_pruned",
    "keep_indices",
    "meta_copy",
    "slice_plan",
]

Keep = Mapping[str, int | Tensor]
"""Space name -> channel count (first k) or indices of the surviving channels."""

SliceFn = Callable[[Tensor], Tensor]


def keep_indices(graph: ChannelGraph, keep: Keep, where: str = "widths") -> dict[str, Tensor]:
    """Validated sorted index tensors of the kept channels of every space that shrinks."""
    check_widths(graph, keep, where)
    out: dict[str, Tensor] = {}
    for name, value in keep.items():
        size = graph.space(name).size
        if isinstance(value, int):
            idx = torch.arange(value)
        else:
            idx = torch.as_tensor(value, dtype=torch.long).flatten().unique(sorted=True)
            if idx.numel() and (idx[0] < 0 or idx[-1] >= size):
                raise VemkitError(f"{where}.{name}: channel index out of range 0..{size - 1}")
        if idx.numel() != size:
            out[name] = idx
    return out


def layout_index(graph: ChannelGraph, layout: Layout, kept: Mapping[str, Tensor]) -> Tensor | None:
    """Indices kept along an axis made of ``layout``'s segments; None when nothing is cut."""
    pieces, offset, cut = [], 0, False
    for node in layout:
        size = graph.node_size(node)
        name = graph.space_of(node)
        idx = kept.get(name) if name is not None else None
        if idx is None:
            idx = torch.arange(size)
        else:
            cut = True
        pieces.append(idx + offset)
        offset += size
    return torch.cat(pieces) if cut else None


def _take(idx: Tensor | None, axis: int) -> SliceFn | None:
    if idx is None:
        return None
    n = idx.numel()
    if n and int(idx[0]) == 0 and bool((idx == torch.arange(n)).all()):
        return lambda t: t.narrow(axis, 0, n)  # first k: a view
    return lambda t: t.index_select(axis, idx.to(t.device))


def _chain(*fns: SliceFn | None) -> SliceFn | None:
    live = [f for f in fns if f is not None]
    if not live:
        return None

    def run(t: Tensor) -> Tensor:
        for f in live:
            t = f(t)
        return t

    return run


def _weight_axes(layer: Layer, out_idx: Tensor | None, in_idx: Tensor | None) -> dict[int, Any]:
    """Axis of the weight -> kept indices, for each kind of layer."""
    if layer.kind == "norm":
        return {0: out_idx}
    if layer.depthwise:
        return {0: out_idx}  # (C, 1, k, k) for conv and transposed conv alike
    if layer.kind == "conv_transpose":
        return {0: in_idx, 1: out_idx}
    return {0: out_idx, 1: in_idx}  # conv, linear


def _sn_vector_fn(shape: tuple[int, ...], dim: int, axes: Mapping[int, Tensor | None]):
    """Slices of spectral norm's ``u`` (the ``dim`` axis) and ``v`` (the other axes, flattened)."""
    others = [d for d in range(len(shape)) if d != dim]
    u_fn = _take(axes.get(dim), 0)
    v_fns = [_take(axes.get(d), i) for i, d in enumerate(others)]
    if all(f is None for f in v_fns):
        return u_fn, None

    def v_fn(v: Tensor) -> Tensor:
        t = v.reshape([shape[d] for d in others])
        for f in v_fns:
            if f is not None:
                t = f(t)
        return t.reshape(-1)

    return u_fn, v_fn


def slice_plan(
    model: nn.Module, graph: ChannelGraph, kept: Mapping[str, Tensor]
) -> tuple[dict[str, tuple[Tensor | None, Tensor | None]], dict[str, SliceFn]]:
    """(layer path -> (out indices, in indices), state key -> function slicing that tensor)."""
    layers: dict[str, tuple[Tensor | None, Tensor | None]] = {}
    tensors: dict[str, SliceFn] = {}
    for path, layer in graph.layers.items():
        if not layer.resizable:
            continue
        out_idx = layout_index(graph, layer.out_layout, kept)
        in_idx = out_idx if layer.depthwise or layer.kind == "norm" else None
        if not (layer.depthwise or layer.kind == "norm"):
            in_idx = layout_index(graph, layer.in_layout, kept)
        if out_idx is None and in_idx is None:
            continue
        layers[path] = (out_idx, in_idx)
        module = model.get_submodule(path)
        axes = _weight_axes(layer, out_idx, in_idx)
        weight_fn = _chain(*(_take(i, a) for a, i in axes.items()))
        prefix = f"{path}." if path else ""
        if parametrize.is_parametrized(module, "weight"):
            sn = module.parametrizations.weight[0]
            shape = tuple(module.parametrizations.weight.original.shape)
            if weight_fn is not None:
                tensors[f"{prefix}parametrizations.weight.original"] = weight_fn
            u_fn, v_fn = _sn_vector_fn(shape, sn.dim, axes)
            if u_fn is not None:
                tensors[f"{prefix}parametrizations.weight.0._u"] = u_fn
            if v_fn is not None:
                tensors[f"{prefix}parametrizations.weight.0._v"] = v_fn
        elif getattr(module, "weight", None) is not None and weight_fn is not None:
            tensors[f"{prefix}weight"] = weight_fn
        vector = _take(out_idx, 0)
        if vector is not None:
            names = ["bias"]
            if layer.kind == "norm":
                names += ["running_mean", "running_var"]
            for name in names:
                if getattr(module, name, None) is not None:
                    tensors[f"{prefix}{name}"] = vector
    return layers, tensors


def _count(idx: Tensor | None, full: int) -> int:
    return full if idx is None else int(idx.numel())


def _resized_module(
    module: nn.Module, layer: Layer, out_idx: Tensor | None, in_idx: Tensor | None, device: Any
) -> nn.Module:
    """An empty module of ``module``'s class with the new channel counts (and its spectral norm)."""
    cls = type(module)
    sn = None
    if parametrize.is_parametrized(module):
        sn = module.parametrizations.weight[0]
        cls = cls.__bases__[0]  # the class parametrize derived the Parametrized* class from
    kw: dict[str, Any] = {"device": device, "dtype": _dtype(module)}
    if layer.kind == "norm":
        new = cls(
            _count(out_idx, module.num_features),
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
            **kw,
        )
    elif layer.kind == "linear":
        new = cls(
            _count(in_idx, module.in_features),
            _count(out_idx, module.out_features),
            bias=module.bias is not None,
            **kw,
        )
    else:
        c_out = _count(out_idx, module.out_channels)
        c_in = c_out if layer.depthwise else _count(in_idx, module.in_channels)
        common = {
            "kernel_size": module.kernel_size,
            "stride": module.stride,
            "padding": module.padding,
            "dilation": module.dilation,
            "groups": c_out if layer.depthwise else module.groups,
            "bias": module.bias is not None,
            "padding_mode": module.padding_mode,
        }
        if layer.kind == "conv_transpose":
            common["output_padding"] = module.output_padding
        new = cls(c_in, c_out, **common, **kw)
    if sn is not None:
        spectral_norm(new, "weight", sn.n_power_iterations, sn.eps, sn.dim)
    new.train(module.training)
    return new


def _dtype(module: nn.Module) -> torch.dtype | None:
    for t in [*module.parameters(), *module.buffers()]:
        if t.is_floating_point():
            return t.dtype
    return None


def _set_tensor(root: nn.Module, key: str, value: Tensor) -> None:
    owner_path, _, name = key.rpartition(".")
    owner = root.get_submodule(owner_path) if owner_path else root
    if name in owner._parameters:
        owner._parameters[name] = nn.Parameter(
            value, requires_grad=owner._parameters[name].requires_grad
        )
    else:
        owner._buffers[name] = value


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, new)


def apply_widths(
    model: nn.Module,
    keep: Keep,
    inputs: Any = None,
    *,
    graph: ChannelGraph | None = None,
    where: str = "widths",
) -> nn.Module:
    """Shrink ``model`` in place to ``keep`` and return it (see the module docstring).

    ``inputs`` is the example input shape (see :func:`.channels.analyze`); alternatively pass
    the ``graph`` already derived from this very model. Weights, biases and norm statistics of
    the kept channels are copied (a meta-device model stays on meta, with no data).
    """
    if graph is None:
        if inputs is None:
            raise VemkitError("apply_widths needs the example input shape or the channel graph")
        graph = analyze(model, inputs)
    kept = keep_indices(graph, keep, where)
    layers, tensors = slice_plan(model, graph, kept)
    old_state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    for path, (out_idx, in_idx) in layers.items():
        module = model.get_submodule(path)
        device = next((t.device for t in [*module.parameters(), *module.buffers()]), None)
        new = _resized_module(module, graph.layers[path], out_idx, in_idx, device)
        # Tensors the slice leaves alone (num_batches_tracked) carry over as they are.
        for key, _value in [*new.named_parameters(), *new.named_buffers()]:
            full = f"{path}.{key}" if path else key
            src = old_state[full]
            fn = tensors.get(full)
            with torch.no_grad():
                data = fn(src) if fn is not None else src
                data = data if data.is_meta else data.detach().clone().contiguous()
            _set_tensor(new, key, data)
        _replace(model, path, new)
    return model


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers are empty meta tensors (no memory)."""
    memo: dict[int, Any] = {}
    for t in [*model.parameters(), *model.buffers()]:
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(meta, t.requires_grad) if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(model, memo)


# -- the ``pruned`` arch ---------------------------------------------------------------------
def build_pruned(options: Any, **context: Any) -> nn.Module:
    """Factory of ``arch: pruned``: build ``base``, then keep the first k channels per space."""
    from vemkit import registry as registry_module

    reg = context.get("registry") or registry_module.default()
    base = reg.build("arch", options.base)
    if not isinstance(base, nn.Module):
        raise VemkitError("pruned.base: the base arch did not build a torch module")
    return apply_widths(base, dict(options.widths), list(options.input), where="pruned.widths")
