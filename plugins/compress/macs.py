"""Fast analytic MACs of a width configuration, in the named conventions of ``vemkit profile``.

The network is traced once (:func:`.channels.analyze`: every conv / linear / norm call's input
and output shape and every matrix product, on the meta device); after that the MACs of any
width configuration are a small polynomial in the spaces' widths, evaluated in microseconds,
which is what a search that scores thousands of candidates needs. With every space at full
width the result equals :func:`vemkit.profile.count_macs` in the same convention (tested on the
paper's networks):

``paper``        torchprofile's rule: conv = out positions · C_out · C_in/groups · k²,
                 transposed conv counted at its output resolution; linear and matrix products
                 = output elements · contracted size.
``exact``        true MACs: as ``paper`` but transposed convs at their input resolution.
``thop_legacy``  GCC's old thop: conv = out elements · (C_in/groups · k² + bias), linear =
                 in_features · out elements, eval BatchNorm = 2 · elements, spectral-normalised
                 layers and matrix products 0.

Batch 1 by convention, as the tables report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from vemkit.profile import CONVENTIONS
from vemkit_plugins.compress.channels import ChannelGraph, Layer, Layout, analyze

__all__ = ["WidthMacs", "width_macs"]


class WidthMacs:
    """``macs(widths) -> int`` for one traced network and one convention.

    ``widths`` maps space names to channel counts; spaces not named keep their full width, and
    so do unprunable spaces (and unknown names are ignored: a search calls this thousands of
    times, so nothing is validated here — :func:`.channels.check_widths` does that).
    """

    def __init__(self, graph: ChannelGraph, convention: str = "paper") -> None:
        if convention not in CONVENTIONS:
            raise ValueError(
                f"unknown MAC convention {convention!r}; use one of {', '.join(CONVENTIONS)}"
            )
        self.graph = graph
        self.convention = convention
        self.names = [s.name for s in graph.spaces]
        self.full = [s.size for s in graph.spaces]
        self._index = {n: i for i, n in enumerate(self.names)}
        self._prunable = {s.name for s in graph.spaces if s.prunable}
        self._factor_ids: dict[tuple[tuple[int, int], ...], int] = {}
        self.factors: list[tuple[tuple[int, int], ...]] = []
        """Per factor: (space index or -1 for a fixed segment, its full size) per segment."""
        terms: dict[tuple[int, ...], int] = {}
        for coef, layouts in self._raw_terms():
            key = tuple(sorted(self._factor(lay) for lay in layouts))
            terms[key] = terms.get(key, 0) + coef
        self.terms = [(c, k) for k, c in terms.items() if c]

    # building -----------------------------------------------------------------------------
    def _factor(self, layout: Layout) -> int:
        segs = []
        for node in layout:
            name = self.graph.space_of(node)
            # Unprunable spaces and fixed segments (the input) are constants of the polynomial.
            idx = self._index.get(name, -1) if name in self._prunable else -1
            segs.append((idx, self.graph.node_size(node)))
        key = tuple(segs)
        if key not in self._factor_ids:
            self._factor_ids[key] = len(self.factors)
            self.factors.append(key)
        return self._factor_ids[key]

    def _raw_terms(self) -> list[tuple[int, list[Layout]]]:
        """(coefficient at batch 1, layouts whose widths multiply it)."""
        graph, conv = self.graph, self.convention
        batch = graph.batch
        model_terms: list[tuple[int, list[Layout]]] = []
        for layer in graph.layers.values():
            module_cls = layer.module_type
            for in_shape, out_shape in layer.calls:
                if layer.kind == "norm":
                    if conv == "thop_legacy" and issubclass(
                        module_cls, nn.modules.batchnorm._BatchNorm
                    ):
                        model_terms.append((2 * math.prod(in_shape[2:]), [layer.out_layout]))
                    continue
                model_terms.extend(self._layer_terms(layer, in_shape, out_shape))
        if conv != "thop_legacy":
            for mm in graph.matmuls:
                coef = math.prod(d for i, d in enumerate(mm.out_shape) if i not in mm.out_layouts)
                layouts = list(mm.out_layouts.values())
                if mm.k_layout is None:
                    coef *= mm.k
                else:
                    layouts.append(mm.k_layout)
                model_terms.append((coef // batch, layouts))
        return model_terms

    def _layer_terms(
        self, layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
    ) -> list[tuple[int, list[Layout]]]:
        conv, batch = self.convention, self.graph.batch
        if conv == "thop_legacy" and layer.thop_hidden:
            return []
        out_l, in_l = layer.out_layout, layer.in_layout
        if layer.kind == "linear":
            rows = math.prod(in_shape[:-1]) // batch
            return [(rows, [in_l, out_l])]
        k = layer.kernel
        groups = layer.groups
        out_sp = math.prod(out_shape[2:])
        in_sp = math.prod(in_shape[2:])
        channel_layouts = [out_l] if layer.depthwise else [out_l, in_l]
        if not layer.depthwise and groups > 1:
            # A grouped conv's spaces are fixed: count it as the constant it is.
            c = layer.c_out * layer.c_in // groups
            spatial = in_sp if conv == "exact" and layer.kind == "conv_transpose" else out_sp
            terms = [(spatial * k * c, [])]
            if conv == "thop_legacy" and layer.bias:
                terms.append((out_sp * layer.c_out, []))
            return terms
        if conv == "exact" and layer.kind == "conv_transpose":
            return [(in_sp * k, channel_layouts)]
        terms = [(out_sp * k, channel_layouts)]
        if conv == "thop_legacy" and layer.bias:
            terms.append((out_sp, [out_l]))
        return terms

    # evaluating ---------------------------------------------------------------------------
    def __call__(self, widths: Mapping[str, int] | None = None) -> int:
        w = (
            self.full
            if not widths
            else [widths.get(n, f) for n, f in zip(self.names, self.full, strict=True)]
        )
        fv = [sum(w[i] if i >= 0 else s for i, s in f) for f in self.factors]
        total = 0
        for coef, ids in self.terms:
            v = coef
            for i in ids:
                v *= fv[i]
            total += v
        return total


def width_macs(model: nn.Module, inputs: Any, convention: str = "paper") -> WidthMacs:
    """Trace ``model`` on the example input shape and return its :class:`WidthMacs`."""
    return WidthMacs(analyze(model, inputs), convention)
