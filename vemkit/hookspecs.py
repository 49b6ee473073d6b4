"""The whole extension contract of vemkit.

A plugin is a module (or object) with functions marked ``@vemkit.hookimpl`` whose names are the
hooks below. Built-in components are registered through exactly the same path as third-party
ones: the entry-point group ``vemkit`` in a distribution's metadata names the module.

Two plugin managers exist:

* the **global** manager (``vemkit.registry.plugin_manager()``), which loads plugins once per
  process and calls :func:`vemkit_register` so that they add components to the registry;
* a **per-run** manager, created by the engine for each run, on which the run's active
  components (its method, its MI term, callbacks) are registered as plugins; the engine calls the
  training hooks of that manager. These are documented in ``vemkit.engine.hookspecs``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from vemkit.registry import Registry

PROJECT = "vemkit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def vemkit_register(registry: Registry) -> None:
    """Add this plugin's components to ``registry``.

    Called once per process, after the plugin is loaded, for every plugin. Call
    ``registry.add(kind, name, options=..., factory=...)`` for each component (both may be
    ``"module:attr"`` paths, imported on first use). Return nothing.
    A plugin that raises here is reported by ``vemkit plugins`` and skipped; its components are
    unavailable (a spec naming one of them is told which plugin failed and why).
    """
