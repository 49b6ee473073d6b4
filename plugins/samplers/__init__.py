"""Built-in samplers (``sampler`` kind): ``langevin`` (short-run Langevin dynamics)."""

from __future__ import annotations

from vemkit_plugins.samplers import options as o


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    registry.add(
        "sampler",
        "langevin",
        options=o.LangevinOptions,
        factory="vemkit_plugins.samplers.langevin:build",
    )
