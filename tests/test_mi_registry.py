"""The energy/sampler/mi components through a private registry: options, nesting, factories."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from vemkit.registry import Registry
from vemkit_plugins import energies, mi, optim, samplers
from vemkit_plugins.energies.options import ConvSNEnergyOptions
from vemkit_plugins.samplers.options import LangevinOptions


@pytest.fixture
def reg() -> Registry:
    registry = Registry()
    for package in (energies, samplers, mi, optim):
        package.register(registry)
    return registry


def test_registered_names(reg: Registry) -> None:
    assert reg.names("energy") == ["conv_sn", "mlp", "timm"]
    assert reg.names("sampler") == ["langevin"]
    assert reg.names("mi") == ["crd", "none", "vem", "vid"]


def test_every_option_is_documented(reg: Registry) -> None:
    for kind in ("energy", "sampler", "mi"):
        for comp in reg.components(kind):
            assert comp.options.__doc__, f"{kind} {comp.name}: no class docstring"
            for name, field in comp.options.model_fields.items():
                assert field.description, f"{kind} {comp.name}.{name}: no docstring"


def test_option_models_import_without_torch() -> None:
    code = (
        "import sys; import vemkit_plugins.energies, vemkit_plugins.samplers, vemkit_plugins.mi;"
        "from vemkit_plugins.mi.options import VEMOptions; VEMOptions();"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_vem_defaults_are_the_papers(reg: Registry) -> None:
    opts = reg.options("mi", {"type": "vem"})
    assert (opts.weight, opts.alpha, opts.positive) == (0.1, 0.05, "target")
    assert opts.energy.type == "conv_sn"
    assert (opts.energy.width, opts.energy.blocks, opts.energy.downsample) == (32, 7, 1)
    sampler = opts.sampler
    assert (sampler.steps, sampler.step_size, sampler.noise_std) == (10, 100.0, 0.005)
    assert (sampler.init, sampler.clamp) == ("student", (-1.0, 1.0))
    assert opts.optimizer.type == "adam"
    assert (opts.optimizer.lr, tuple(opts.optimizer.betas)) == (1e-4, (0.0, 0.999))


def test_nested_errors_and_did_you_mean(reg: Registry) -> None:
    with pytest.raises(ValidationError, match=r"sampler\.langevin\.steps"):
        reg.options("mi", {"type": "vem", "sampler": {"type": "langevin", "steps": 0}})
    with pytest.raises(ValidationError, match="did you mean 'conv_sn'"):
        reg.options("mi", {"type": "vem", "energy": {"type": "conv_nsn"}})
    with pytest.raises(ValidationError):
        LangevinOptions(noise_std="hot")
    with pytest.raises(ValidationError, match="low < high"):
        LangevinOptions(clamp=(1.0, -1.0))
    assert LangevinOptions(noise_std="auto").noise_std == "auto"
    assert LangevinOptions(clamp=None).clamp is None
    with pytest.raises(ValidationError):
        ConvSNEnergyOptions(width=0)


def test_build_vem_with_nested_components(reg: Registry) -> None:
    from vemkit_plugins.energies.mlp import MLPEnergy
    from vemkit_plugins.mi.vem import VEM
    from vemkit_plugins.samplers.langevin import Langevin

    config = {
        "type": "vem",
        "weight": 0.2,
        "positive": "teacher",
        "energy": {"type": "mlp", "dims": 4, "hidden": 8},
        "sampler": {"type": "langevin", "steps": 3, "noise_std": "auto", "init": "buffer"},
    }
    vem = reg.build("mi", config, build=reg.build)
    assert isinstance(vem, VEM) and vem.has_energy_phase
    assert (vem.weight, vem.positive, vem.alpha) == (0.2, "teacher", 0.05)
    assert isinstance(vem.energy, MLPEnergy) and vem.energy.dims == 4
    assert isinstance(vem.sampler, Langevin)
    assert (vem.sampler.steps, vem.sampler.init) == (3, "buffer")
    assert vem.sampler.sigma == pytest.approx((2 * 100.0) ** 0.5)


def test_build_every_energy_and_term(reg: Registry) -> None:
    import torch

    pair = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    for config in (
        {"type": "conv_sn", "width": 4, "blocks": 2},
        {"type": "mlp", "dims": 3 * 32 * 32, "hidden": 4},
    ):
        assert reg.build("energy", config)(*pair).shape == (2,)
    s = pair[1].clone().requires_grad_(True)
    for config, context in (
        ({"type": "vid"}, {}),
        ({"type": "vid", "regressor": "none"}, {}),
        ({"type": "crd", "negatives": "batch"}, {}),
        ({"type": "crd"}, {"num_samples": 10}),
        ({"type": "none"}, {}),
    ):
        term = reg.build("mi", config, **context)
        index = torch.tensor([0, 1]) if term.needs_index else None
        out = term.student_term(pair[0], s, index=index)
        assert out.dim() == 0 and torch.isfinite(out)


def test_crd_bank_needs_a_size(reg: Registry) -> None:
    from vemkit.errors import VemkitError

    with pytest.raises(VemkitError, match="bank_size"):
        reg.build("mi", {"type": "crd"})
    assert reg.build("mi", {"type": "crd", "bank_size": 50}).bank_s.shape == (50, 128)
