"""The compile stage: modules, groups, phases and terms of a spec; taps and loss inputs checked
with did-you-mean before anything trains; the plan rendered from a meta-device compile."""

from __future__ import annotations

import json

import pytest
import torch

from tests._engine_util import (
    base_config,
    make_registry,
    make_spec,
    merge,
    single_thread,  # noqa: F401 - autouse fixture
)
from vemkit.engine import hookspecs
from vemkit.engine.program import compile
from vemkit.errors import VemkitError
from vemkit.plan import plan_of, render


@pytest.fixture(scope="module")
def reg():
    return make_registry()


@pytest.fixture
def config(tmp_path):
    # compile never reads the data, so the root need not exist
    return base_config(tmp_path / "no-data", tmp_path / "run")


def terms(program, phase):
    return [(t.name, t.weight) for t in program.phase(phase).terms]


def test_kd_with_gan_and_online_teacher(reg, config):
    config = merge(
        config,
        {
            "teacher": {"mode": "online"},
            "method": {
                "type": "kd",
                "recon_weight": 2.0,
                "gan_weight": 0.5,
                "gan_mode": "lsgan",
                "discriminator": {"type": "tiny", "width": 4, "output_nc": 1},
            },
        },
    )
    program = compile(make_spec(reg, config), registry=reg)
    assert [p.name for p in program.phases] == ["discriminator", "teacher", "student"]
    assert [p.order for p in program.phases] == [
        hookspecs.ORDER_DISCRIMINATOR,
        hookspecs.ORDER_TEACHER,
        hookspecs.ORDER_STUDENT,
    ]
    assert terms(program, "discriminator") == [("kd.d_real", 0.5), ("kd.d_fake", 0.5)]
    # pix2pix lambda_L1 = 100 is the KDOptions default for the online teacher
    assert terms(program, "teacher") == [("kd.teacher_gan", 1.0), ("kd.teacher_recon", 100.0)]
    assert terms(program, "student") == [("kd.output", 1.0), ("kd.recon", 2.0), ("kd.gan", 0.5)]
    assert set(program.groups) == {"student", "teacher", "discriminator"}
    assert {n: e.group for n, e in program.modules.items()} == {
        "teacher": "teacher",
        "student": "student",
        "discriminator": "discriminator",
    }
    program.finalise()
    for name, group in program.groups.items():
        expected = {id(p) for p in program.module(name).parameters()}
        assert {id(p) for p in group.params} == expected
        assert isinstance(group.optimizer, torch.optim.Adam)
        assert group.scheduler is not None
    assert program.phase("discriminator").groups == ["discriminator"]
    assert program.term("kd.recon").source == "method kd"


def test_frozen_teacher_has_no_group_no_phase_and_no_gradients(reg, config):
    program = compile(make_spec(reg, config), registry=reg)
    assert [p.name for p in program.phases] == ["student"]
    assert set(program.groups) == {"student"}
    assert terms(program, "student") == [("kd.output", 1.0)]
    program.finalise()
    teacher = program.module("teacher")
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert program.module("student").training
    assert any("teacher.checkpoint is null" in n for n in program.notes)


def test_wrong_tap_path_gets_did_you_mean_before_training(reg, config):
    config["losses"] = [{"type": "l1", "inputs": ["student:bod.0", "teacher:body.0"]}]
    with pytest.raises(VemkitError) as err:
        compile(make_spec(reg, config), registry=reg)
    message = str(err.value)
    assert message.startswith("losses.0.inputs.0: feature tap 'student:bod.0'")
    assert "; did you mean 'body.0'" in message


def test_tap_written_with_a_dot_is_pointed_to_the_colon_form(reg, config):
    config["losses"] = [{"type": "l1", "inputs": ["student.body.3", "teacher.out"]}]
    with pytest.raises(VemkitError, match=r"a feature tap is written 'student:body.3'"):
        compile(make_spec(reg, config), registry=reg)


