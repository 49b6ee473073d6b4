"""The built-in plugin: registers every built-in component.

Each kind's package exposes ``register(registry)``; importing it must not import torch (the
options models are torch-free, factories are registered as ``"module:attr"`` strings) so that
``vemkit validate`` starts fast.
"""

from __future__ import annotations

from vemkit import hookimpl


@hookimpl
def vemkit_register(registry) -> None:
    from vemkit_plugins import (
        archs,
        compress,
        data,
        energies,
        losses,
        masks,
        methods,
        metrics,
        mi,
        optim,
        samplers,
    )

    packages = (archs, compress, data, energies, losses, masks, methods, metrics, mi, optim)
    for package in (*packages, samplers):
        package.register(registry)
