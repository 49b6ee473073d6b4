"""vemkit: declarative GAN generator compression with VEM mutual-information distillation.

Public API (kept import-light: torch is imported only by what needs it)::

    import vemkit
    spec = vemkit.load_spec("specs/quickstart.yaml", overrides=["train.iterations=10"])
    problems = vemkit.validate("specs/quickstart.yaml")   # [] when valid
    net = vemkit.registry.build("arch", {"type": "unet", "ngf": 16})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vemkit.errors import DataError, PluginError, Problem, SpecError, VemkitError
from vemkit.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "Options",
    "PluginError",
    "Problem",
    "Slot",
    "Spec",
    "SpecError",
    "VemkitError",
    "__version__",
    "hookimpl",
    "load_spec",
    "registry",
    "validate",
]

if TYPE_CHECKING:
    from vemkit import registry
    from vemkit.options import Options, Slot
    from vemkit.spec import Spec, load_spec, validate


def __getattr__(name: str) -> Any:
    # The registry and the options base import pydantic's models: resolved on first access,
    # so that `vemkit --help` (which imports this package for its version) does not pay that.
    if name == "registry":
        from importlib import import_module

        return import_module("vemkit.registry")
    if name in ("Options", "Slot"):
        from vemkit import options

        return getattr(options, name)
    # Spec is built from the registry after plugins load, so it is resolved on first access.
    if name in ("Spec", "load_spec", "validate", "compile", "run"):
        if name == "Spec":
            from vemkit.spec_model import spec_model

            return spec_model()
        if name in ("compile", "run"):
            from vemkit import engine

            return getattr(engine, name)
        from vemkit import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'vemkit' has no attribute {name!r}")