def test_unknown_loss_input_and_phase(reg, config):
    config["losses"] = [{"type": "l1", "inputs": ["student.outt", "teacher.out"]}]
    with pytest.raises(VemkitError, match=r"no tensor named 'student.outt'; did you mean"):
        compile(make_spec(reg, config), registry=reg)
    config["losses"] = [{"type": "l1", "inputs": ["student.out", "target"], "phase": "studnet"}]
    with pytest.raises(VemkitError, match=r"losses.0.phase: no phase named 'studnet'; did you"):
        compile(make_spec(reg, config), registry=reg)


def test_ddp_prefix_is_stripped_from_tap_paths(reg, config):
    program = compile(make_spec(reg, config), registry=reg)
    assert program.tap("student:module.body.0") == "student:body.0"
    assert program.probe(["student:body.0"]) == {"student:body.0": (1, 4, 16, 16)}


def test_adapter_is_added_where_tap_channels_differ(reg, config):
    config["losses"] = [
        {
            "type": "mse",
            "inputs": ["student:body.0", "teacher:body.0"],
            "weight": 0.5,
            "adapter": "conv1x1",
        },
        {"type": "l1", "inputs": ["student.out", "target"]},
    ]
    program = compile(make_spec(reg, config), registry=reg)
    adapter = program.modules["adapter.losses.0"]
    assert adapter.group == "student" and adapter.role == "adapter"
    assert (adapter.module.in_channels, adapter.module.out_channels) == (4, 8)
    assert "adapter.losses.1" not in program.modules  # same channels: no adapter
    assert terms(program, "student")[1:] == [("losses.0.mse", 0.5), ("losses.1.l1", 1.0)]
    program.finalise()
    params = {id(p) for p in program.groups["student"].params}
    assert {id(p) for p in adapter.module.parameters()} <= params

    config["losses"][0]["adapter"] = "none"
    with pytest.raises(
        VemkitError,
        match=r"losses.0: 'student:body.0' has 4 channels and "
        r"'teacher:body.0' has 8; set adapter: conv1x1",
    ):
        compile(make_spec(reg, config), registry=reg)


def test_online_teacher_that_nothing_trains_is_refused(reg, config):
    config = merge(config, {"task": "unpaired", "teacher": {"mode": "online"}})
    with pytest.raises(VemkitError) as err:
        compile(make_spec(reg, config), registry=reg)
    assert "phase 'teacher' has no loss terms" in str(err.value)
    assert "set teacher.mode: frozen" in str(err.value)


class ThirdParty:
    """A callback that uses the whole build surface of the contract."""

    @hookspecs.hookimpl
    def vemkit_build(self, program, spec):
        program.add_group("critic", optimizer={"type": "sgd", "lr": 0.1})
        program.add_module("critic", torch.nn.Linear(3, 1), role="discriminator", group="critic")
        program.add_producer("student.mean", lambda s: s["student.out"].mean(dim=(2, 3)))

    @hookspecs.hookimpl
    def vemkit_phases(self, program, spec):
        program.add_phase("critic", order=50, groups=["critic"], every=2)
        critic = program.module("critic")
        program.add_term("critic", "tp.critic", lambda s: critic(s.detached("student.mean")).mean())
        program.add_term("student", "tp.extra", lambda s: s["student.mean"].pow(2).mean(), 0.25)

    @hookspecs.hookimpl
    def vemkit_check(self, program, spec):
        return ["tp: found a problem"] if spec.seed == 99 else None


def test_third_party_component_extends_the_program(reg, config):
    program = compile(make_spec(reg, config), registry=reg, callbacks=[ThirdParty()])
    assert [p.name for p in program.phases] == ["critic", "student"]
    assert program.phase("critic").every == 2 and program.phase("critic").source == "callback.0"
    assert terms(program, "student") == [("kd.output", 1.0), ("tp.extra", 0.25)]
    program.finalise()
    assert isinstance(program.groups["critic"].optimizer, torch.optim.SGD)
    assert "student.mean" in program.producers
    with pytest.raises(VemkitError, match=r"cannot be compiled:\n  tp: found a problem"):
        compile(make_spec(reg, {**config, "seed": 99}), registry=reg, callbacks=[ThirdParty()])


