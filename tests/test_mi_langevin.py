"""The Langevin sampler: exact update rule, a known stationary law, inits, replay buffer state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.samplers.langevin import Langevin


class LinearEnergy(nn.Module):
    """E(t, s) = a · Σ t: gradient a everywhere."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, t: Tensor, s: Tensor) -> Tensor:
        return self.a * t.flatten(1).sum(1) + 0.0 * s.flatten(1).sum(1)


class QuadraticEnergy(nn.Module):
    """E(t, s) = (t − 2s)² / (2v): exp(−E) is N(2s, v)."""

    def __init__(self, v: float) -> None:
        super().__init__()
        self.log_v = nn.Parameter(torch.tensor(math.log(v)))

    def forward(self, t: Tensor, s: Tensor) -> Tensor:
        return ((t - 2 * s).pow(2) / (2 * self.log_v.exp())).flatten(1).sum(1)


def test_update_is_eta_times_gradient_with_one_clamp() -> None:
    # The authors' rule t ← t − η∇E + σε (no ½): with σ = 0 and ∇E = a the chain moves −K·η·a.
    s = torch.zeros(3, 2)
    start = torch.full((3, 2), 0.5)
    sampler = Langevin(steps=10, step_size=100.0, noise_std=0.0, clamp=None)
    out, diag = sampler(LinearEnergy(1e-3), s, student=start)
    torch.testing.assert_close(out, torch.full((3, 2), -0.5))
    torch.testing.assert_close(diag["grad_norm"], torch.tensor(1e-3 * math.sqrt(2)))
    torch.testing.assert_close(diag["distance"], torch.tensor(math.sqrt(2)))
    # Past the range: clamped once at the end (paper default [−1, 1]).
    out, _ = Langevin(10, 100.0, 0.0)(LinearEnergy(2e-3), s, student=start)
    torch.testing.assert_close(out, torch.full((3, 2), -1.0))


def test_noise_std_auto_is_temperature_one() -> None:
    assert Langevin(step_size=0.02, noise_std="auto").sigma == pytest.approx(0.2)
    assert Langevin().sigma == 0.005  # the paper's decoupled noise


def test_samples_the_known_law_at_temperature_one() -> None:
    # ULA on N(μ, v) with step η has stationary variance v / (1 − η/(2v)) = 0.2551 here; 4000
    # chains: standard errors 0.008 (mean) and 0.006 (variance), tolerances ≈ 4 SE.
    torch.manual_seed(0)
    s = torch.full((4000, 1), 0.5)
    sampler = Langevin(steps=800, step_size=0.01, noise_std="auto", init="noise", clamp=None)
    out, _ = sampler(QuadraticEnergy(0.25), s, positive=torch.zeros(4000, 1))
    assert out.mean().item() == pytest.approx(1.0, abs=0.03)
    assert out.var().item() == pytest.approx(0.25, abs=0.025)


def test_energy_parameters_frozen_during_the_chain_and_restored() -> None:
    energy = QuadraticEnergy(1.0)
    energy.extra = nn.Parameter(torch.zeros(()), requires_grad=False)  # user-frozen: stays so
    s = torch.randn(4, 3)
    student = s.clone().requires_grad_(True)
    out, _ = Langevin(3, 0.1, "auto", clamp=None)(energy, s, student=student)
    assert not out.requires_grad
    assert energy.log_v.requires_grad and not energy.extra.requires_grad
    assert energy.log_v.grad is None  # nothing accumulated into the energy's parameters
    torch.testing.assert_close(student.detach(), s)  # the start was not modified in place


def test_inits() -> None:
    torch.manual_seed(0)
    flat = LinearEnergy(0.0)
    s, pos, teacher = torch.randn(6, 2), torch.randn(6, 2), torch.randn(6, 2)
    run = lambda init, **kw: Langevin(1, 1.0, 0.0, init, clamp=None, **kw)(  # noqa: E731
        flat, s, positive=pos, teacher=teacher
    )[0]
    torch.testing.assert_close(run("student"), s)
    torch.testing.assert_close(run("teacher"), teacher)
    marginal = run("marginal")
    assert sorted(marginal[:, 0].tolist()) == sorted(pos[:, 0].tolist())
    noise, _ = Langevin(1, 1.0, 0.0, "noise")(flat, s, positive=pos)
    assert noise.shape == pos.shape and noise.min() >= -1 and noise.max() <= 1
    with pytest.raises(VemkitError, match="needs the teacher output"):
        Langevin(init="teacher")(flat, s)


def test_replay_buffer_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    energy = QuadraticEnergy(1.0)
    make = lambda: Langevin(2, 0.01, "auto", "buffer", buffer_size=8, reinit_prob=0.3)  # noqa: E731
    sampler = make()
    assert "chains" not in sampler.state_dict()  # allocated on first use
    s = torch.rand(4, 3) * 2 - 1
    out, diag = sampler(energy, s)
    assert diag["restarted"].item() == 1.0  # an empty buffer restarts every chain
    assert sampler.filled.sum().item() >= 1
    hits = [i for i in range(8) if sampler.filled[i]]
    assert all(any(torch.equal(sampler.chains[i], row) for row in out) for i in hits)
    for _ in range(3):
        sampler(energy, s)

    state = {k: v.clone() for k, v in sampler.state_dict().items()}
    resumed = make()
    resumed.load_state_dict(state)
    torch.testing.assert_close(resumed.chains, sampler.chains)
    assert torch.equal(resumed.filled, sampler.filled)
    # Same buffer + same RNG state: the next negatives agree exactly (exact resume).
    rng = torch.get_rng_state()
    a, _ = sampler(energy, s)
    torch.set_rng_state(rng)
    b, _ = resumed(energy, s)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # A state saved before the buffer existed empties it again.
    resumed.load_state_dict(make().state_dict())
    assert resumed.chains is None
    with pytest.raises(VemkitError, match="shape"):
        sampler(energy, torch.zeros(4, 5))


def test_buffer_is_per_instance() -> None:
    one, two = Langevin(1, init="buffer", buffer_size=4), Langevin(1, init="buffer", buffer_size=4)
    one(QuadraticEnergy(1.0), torch.zeros(2, 1))
    assert one.chains is not None and two.chains is None
