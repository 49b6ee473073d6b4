"""Built-in optimizers (``optimizer`` kind) and learning-rate schedules (``scheduler`` kind)."""

from __future__ import annotations

from vemkit_plugins.optim import options as o

_FACTORIES = "vemkit_plugins.optim.optimizers"


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    registry.add("optimizer", "adam", options=o.AdamOptions, factory=f"{_FACTORIES}:adam")
    registry.add("optimizer", "adamw", options=o.AdamWOptions, factory=f"{_FACTORIES}:adamw")
    registry.add("optimizer", "sgd", options=o.SGDOptions, factory=f"{_FACTORIES}:sgd")
    registry.add(
        "scheduler",
        "linear_decay",
        options=o.LinearDecayOptions,
        factory=f"{_FACTORIES}:linear_decay",
    )
    registry.add(
        "scheduler", "constant", options=o.ConstantOptions, factory=f"{_FACTORIES}:constant"
    )
    registry.add("scheduler", "cosine", options=o.CosineOptions, factory=f"{_FACTORIES}:cosine")
