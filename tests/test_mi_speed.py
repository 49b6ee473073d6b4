"""What VEM costs per iteration: the energy phase at its floor (K Langevin passes with the energy
frozen, one update pass over positives and negatives together) plus one frozen pass for the
student term; and ``conv_sn`` computing the authors' network with fewer MACs (the blocks' 2×2
pools folded into stride-2 convolutions), the same function up to float rounding."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from tests._engine_util import (
    base_config,
    make_aligned,
    make_registry,
    make_spec,
    merge,
    single_thread,  # noqa: F401 - autouse fixture
)
from vemkit.engine import hookspecs
from vemkit.engine import run as run_engine
from vemkit_plugins.energies.conv_sn import _SLOPE, ConvSNEnergy
from vemkit_plugins.mi.vem import VEM
from vemkit_plugins.samplers.langevin import Langevin


def authors_energy(energy: ConvSNEnergy, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The authors' formulation with ``energy``'s layers: every block pools AFTER its sum."""
    x = torch.cat([t, s], dim=1)
    for _ in range(energy.downsample):
        x = F.avg_pool2d(x, 3, stride=2, padding=1)
    x = F.leaky_relu(energy.stem(x), _SLOPE)
    for block in energy.blocks:
        branch = block.conv2(F.leaky_relu(block.conv1(x), _SLOPE))
        x = F.leaky_relu(F.avg_pool2d(block.shortcut(x) + branch, 2), _SLOPE)
    return energy.head(F.relu(x).mean(dim=(2, 3))).squeeze(-1)


