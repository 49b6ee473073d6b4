"""Built-in loss terms (``loss`` kind) for the spec's ``losses:`` list: ``l1`` and ``mse``
between two named tensors (``student.out``, ``teacher.out``, ``target``, ``input`` or feature
taps ``student:<dotted.path>``)."""

from __future__ import annotations

# Options by path: a module is imported only when a spec names one of its components.
_O = "vemkit_plugins.losses.options"

EXAMPLE = {"inputs": ["student.out", "teacher.out"]}


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    for name, options in (("l1", f"{_O}:L1LossOptions"), ("mse", f"{_O}:MSELossOptions")):
        registry.add(
            "loss",
            name,
            options=options,
            factory=f"vemkit_plugins.losses.distance:{name}",
            example=EXAMPLE,
        )
