"""A once-for-all supernet: run the first-k-channels sub-network of any width configuration.

GAN-Compression trains one network whose every sub-network (the first k channels of each
layer) is usable; each step samples a configuration. :class:`SuperNet` does that for any
network the channel analysis understands: for a configuration it builds (once, cached) a
meta-device skeleton of the sliced network (:func:`.slicing.apply_widths` on a meta copy) and
runs it with ``torch.func.functional_call`` on *slices of the supernet's own tensors* — views
(``narrow``) where a space's kept channels are contiguous, ``index_select`` where a
concatenation interleaves segments — so gradients land in the right slices of the supernet's
parameters, and train-mode BatchNorm updates the kept slice of its running statistics in place
(for a norm after a concatenation, the statistics update is not written back).

``extract(widths)`` is the standalone sliced network with copied weights; its output equals
``supernet(x, widths)``.
"""

from __future__ import annotations

import copy
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.compress.channels import ChannelGraph, analyze
from vemkit_plugins.compress.slicing import (
    SliceFn,
    apply_widths,
    keep_indices,
    meta_copy,
    slice_plan,
)

__all__ = ["SuperNet", "sample_config"]


def sample_config(rng: random.Random, choices: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """One configuration drawn uniformly: an independent uniform choice per space."""
    return {name: int(rng.choice(list(options))) for name, options in choices.items()}


class SuperNet(nn.Module):
    """``SuperNet(model, inputs)(x, widths)``: the sub-network of ``widths`` on ``x``.

    ``inputs`` is the example input shape (see :func:`.channels.analyze`). ``widths`` maps
    space names to channel counts (the first k are used); ``None`` or ``{}`` runs the full
    network. The supernet's parameters are ``model``'s (``self.model``).
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Any = None,
        *,
        graph: ChannelGraph | None = None,
        cache_size: int = 8,
    ) -> None:
        super().__init__()
        self.model = model
        if graph is None:
            if inputs is None:
                raise VemkitError("SuperNet needs the example input shape or the channel graph")
            graph = analyze(model, inputs)
        self.graph = graph
        self.cache_size = cache_size
        self._skeletons: OrderedDict[tuple[tuple[str, int], ...], Any] = OrderedDict()

    def _key(self, widths: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
        full = {s.name: s.size for s in self.graph.spaces}
        return tuple(sorted((k, int(v)) for k, v in widths.items() if full.get(k) != v))

    def _skeleton(self, widths: Mapping[str, int]) -> tuple[nn.Module, dict[str, SliceFn]]:
        key = self._key(widths)
        hit = self._skeletons.get(key)
        if hit is not None:
            self._skeletons.move_to_end(key)
            return hit
        for name, value in widths.items():
            if not isinstance(value, int):
                raise VemkitError(f"widths.{name}: a supernet config holds channel counts")
        kept = keep_indices(self.graph, dict(key))
        _, fns = slice_plan(self.model, self.graph, kept)
        skeleton = apply_widths(meta_copy(self.model), dict(key), graph=self.graph)
        self._skeletons[key] = (skeleton, fns)
        if len(self._skeletons) > self.cache_size:
            self._skeletons.popitem(last=False)
        return skeleton, fns

    def forward(self, x: Any, widths: Mapping[str, int] | None = None) -> Any:
        """Run the sub-network of ``widths`` on ``x`` (a tensor, or a tuple of the network's
        positional inputs)."""
        args = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        if not widths:
            return self.model(*args)
        skeleton, fns = self._skeleton(widths)
        skeleton.train(self.model.training)
        state: dict[str, Tensor] = {}
        for name, t in [
            *self.model.named_parameters(remove_duplicate=False),
            *self.model.named_buffers(remove_duplicate=False),
        ]:
            fn = fns.get(name)
            state[name] = fn(t) if fn is not None else t
        return torch.func.functional_call(skeleton, state, args, strict=True)

    def sample(self, rng: random.Random, choices: Mapping[str, Sequence[int]]) -> dict[str, int]:
        """A uniformly drawn configuration of ``choices`` (space name -> allowed widths)."""
        return sample_config(rng, choices)

    def extract(self, widths: Mapping[str, int] | None = None) -> nn.Module:
        """The standalone sub-network of ``widths`` with copies of the supernet's weights."""
        return apply_widths(copy.deepcopy(self.model), dict(widths or {}), graph=self.graph)
