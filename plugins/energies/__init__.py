"""Built-in energy networks (``energy`` kind): ``conv_sn`` (the VEM authors' network), ``timm``
(any timm backbone) and ``mlp`` (toys and tests)."""

from __future__ import annotations

from vemkit_plugins.energies import options as o

_PKG = "vemkit_plugins.energies"


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    registry.add(
        "energy", "conv_sn", options=o.ConvSNEnergyOptions, factory=f"{_PKG}.conv_sn:build"
    )
    registry.add("energy", "timm", options=o.TimmEnergyOptions, factory=f"{_PKG}.timm_energy:build")
    registry.add("energy", "mlp", options=o.MLPEnergyOptions, factory=f"{_PKG}.mlp:build")
