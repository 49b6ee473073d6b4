"""Built-in energy networks (``energy`` kind): ``conv_sn`` (the VEM authors' network), ``timm``
(any timm backbone) and ``mlp`` (toys and tests)."""

from __future__ import annotations

# Options by path: a module is imported only when a spec names one of its components.
_O = "vemkit_plugins.energies.options"

_PKG = "vemkit_plugins.energies"


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    registry.add(
        "energy", "conv_sn", options=f"{_O}:ConvSNEnergyOptions", factory=f"{_PKG}.conv_sn:build"
    )
    registry.add(
        "energy", "timm", options=f"{_O}:TimmEnergyOptions", factory=f"{_PKG}.timm_energy:build"
    )
    registry.add("energy", "mlp", options=f"{_O}:MLPEnergyOptions", factory=f"{_PKG}.mlp:build")
