"""Built-in baseline compression methods (``method`` kind)."""

from __future__ import annotations

from vemkit_plugins.methods import options as o


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    registry.add("method", "kd", options=o.KDOptions, factory="vemkit_plugins.methods.kd:build")
    registry.add("method", "gcc", options=o.GCCOptions, factory="vemkit_plugins.methods.gcc:build")
    registry.add(
        "method", "omgd", options=o.OMGDOptions, factory="vemkit_plugins.methods.omgd:build"
    )
    registry.add(
        "method",
        "gan_compression",
        options=o.GanCompressionOptions,
        factory="vemkit_plugins.methods.gan_compression:build",
    )
    registry.add("method", "cat", options=o.CATOptions, factory="vemkit_plugins.methods.cat:build")
    registry.add(
        "method", "cagc", options=o.CAGCOptions, factory="vemkit_plugins.methods.cagc:build"
    )
