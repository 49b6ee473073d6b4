"""Built-in samplers (``sampler`` kind): ``langevin`` (short-run Langevin dynamics)."""

from __future__ import annotations

# Options by path: a module is imported only when a spec names one of its components.
_O = "vemkit_plugins.samplers.options"


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    registry.add(
        "sampler",
        "langevin",
        options=f"{_O}:LangevinOptions",
        factory="vemkit_plugins.samplers.langevin:build",
    )
