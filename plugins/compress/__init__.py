"""The generic compression toolkit: channel groups, slicing, MACs, importance, pruning, search.

A pure library (no engine, no training loop), generic over architectures: the coupled channel
groups are derived from the module graph (:mod:`.channels`), never listed per network. It also
registers the ``pruned`` arch, which rebuilds a pruned network from data.
"""

from __future__ import annotations


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    registry.add(
        "arch",
        "pruned",
        options="vemkit_plugins.compress.options:PrunedOptions",
        factory="vemkit_plugins.compress.slicing:build_pruned",
        example={
            "base": {"type": "unet", "ngf": 4, "num_downs": 5, "init_type": "default"},
            "input": [3, 32, 32],
            "widths": {"model.model.1.model.1": 5, "model.model.0": 3},
        },
    )
