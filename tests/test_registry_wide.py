"""Registry-wide checks (timm style): every registered component, whoever wrote it, must have a
self-documenting options model whose defaults (or registered example) validate, render in the
schema and survive a JSON round trip; every architecture must build from its example and
round-trip its state dict through safetensors."""

from __future__ import annotations

import json

import pytest

from vemkit.schema import builtin_registry
from vemkit.spec_model import tagged_model

REG = builtin_registry()
COMPONENTS = [c for kind in REG.kinds() for c in REG.components(kind)]
IDS = [f"{c.kind}:{c.name}" for c in COMPONENTS]


def _config(comp) -> dict:
    return {"type": comp.name, **dict(comp.example or {})}


@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_options_document_themselves(comp):
    assert comp.options.__doc__ and comp.options.__doc__.strip(), "options model has no docstring"
    for name, field in comp.options.model_fields.items():
        assert field.description, f"{comp.kind}:{comp.name} option '{name}' has no description"
    assert comp.options.model_config.get("extra") == "forbid"


@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_defaults_validate_and_round_trip(comp):
    model = tagged_model(REG, comp)
    opts = REG.options(comp.kind, _config(comp))
    data = json.loads(json.dumps(opts.model_dump(mode="json")))
    assert model.model_validate(data) == opts
    model.model_json_schema()


@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_unknown_option_is_rejected(comp):
    with pytest.raises(Exception, match=r"extra_forbidden|Extra inputs"):
        REG.options(comp.kind, {**_config(comp), "no_such_option_xyz": 1})


ARCHS = [c for c in COMPONENTS if c.kind == "arch"]


@pytest.mark.parametrize("comp", ARCHS, ids=[c.name for c in ARCHS])
def test_every_arch_builds_and_round_trips_weights(comp, tmp_path):
    import torch

    from vemkit.weights import load_weights, save_weights

    assert comp.example is not None, f"arch '{comp.name}' registers no tiny example"
    torch.manual_seed(0)
    net = REG.build("arch", _config(comp))
    assert sum(p.numel() for p in net.parameters()) > 0
    path = tmp_path / "w.safetensors"
    save_weights(net, path)
    torch.manual_seed(1)
    other = REG.build("arch", _config(comp))
    load_weights(other, path)
    for (k, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
