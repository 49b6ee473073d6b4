"""Builds the Spec model from what the registry holds.

The registry is filled first (plugins load), then the Spec model is built **once** per registry
state: every field marked ``Slot(kind)`` becomes a tagged union over the registered components of
that kind, each component's options model wrapped in an envelope that adds the ``type`` tag.
Nothing global is mutated: new classes are created with ``create_model`` and cached by the
registry's fingerprint (the lesson of nshconfig and pydantic#11595: rebuilding shared models as
plugins register is fragile).

Start-up: a Spec model over every registered component makes ~110 envelope classes and their
validators (and imports every plugin's options modules), most of which one spec never names.
``spec_model(reg, only=names)`` builds each union from the components named in the spec or in
the field's default (``train.optimizer``'s ``adam`` still validates); a union that names none
holds no member and rejects any value. :func:`vemkit.spec.validate_source` validates with it
first and falls back to the full model for anything it rejects, so messages (did-you-mean,
allowed keys) are those of the full model. What the restricted model accepts, the full one
accepts: every component in the data or a default is validated by its own options.
"""

from __future__ import annotations

import types
import typing
from functools import partial
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, Field, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from vemkit.options import slot_of

if typing.TYPE_CHECKING:
    from vemkit.registry import Component, Registry

_cache: dict[tuple[str, int, str], Any] = {}
_resolving: set[tuple[int, str, str]] = set()
"""(registry id, kind, name) of the envelopes being built: a component whose options nest its
own kind (``arch: pruned`` holds a ``base`` arch) gets a union without itself there, instead of
recursing forever."""


def _key(reg: Registry, what: str) -> tuple[str, int, str]:
    return (reg.fingerprint(), id(reg), what)


def _class_name(kind: str, name: str) -> str:
    parts = [p for p in name.replace("-", "_").replace(".", "_").split("_") if p]
    return kind.capitalize() + "".join(p[:1].upper() + p[1:] for p in parts)


Only = frozenset[str] | None
"""Component names a restricted model keeps in its unions (None: all registered ones)."""


def _only_key(only: Only) -> str:
    return "*" if only is None else ",".join(sorted(only))


def type_names(data: Any) -> frozenset[str]:
    """Every ``type: name`` string in raw spec data (any kind, any depth)."""
    found: set[str] = set()
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            tag = node.get("type")
            if isinstance(tag, str):
                found.add(tag)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(found)


def tagged_model(reg: Registry, comp: Component, only: Only = None) -> type[BaseModel]:
    """The envelope of one component: its (resolved) options model plus ``type: Literal[name]``.

    With ``only``, its nested component fields are restricted like the spec's (see module doc).
    """
    key = _key(reg, f"tagged:{comp.kind}:{comp.name}:{_only_key(only)}")
    if key not in _cache:
        marker = (id(reg), comp.kind, comp.name)
        _resolving.add(marker)
        try:
            base = resolve_model(reg, comp.options, only)
        finally:
            _resolving.discard(marker)
        desc = comp.summary or f"The {comp.kind} component '{comp.name}'."
        model = create_model(
            _class_name(comp.kind, comp.name),
            __base__=base,
            __module__=comp.options.__module__,
            __doc__=(comp.options.__doc__ or desc),
            type=(Literal[comp.name], Field(description=f"Selects the {comp.kind} '{comp.name}'.")),
        )
        model.__vemkit_component__ = (comp.kind, comp.name)  # type: ignore[attr-defined]
        _cache[key] = model
    return _cache[key]


def _check_tag(reg: Registry, kind: str, value: Any) -> Any:
    # Runs before the discriminated union so that an unknown or missing `type` gets a message
    # with did-you-mean and the registered names instead of pydantic's generic tag error.
    if isinstance(value, dict):
        if "type" not in value:
            names = ", ".join(reg.names(kind)) or "none registered"
            raise PydanticCustomError(
                "missing_type",
                "missing 'type': a {kind} is one of: {names}",
                {"kind": kind, "names": names},
            )
        tag = value["type"]
        if not isinstance(tag, str) or tag not in reg.names(kind):
            raise PydanticCustomError(
                "unknown_component", "{msg}", {"msg": reg.unknown_message(kind, str(tag))}
            )
    elif isinstance(value, BaseModel):
        return value
    return value


