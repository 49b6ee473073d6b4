"""GCC's building blocks against hand-computed values: the sparsity gradient term, the √MSE /
MSE content and Gram distances, the straight-through channel gates on a discriminator and the
gap objective that updates them."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from vemkit.registry import Registry
from vemkit_plugins import archs
from vemkit_plugins.methods.gcc_losses import (
    GCC_CYCLEGAN_SPARSITY_MULTIPLIERS,
    ChannelGate,
    GapEMA,
    GatedDiscriminator,
    add_sparsity_grad,
    gan_gap,
    gate_objective,
    gcc_distill_losses,
    gcc_ema_beta,
    gcc_gate_layers,
    make_gcc_adapter,
    sparsity_targets,
    straight_through_step,
)
from vemkit_plugins.methods.options import GCC_MOBILE_RESNET_TAPS, GCC_SAGAN_TAPS, GCC_UNET_TAPS


@pytest.fixture(scope="module")
def reg() -> Registry:
    registry = Registry()
    archs.register(registry)
    return registry


# -- sparsity -----------------------------------------------------------------------------------
def _bn_net() -> nn.Sequential:
    net = nn.Sequential(nn.Conv2d(1, 3, 1, bias=False), nn.BatchNorm2d(3))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([0.5, -0.2, 0.0]))
    return net


def test_scale_sparsity_adds_sign_to_grad():
    net = _bn_net()
    net[1].weight.grad = torch.tensor([1.0, 1.0, 1.0])
    assert add_sparsity_grad(net, 1e-2, on="scale") == 1
    # GCC: grad += λ·sign(γ); sign(0) = 0.
    assert torch.allclose(net[1].weight.grad, torch.tensor([1.01, 0.99, 1.0]))
    assert net[0].weight.grad is None  # convs untouched in "scale" mode


def test_sparsity_equals_the_l1_loss_gradient():
    # Why a grad op is enough: it is exactly the gradient λ·Σ|γ| would contribute.
    a = _bn_net()
    b = copy.deepcopy(a)
    x = torch.randn(4, 1, 3, 3)
    a(x).square().mean().backward()
    add_sparsity_grad(a, 1e-2)
    (b(x).square().mean() + 1e-2 * b[1].weight.abs().sum()).backward()
    assert torch.allclose(a[1].weight.grad, b[1].weight.grad, atol=1e-7)


def test_weight_sparsity_with_cyclegan_multipliers(reg):
    net = reg.build("arch", {"type": "mobile_resnet", "ngf": 2, "n_blocks": 9})
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    targets = sparsity_targets(net, "weight")
    assert set(GCC_CYCLEGAN_SPARSITY_MULTIPLIERS) <= set(targets)
    # every conv weight: stem + 2 downs + 9 blocks × 2 separable convs × (depthwise, pointwise)
    # + 2 transposed + head
    assert len(targets) == 3 + 36 + 2 + 1
    n = add_sparsity_grad(net, 1e-3, on="weight", multipliers=GCC_CYCLEGAN_SPARSITY_MULTIPLIERS)
    assert n == len(targets)
    w19 = net.model[19].weight
    assert torch.allclose(w19.grad, 1.0 * torch.sign(w19))  # 1e-3 × 1000
    w4 = net.model[4].weight
    assert torch.allclose(w4.grad, 2e-3 * torch.sign(w4))
    w7 = net.model[7].weight
    assert torch.allclose(w7.grad, 1e-3 * torch.sign(w7))
    assert net.model[7].bias.grad.abs().sum() == 0  # biases never


def test_sparsity_skips_frozen_and_fills_missing_grads():
    net = _bn_net()
    add_sparsity_grad(net, 0.5)  # no backward happened: grad = the sign term alone
    assert torch.equal(net[1].weight.grad, torch.tensor([0.5, -0.5, 0.0]))
    frozen = _bn_net()
    frozen[1].weight.requires_grad_(False)
    assert add_sparsity_grad(frozen, 0.5) == 0 and frozen[1].weight.grad is None


def test_sparsity_reaches_spectral_norm_originals(reg):
    g = reg.build("arch", {"type": "sagan_generator", "ngf": 8, "z_dim": 16})
    targets = sparsity_targets(g, "weight")
    original = g.l1[0].parametrizations.weight.original
    assert targets["l1.0"] is original
    assert len(sparsity_targets(g, "scale")) == 4  # GCC's SAGAN: the four BatchNorms


def test_sparsity_bad_input():
    with pytest.raises(ValueError, match="not scale targets"):
        add_sparsity_grad(_bn_net(), 1e-2, multipliers={"0": 2.0})
    with pytest.raises(ValueError, match="'scale' or 'weight'"):
        sparsity_targets(_bn_net(), "bias")  # type: ignore[arg-type]


# -- content and Gram distances -----------------------------------------------------------------
def test_root_mse_content_and_gram_by_hand():
    s = torch.full((1, 1, 2, 2), 2.0, requires_grad=True)
    t = torch.zeros(1, 1, 2, 2, requires_grad=True)
    # content: √mean((2 − 0)²) = 2. Gram(s) = Σ s² / (C·H·W) = 16 / 4 = 4, Gram(t) = 0 → √16 = 4.
    out = gcc_distill_losses([s], [t], [None])
    assert out["content"].item() == pytest.approx(2.0)
    assert out["gram"].item() == pytest.approx(4.0)
    plain = gcc_distill_losses([s], [t], [None], root=False)  # CycleGAN: MSE, no root
    assert plain["content"].item() == pytest.approx(4.0)
    assert plain["gram"].item() == pytest.approx(16.0)
    (out["content"] + out["gram"]).backward()
    assert s.grad is not None and t.grad is None  # teacher features detached


def test_gram_normalisation_and_adapter():
    torch.manual_seed(0)
    s = torch.randn(2, 3, 4, 4)
    t = torch.randn(2, 5, 4, 4)
    adapter = make_gcc_adapter(3, 5)
    assert adapter.bias is None and adapter.kernel_size == (1, 1)
    a = adapter(s)
    fa, ft = a.reshape(2, 5, 16), t.reshape(2, 5, 16)
    ga = fa @ fa.transpose(1, 2) / (5 * 16)
    gt = ft @ ft.transpose(1, 2) / (5 * 16)
    out = gcc_distill_losses([s, t], [t, t], [adapter, None])
    assert out["gram"].item() == pytest.approx(math.sqrt(((ga - gt) ** 2).mean().item()), rel=1e-5)
    assert out["content"].item() == pytest.approx(((a - t) ** 2).mean().sqrt().item(), rel=1e-5)


def test_distill_shape_errors():
    with pytest.raises(ValueError, match="feature 0: student"):
        gcc_distill_losses([torch.randn(1, 3, 2, 2)], [torch.randn(1, 4, 2, 2)], [None])
    with pytest.raises(ValueError, match="one adapter"):
        gcc_distill_losses([torch.randn(1, 3, 2, 2)], [torch.randn(1, 3, 2, 2)], [])


def test_tap_constants_exist(reg):
    unet = dict(reg.build("arch", {"type": "unet", "ngf": 4, "num_downs": 8}).named_modules())
    assert all(tap in unet for tap in GCC_UNET_TAPS)
    assert isinstance(unet[GCC_UNET_TAPS[0]], nn.BatchNorm2d)
    # The BN output a tap holds is rewritten by the next level's in-place LeakyReLU (as in GCC).
    net = reg.build("arch", {"type": "unet", "ngf": 4, "num_downs": 5}).eval()
    held = {}
    bn = dict(net.named_modules())[GCC_UNET_TAPS[0]]
    bn.register_forward_hook(lambda m, a, o: held.update(raw=o, copy=o.clone()))
    net(torch.randn(1, 3, 32, 32))
    assert torch.equal(held["raw"], torch.nn.functional.leaky_relu(held["copy"], 0.2))
    mobile = dict(reg.build("arch", {"type": "mobile_resnet", "ngf": 4}).named_modules())
    assert all(tap in mobile for tap in GCC_MOBILE_RESNET_TAPS)
    sagan = dict(reg.build("arch", {"type": "sagan_generator", "ngf": 8}).named_modules())
    assert all(tap in sagan for tap in GCC_SAGAN_TAPS)


# -- straight-through gates ---------------------------------------------------------------------
def test_step_forward_is_hard_with_half_on_the_threshold():
    alpha = torch.tensor([1.0, 0.2, 0.5, 0.7, -0.3])
    assert torch.equal(straight_through_step(alpha, 0.5), torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0]))
    assert torch.equal(straight_through_step(alpha, 0.1), torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0]))


def test_straight_through_gradient_by_hand():
    gate = ChannelGate(3)
    with torch.no_grad():
        gate.alpha.copy_(torch.tensor([0.9, 0.1, 0.6]))  # mask (1, 0, 1)
    x = torch.arange(12, dtype=torch.float32).view(1, 3, 2, 2).requires_grad_()
    w = torch.tensor([1.0, 2.0, -1.0]).view(1, 3, 1, 1)
    (gate(x) * w).sum().backward()
    # d/dalpha_c = Σ_{n,h,w} grad_out · x (identity through the step), even for a closed gate;
    # d/dx = grad_out · mask.
    sums = x.detach().sum(dim=(0, 2, 3))  # 6, 22, 38
    assert torch.equal(gate.alpha.grad, torch.tensor([1.0, 2.0, -1.0]) * sums)
    assert torch.equal(x.grad[0, :, 0, 0], torch.tensor([1.0, 0.0, -1.0]))
    gate.alpha.data.fill_(3.0)
    gate.clip_()
    assert torch.equal(gate.alpha, torch.ones(3))


def test_gate_layers_follow_gcc(reg):
    pg = reg.build("arch", {"type": "patchgan", "input_nc": 6, "ndf": 4})
    assert gcc_gate_layers(pg) == ["model.1", "model.3", "model.6", "model.9"]
    sd = reg.build("arch", {"type": "sagan_discriminator", "ndf": 4})
    assert gcc_gate_layers(sd) == ["l1.0", "l2.0", "l3.0", "l4.0"]


def test_gated_patchgan_equals_zeroed_channels(reg):
    torch.manual_seed(0)
    pg = reg.build("arch", {"type": "patchgan", "input_nc": 3, "ndf": 4, "norm": "batch"}).eval()
    gated = GatedDiscriminator(copy.deepcopy(pg)).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(gated(x), pg(x))  # every gate open at init (alpha 1 > 0.5)
    assert [g.alpha.numel() for g in gated.gates] == [4, 8, 16, 32]
    with torch.no_grad():
        gated.gates[1].alpha[[2, 5]] = 0.3
        pg.model[3].weight[[2, 5]] = 0.0  # a closed gate = that BN channel's output is 0
        pg.model[3].bias[[2, 5]] = 0.0
    assert torch.allclose(gated(x), pg(x), atol=1e-6)
    assert gated.sparsity()["model.3"] == pytest.approx(2 / 8)
    keys = set(gated.state_dict())
    assert "net.model.3.weight" in keys and "gates.1.alpha" in keys
    assert {id(p) for p in gated.weight_parameters()}.isdisjoint(
        {id(p) for p in gated.gate_parameters()}
    )


def test_gated_discriminator_deepcopy_rebinds_hooks(reg):
    gated = GatedDiscriminator(reg.build("arch", {"type": "sagan_discriminator", "ndf": 4}))
    clone = copy.deepcopy(gated)
    with torch.no_grad():
        clone.gates[0].alpha.zero_()
    x = torch.randn(2, 3, 64, 64)
    assert not torch.equal(clone(x), gated(x))
    with torch.no_grad():
        gated.gates[0].alpha.zero_()
    assert torch.allclose(clone(x), gated(x))


def test_gate_gradient_reaches_alphas_only_through_gates(reg):
    torch.manual_seed(0)
    gated = GatedDiscriminator(
        reg.build("arch", {"type": "sagan_discriminator", "ndf": 4}), threshold=0.1
    )
    for p in gated.weight_parameters():
        p.requires_grad_(False)
    gated(torch.randn(2, 3, 64, 64)).mean().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in gated.gate_parameters())
    assert all(g.threshold == 0.1 for g in gated.gates)


def test_gated_discriminator_bad_layer(reg):
    pg = reg.build("arch", {"type": "patchgan", "ndf": 4})
    with pytest.raises(ValueError, match="no such module"):
        GatedDiscriminator(pg, ["model.99"])
    with pytest.raises(ValueError, match="no conv or norm before it"):
        GatedDiscriminator(nn.Sequential(nn.ReLU(), nn.Conv2d(1, 1, 1)), ["0"])


def test_closed_first_gate_gradient_is_gccs(reg):
    # GCC gates the PatchGAN's first layer after its LeakyReLU: the gradient to alpha_c is
    # Σ (dL/d gated)_c · LeakyReLU(conv(x))_c, also for a closed gate (alpha below threshold).
    torch.manual_seed(0)
    pg = reg.build("arch", {"type": "patchgan", "ndf": 2, "n_layers": 1, "norm": "none"})
    gated = GatedDiscriminator(pg)
    assert gated.layers == ("model.1", "model.2")  # norm none: the second conv itself
    with torch.no_grad():
        gated.gates[0].alpha.copy_(torch.tensor([0.2, 1.0]))  # channel 0 closed
    seen = {}

    def keep(module, args, output):
        output.retain_grad()
        seen["gated"] = output

    pg.model[1].register_forward_hook(keep)  # runs after the gate's hook: sees the gated map
    x = torch.randn(1, 3, 16, 16)
    out = gated(x)
    (out * torch.randn_like(out)).sum().backward()
    with torch.no_grad():
        act = torch.nn.functional.leaky_relu(pg.model[0](x), 0.2)
    expected = (seen["gated"].grad * act).sum(dim=(0, 2, 3))
    assert torch.allclose(gated.gates[0].alpha.grad, expected, atol=1e-6)
    assert expected[0].abs() > 1e-4 and seen["gated"][0, 0].abs().max() == 0


# -- the gap objective --------------------------------------------------------------------------
def test_gap_objective_hinge_by_hand():
    fake = torch.tensor([0.5, -0.5], requires_grad=True)
    real = torch.tensor([2.0, 0.0], requires_grad=True)
    # L_G = −mean(fake) = 0; L_D_fake = mean(relu(1 + fake)) = 1; gap_S = 1.
    # L_D_real = mean(relu(1 − real)) = 0.5.
    out = gate_objective(fake, real, 0.25, "hinge")
    assert out["student_gap"].item() == pytest.approx(1.0)
    assert out["gap"].item() == pytest.approx(0.75)  # |1 − 0.25|
    assert out["d"].item() == pytest.approx(0.75)  # 0.5 · (0.5 + 1)
    assert out["total"].item() == pytest.approx(1.5)
    out["total"].backward()
    # d gap_S / d fake_i = ½ (from L_D_fake) + ½ (from −L_G) = 1, sign +1 (gap_S > target);
    # d term: 0.5 · ½ = 0.25 → 1.25 each. Real: 0.5 · (−½) where 1 − r > 0.
    assert torch.allclose(fake.grad, torch.tensor([1.25, 1.25]))
    assert torch.allclose(real.grad, torch.tensor([0.0, -0.25]))


def test_gap_objective_sign_flips_when_teacher_gap_is_larger():
    fake = torch.tensor([0.5, -0.5], requires_grad=True)
    out = gate_objective(fake, torch.tensor([2.0, 0.0]), torch.tensor(1.5), "hinge", d_weight=1.0)
    assert out["gap"].item() == pytest.approx(0.5)
    assert out["d"].item() == pytest.approx(1.5)  # SAGAN: no ½
    out["total"].backward()
    # gap term now pulls gap_S *up*: −1 per logit, plus d term 1 · ½.
    assert torch.allclose(fake.grad, torch.tensor([-0.5, -0.5]))


def test_gan_gap_lsgan_by_hand():
    # LSGAN: L_G = mean((f − 1)²), L_D_fake = mean(f²).
    f = torch.tensor([0.5, 0.0])
    assert gan_gap(f, "lsgan").item() == pytest.approx(abs((0.25 + 1) / 2 - 0.25 / 2))
    assert gan_gap(torch.tensor([0.5]), "lsgan").item() == 0.0


def test_gap_ema_follows_gcc():
    ema = GapEMA()
    assert ema.update(torch.tensor(2.0), beta=0.25) == 2.0  # first value as is
    assert ema.update(1.0, beta=0.25) == pytest.approx(0.25 * 1.0 + 0.75 * 2.0)
    state = ema.state_dict()
    other = GapEMA()
    other.load_state_dict(state)
    assert other.value == ema.value
    assert gcc_ema_beta(3, 200) == pytest.approx(0.985)
    assert gcc_ema_beta(200, 200) == 0.0
    with pytest.raises(ValueError):
        gcc_ema_beta(5, 4)


def test_one_gate_update_step_as_gcc(reg):
    # GCC's optimizer_netD_arch on a held-out batch: clip alphas, freeze D weights, minimise the
    # gate objective with Adam(lr 1e-4) on the alphas only; the teacher's gap enters via its EMA.
    torch.manual_seed(0)
    teacher_d = reg.build("arch", {"type": "sagan_discriminator", "ndf": 4})
    student_d = GatedDiscriminator(
        reg.build("arch", {"type": "sagan_discriminator", "ndf": 4}), threshold=0.1
    )
    real = torch.randn(4, 3, 64, 64)
    t_fake, s_fake = torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64)
    ema = GapEMA()
    with torch.no_grad():
        teacher_gap = ema.update(gan_gap(teacher_d(t_fake), "hinge"), beta=1.0)
    weights_before = [p.detach().clone() for p in student_d.weight_parameters()]
    opt = torch.optim.Adam(student_d.gate_parameters(), lr=1e-4)
    student_d.clip_gates_()
    for p in student_d.weight_parameters():
        p.requires_grad_(False)
    out = gate_objective(
        student_d(s_fake.detach()), student_d(real), teacher_gap, "hinge", d_weight=1.0
    )
    opt.zero_grad()
    out["total"].backward()
    opt.step()
    after = student_d.weight_parameters()
    assert all(torch.equal(a, b) for a, b in zip(weights_before, after, strict=True))
    moved = torch.cat([a.detach() for a in student_d.gate_parameters()])
    assert (moved != 1.0).any() and (moved - 1.0).abs().max() <= 1e-4 * 1.001  # one Adam step
