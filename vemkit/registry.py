"""The component registry and the plugin manager that fills it.

Every component (an architecture, a method, an MI term, an energy net, a sampler, a dataset, a
metric, an optimizer, a scheduler, or a kind a plugin invents) is registered as ``(kind, name,
options model, factory)``. The module-level functions (``build``, ``get``, ``names``, ...) act on
the process-wide registry, loaded on first use from the entry-point group ``vemkit``::

    import vemkit
    net = vemkit.registry.build("arch", {"type": "unet", "ngf": 16})

Loading rules (pytest's, simonw/llm's):

* built-ins are an entry point like any third-party plugin;
* each plugin is imported and registered in isolation: a failure is recorded (``failures()``,
  ``vemkit plugins``) and skipped, unless a spec's ``requires:`` names it;
* ``VEMKIT_DISABLE_PLUGIN_AUTOLOAD=1`` stops entry-point discovery; ``VEMKIT_PLUGINS=a,b`` (or
  ``vemkit -p a -p b``) then names the plugins to load, as entry-point names or module paths.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from vemkit import hookspecs
from vemkit.errors import PluginError, VemkitError

if TYPE_CHECKING:
    # pydantic's models are imported where a model is checked or built, not here: loading
    # plugins and listing names (`vemkit plugins`) needs neither.
    from pydantic import BaseModel

    from vemkit.options import Options

ENTRY_POINT_GROUP = "vemkit"
KNOWN_KINDS = (
    "arch",
    "method",
    "mi",
    "energy",
    "sampler",
    "dataset",
    "metric",
    "optimizer",
    "scheduler",
    "loss",
)

Factory = Callable[..., Any]


@dataclass(frozen=True)
class Component:
    """One registered component.

    ``options_source`` is the options model or its ``"module:attr"`` path; :attr:`options`
    imports the latter on first use, so that listing or validating a spec that names a few
    components does not make every plugin's options classes (``vemkit validate``'s start-up).
    """

    kind: str
    name: str
    options_source: type[Options] | str
    factory: Factory | str
    plugin: str
    summary_text: str | None = None
    example: Mapping[str, Any] | None = None

    @cached_property
    def options(self) -> type[Options]:
        """The options model, imported and checked on first use when given as a path."""
        if not isinstance(self.options_source, str):
            return self.options_source
        module_name, _, attr = self.options_source.partition(":")
        try:
            model = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"{self.plugin}: options of {self.kind} '{self.name}' "
                f"({self.options_source}) cannot be imported: {type(exc).__name__}: {exc}"
            ) from exc
        _check_options(self.plugin, self.kind, self.name, model)
        return model

    @property
    def summary(self) -> str:
        """The registered summary, else the first line of the options model's docstring."""
        if self.summary_text is not None:
            return self.summary_text
        return (self.options.__doc__ or "").strip().split("\n")[0]

    def resolve_factory(self) -> Factory:
        """The factory, imported on first use when it was registered as ``"module:attr"``."""
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module_name), attr)


def _check_options(plugin: str, kind: str, name: str, options: Any) -> None:
    from pydantic import BaseModel

    if not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise PluginError(f"{plugin}: options of {kind} '{name}' must be a pydantic model")
    if "type" in options.model_fields:
        raise PluginError(
            f"{plugin}: options of {kind} '{name}' declare a 'type' field; "
            "the framework adds the tag itself"
        )


@dataclass
class PluginInfo:
    """A plugin the manager tried to load."""

    name: str
    module: str
    error: str | None = None
    components: list[tuple[str, str]] = field(default_factory=list)
    dist: metadata.Distribution | None = field(default=None, repr=False, compare=False)
    """The installed distribution whose entry point named the plugin (None: loaded by path)."""

    # Read on first use: a distribution's name and version come from parsing its METADATA
    # file, milliseconds that `vemkit validate` does not need unless a spec says `requires:`.
    @cached_property
    def distribution(self) -> str | None:
        return self.dist.name if self.dist is not None else None

    @cached_property
    def version(self) -> str | None:
        return self.dist.version if self.dist is not None else None

    @property
    def ok(self) -> bool:
        return self.error is None