def component_union(
    reg: Registry, kind: str, only: Only = None, also: frozenset[str] = frozenset()
) -> Any:
    """``Annotated[Union[...], discriminator]`` over the registered components of ``kind``:
    all of them, or those named in ``only`` or ``also`` (a field default's names, which do not
    restrict the members' own fields: their envelopes are shared); never the component whose
    envelope is being built (see ``_resolving``)."""
    excluded = sorted(n for r, k, n in _resolving if r == id(reg) and k == kind)
    components = [c for c in reg.components(kind) if c.name not in excluded]
    if only is not None:
        components = [c for c in components if c.name in only or c.name in also]
    names = ",".join(c.name for c in components)
    key = _key(reg, f"union:{kind}:-{','.join(excluded)}:{names}:{_only_key(only)}")
    if key not in _cache:
        members = tuple(tagged_model(reg, c, only) for c in components)
        check = BeforeValidator(partial(_check_tag, reg, kind))
        if not members:
            # None registered (or, restricted, none named): a component there is an error
            # (the check's message), and so is any other value (no dict of that kind).
            _cache[key] = Annotated[dict, check]
        else:
            _cache[key] = Annotated[Union[members], Field(discriminator="type"), check]  # noqa: UP007
    return _cache[key]


def _allows_none(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _allows_none(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return type(None) in typing.get_args(annotation)
    return annotation is type(None)


def _model_inside(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return _model_inside(inner[0])
    return None


def _copy_field(field: FieldInfo, annotation: Any) -> tuple[Any, FieldInfo]:
    kwargs: dict[str, Any] = {"description": field.description}
    if field.default_factory is not None:
        kwargs["default_factory"] = field.default_factory
    elif isinstance(field.default, BaseModel):
        # A section default built from the unresolved class: re-validate it as plain data.
        kwargs["default"] = field.default.model_dump()
    else:
        kwargs["default"] = field.default
    if field.title:
        kwargs["title"] = field.title
    if field.examples:
        kwargs["examples"] = field.examples
    return (annotation, Field(**kwargs))


def resolve_model(reg: Registry, model: type[BaseModel], only: Only = None) -> type[BaseModel]:
    """``model`` with every ``Slot`` field (at any depth) retyped to its component union."""
    key = _key(reg, f"model:{model.__module__}.{model.__qualname__}:{id(model)}:{_only_key(only)}")
    if key in _cache:
        return _cache[key]
    overrides: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        slot = slot_of(field)
        if slot is not None:
            # A restricted union also holds what the field's default names (validate_default).
            ann: Any = component_union(reg, slot.kind, only, type_names(field.default))
            if slot.many:
                ann = list[ann]
            if _allows_none(field.annotation):
                ann = ann | None  # type: ignore[operator]
            overrides[name] = _copy_field(field, ann)
            continue
        inner = _model_inside(field.annotation)
        if inner is not None:
            resolved = resolve_model(reg, inner, only)
            if resolved is not inner:
                ann = resolved | None if _allows_none(field.annotation) else resolved
                overrides[name] = _copy_field(field, ann)
    if overrides:
        result = create_model(
            model.__name__,
            __base__=model,
            __module__=model.__module__,
            __doc__=model.__doc__,
            **overrides,
        )
    else:
        result = model
    _cache[key] = result
    return result


def spec_model(reg: Registry | None = None, only: Only = None) -> type[BaseModel]:
    """The Spec model for ``reg`` (the process-wide registry by default); with ``only``, its
    unions hold only the components named there (see the module docstring)."""
    from vemkit import registry as registry_module
    from vemkit.spec_sections import SpecBase

    reg = reg or registry_module.default()
    return resolve_model(reg, SpecBase, only)
