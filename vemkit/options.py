"""Base class for the options model of every component.

A component's options model is the documentation of the component: every field carries a
description (attribute docstrings are used), constraints live in the type, and unknown keys are
errors. Plugins subclass :class:`Options`; the framework adds the ``type`` tag itself when it
builds the Spec, so an options model never declares ``type``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.fields import FieldInfo


class Options(BaseModel):
    """Options of one component (``{type: name, ...options}`` in a spec)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        validate_default=True,
        protected_namespaces=(),
        defer_build=True,
    )


class Slot:
    """Marks a field of an options model as a nested component of another kind.

    ``energy: Annotated[dict, Slot("energy")] = {"type": "conv_sn"}`` declares that the field
    holds any registered ``energy`` component. When the Spec is built the field is retyped to
    the tagged union of every registered ``energy`` options model, so it validates, appears in
    the schema and reports errors like any top-level component.
    """

    __slots__ = ("kind", "many")

    def __init__(self, kind: str, *, many: bool = False) -> None:
        self.kind = kind
        self.many = many

    def __repr__(self) -> str:
        return f"Slot({self.kind!r}, many={self.many})"


def slot_of(field: FieldInfo) -> Slot | None:
    for meta in field.metadata:
        if isinstance(meta, Slot):
            return meta
    return None


def component_type(options: Any) -> str | None:
    """The registered name of a validated component (the value of its ``type`` tag)."""
    return getattr(options, "type", None)