def energy_and_grads(energy: ConvSNEnergy, forward: Any, t: torch.Tensor, s: torch.Tensor):
    energy.zero_grad(set_to_none=True)
    t, s = t.clone().requires_grad_(True), s.clone().requires_grad_(True)
    e = forward(t, s)
    (e * torch.arange(1.0, len(e) + 1, dtype=e.dtype)).sum().backward()
    params = {n: p.grad.clone() for n, p in energy.named_parameters() if p.grad is not None}
    return e.detach(), t.grad, s.grad, params


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_folded_pools_compute_the_authors_energy(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    # 40 px: pre-pool 20, then blocks at 20, 10, 5 (odd) -> 2; widening and identity blocks.
    energy = ConvSNEnergy(3, width=4, blocks=4, downsample=1).to(dtype)
    with torch.no_grad():  # make every residual branch matter (they start at ~1e-10)
        for block in energy.blocks:
            block.conv2.weight.normal_(0.0, 0.3)
    t, s = torch.randn(3, 3, 40, 40, dtype=dtype), torch.randn(3, 3, 40, 40, dtype=dtype)
    state = copy.deepcopy(energy.state_dict())  # the power iteration updates `u` per call
    ours = energy_and_grads(energy, energy, t, s)
    energy.load_state_dict(state)
    ref = energy_and_grads(energy, lambda a, b: authors_energy(energy, a, b), t, s)
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    for got, want in zip(ours[:3], ref[:3], strict=True):
        torch.testing.assert_close(got, want, **tol)
    assert ours[3].keys() == ref[3].keys() and len(ours[3]) == sum(1 for _ in energy.parameters())
    for name in ref[3]:
        torch.testing.assert_close(ours[3][name], ref[3][name], **tol, msg=name)


def macs(fn: Any) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() // 2


@pytest.mark.parametrize(
    ("width", "authors", "ours"),
    [
        # Counted: convolutions + the power iterations' u·W (one MAC per weight: 1.71M for
        # c = 32) + the head. reference/performance.md: c = 32 costs 1.94G MACs per (t, s) pair
        # at 256 px (convs 1,940,520,960). Folded convs, per block 9·HW·Cin² for conv1 and
        # 16·(HW/4)·Cin·Cout per pooled conv: stem 28.3M + 419.4M + 419.4M + 218.1M + 54.5M
        # + 13.6M + 3.4M + 0.85M = 1,157,693,440.
        (32, 1_942_227_904, 1_159_400_384),
        # baselines.md §8 / README: c = 8 costs 126.70M per pair; folded convs 77,664,256.
        (8, 126_698_032, 77_771_312),
    ],
)
def test_conv_sn_pair_costs_fewer_macs_than_the_authors_layout(
    width: int, authors: int, ours: int
) -> None:
    energy = ConvSNEnergy(3, width=width, blocks=7, downsample=1)
    t, s = torch.zeros(1, 3, 256, 256), torch.zeros(1, 3, 256, 256)
    with torch.no_grad():
        assert macs(lambda: authors_energy(energy, t, s)) == authors
        assert macs(lambda: energy(t, s)) == ours


@pytest.mark.parametrize("downsample", [0, 1])
def test_layout_stays_nchw_for_callers(downsample: int) -> None:
    # The network runs channels-last on the CPU; the sampler's noise draws and the student's
    # backward must still see plain contiguous tensors.
    torch.manual_seed(0)
    energy = ConvSNEnergy(3, width=4, blocks=2, downsample=downsample)
    t = torch.randn(2, 3, 16, 16, requires_grad=True)
    s = torch.randn(2, 3, 16, 16, requires_grad=True)
    # autograd.grad hands out the raw gradients (.grad would be copied to t's layout anyway):
    # their memory order must be N, C, H, W (a channel slice of a 6-channel gradient is fine).
    for g in torch.autograd.grad(energy(t, s).sum(), (t, s)):
        assert list(g.stride()) == sorted(g.stride(), reverse=True) and g.stride(3) == 1
        assert (t.detach() - g).is_contiguous()
    sample, _ = Langevin(steps=2)(energy, s.detach())
    assert sample.is_contiguous()


class PassCounter:
    """Records every call of the run's energy network: (batch, parameters trainable?, t and s
    need a gradient?), one list per iteration."""

    def __init__(self) -> None:
        self.iterations: list[list[tuple[int, bool, bool, bool]]] = []
        self.attached = False

    def _record(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        trainable = any(p.requires_grad for p in module.parameters())
        t, s = args
        self.iterations[-1].append((len(t), trainable, t.requires_grad, s.requires_grad))

    @hookspecs.hookimpl
    def vemkit_iteration_start(self, program: Any, state: Any, step: int) -> None:
        if not self.attached:
            program.module("mi").energy.register_forward_pre_hook(self._record)
            self.attached = True
        self.iterations.append([])


def test_one_iteration_makes_k_plus_two_energy_passes(tmp_path) -> None:
    reg = make_registry()
    data = make_aligned(tmp_path / "data", n=4)
    steps, batch = 3, 2
    config = merge(
        base_config(data, tmp_path / "run"),
        {
            "mi": {
                "type": "vem",
                "weight": 0.1,
                "energy": {"type": "conv_sn", "width": 4, "blocks": 2, "downsample": 0},
                "sampler": {"type": "langevin", "steps": steps, "init": "student"},
            },
            "train": {"iterations": 2, "batch_size": batch},
        },
    )
    counter = PassCounter()
    result = run_engine(make_spec(reg, config), registry=reg, progress=False, callbacks=[counter])
    assert result.status == "finished"
    frozen_chain = [(batch, False, True, False)] * steps  # grad w.r.t. the sample only
    update = [(2 * batch, True, False, False)]  # positives + negatives in one batch
    student = [(2 * batch, False, False, True)]  # frozen energy, grad w.r.t. s only
    assert counter.iterations == [frozen_chain + update + student] * 2


def test_energy_step_passes_outside_a_run() -> None:
    # The library path (VEM.fit / student_term) makes the same passes.
    torch.manual_seed(0)
    vem = VEM(ConvSNEnergy(3, width=4, blocks=2, downsample=0), Langevin(steps=4))
    counter = PassCounter()
    counter.iterations.append([])
    vem.energy.register_forward_pre_hook(counter._record)
    t, s = torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8, requires_grad=True)
    negatives, _ = vem.fit(t, s)
    vem.student_term(t, s, negatives).backward()
    assert counter.iterations[0] == (
        [(3, False, True, False)] * 4 + [(6, True, False, False)] + [(6, False, False, True)]
    )
