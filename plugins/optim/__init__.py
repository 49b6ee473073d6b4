"""Built-in optimizers (``optimizer`` kind) and learning-rate schedules (``scheduler`` kind)."""

from __future__ import annotations

# Options by path: a module is imported only when a spec names one of its components.
_O = "vemkit_plugins.optim.options"

_FACTORIES = "vemkit_plugins.optim.optimizers"


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    registry.add("optimizer", "adam", options=f"{_O}:AdamOptions", factory=f"{_FACTORIES}:adam")
    registry.add("optimizer", "adamw", options=f"{_O}:AdamWOptions", factory=f"{_FACTORIES}:adamw")
    registry.add("optimizer", "sgd", options=f"{_O}:SGDOptions", factory=f"{_FACTORIES}:sgd")
    registry.add(
        "scheduler",
        "linear_decay",
        options=f"{_O}:LinearDecayOptions",
        factory=f"{_FACTORIES}:linear_decay",
    )
    registry.add(
        "scheduler", "constant", options=f"{_O}:ConstantOptions", factory=f"{_FACTORIES}:constant"
    )
    registry.add(
        "scheduler", "cosine", options=f"{_O}:CosineOptions", factory=f"{_FACTORIES}:cosine"
    )