class Registry:
    """Components by kind and name, plus the plugins that supplied them."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self._current_plugin: str = "<python>"
        self._fingerprint: str | None = None

    # -- registration ---------------------------------------------------------------------
    def add(
        self,
        kind: str,
        name: str,
        *,
        options: type[Options] | str,
        factory: Factory | str,
        summary: str | None = None,
        example: Mapping[str, Any] | None = None,
    ) -> None:
        """Register component ``name`` of ``kind``.

        ``options`` is the component's pydantic options model (a subclass of
        :class:`vemkit.options.Options`, without a ``type`` field), or its path
        ``"module:attr"``: then the module is imported only when a spec names the component (or
        the full Spec, the schema, is built), and the model is checked then. ``factory`` is
        called as ``factory(options, **context)`` and may be given as ``"module:attr"`` so that
        heavy imports (torch) happen only when the component is built. ``summary`` defaults to
        the first line of the options model's docstring. ``example`` is a small options mapping
        (without ``type``) that builds a tiny instance: the registry-wide tests build every
        component from it (from the defaults when absent).
        """
        if isinstance(options, str):
            module_name, sep, attr = options.partition(":")
            if not (sep and module_name and attr):
                raise PluginError(
                    f"{self._current_plugin}: options of {kind} '{name}' given as a path must "
                    f"read 'module:attr', got {options!r}"
                )
        else:
            _check_options(self._current_plugin, kind, name, options)
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise PluginError(f"{self._current_plugin}: invalid component name {name!r}")
        existing = self._components.get(kind, {}).get(name)
        if existing is not None:
            raise PluginError(
                f"{kind} '{name}' is registered twice: by plugin '{existing.plugin}' and by "
                f"plugin '{self._current_plugin}'"
            )
        self._components.setdefault(kind, {})[name] = Component(
            kind, name, options, factory, self._current_plugin, summary, example
        )
        self._fingerprint = None
        if self._current_plugin in self.plugins:
            self.plugins[self._current_plugin].components.append((kind, name))

    def _remove_plugin_components(self, plugin: str) -> None:
        for by_name in self._components.values():
            for name in [n for n, c in by_name.items() if c.plugin == plugin]:
                del by_name[name]
        self._fingerprint = None

    # -- lookup ---------------------------------------------------------------------------
    def kinds(self) -> list[str]:
        extra = sorted(k for k in self._components if k not in KNOWN_KINDS)
        return [*KNOWN_KINDS, *extra]

    def names(self, kind: str) -> list[str]:
        return sorted(self._components.get(kind, {}))

    def components(self, kind: str) -> list[Component]:
        return [self._components[kind][n] for n in self.names(kind)]

    def get(self, kind: str, name: str) -> Component:
        try:
            return self._components[kind][name]
        except KeyError:
            raise VemkitError(self.unknown_message(kind, name)) from None

    def unknown_message(self, kind: str, name: str) -> str:
        """``unknown arch 'unte'; did you mean 'unet'? (registered: ...)`` plus failed plugins."""
        known = self.names(kind)
        msg = f"unknown {kind} '{name}'"
        import difflib  # here: only an error message needs it (start-up)

        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        if close:
            msg += f"; did you mean '{close[0]}'?"
        msg += f" (registered: {', '.join(known) if known else 'none'})"
        failed = [p for p in self.plugins.values() if not p.ok]
        if failed:
            msg += "; plugins that failed to load: " + ", ".join(
                f"{p.name} ({p.error})" for p in failed
            )
        return msg

    def fingerprint(self) -> str:
        """A hash of what is registered; the Spec model is cached by it (computed once per
        registry state: the model builder asks for it for every class it makes)."""
        if self._fingerprint is not None:
            return self._fingerprint
        import hashlib  # here: only a Spec model is cached by it

        h = hashlib.sha256()
        for kind in sorted(self._components):
            for name, comp in sorted(self._components[kind].items()):
                opts = comp.options_source  # a path is not imported for this
                where = opts if isinstance(opts, str) else f"{opts.__module__}.{opts.__qualname__}"
                h.update(f"{kind}/{name}/{where}/{id(opts)};".encode())
        self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    # -- building -------------------------------------------------------------------------
    def options(self, kind: str, config: Mapping[str, Any] | BaseModel) -> Options:
        """Validate ``config`` (``{type: name, ...}`` or an already validated model)."""
        from pydantic import BaseModel

        if isinstance(config, BaseModel):
            return config  # type: ignore[return-value]
        if not isinstance(config, Mapping) or "type" not in config:
            raise VemkitError(f"a {kind} is written {{type: <name>, ...options}}, got {config!r}")
        comp = self.get(kind, str(config["type"]))
        opts = {k: v for k, v in config.items() if k != "type"}
        from vemkit.spec_model import tagged_model  # local: avoids an import cycle

        return tagged_model(self, comp).model_validate({"type": comp.name, **opts})

    def build(self, kind: str, config: Mapping[str, Any] | BaseModel, /, **context: Any) -> Any:
        """Validate ``config`` and call the component's factory with it and ``context``."""
        opts = self.options(kind, config)
        comp = self.get(kind, opts.type)  # type: ignore[attr-defined]
        return comp.resolve_factory()(opts, **context)

    # -- plugin loading -------------------------------------------------------------------
    def load_plugins(
        self,
        explicit: Iterable[str] = (),
        *,
        autoload: bool | None = None,
        use_env: bool = True,
    ) -> pluggy.PluginManager:
        """Discover and register plugins; every failure is recorded, none is raised.

        ``explicit`` names plugins to load besides the autoloaded ones: entry-point names of the
        group ``vemkit`` or importable module paths. ``use_env`` also reads
        ``VEMKIT_DISABLE_PLUGIN_AUTOLOAD`` and ``VEMKIT_PLUGINS``.
        """
        if autoload is None:
            disabled = use_env and os.environ.get("VEMKIT_DISABLE_PLUGIN_AUTOLOAD", "") not in (
                "",
                "0",
            )
            autoload = not disabled
        wanted = [p.strip() for p in explicit if p.strip()]
        if use_env:
            wanted += [
                p.strip() for p in os.environ.get("VEMKIT_PLUGINS", "").split(",") if p.strip()
            ]
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)

        entry_points = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        to_load: list[tuple[str, str, metadata.EntryPoint | None]] = []
        if autoload:
            to_load += [(name, ep.value, ep) for name, ep in sorted(entry_points.items())]
        for want in wanted:
            if any(name == want for name, _, _ in to_load):
                continue
            ep = entry_points.get(want)
            to_load.append((want, ep.value if ep else want, ep))

        for name, module_path, ep in to_load:
            info = PluginInfo(name=name, module=module_path, dist=ep.dist if ep else None)
            self.plugins[name] = info
            try:
                plugin = ep.load() if ep is not None else importlib.import_module(module_path)
                pm.register(plugin, name=name)
            except Exception as exc:  # a broken plugin must not take the host down
                info.error = f"{type(exc).__name__}: {exc}"
                continue
            self._register_one(pm, name, plugin, info)
        pm.check_pending()
        return pm

    def _register_one(
        self, pm: pluggy.PluginManager, name: str, plugin: object, info: PluginInfo
    ) -> None:
        impls = [i for i in pm.hook.vemkit_register.get_hookimpls() if i.plugin is plugin]
        self._current_plugin = name
        try:
            for impl in impls:
                impl.function(registry=self)
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            self._remove_plugin_components(name)
            info.components.clear()
        finally:
            self._current_plugin = "<python>"

    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if not p.ok]


