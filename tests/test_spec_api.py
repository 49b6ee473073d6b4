"""The Python API: load_spec, validate, Spec built in code, YAML round trips, overrides."""

from __future__ import annotations

import pytest

import vemkit
from tests.conftest import BASE_SPEC
from vemkit.errors import SpecError
from vemkit.spec import load_spec_text


def test_load_spec_applies_defaults_and_overrides(write_spec):
    spec = vemkit.load_spec(write_spec(BASE_SPEC), overrides=["train.iterations=7", "mi.type=none"])
    assert spec.train.iterations == 7
    assert spec.train.optimizer.type == "adam"
    assert spec.train.optimizer.lr == pytest.approx(2e-4)
    assert spec.student.arch.ngf == 16


def test_override_sets_lists_and_maps(write_spec):
    spec = vemkit.load_spec(
        write_spec(BASE_SPEC),
        overrides=["train.optimizer={type: adam, lr: 0.001, betas: [0.0, 0.99]}"],
    )
    assert spec.train.optimizer.lr == pytest.approx(1e-3)
    assert tuple(spec.train.optimizer.betas) == (0.0, 0.99)


def test_validate_returns_problems(write_spec):
    assert vemkit.validate(write_spec(BASE_SPEC)) == []
    problems = vemkit.validate(write_spec(BASE_SPEC.replace("seed: 0", "seed: -3")))
    assert [p.path for p in problems] == ["seed"]
    assert problems[0].line == 3 and problems[0].column == 7


def test_load_spec_raises_with_all_problems(write_spec):
    with pytest.raises(SpecError) as info:
        vemkit.load_spec(
            write_spec(BASE_SPEC.replace("seed: 0", "seed: -3")), ["train.batch_size=0"]
        )
    assert [p.path for p in info.value.problems] == ["seed", "train.batch_size"]


def test_spec_round_trips_through_yaml(write_spec):
    first = vemkit.load_spec(write_spec(BASE_SPEC))
    text = first.to_yaml()
    second = load_spec_text(text, "round.yaml")
    assert second == first
    assert second.to_yaml() == text
    assert text.splitlines()[0] == "vemkit: 1"
    assert "  arch:\n    type: unet" in text  # the type tag comes first


def test_spec_built_in_python_round_trips():
    spec = vemkit.Spec(
        name="in-code",
        data={"train": {"type": "aligned", "root": "data/e2s", "split": "train"}},
        teacher={"arch": {"type": "unet", "ngf": 64}},
        student={"arch": {"type": "unet", "ngf": 16}},
        method={"type": "kd", "weight": 2.0},
    )
    assert spec.method.weight == 2.0
    again = load_spec_text(spec.to_yaml(), "code.yaml")
    assert again == spec


def test_spec_model_is_built_once_per_registry():
    assert vemkit.Spec is vemkit.Spec


def test_validate_fast_path_names_only_the_components_a_spec_uses(write_spec):
    from vemkit import registry
    from vemkit.spec import _members
    from vemkit.spec_model import spec_model, type_names

    reg = registry.default()
    data = vemkit.spec.read_source(write_spec(BASE_SPEC)).data
    assert type_names(data) == {"aligned", "unet", "kd", "none"}
    small = spec_model(reg, only=type_names(data))

    def union(section: str, name: str) -> set[str]:
        field = small.model_fields[section].annotation.model_fields[name]
        return {m.__vemkit_component__[1] for m in _members(field.annotation)}

    # The spec names one arch: the union holds it alone...
    assert union("student", "arch") == {"unet"}
    # ...a field it leaves out holds what the default names, so the default validates...
    assert union("train", "optimizer") == {"adam"}
    assert union("train", "scheduler") == {"linear_decay"}
    # ...and a kind named nowhere holds no member (nothing of that kind is there to check).
    assert _members(small.model_fields["losses"].annotation) == []
    assert small.model_validate(data).losses == []
    assert load_spec_text(BASE_SPEC).student.arch.type == "unet"


def test_validate_falls_back_to_the_full_model(write_spec):
    # `train.optimizer: sgd` names sgd; the VEM energy's default optimizer, adam, is in its
    # union too (the field's default names it): the small model accepts the spec.
    text = BASE_SPEC.replace("mi: {type: none}", "mi: {type: vem}").replace(
        "train: {iterations: 10, batch_size: 2}",
        "train: {iterations: 10, batch_size: 2, optimizer: {type: sgd, lr: 0.01}}",
    )
    assert vemkit.validate(write_spec(text)) == []
    # Problems always come from the full model: did-you-mean and the allowed keys.
    bad = write_spec(text.replace("type: sgd,", "type: sdg,"), name="bad.yaml")
    (problem,) = vemkit.validate(bad)
    assert "did you mean 'sgd'?" in problem.message and "adam" in problem.message
