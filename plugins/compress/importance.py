"""Channel importance per channel space: one score per channel, higher = more important.

Three scores from the papers, each returning ``{space name: tensor of per-channel scores}``
for the **prunable** spaces of a :class:`~.channels.ChannelGraph`:

* :func:`norm_scale_scores` — |γ| of the norm layers acting on the space (GCC, CAT). A space
  with several norms (a residual trunk) gets the mean |γ| over them. A space **with no affine
  norm** (instance norm without affine, no norm at all) gets **no entry**: the pruners leave
  such spaces at full width (score them with :func:`l1_scores` and merge the dicts if they
  must shrink).
* :func:`l1_scores` — L1 norm of each output filter of the space's producers, summed over its
  producers (GAN-Compression's channel selection). Every prunable space gets an entry.
* :func:`gradient_scores` — mean |∂L/∂W| per output channel of the producers for a loss the
  caller computes (CAGC's content-aware score). Every prunable space gets an entry.

Filter norms and gradients are not comparable between layers of different fan-in; for one
global threshold over several spaces, ``normalize="max"`` rescales each space's scores to a
maximum of 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.compress.channels import ChannelGraph

__all__ = ["gradient_scores", "l1_scores", "norm_scale_scores", "producer_weight"]

Normalize = Literal["none", "max"]


def producer_weight(module: nn.Module, kind: str) -> Tensor:
    """The weight of a producer with its output channels on axis 0 (the effective weight: for a
    spectral-normalised layer, the normalised one)."""
    w = module.weight
    if kind == "conv_transpose":
        return w.transpose(0, 1)
    return w


def _normalize(scores: dict[str, Tensor], normalize: Normalize) -> dict[str, Tensor]:
    if normalize == "none":
        return scores
    if normalize == "max":
        return {k: v / v.max().clamp_min(torch.finfo(v.dtype).tiny) for k, v in scores.items()}
    raise VemkitError(f"normalize: use 'none' or 'max', got {normalize!r}")


def _producers(graph: ChannelGraph, name: str) -> list[str]:
    return [p for p in graph.space(name).producers if graph.layers[p].kind != "norm"]


def norm_scale_scores(model: nn.Module, graph: ChannelGraph) -> dict[str, Tensor]:
    """Mean |γ| over the affine norms that cover each prunable space (others: no entry)."""
    sums: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    with torch.no_grad():
        for path, layer in graph.layers.items():
            if layer.kind != "norm":
                continue
            weight = getattr(model.get_submodule(path), "weight", None)
            if weight is None:
                continue
            gamma = weight.detach().abs().float().cpu()
            offset = 0
            for node in layer.out_layout:
                size = graph.node_size(node)
                name = graph.space_of(node)
                if name is not None and graph.space(name).prunable:
                    part = gamma[offset : offset + size]
                    sums[name] = sums.get(name, torch.zeros(size)) + part
                    counts[name] = counts.get(name, 0) + 1
                offset += size
    return {name: sums[name] / counts[name] for name in sums}


def l1_scores(
    model: nn.Module, graph: ChannelGraph, normalize: Normalize = "none"
) -> dict[str, Tensor]:
    """Σ over the space's producers of each output filter's L1 norm."""
    out: dict[str, Tensor] = {}
    with torch.no_grad():
        for space in graph.prunable():
            total = torch.zeros(space.size)
            for path in _producers(graph, space.name):
                w = producer_weight(model.get_submodule(path), graph.layers[path].kind)
                total += w.detach().abs().float().flatten(1).sum(1).cpu()
            out[space.name] = total
    return _normalize(out, normalize)


def gradient_scores(
    model: nn.Module,
    graph: ChannelGraph,
    loss_fn: Callable[[nn.Module], Tensor],
    steps: int = 1,
    normalize: Normalize = "none",
) -> dict[str, Tensor]:
    """Mean over ``steps`` calls of ``loss_fn(model)`` of mean |∂L/∂W| per output channel.

    ``loss_fn`` computes a scalar loss with ``model`` (drawing its own batch: CAGC uses the
    masked salt-and-pepper reconstruction loss of G(z)); the per-channel mean runs over the
    other weight axes and over the space's producers. The model's own ``.grad`` fields are
    restored afterwards and its parameters are not changed.
    """
    if steps < 1:
        raise VemkitError("gradient_scores: steps must be at least 1")
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.grad for p in params]
    # The weight whose gradient is read: a spectral-normalised layer's raw weight.
    weights: dict[str, Tensor] = {}
    for space in graph.prunable():
        for path in _producers(graph, space.name):
            m = model.get_submodule(path)
            if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
                weights[path] = m.parametrizations.weight.original
            else:
                weights[path] = m.weight
    acc = {path: torch.zeros(w.shape[1 if graph.layers[path].kind == "conv_transpose" else 0])
           for path, w in weights.items()}  # fmt: skip
    try:
        for _ in range(steps):
            for p in params:
                p.grad = None
            loss = loss_fn(model)
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                raise VemkitError("gradient_scores: loss_fn must return a scalar tensor")
            loss.backward()
            for path, w in weights.items():
                if w.grad is None:
                    continue
                g = w.grad.detach().abs().float()
                if graph.layers[path].kind == "conv_transpose":
                    g = g.transpose(0, 1)
                acc[path] += g.flatten(1).mean(1).cpu()
    finally:
        for p, g in zip(params, saved, strict=True):
            p.grad = g
    out: dict[str, Tensor] = {}
    for space in graph.prunable():
        paths = _producers(graph, space.name)
        out[space.name] = sum((acc[p] for p in paths), torch.zeros(space.size)) / (
            steps * max(1, len(paths))
        )
    return _normalize(out, normalize)
