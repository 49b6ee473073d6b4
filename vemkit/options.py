"""Base class for the options model of every component.

A component's options model is the documentation of the component: every field carries a
description (attribute docstrings are used), constraints live in the type, and unknown keys are
errors. Plugins subclass :class:`Options`; the framework adds the ``type`` tag itself when it
builds the Spec, so an options model never declares ``type``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import os
import sys
from typing import Any, Self

from pydantic import BaseModel, ConfigDict
from pydantic.fields import FieldInfo

# file -> class qualname -> field name -> docstring. pydantic's own `use_attribute_docstrings`
# re-reads and re-tokenises a class's source for every class (and for every model made with
# create_model), which dominated `vemkit validate`'s start-up; one AST parse per file does it,
# and its result is kept beside the file's bytecode (_attribute_docs).
_ATTRIBUTE_DOCS: dict[str, dict[str, dict[str, str]]] = {}
_DOCS_CACHE_FORMAT = 1
"""Bumped when _parse_attribute_docs changes what it finds: older cache files are ignored."""


def _parse_attribute_docs(path: str) -> dict[str, dict[str, str]]:
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError):
        return {}
    found: dict[str, dict[str, str]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if not isinstance(node, ast.ClassDef):
                continue
            qualname = f"{prefix}{node.name}"
            docs: dict[str, str] = {}
            for stmt, following in zip(node.body, [*node.body[1:], None], strict=True):
                if (
                    isinstance(stmt, ast.AnnAssign)
                    and isinstance(stmt.target, ast.Name)
                    and isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                ):
                    docs[stmt.target.id] = inspect.cleandoc(following.value.value)
            found[qualname] = docs
            visit(node.body, f"{qualname}.")

    visit(tree.body, "")
    return found


def _docs_cache_path(path: str) -> str:
    pyc = importlib.util.cache_from_source(path)  # honours sys.pycache_prefix
    return pyc.removesuffix(".pyc") + ".vemkit-docs.json"


def _attribute_docs(path: str) -> dict[str, dict[str, str]]:
    """The attribute docstrings of the source file ``path``.

    Parsing a file costs about a third of importing its options models (~1 ms per 100
    lines), paid by every ``vemkit validate``; the result is kept in ``__pycache__`` next to the
    bytecode, stamped like it with the source's mtime and size, and written only where Python
    writes bytecode (not under ``PYTHONDONTWRITEBYTECODE``; silently not where it cannot).
    """
    import json  # here: `vemkit --help` imports this module and makes no options class

    try:
        st = os.stat(path)
        cache = _docs_cache_path(path)
    except (OSError, NotImplementedError, ValueError):
        return _parse_attribute_docs(path)
    stamp = [st.st_mtime_ns, st.st_size, _DOCS_CACHE_FORMAT]
    try:
        with open(cache, encoding="utf-8") as fh:
            cached = json.load(fh)
        if isinstance(cached, dict) and cached.get("source") == stamp:
            return cached["docs"]
    except (OSError, ValueError, KeyError):
        pass
    docs = _parse_attribute_docs(path)
    if not sys.dont_write_bytecode:
        tmp = f"{cache}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"source": stamp, "docs": docs}, fh)
            os.replace(tmp, cache)  # atomic: a concurrent reader sees the old file or this one
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return docs


def apply_attribute_docstrings(cls: type[BaseModel]) -> None:
    """Use the docstring under each field as its description (unless one is given)."""
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if not path:
        return
    if path not in _ATTRIBUTE_DOCS:
        _ATTRIBUTE_DOCS[path] = _attribute_docs(path)
    docs = _ATTRIBUTE_DOCS[path].get(cls.__qualname__, {})
    for name, field in cls.__pydantic_fields__.items():
        if field.description is None and name in docs:
            field.description = docs[name]


class Options(BaseModel):
    """Options of one component (``{type: name, ...options}`` in a spec)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        protected_namespaces=(),
        defer_build=True,
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        apply_attribute_docstrings(cls)

    @classmethod
    def as_default(cls, **values: Any) -> Self:
        """``cls(**values)`` for a field's default (``distil: Stage = Stage.as_default()``),
        made without building the validator.

        Calling a model builds its validator (``defer_build``): a recipe's stage defaults
        made when its options module is imported built about twenty validators, a quarter of
        ``vemkit validate``'s start-up, for methods the spec may not name. Give only values of
        the fields' exact types: they are not converted. The registry-wide tests validate every
        component's defaults from a JSON round trip, so a wrong one still fails a test.
        """
        return cls.model_construct(**values)


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
