"""Options of the compression toolkit's components (torch-free: ``vemkit validate`` imports it)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from vemkit.options import Options, Slot


class PrunedOptions(Options):
    """A channel-pruned network recorded as data: ``base`` with the first k channels of each
    named channel space kept (the spaces are derived from ``base``'s module graph; see
    ``vemkit_plugins.compress.channels``). Prune and search stages write this config, so that
    ``eval``, ``export`` and ``profile`` rebuild the exact pruned network and its saved weights
    load strictly (state-dict keys are the base network's)."""

    base: Annotated[dict[str, Any], Slot("arch")]
    """The full-width architecture the pruned network was cut from (any registered arch but
    ``pruned`` itself: a pruned network is pruned further by editing ``widths``)."""

    input: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)]
    """Shape of one example input without the batch, e.g. ``[3, 256, 256]`` for an image
    generator or ``[128]`` for SAGAN's latent: the channel spaces are found by tracing ``base`` on
    it (on the meta device, no memory). Any size the network accepts gives the same spaces."""

    widths: dict[str, Annotated[int, Field(gt=0)]] = {}
    """Channels kept per channel space, by space name (the dotted path of the space's first
    producer, e.g. ``model.model.1.model.1``); spaces not listed keep all their channels. A
    space's first k channels are kept, so a pruner that keeps other channels reorders the
    weights it saves accordingly (the toolkit's pruners save sliced weights that load as is)."""
