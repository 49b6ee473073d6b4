"""Energy networks: sizes against the authors' network, layout properties, resolution checks."""

from __future__ import annotations

import copy

import pytest
import torch

from vemkit.errors import VemkitError
from vemkit_plugins.energies.conv_sn import ConvSNEnergy, SNConv2d
from vemkit_plugins.energies.mlp import MLPEnergy
from vemkit_plugins.energies.options import ConvSNEnergyOptions, check_resolution, min_resolution


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("width", "expected"),
    # reference/baselines.md §8: c = 32 (pix2pix) 1,708,609 params; c = 8 (CycleGAN) 107,473.
    [(32, 1_708_609), (8, 107_473)],
)
def test_conv_sn_param_counts_match_authors(width: int, expected: int) -> None:
    assert n_params(ConvSNEnergy(3, width=width, blocks=7, downsample=1)) == expected


def test_conv_sn_scores_each_sample_alone() -> None:
    # No batch statistics: a sample's energy is the same alone or inside a concatenated batch.
    torch.manual_seed(0)
    energy = ConvSNEnergy(3, width=4, blocks=3, downsample=1)
    t, s = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    state = copy.deepcopy(energy.state_dict())  # the power iteration updates `u` per call
    alone = energy(t[:2], s[:2])
    energy.load_state_dict(state)
    together = energy(t, s)
    assert together.shape == (4,)
    torch.testing.assert_close(together[:2], alone)


def test_conv_sn_residual_branches_start_near_zero() -> None:
    torch.manual_seed(0)
    energy = ConvSNEnergy(3, width=4, blocks=2, downsample=0)
    x = torch.randn(2, 4, 16, 16)
    block = energy.blocks[0]
    branch = block.conv2(torch.nn.functional.leaky_relu(block.conv1(x), 0.01))
    assert branch.abs().max() < 1e-6  # weights N(0, 1e-10²), bias 0: the block is its shortcut
    assert block.shortcut(x).abs().max() > 0.1


def test_spectral_norm_two_sided_and_one_sided() -> None:
    torch.manual_seed(0)
    layer = SNConv2d(4, 6)
    for _ in range(300):  # one power iteration per call; let the estimate converge
        w = layer.normalized_weight()
    sigma = torch.linalg.matrix_norm(w.detach().flatten(1), ord=2)
    assert abs(sigma.item() - 1.0) < 1e-3

    small = SNConv2d(4, 6, one_sided=True, std=1e-3)  # σ ≪ 1: one-sided leaves it alone
    torch.testing.assert_close(small.normalized_weight(), small.weight)
    big = SNConv2d(4, 6, one_sided=True, std=1.0)  # σ > 1: scaled down like the two-sided one
    for _ in range(300):
        w = big.normalized_weight()
    assert abs(torch.linalg.matrix_norm(w.detach().flatten(1), ord=2).item() - 1.0) < 1e-3


def test_conv_sn_backward_reaches_inputs_and_weights() -> None:
    torch.manual_seed(0)
    energy = ConvSNEnergy(3, width=4, blocks=2, downsample=1)
    t = torch.randn(2, 3, 16, 16, requires_grad=True)
    energy(t, torch.randn(2, 3, 16, 16)).sum().backward()
    assert t.grad is not None and t.grad.abs().sum() > 0
    assert energy.stem.weight.grad is not None


def test_check_resolution() -> None:
    paper = ConvSNEnergyOptions(width=32, blocks=7, downsample=1)
    check_resolution(paper, 256)
    assert min_resolution(paper) == 255
    with pytest.raises(VemkitError, match=r"128×128 px .*needs at least 255 px\); use blocks: 6 "):
        check_resolution(paper, 128)
    # reference/baselines.md §8: 64-px data (SAGAN) needs ≤ 5 blocks after the pre-pool.
    check_resolution(ConvSNEnergyOptions(blocks=5, downsample=1), 64)
    with pytest.raises(VemkitError, match="blocks: 5"):
        check_resolution(ConvSNEnergyOptions(blocks=6, downsample=1), (64, 64))
    with pytest.raises(VemkitError, match="64×32"):
        check_resolution(ConvSNEnergyOptions(blocks=6, downsample=0), (64, 32))


def test_mlp_energy() -> None:
    energy = MLPEnergy(dims=1, hidden=64, depth=2)
    assert n_params(energy) == (2 * 64 + 64) + (64 * 64 + 64) + (64 + 1)
    out = energy(torch.randn(5, 1), torch.randn(5, 1))
    assert out.shape == (5,)
    assert MLPEnergy(dims=6, depth=0)(torch.randn(3, 2, 3), torch.randn(3, 6)).shape == (3,)


def test_timm_energy_builds_and_refuses_batchnorm() -> None:
    pytest.importorskip("timm")
    from vemkit_plugins.energies.timm_energy import TimmEnergy

    energy = TimmEnergy("convnext_atto", in_channels=3)
    assert energy.net.stem[0].in_channels == 6
    assert energy(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)).shape == (2,)
    with pytest.raises(VemkitError, match="BatchNorm"):
        TimmEnergy("resnet18")
    with pytest.raises(VemkitError, match="cannot create model 'no_such_net'"):
        TimmEnergy("no_such_net")
