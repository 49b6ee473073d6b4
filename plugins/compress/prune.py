"""Prune to a MAC budget by one global threshold, or uniformly by a ratio.

:func:`prune_to_budget` (GCC, CAT): every scored prunable space keeps its channels whose score
is above one global threshold, but never fewer than ``min_channels`` (so never zero); the
threshold is found by binary search over the sorted scores as the lowest one whose network
fits ``MACs ≤ budget`` in the named convention, i.e. the result is as close under the budget
as one threshold gets. :func:`prune_uniform` (CAGC): every prunable space keeps
``round((1 − ratio) · C)`` channels, the highest-scoring ones.

Both return a :class:`PruneResult` (kept indices, widths, MACs and params before and after, a
per-space table, all JSON-able) and neither touches the model: :meth:`PruneResult.apply` cuts
a model to it, and :meth:`PruneResult.arch_config` writes the ``pruned`` arch that rebuilds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit.profile import count_params
from vemkit_plugins.compress.channels import ChannelGraph, analyze
from vemkit_plugins.compress.macs import WidthMacs
from vemkit_plugins.compress.slicing import apply_widths, meta_copy

__all__ = ["PruneResult", "prune_to_budget", "prune_uniform"]


@dataclass
class PruneResult:
    """What a pruner chose, as plain data."""

    keep: dict[str, list[int]]
    """Indices of the surviving channels of every space that shrinks (sorted)."""
    widths: dict[str, int]
    """Channels kept per space, every space listed (unpruned ones at full width)."""
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    convention: str
    input: list[int]
    """Example input shape (without batch) the channel spaces were traced on."""
    budget: int | None = None
    threshold: float | None = None
    """The global score threshold (budget pruning); None for uniform pruning."""
    table: list[dict[str, Any]] = field(default_factory=list)
    """Per space: name, before, after, prunable, scored."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def changed_widths(self) -> dict[str, int]:
        """The widths of the spaces that shrink (what a ``pruned`` arch lists)."""
        return {name: len(idx) for name, idx in self.keep.items()}

    def apply(self, model: nn.Module, graph: ChannelGraph | None = None) -> nn.Module:
        """Cut ``model`` (in place) to the kept channels, weights copied; returns it. Its
        state dict loads strictly into :meth:`arch_config`'s network (first-k layout)."""
        keep = {k: torch.tensor(v, dtype=torch.long) for k, v in self.keep.items()}
        return apply_widths(model, keep, self.input, graph=graph)

    def arch_config(self, base: Mapping[str, Any]) -> dict[str, Any]:
        """``{type: pruned, base, input, widths}``: the pruned network as an arch config."""
        return {
            "type": "pruned",
            "base": dict(base),
            "input": list(self.input),
            "widths": self.changed_widths(),
        }


def _params_after(model: nn.Module, graph: ChannelGraph, keep: Mapping[str, Tensor]) -> int:
    skeleton = meta_copy(model)
    return count_params(apply_widths(skeleton, dict(keep), graph=graph))


def _result(
    model: nn.Module,
    graph: ChannelGraph,
    macs: WidthMacs,
    keep: dict[str, Tensor],
    scored: set[str],
    **extra: Any,
) -> PruneResult:
    widths = {s.name: int(keep[s.name].numel()) if s.name in keep else s.size for s in graph.spaces}
    table = [
        {
            "name": s.name,
            "before": s.size,
            "after": widths[s.name],
            "prunable": s.prunable,
            "scored": s.name in scored,
        }
        for s in graph.spaces
    ]
    return PruneResult(
        keep={k: [int(i) for i in v] for k, v in keep.items()},
        widths=widths,
        macs_before=macs(),
        macs_after=macs(widths),
        params_before=count_params(model),
        params_after=_params_after(model, graph, keep),
        convention=macs.convention,
        input=[int(d) for d in graph.input_shapes[0]],
        table=table,
        **extra,
    )