def test_plan_compiles_on_meta_and_renders(reg, config):
    config = merge(
        config,
        {
            "teacher": {"mode": "online"},
            "method": {"gan_weight": 1.0, "discriminator": {"type": "tiny", "output_nc": 1}},
        },
    )
    config["losses"] = [
        {"type": "l1", "inputs": ["student:body.0", "teacher:body.0"], "adapter": "conv1x1"}
    ]
    plan = plan_of(make_spec(reg, config), reg)
    json.dumps(plan)  # plain data
    modules = {m["name"]: m for m in plan["modules"]}
    assert modules["student"]["params"] == sum(
        p.numel() for p in make_registry().build("arch", {"type": "tiny"}).parameters()
    )
    assert modules["adapter.losses.0"]["group"] == "student"
    assert [p["name"] for p in plan["phases"]] == ["discriminator", "teacher", "student"]
    text = render(plan)
    assert "1·kd.output + 1·kd.gan + 1·losses.0.l1" in text
    mermaid = render(plan, "mermaid")
    assert mermaid.startswith("flowchart LR")
    assert "phase_student -. updates .-> adapter_losses_0" in mermaid


def test_warm_start_loads_student_init_and_names_the_spec_path(reg, config, tmp_path):
    from vemkit.weights import save_weights

    source = reg.build("arch", {"type": "tiny", "width": 4})
    torch.nn.init.constant_(source.body[0].weight, 0.25)
    save_weights(source, tmp_path / "init.safetensors")
    config["student"]["init"] = str(tmp_path / "init.safetensors")
    program = compile(make_spec(reg, config), registry=reg)
    assert torch.equal(program.module("student").body[0].weight, source.body[0].weight)
    config["teacher"]["checkpoint"] = str(tmp_path / "init.safetensors")  # width 4, not 8
    with pytest.raises(VemkitError, match=r"(?s)^teacher.checkpoint: .*7 shape difference"):
        compile(make_spec(reg, config), registry=reg)


class Misspelt:
    @hookspecs.hookimpl
    def vemkit_phase(self, program, spec):  # not a hook: vemkit_phases
        pass


class WrongArgs:
    @hookspecs.hookimpl
    def vemkit_build(self, program, spec, extra):
        pass


def test_malformed_run_plugins_are_reported(reg, config):
    spec = make_spec(reg, config)
    with pytest.raises(VemkitError, match=r"implements an unknown hook: .*vemkit_phase"):
        compile(spec, registry=reg, callbacks=[Misspelt()])
    with pytest.raises(VemkitError, match=r"(?s)callback.0: cannot take part in the run: .*extra"):
        compile(spec, registry=reg, callbacks=[WrongArgs()])


def test_a_method_moves_a_module_between_groups_and_reconfigures_a_group():
    from vemkit.engine.program import Program
    from vemkit.errors import VemkitError

    class Spec:
        class train:  # stands in for the spec's section
            optimizer = {"type": "adam", "lr": 2e-4}
            scheduler = {"type": "linear_decay"}
            grad_clip = None

    program = Program(Spec, registry=None)
    program.add_group("student")
    program.add_module("student", torch.nn.Linear(2, 2), group="student")
    program.set_group("student", None)
    assert not program.modules["student"].trainable
    group = program.configure_group("student", optimizer={"type": "adam", "lr": 1e-3})
    assert group.optimizer_config == {"type": "adam", "lr": 1e-3}
    assert group.scheduler_config == {"type": "linear_decay"}
    with pytest.raises(VemkitError, match="did you mean 'student'"):
        program.set_group("student", "studnet")
    with pytest.raises(VemkitError, match="no group named 'teacher'"):
        program.configure_group("teacher", scheduler={"type": "constant"})
