"""JSON Schema (draft 2020-12) of the spec, for editors, CI and jsonschema users.

pydantic writes a tagged union as ``oneOf`` + ``discriminator``; jsonschema ignores the
discriminator, so a wrong option of one component is reported as "not valid under any of the
given schemas". We rewrite every such union into ``if/then`` branches on the tag plus an ``enum``
of the tags, so that jsonschema reports the precise failing path ("Additional properties are not
allowed ('ngff' was unexpected)" at ``student.arch``). Runtime validation uses pydantic only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vemkit.registry import Registry
from vemkit.spec_model import spec_model

SCHEMA_ID = "https://vemkit.dev/schemas/spec.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
CHECKED_IN = Path("schemas") / "spec.schema.json"


def _rewrite_unions(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_rewrite_unions(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _rewrite_unions(v, defs) for k, v in node.items()}
    disc = node.get("discriminator")
    if disc and "oneOf" in node:
        prop = disc["propertyName"]
        mapping: dict[str, str] = disc.get("mapping", {})
        branches = [
            {
                "if": {"properties": {prop: {"const": tag}}, "required": [prop]},
                "then": {"$ref": ref},
            }
            for tag, ref in sorted(mapping.items())
        ]
        rewritten = {k: v for k, v in node.items() if k not in ("oneOf", "discriminator")}
        rewritten.update(
            {
                "type": "object",
                "required": [prop],
                "properties": {prop: {"enum": sorted(mapping)}},
                "allOf": branches,
            }
        )
        return rewritten
    return node


def spec_schema(reg: Registry) -> dict[str, Any]:
    """The JSON Schema of the Spec model built from ``reg``."""
    schema = spec_model(reg).model_json_schema(mode="validation")
    defs = schema.get("$defs", {})
    schema = _rewrite_unions(schema, defs)
    schema["$schema"] = DRAFT
    schema["$id"] = SCHEMA_ID
    schema["title"] = "vemkit spec"
    return schema


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def builtin_registry() -> Registry:
    """A registry with the built-in plugin only (what the checked-in schema describes)."""
    reg = Registry()
    reg.load_plugins(["builtins"], autoload=False, use_env=False)
    return reg
