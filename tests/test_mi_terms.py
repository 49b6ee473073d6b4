"""MI terms as torch objects: VEM's energy loss and student term by hand, VID, CRD, none."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.mi.crd import CRD, _nce_loss
from vemkit_plugins.mi.none import NoMI
from vemkit_plugins.mi.vem import VEM
from vemkit_plugins.mi.vid import VID
from vemkit_plugins.samplers.langevin import Langevin


class PairEnergy(nn.Module):
    """E(t, s) = Σ (t − w·s)²: simple enough to differentiate by hand."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, t: Tensor, s: Tensor) -> Tensor:
        return (t - self.w * s).pow(2).flatten(1).sum(1)


def one_step_vem(w: float = 0.5, eta: float = 0.1, alpha: float = 0.05, weight: float = 0.2) -> VEM:
    sampler = Langevin(steps=1, step_size=eta, noise_std=0.0, init="student", clamp=None)
    return VEM(PairEnergy(w), sampler, weight=weight, alpha=alpha)


def test_energy_loss_by_hand() -> None:
    w, eta, alpha = 0.5, 0.1, 0.05
    vem = one_step_vem(w, eta, alpha)
    t_pos = torch.tensor([[1.0, -1.0], [0.5, 2.0]])
    s = torch.tensor([[0.2, 0.4], [-1.0, 1.0]])
    loss, t_neg, diag = vem.energy_loss(t_pos, s)
    # One step from t0 = s with ∇_t E = 2(t − w s): t̃ = s − 2η(s − w s).
    expected_neg = s - 2 * eta * (s - w * s)
    torch.testing.assert_close(t_neg, expected_neg)
    e_pos = ((t_pos - w * s) ** 2).sum(1)  # [0.9² + 1.2², 1.0² + 1.5²] = [2.25, 3.25]
    e_neg = ((expected_neg - w * s) ** 2).sum(1)
    torch.testing.assert_close(e_pos, torch.tensor([2.25, 3.25]))
    want = e_pos.mean() - e_neg.mean() + alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(diag["energy_pos"], e_pos.mean())
    torch.testing.assert_close(diag["energy_neg"], e_neg.mean())
    assert set(diag) >= {"loss", "sampler_energy_init", "sampler_grad_norm", "sampler_distance"}
    # The loss trains the energy: its gradient reaches w.
    loss.backward()
    assert vem.energy.w.grad is not None and vem.energy.w.grad.abs() > 0


def test_energy_step_updates_only_the_energy() -> None:
    vem = one_step_vem()
    opt = torch.optim.SGD(vem.parameters(), lr=0.1)
    s = torch.randn(4, 2, requires_grad=True)
    before = vem.energy.w.item()
    t_neg, _ = vem.energy_step(torch.randn(4, 2), s, opt)
    assert vem.energy.w.item() != before
    assert s.grad is None and not t_neg.requires_grad


def test_student_term_gradient_reaches_s_only() -> None:
    w, weight = 0.5, 0.2
    vem = one_step_vem(w=w, weight=weight)
    t_pos, t_neg = torch.randn(3, 2), torch.randn(3, 2)
    s = torch.randn(3, 2, requires_grad=True)
    term = vem.student_term(t_pos, s, t_neg)
    want = weight * (((t_pos - w * s) ** 2).sum(1).mean() - ((t_neg - w * s) ** 2).sum(1).mean())
    torch.testing.assert_close(term, want)
    term.backward()
    # d/ds λ[mean(t⁺ − ws)² − mean(t̃ − ws)²] = (2λw/N)(t̃ − t⁺).
    torch.testing.assert_close(s.grad, 2 * weight * w / 3 * (t_neg - t_pos))
    assert vem.energy.w.grad is None  # energy frozen during the term...
    assert vem.energy.w.requires_grad  # ...and unfrozen afterwards


def test_student_term_draws_negatives_when_not_given() -> None:
    torch.manual_seed(0)
    vem = one_step_vem()
    s = torch.randn(3, 2, requires_grad=True)
    vem.student_term(torch.randn(3, 2), s).backward()
    assert s.grad is not None


def test_fit_uses_the_authors_optimizer() -> None:
    vem = one_step_vem()
    t_neg, diag = vem.fit(torch.randn(4, 2), torch.randn(4, 2), steps=2)
    assert t_neg.shape == (4, 2) and "loss" in diag
    group = vem.optimizer.param_groups[0]
    assert isinstance(vem.optimizer, torch.optim.Adam)
    assert group["lr"] == 1e-4 and group["betas"] == (0.0, 0.999)
    with pytest.raises(VemkitError, match="steps"):
        vem.fit(torch.randn(4, 2), torch.randn(4, 2), steps=0)


