"""The JSON Schema: in sync with the models, valid draft 2020-12, precise jsonschema paths."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import BASE_SPEC
from vemkit.cli import main
from vemkit.schema import builtin_registry, dumps, spec_schema

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def schema() -> dict:
    return spec_schema(builtin_registry())


def test_checked_in_schema_is_in_sync(schema):
    checked_in = (ROOT / "schemas" / "spec.schema.json").read_text(encoding="utf-8")
    stale = "schemas/spec.schema.json is stale: run `vemkit schema --write`"
    assert checked_in == dumps(schema), stale


def test_schema_check_command_detects_staleness(tmp_path, capsys):
    stale = tmp_path / "spec.schema.json"
    stale.write_text("{}\n")
    assert main(["schema", "--check", "--file", str(stale)]) == 1
    assert "Run `vemkit schema --write`" in capsys.readouterr().err
    assert main(["schema", "--write", "--file", str(stale)]) == 0
    assert main(["schema", "--check", "--file", str(stale)]) == 0


def test_schema_is_valid_draft_2020_12(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _errors(schema: dict, data: dict) -> list[tuple[str, str]]:
    validator = jsonschema.Draft202012Validator(schema)
    return [(".".join(map(str, e.absolute_path)), e.message) for e in validator.iter_errors(data)]


def test_valid_spec_passes_jsonschema(schema):
    assert _errors(schema, yaml.safe_load(BASE_SPEC)) == []


@pytest.mark.parametrize(
    ("path", "value", "where", "says"),
    [
        (("student", "arch", "ngff"), 16, "student.arch", "'ngff' was unexpected"),
        (("student", "arch", "ngf"), "wide", "student.arch.ngf", "is not of type 'integer'"),
        (("student", "arch", "type"), "unte", "student.arch.type", "is not one of"),
        (
            ("train", "optimizer"),
            {"type": "adam", "lr": -1},
            "train.optimizer.lr",
            "less than or equal to the minimum of 0",
        ),
        (("teacher", "mode"), "onlin", "teacher.mode", "is not one of"),
    ],
)
def test_jsonschema_reports_precise_path(schema, path, value, where, says):
    data = yaml.safe_load(BASE_SPEC)
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    errors = _errors(schema, data)
    assert errors, "expected a jsonschema error"
    assert any(p == where and says in m for p, m in errors), errors
    assert not any("is not valid under any of the given schemas" in m for _, m in errors)


def test_component_options_carry_descriptions(schema):
    defs = schema["$defs"]
    unet = next(v for k, v in defs.items() if k.lower() == "archunet")
    assert unet["properties"]["ngf"]["description"]


def test_specs_in_repo_validate_with_both(schema):
    from vemkit.spec import validate

    specs = sorted((ROOT / "specs").rglob("*.yaml"))
    assert specs, "no specs in specs/"
    for spec in specs:
        text = spec.read_text(encoding="utf-8")
        assert text.startswith("# yaml-language-server: $schema="), f"{spec}: no $schema comment"
        assert validate(spec) == [], spec
        assert _errors(schema, yaml.safe_load(text)) == [], spec


def test_printed_schema_is_json(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "vemkit spec"
