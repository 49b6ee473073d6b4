"""Built-in mutual-information terms (``mi`` kind): ``vem`` (the paper's), and the ablations
``vid``, ``crd`` and ``none``. The torch objects are usable without the engine, e.g.
``from vemkit_plugins.mi.vem import VEM``."""

from __future__ import annotations

from vemkit_plugins.mi import options as o

_PKG = "vemkit_plugins.mi"


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    registry.add("mi", "vem", options=o.VEMOptions, factory=f"{_PKG}.vem:build")
    registry.add("mi", "vid", options=o.VIDOptions, factory=f"{_PKG}.vid:build")
    registry.add("mi", "crd", options=o.CRDOptions, factory=f"{_PKG}.crd:build")
    registry.add("mi", "none", options=o.NoMIOptions, factory=f"{_PKG}.none:build")