# -- the process-wide registry ------------------------------------------------------------
_default: Registry | None = None
_extra_plugins: list[str] = []
_lock = threading.Lock()


def set_explicit_plugins(names: Iterable[str]) -> None:
    """Plugins to load in addition to autoloaded ones (the CLI's ``-p``); call before use."""
    _extra_plugins[:] = list(names)
    reset()


def default() -> Registry:
    """The process-wide registry, with plugins loaded on first call."""
    global _default
    with _lock:
        if _default is None:
            reg = Registry()
            reg.load_plugins(_extra_plugins)
            _default = reg
        return _default


def reset() -> None:
    """Forget the loaded registry (tests, or after changing ``VEMKIT_PLUGINS``)."""
    global _default
    with _lock:
        _default = None


def build(kind: str, config: Mapping[str, Any] | BaseModel, /, **context: Any) -> Any:
    """Build a component of ``kind`` from ``{type: name, ...options}``."""
    return default().build(kind, config, **context)


def get(kind: str, name: str) -> Component:
    return default().get(kind, name)


def names(kind: str) -> list[str]:
    return default().names(kind)


def kinds() -> list[str]:
    return default().kinds()


def options(kind: str, config: Mapping[str, Any] | BaseModel) -> Options:
    return default().options(kind, config)