def _check_scores(graph: ChannelGraph, scores: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for name, value in scores.items():
        try:
            space = graph.space(name)
        except KeyError:
            raise VemkitError(f"scores.{name}: no such channel space") from None
        t = torch.as_tensor(value, dtype=torch.float64).flatten()
        if t.numel() != space.size:
            raise VemkitError(f"scores.{name}: {t.numel()} scores for {space.size} channels")
        if space.prunable:
            out[name] = t
    return out


def _top(scores: Tensor, k: int) -> Tensor:
    # Highest scores first; ties broken by the lower index (stable), then kept in channel order.
    order = torch.sort(-scores, stable=True).indices
    return order[:k].sort().values


def _graph(model: nn.Module, inputs: Any, graph: ChannelGraph | None) -> ChannelGraph:
    if graph is not None:
        return graph
    if inputs is None:
        raise VemkitError("pruning needs the example input shape (e.g. [3, 256, 256])")
    return analyze(model, inputs)


def prune_to_budget(
    model: nn.Module,
    scores: Mapping[str, Tensor],
    budget: float,
    convention: str = "paper",
    min_channels: int = 1,
    *,
    inputs: Any = None,
    graph: ChannelGraph | None = None,
) -> PruneResult:
    """One global threshold on ``scores`` (binary search) so that MACs ≤ ``budget``.

    ``inputs`` is the example input shape (``(3, 256, 256)``) the channel spaces are traced on,
    or pass the ``graph`` already derived from ``model``. Spaces without scores stay at full
    width. Raises :class:`VemkitError` when even ``min_channels`` per scored space is over the
    budget.
    """
    if min_channels < 1:
        raise VemkitError("min_channels must be at least 1 (a space is never pruned to zero)")
    graph = _graph(model, inputs, graph)
    checked = _check_scores(graph, scores)
    macs = WidthMacs(graph, convention)
    floor = {n: min(min_channels, graph.space(n).size) for n in checked}
    order = {n: torch.sort(-s, stable=True).indices for n, s in checked.items()}
    # Candidate thresholds: every distinct score, plus "keep all" below the lowest.
    values = torch.unique(torch.cat([s for s in checked.values()])) if checked else None

    def widths_at(i: int) -> dict[str, int]:
        # Threshold index i: keep the channels whose score is above values[i - 1].
        if i == 0:
            return {}
        t = values[i - 1]
        return {n: max(floor[n], int((s > t).sum())) for n, s in checked.items()}

    if macs() <= budget or values is None:
        lo = 0
    else:
        hi = len(values)  # values[-1]: only the floors are left
        if macs(widths_at(hi)) > budget:
            raise VemkitError(
                f"budget {budget:.4g} MACs ({convention}) is below what {min_channels} channel(s) "
                f"per scored space cost ({macs(widths_at(hi)):.4g})"
            )
        lo = 0  # invariant: widths_at(lo) is over budget, widths_at(hi) fits
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if macs(widths_at(mid)) <= budget:
                hi = mid
            else:
                lo = mid
        lo = hi
    widths = widths_at(lo)
    keep = {n: order[n][:w].sort().values for n, w in widths.items() if w < graph.space(n).size}
    threshold = float(values[lo - 1]) if lo > 0 and values is not None else None
    return _result(model, graph, macs, keep, set(checked), budget=int(budget), threshold=threshold)


def prune_uniform(
    model: nn.Module,
    ratio: float,
    min_channels: int = 1,
    *,
    scores: Mapping[str, Tensor] | None = None,
    inputs: Any = None,
    graph: ChannelGraph | None = None,
    convention: str = "paper",
) -> PruneResult:
    """Every prunable space keeps ``max(min_channels, round((1 − ratio) · C))`` channels: the
    highest-scoring ones, or the first ones for a space without scores."""
    if not 0 <= ratio < 1:
        raise VemkitError(f"ratio must be in [0, 1), got {ratio}")
    if min_channels < 1:
        raise VemkitError("min_channels must be at least 1 (a space is never pruned to zero)")
    graph = _graph(model, inputs, graph)
    checked = _check_scores(graph, scores or {})
    keep: dict[str, Tensor] = {}
    for space in graph.prunable():
        k = max(min(min_channels, space.size), round((1 - ratio) * space.size))
        if k >= space.size:
            continue
        s = checked.get(space.name)
        keep[space.name] = _top(s, k) if s is not None else torch.arange(k)
    return _result(model, graph, WidthMacs(graph, convention), keep, set(checked))