def test_positive_teacher_starts_chains_at_the_teacher() -> None:
    sampler = Langevin(steps=1, step_size=1e-9, noise_std=0.0, init="teacher", clamp=None)
    vem = VEM(PairEnergy(0.5), sampler, positive="teacher")
    t_pos = torch.randn(3, 2)
    _, t_neg, _ = vem.energy_loss(t_pos, torch.randn(3, 2))
    torch.testing.assert_close(t_neg, t_pos, atol=1e-6, rtol=0)


def test_vem_state_dict_holds_energy_and_buffer() -> None:
    vem = VEM(PairEnergy(0.5), Langevin(1, 0.1, "auto", "buffer", buffer_size=4))
    vem.fit(torch.randn(2, 3), torch.randn(2, 3))
    keys = set(vem.state_dict())
    assert keys == {"energy.w", "sampler.chains", "sampler.filled"}
    other = VEM(PairEnergy(0.0), Langevin(1, 0.1, "auto", "buffer", buffer_size=4))
    other.load_state_dict(vem.state_dict())
    torch.testing.assert_close(other.sampler.chains, vem.sampler.chains)


def test_vid_initial_variance_and_nll_by_hand() -> None:
    vid = VID(3, 3, regressor="none", weight=0.5)
    torch.testing.assert_close(vid.variance(), torch.full((3,), 5.0))  # VID: initial variance 5
    t, s = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4, requires_grad=True)
    want = 0.5 * ((t - s) ** 2 / 5.0 + math.log(5.0)).mean()
    torch.testing.assert_close(vid.nll(t, s), want)
    term = vid.student_term(t, s)
    torch.testing.assert_close(term, 0.5 * want)
    term.backward()
    assert s.grad is not None and vid.log_scale.grad is not None


def test_vid_regressor_and_flat_tensors() -> None:
    vid = VID(4, 2, regressor="conv", hidden=8)
    s = torch.randn(5, 4, requires_grad=True)
    assert vid.mean(s).shape == (5, 2)
    vid.student_term(torch.randn(5, 2), s).backward()
    assert s.grad is not None and vid.regressor[0].weight.grad is not None
    assert vid.mean(torch.randn(2, 4, 3, 3)).shape == (2, 2, 3, 3)
    with pytest.raises(VemkitError, match="in_channels"):
        VID(4, 2, regressor="none")


def test_nce_loss_golden_value() -> None:
    # K = 1 negative, n = 10: noise term K/n = 0.1; −[log(0.5/0.6) + log(0.1/0.2)] = 0.87547.
    loss = _nce_loss(torch.tensor([[0.5, 0.1]]), 10)
    assert loss.item() == pytest.approx(-(math.log(0.5 / 0.6) + math.log(0.5)), abs=1e-5)


def test_crd_batch_prefers_matched_pairs() -> None:
    torch.manual_seed(0)
    crd = CRD(12, 12, feature_dim=16, negatives="batch", pool=2, weight=1.0)
    crd.embed_t.load_state_dict(crd.embed_s.state_dict())  # same head: t = s embeds identically
    x = torch.randn(8, 3, 4, 4)
    matched = crd.student_term(x, x).item()
    shuffled = crd.student_term(x[torch.randperm(8)], x).item()
    assert matched < shuffled
    assert matched < 2 * math.log(8)  # below chance (uniform over 8, both directions)


def test_crd_bank_update_and_gradients() -> None:
    torch.manual_seed(0)
    crd = CRD(6, 6, feature_dim=8, bank_size=20, num_negatives=5, pool=1, weight=1.0)
    assert crd.needs_index
    s = torch.randn(3, 6, requires_grad=True)
    t = torch.randn(3, 6)
    index = torch.tensor([2, 7, 11])
    old = crd.bank_s.clone()
    with torch.no_grad():
        z_s = torch.nn.functional.normalize(crd.embed_s(s), dim=1)
    loss = crd.student_term(t, s, index=index)
    loss.backward()
    assert s.grad is not None and crd.embed_t.weight.grad is not None
    want = torch.nn.functional.normalize(0.5 * old[index] + 0.5 * z_s, dim=1)  # momentum 0.5
    torch.testing.assert_close(crd.bank_s[index], want)
    untouched = [i for i in range(20) if i not in (2, 7, 11)]
    torch.testing.assert_close(crd.bank_s[untouched], old[untouched])
    z_first = crd.z_s.item()
    assert z_first > 0
    crd.student_term(t, s.detach(), index=index)
    assert crd.z_s.item() == z_first  # the NCE normaliser is estimated once
    assert {"bank_s", "bank_t", "z_s", "z_t"} <= set(crd.state_dict())
    with pytest.raises(VemkitError, match="sample indices"):
        crd.student_term(t, s)
    soft = CRD(6, 6, feature_dim=8, bank_size=20, num_negatives=5, pool=1, objective="softmax")
    assert soft.student_term(t, s, index=index).item() > 0


def test_none_adds_nothing() -> None:
    s = torch.randn(2, 3, requires_grad=True)
    term = NoMI().student_term(torch.randn(2, 3), s)
    assert term.item() == 0.0 and not list(NoMI().parameters())
