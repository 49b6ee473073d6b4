"""Built-in mutual-information terms (``mi`` kind): ``vem`` (the paper's), and the ablations
``vid``, ``crd`` and ``none``. The torch objects are usable without the engine, e.g.
``from vemkit_plugins.mi.vem import VEM``."""

from __future__ import annotations

# Options by path: a module is imported only when a spec names one of its components.
_O = "vemkit_plugins.mi.options"

_PKG = "vemkit_plugins.mi"


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    registry.add("mi", "vem", options=f"{_O}:VEMOptions", factory=f"{_PKG}.vem:build")
    registry.add("mi", "vid", options=f"{_O}:VIDOptions", factory=f"{_PKG}.vid:build")
    registry.add("mi", "crd", options=f"{_O}:CRDOptions", factory=f"{_PKG}.crd:build")
    registry.add("mi", "none", options=f"{_O}:NoMIOptions", factory=f"{_PKG}.none:build")
