"""The StyleGAN2 training objective (rosinality train.py) and strict checkpoint loading."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.archs.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from vemkit_plugins.archs.stylegan2_convert import build_rosinality_networks
from vemkit_plugins.methods.recipe_options import StyleGAN2TrainingOptions
from vemkit_plugins.methods.stylegan2_losses import (
    PathLengthRegularizer,
    accumulate_ema,
    d_logistic_loss,
    ema_decay,
    g_nonsaturating_loss,
    lazy_adam_hparams,
    lazy_r1_loss,
    lazy_ratio,
    make_ema,
    mixing_noise,
    r1_penalty,
)

KEYS = json.loads((Path(__file__).parent / "data" / "stylegan2_rosinality_keys.json").read_text())

TINY_G = {"size": 16, "style_dim": 8, "n_mlp": 2, "net_shape": [8, 8, 8, 8, 4, 4]}


# -- adversarial losses ---------------------------------------------------------------------------


def test_logistic_losses_match_hand_values() -> None:
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    d = (softplus(-2.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2
    g = (softplus(-0.5) + softplus(3.0)) / 2
    assert d_logistic_loss(real, fake).item() == pytest.approx(d, rel=1e-6)
    assert g_nonsaturating_loss(fake).item() == pytest.approx(g, rel=1e-6)


# -- R1 ------------------------------------------------------------------------------------------


class QuadraticD(nn.Module):
    """D(x) = ⟨w, x⟩ + c·‖x‖² per image: ∇_x D = w + 2c·x, known in closed form."""

    def __init__(self, shape: tuple[int, ...], c: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, math.prod(shape)).reshape(shape))
        self.c = nn.Parameter(torch.tensor(c))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        return (flat * self.w.flatten()).sum(1, keepdim=True) + self.c * flat.pow(2).sum(
            1, keepdim=True
        )


def test_r1_penalty_and_its_gradient_by_hand() -> None:
    torch.manual_seed(0)
    d = QuadraticD((2, 3, 3), c=0.3)
    x = torch.randn(4, 2, 3, 3, requires_grad=True)
    weighted, penalty = lazy_r1_loss(d(x), x, gamma=10.0, interval=16)
    w, c = d.w.detach(), 0.3
    grads = w + 2 * c * x.detach()  # ∇_x D per image
    expected = grads.pow(2).flatten(1).sum(1).mean()
    torch.testing.assert_close(penalty, expected)
    # lazy weighting: γ/2 · interval · R1
    torch.testing.assert_close(weighted, 10.0 / 2 * 16 * expected)
    # create_graph: the penalty trains D. ∂R1/∂w = mean_i 2(w + 2c·x_i);
    # ∂R1/∂c = mean_i Σ 2(w + 2c·x_i)·2x_i
    weighted.backward()
    torch.testing.assert_close(d.w.grad, 80.0 * (2 * grads).mean(0))
    expected_c = (2 * grads * 2 * x.detach()).flatten(1).sum(1).mean()
    torch.testing.assert_close(d.c.grad, 80.0 * expected_c)


def test_r1_on_stylegan2_discriminator_matches_finite_differences() -> None:
    torch.manual_seed(0)
    d = StyleGAN2Discriminator(size=8, channels={4: 8, 8: 8}).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    penalty = r1_penalty(d(x), x)
    # central differences of Σ_i D(x_i) along every input coordinate
    base = x.detach().clone()
    eps = 1e-6
    grads = torch.zeros_like(base).flatten()
    flat = base.flatten()
    for k in range(flat.numel()):
        up, down = flat.clone(), flat.clone()
        up[k] += eps
        down[k] -= eps
        f_up = d(up.view_as(base)).sum()
        f_down = d(down.view_as(base)).sum()
        grads[k] = (f_up - f_down) / (2 * eps)
    expected = grads.view_as(base).pow(2).flatten(1).sum(1).mean()
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)


def test_r1_needs_grad_on_the_real_images() -> None:
    d = QuadraticD((3, 2, 2), 0.1)
    x = torch.randn(2, 3, 2, 2)
    with pytest.raises(ValueError, match="require grad"):
        r1_penalty(d(x), x)


# -- path length --------------------------------------------------------------------------------


class LinearG(nn.Module):
    """img = Σ_l M_l w_l reshaped to (C, H, W): J_{w_l}ᵀ y = M_lᵀ y exactly."""

    def __init__(self, n_latent: int, dim: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = shape
        gen = torch.Generator().manual_seed(1)
        self.m = nn.Parameter(torch.randn(n_latent, math.prod(shape), dim, generator=gen))

    def forward(self, latents: Tensor) -> Tensor:
        out = torch.einsum("lpd,nld->np", self.m, latents)
        return out.view(latents.shape[0], *self.shape)


def test_path_length_penalty_by_hand() -> None:
    torch.manual_seed(0)
    g = LinearG(n_latent=3, dim=5, shape=(3, 4, 4))
    latents = torch.randn(2, 3, 5, requires_grad=True)
    img = g(latents)
    y = torch.randn_like(img) / 4.0  # N(0, I)/√(H·W)
    reg = PathLengthRegularizer(weight=2.0, interval=4, decay=0.01)
    out = reg(img, latents, noise=y)
    m = g.m.detach()
    # a_i = √(mean_l ‖M_lᵀ y_i‖²)
    jty = torch.einsum("lpd,np->nld", m, y.flatten(1))
    lengths = jty.pow(2).sum(2).mean(1).sqrt()
    torch.testing.assert_close(out.path_lengths, lengths)
    mean = 0.0 + 0.01 * (lengths.mean() - 0.0)
    torch.testing.assert_close(out.mean_path_length, mean)
    torch.testing.assert_close(out.penalty, (lengths - mean).pow(2).mean())
    torch.testing.assert_close(out.loss, 2.0 * 4 * (lengths - mean).pow(2).mean())
    # the running mean carries over: ā ← ā + 0.01·(mean a − ā)
    out2 = reg(g(latents), latents, noise=2 * y)  # lengths double (J is linear in y)
    mean2 = mean + 0.01 * (2 * lengths.mean() - mean)
    torch.testing.assert_close(out2.mean_path_length, mean2)
    torch.testing.assert_close(out2.penalty, (2 * lengths - mean2).pow(2).mean())
    # the penalty trains G: gradient w.r.t. M by the chain rule through a and the updated mean
    out2.loss.backward()
    assert g.m.grad is not None and g.m.grad.abs().sum() > 0
    # round trip of the state a resume needs
    fresh = PathLengthRegularizer()
    fresh.load_state_dict(reg.state_dict())
    torch.testing.assert_close(fresh.mean_path_length, mean2)


def test_path_length_gradient_matches_finite_differences() -> None:
    # ∂penalty/∂M checked numerically: catches a detached mean or a missing create_graph
    g = LinearG(n_latent=2, dim=3, shape=(1, 2, 2)).double()
    latents = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 1, 2, 2, dtype=torch.float64)

    def penalty() -> Tensor:
        reg = PathLengthRegularizer(decay=0.5)
        reg.mean_path_length = torch.tensor(0.7, dtype=torch.float64)
        return reg(g(latents), latents, noise=y).penalty

    penalty().backward()
    analytic = g.m.grad.clone()
    numeric = torch.zeros_like(analytic)
    flat = g.m.data.view(-1)  # .data: perturb in place outside autograd
    for idx in range(flat.numel()):
        flat[idx] += 1e-6
        up = penalty().item()
        flat[idx] -= 2e-6
        down = penalty().item()
        flat[idx] += 1e-6
        numeric.view(-1)[idx] = (up - down) / 2e-6
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_path_length_on_stylegan2_generator() -> None:
    torch.manual_seed(0)
    g = StyleGAN2Generator(**TINY_G)
    reg = PathLengthRegularizer()
    assert reg.batch_size(16) == 8 and reg.batch_size(1) == 1
    assert [reg.due(i) for i in range(5)] == [True, False, False, False, True]
    mix = mixing_noise(reg.batch_size(4), 8, 1.0, g.n_latent)
    img, latents = g(mix.z, inject_index=mix.inject_index, return_latents=True)
    out = reg(img, latents)
    assert out.path_lengths.shape == (2,) and torch.isfinite(out.path_lengths).all()
    assert (out.path_lengths > 0).all()
    out.loss.backward()
    # the mapping network and every styled conv receive the regulariser's gradient
    assert g.style[1].weight.grad is not None and g.style[1].weight.grad.abs().sum() > 0
    assert g.convs[-1].conv.weight.grad.abs().sum() > 0


# -- optimiser scaling, mixing, EMA ---------------------------------------------------------------


def test_lazy_regularisation_scaling() -> None:
    assert lazy_ratio(4) == pytest.approx(0.8) and lazy_ratio(16) == pytest.approx(16 / 17)
    assert lazy_ratio(0) == 1.0
    lr, betas = lazy_adam_hparams(0.002, (0.0, 0.99), 4)
    assert lr == pytest.approx(0.0016)
    assert betas == (0.0, pytest.approx(0.99**0.8))
    lr, betas = lazy_adam_hparams(0.002, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.002 * 16 / 17) and betas[1] == pytest.approx(0.99 ** (16 / 17))


def test_mixing_noise_returns_shared_inject_index() -> None:
    gen = torch.Generator().manual_seed(0)
    mixed = [mixing_noise(3, 8, 0.9, 6, generator=gen) for _ in range(2000)]
    rate = sum(m.inject_index is not None for m in mixed) / len(mixed)
    # binomial(2000, 0.9): std 0.0067; 4 std
    assert rate == pytest.approx(0.9, abs=0.027)
    indices = {m.inject_index for m in mixed if m.inject_index is not None}
    assert indices == {1, 2, 3, 4, 5}  # [1, n_latent − 1]
    assert all(len(m.z) == (1 if m.inject_index is None else 2) for m in mixed)
    assert mixed[0].z[0].shape == (3, 8)
    none = mixing_noise(3, 8, 0.0, 6, generator=gen)
    assert none.inject_index is None and len(none.z) == 1
    # same seed, same draws (resumable from the RNG state)
    a = mixing_noise(2, 8, 0.9, 6, generator=torch.Generator().manual_seed(5))
    b = mixing_noise(2, 8, 0.9, 6, generator=torch.Generator().manual_seed(5))
    assert a.inject_index == b.inject_index
    torch.testing.assert_close(a.z, b.z)

    # teacher and student called with the same mix get the same crossover of the same w
    torch.manual_seed(0)
    teacher, student = StyleGAN2Generator(**TINY_G), StyleGAN2Generator(**TINY_G)
    student.style.load_state_dict(teacher.style.state_dict())
    mix = mixing_noise(2, 8, 1.0, teacher.n_latent, generator=torch.Generator().manual_seed(1))
    _, lt = teacher(mix.z, inject_index=mix.inject_index, return_latents=True)
    _, ls = student(mix.z, inject_index=mix.inject_index, return_latents=True)
    torch.testing.assert_close(lt, ls)
    k = mix.inject_index
    w1, w2 = teacher.get_latent(mix.z[0]), teacher.get_latent(mix.z[1])
    torch.testing.assert_close(lt[:, k - 1], w1)
    torch.testing.assert_close(lt[:, k], w2)


def test_ema_decay_and_accumulate() -> None:
    assert ema_decay() == pytest.approx(0.5 ** (32 / 10_000))
    assert ema_decay() == pytest.approx(0.997784, abs=1e-6)
    assert ema_decay(64, 20.0) == pytest.approx(ema_decay())
    torch.manual_seed(0)
    g = StyleGAN2Generator(**TINY_G)
    ema = make_ema(g)
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    for a, b in zip(ema.state_dict().values(), g.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    old = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in g.parameters():
            p.add_(1.0)
        g.noises.noise_0.add_(5.0)  # a buffer: not averaged
    accumulate_ema(ema, g, 0.9)
    new = ema.state_dict()
    for name, p in g.named_parameters():
        torch.testing.assert_close(new[name], 0.9 * old[name] + 0.1 * p.detach())
    torch.testing.assert_close(new["noises.noise_0"], old["noises.noise_0"])


def test_training_options_defaults_are_rosinalitys() -> None:
    o = StyleGAN2TrainingOptions()
    assert (o.lr, o.betas, o.r1_gamma, o.r1_every) == (0.002, (0.0, 0.99), 10.0, 16)
    assert (o.path_weight, o.path_every, o.path_batch_shrink, o.path_decay) == (2.0, 4, 2, 0.01)
    assert o.mixing == 0.9
    assert ema_decay(o.ema_batch, o.ema_half_life_kimg) == pytest.approx(0.5 ** (32 / 10_000))


def test_one_training_iteration_runs_on_cpu() -> None:
    # D step, lazy R1, G step, lazy path length, EMA: everything differentiable in plain torch
    torch.manual_seed(0)
    opts = StyleGAN2TrainingOptions()
    g = StyleGAN2Generator(**TINY_G)
    d = StyleGAN2Discriminator(size=16, channels={4: 8, 8: 8, 16: 4})
    g_ema = make_ema(g)
    g_lr, g_betas = lazy_adam_hparams(opts.lr, opts.betas, opts.path_every)
    d_lr, d_betas = lazy_adam_hparams(opts.lr, opts.betas, opts.r1_every)
    g_opt = torch.optim.Adam(g.parameters(), lr=g_lr, betas=g_betas)
    d_opt = torch.optim.Adam(d.parameters(), lr=d_lr, betas=d_betas)
    real = torch.randn(4, 3, 16, 16)
    rng = torch.Generator().manual_seed(0)
    pl = PathLengthRegularizer()
    before = d.final_linear[1].weight.detach().clone()

    mix = mixing_noise(4, 8, opts.mixing, g.n_latent, generator=rng)
    fake = g(mix.z, inject_index=mix.inject_index).detach()
    d_opt.zero_grad()
    d_logistic_loss(d(real), d(fake)).backward()
    d_opt.step()
    real.requires_grad_(True)
    weighted, _ = lazy_r1_loss(d(real), real, opts.r1_gamma, opts.r1_every)
    d_opt.zero_grad()
    weighted.backward()
    d_opt.step()

    mix = mixing_noise(4, 8, opts.mixing, g.n_latent, generator=rng)
    g_opt.zero_grad()
    g_nonsaturating_loss(d(g(mix.z, inject_index=mix.inject_index))).backward()
    g_opt.step()
    mix = mixing_noise(pl.batch_size(4), 8, opts.mixing, g.n_latent, generator=rng)
    img, latents = g(mix.z, inject_index=mix.inject_index, return_latents=True)
    g_opt.zero_grad()
    pl(img, latents).loss.backward()
    g_opt.step()
    accumulate_ema(g_ema, g, ema_decay(opts.ema_batch, opts.ema_half_life_kimg))

    assert not torch.equal(before, d.final_linear[1].weight)
    assert pl.mean_path_length > 0
    assert all(torch.isfinite(p).all() for p in g_ema.parameters())


# -- strict loading of the official checkpoints ---------------------------------------------------


def _official_state(section: str, value: float) -> dict[str, Tensor]:
    # one constant per tensor, expanded (no memory) to the official shape; buffers keep their
    # true values so the kernel-built modules stay meaningful
    shapes = KEYS[section]["keys"]
    return {k: torch.tensor(value + i).expand(shape) for i, (k, shape) in enumerate(shapes.items())}


def test_official_training_checkpoint_loads_g_d_and_g_ema_strictly() -> None:
    # rosinality's train.py saves {"g", "d", "g_ema", "g_optim", "d_optim", "args", ...};
    # key names and shapes come from the independent listing in tests/data (256 px, config F)
    checkpoint = {
        "g": {f"module.{k}": v for k, v in _official_state("generator", 0.0).items()},
        "d": _official_state("discriminator", 1000.0),
        "g_ema": _official_state("generator", 500.0),
        "g_optim": {"state": {}, "param_groups": []},
        "args": argparse.Namespace(size=256, latent=512, n_mlp=8, channel_multiplier=2),
        "ada_aug_p": 0.0,
    }
    nets = build_rosinality_networks(checkpoint)
    assert set(nets) == {"g", "d", "g_ema"}
    g, d, g_ema = nets["g"], nets["d"], nets["g_ema"]
    assert isinstance(g, StyleGAN2Generator) and isinstance(d, StyleGAN2Discriminator)
    assert g.net_shape == g_ema.net_shape == (512,) * 10 + (256, 256, 128, 128)
    names = list(KEYS["generator"]["keys"])
    i = names.index("convs.3.conv.weight")
    assert g.convs[3].conv.weight.flatten()[0].item() == i
    assert g_ema.convs[3].conv.weight.flatten()[0].item() == 500.0 + i
    j = list(KEYS["discriminator"]["keys"]).index("final_linear.1.weight")
    assert d.final_linear[1].weight.flatten()[0].item() == 1000.0 + j
    # the EMA copy is frozen and in eval mode; g trains
    assert not g_ema.training and not any(p.requires_grad for p in g_ema.parameters())
    assert g.training and all(p.requires_grad for p in g.parameters())


def test_pruned_checkpoint_and_bad_keys(tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = StyleGAN2Generator(**TINY_G)
    d = StyleGAN2Discriminator(size=16, channels={4: 8, 8: 8, 16: 4})
    path = tmp_path / "pruned.pth"
    torch.save({"g": g.state_dict(), "d": d.state_dict(), "g_ema": g.state_dict()}, path)
    nets = build_rosinality_networks(path)
    z = torch.randn(2, 8)
    torch.testing.assert_close(nets["g_ema"](z, randomize_noise=False), g(z, randomize_noise=False))
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(nets["d"](x), d(x))
    only = build_rosinality_networks({"g_ema": g.state_dict()})
    assert set(only) == {"g_ema"}
    bad = dict(g.state_dict())
    bad["conv1.conv.extra"] = torch.zeros(1)
    with pytest.raises(VemkitError, match="does not load strictly"):
        build_rosinality_networks({"g_ema": bad})
    with pytest.raises(VemkitError, match="no 'g_ema' network"):
        build_rosinality_networks({"d": d.state_dict()})


def test_r1_batch_uses_fresh_real_images() -> None:
    # The lazy R1 step re-runs D on the real batch with grad enabled (rosinality sets
    # real_img.requires_grad = True after the logistic step); a detached batch is refused.
    d = StyleGAN2Discriminator(size=8, channels={4: 4, 8: 4})
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError):
        lazy_r1_loss(d(x), x)
    x.requires_grad_(True)
    weighted, penalty = lazy_r1_loss(d(x), x, gamma=1.0, interval=1)
    torch.testing.assert_close(weighted, 0.5 * penalty)
