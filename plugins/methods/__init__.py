"""Built-in baseline compression methods (``method`` kind)."""

from __future__ import annotations

# Options by path: a module is imported only when a spec names one of its methods; the
# recipes' (staged) options are apart from the one-loop methods'.
_O = "vemkit_plugins.methods.options"
_R = "vemkit_plugins.methods.recipe_options"


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    for name, options in (
        ("kd", f"{_O}:KDOptions"),
        ("gcc", f"{_R}:GCCOptions"),
        ("omgd", f"{_O}:OMGDOptions"),
        ("gan_compression", f"{_R}:GanCompressionOptions"),
        ("cat", f"{_R}:CATOptions"),
        ("cagc", f"{_R}:CAGCOptions"),
    ):
        registry.add(
            "method",
            name,
            options=options,
            factory=f"vemkit_plugins.methods.{name}:build",
        )
