"""An MI term in a run: the energy phase before the student phase, the student term reusing the
negatives it drew, the energy's own optimizer, and its sampler buffer resumed exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests._engine_util import (
    base_config,
    make_aligned,
    make_registry,
    make_spec,
    merge,
    same_tensors,
    single_thread,  # noqa: F401 - autouse fixture
    weights,
)
from vemkit.engine import hookspecs, resume
from vemkit.engine import run as run_engine
from vemkit.engine.program import compile
from vemkit.errors import VemkitError
from vemkit_plugins.mi import options as mi_options
from vemkit_plugins.mi.hooks import NEGATIVES, MIRunHooks
from vemkit_plugins.mi.vem import VEM


def build_run_vem(options, **context):
    energy = context["build"]("energy", options.energy)
    sampler = context["build"]("sampler", options.sampler)
    assert isinstance(VEM, type) and issubclass(VEM, MIRunHooks)
    return VEM(
        energy, sampler, weight=options.weight, alpha=options.alpha, positive=options.positive
    )


@pytest.fixture(scope="module")
def reg():
    registry = make_registry()
    registry.add("mi", "vem_run", options=mi_options.VEMOptions, factory=build_run_vem)
    return registry


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_aligned(tmp_path_factory.mktemp("data"), n=5)


def vem_config(data_root: Path, run_dir: Path, **mi) -> dict:
    return merge(
        base_config(data_root, run_dir),
        {
            "mi": {
                "type": "vem_run",
                "weight": 0.1,
                "energy": {"type": "conv_sn", "width": 4, "blocks": 2, "downsample": 0},
                "sampler": {"type": "langevin", "steps": 2, "init": "buffer", "buffer_size": 6},
                **mi,
            },
            "train": {"iterations": 5, "deterministic": True},
        },
    )


class Spy:
    """Checks inside a run that the student term sees the energy phase's negatives."""

    def __init__(self):
        self.negatives = []

    @hookspecs.hookimpl
    def vemkit_iteration_end(self, program, state, step, logs):
        self.negatives.append(state.values.get(NEGATIVES))


def test_vem_adds_an_energy_phase_and_a_student_term(reg, data_root, tmp_path):
    program = compile(make_spec(reg, vem_config(data_root, tmp_path / "run")), registry=reg)
    assert [(p.name, p.order, p.groups) for p in program.phases] == [
        ("energy", hookspecs.ORDER_ENERGY, ["mi"]),
        ("student", hookspecs.ORDER_STUDENT, ["student"]),
    ]
    assert [t.name for t in program.phase("energy").terms] == ["mi.energy"]
    assert [t.name for t in program.phase("student").terms] == ["kd.output", "mi.vem_run"]
    assert program.modules["mi"].role == "energy" and program.modules["mi"].group == "mi"
    program.finalise()
    optimizer = program.groups["mi"].optimizer
    # the authors' energy optimizer: Adam 1e-4, betas (0, 0.999) (VEMOptions default)
    assert optimizer.defaults["lr"] == 1e-4 and tuple(optimizer.defaults["betas"]) == (0.0, 0.999)
    energy_params = {id(p) for p in program.module("mi").energy.parameters()}
    assert {id(p) for p in program.groups["mi"].params} == energy_params
    assert not energy_params & {id(p) for p in program.groups["student"].params}


def test_vem_trains_and_resumes_exactly_with_its_replay_buffer(reg, data_root, tmp_path):
    spy = Spy()
    spec = make_spec(reg, vem_config(data_root, tmp_path / "whole"))
    program = compile(spec, registry=reg)
    start = {k: v.clone() for k, v in program.module("mi").energy.state_dict().items()}
    whole = run_engine(spec, registry=reg, progress=False, callbacks=[spy])
    assert whole.status == "finished"
    assert all(isinstance(n, torch.Tensor) and n.shape[1:] == (3, 16, 16) for n in spy.negatives)
    trained = weights(tmp_path / "whole" / "checkpoints" / "last" / "mi.safetensors")
    assert not same_tensors(
        start, {k[len("energy.") :]: v for k, v in trained.items() if k.startswith("energy.")}
    )
    assert trained["sampler.chains"].shape == (6, 3, 16, 16)  # the replay buffer is saved
    lr = [line for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert all('"lr/mi": 0.0001' in line and '"mi.energy/energy_pos"' in line for line in lr)

    split = make_spec(reg, vem_config(data_root, tmp_path / "split"))
    run_engine(split, registry=reg, progress=False, stop_at=2)
    resume(tmp_path / "split", registry=reg, progress=False)
    for name in ("student", "mi", "state"):
        a = weights(tmp_path / "whole" / "checkpoints" / "last" / f"{name}.safetensors")
        b = weights(tmp_path / "split" / "checkpoints" / "last" / f"{name}.safetensors")
        assert same_tensors(a, b), name


def test_mi_checks_run_before_training(reg, data_root, tmp_path):
    config = vem_config(data_root, tmp_path / "run")
    config["mi"]["energy"]["blocks"] = 6  # 16 px cannot be halved 6 times
    with pytest.raises(VemkitError, match=r"mi.energy: energy conv_sn: images of 16×16 px"):
        compile(make_spec(reg, config), registry=reg)
    config = merge(vem_config(data_root, tmp_path / "run"), {"task": "unpaired"})
    with pytest.raises(VemkitError, match=r"mi.positive: 'target' pairs each student output"):
        compile(make_spec(reg, config), registry=reg)


def test_an_mi_term_without_run_hooks_is_refused(data_root, tmp_path):
    class Silent:
        """An MI object with a weight that implements no run hook."""

        weight = 0.1

    registry = make_registry()
    registry.add("mi", "silent", options=mi_options.VEMOptions, factory=lambda o, **c: Silent())
    config = vem_config(data_root, tmp_path / "run")
    config["mi"]["type"] = "silent"
    with pytest.raises(VemkitError, match=r"mi: 'silent' takes no part in the run"):
        compile(make_spec(registry, config), registry=registry)
