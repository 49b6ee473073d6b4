"""OMGD's loss terms (plugins/methods/omgd_losses.py) and options, against hand-computed values.

Definitions follow bytedance/OMGD (distillers/multiteacher_distiller.py, cycleganbest_distiller.py,
base_*_distiller.py) and the GANLoss it shares with mit-han-lab/gan-compression; every expected
number below is worked out by hand in the comment next to it.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from vemkit_plugins.methods import omgd_losses as L
from vemkit_plugins.methods.options import MOBILE_RESNET_CD_TAPS, UNET_CD_TAPS, OMGDOptions

# -- SSIM -----------------------------------------------------------------------------------------


def test_ssim_loss_of_identical_images_is_zero():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert L.ssim_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)


def _window_mass(size: int) -> list[float]:
    # Mass of the 11-tap Gaussian (σ 1.5) that falls inside [0, size) around each position,
    # i.e. the weight zero "same" padding leaves (pytorch-ssim as vendored by OMGD).
    g = [math.exp(-((k - 5) ** 2) / (2 * 1.5**2)) for k in range(11)]
    total = sum(g)
    return [sum(g[k] for k in range(11) if 0 <= i + k - 5 < size) / total for i in range(size)]


def test_ssim_loss_of_two_constant_images_matches_the_closed_form():
    # Constants a, b on a 16×16 image, zero-padded window with inside mass w at a pixel:
    # mu_x = a·w, mu_y = b·w, var_x = a²·w(1−w), var_y = b²·w(1−w), cov = ab·w(1−w), so
    # SSIM = (2ab·w² + C1)(2ab·w(1−w) + C2) / (((a²+b²)w² + C1)((a²+b²)w(1−w) + C2)),
    # C1 = 0.01², C2 = 0.03² on the [-1, 1] values themselves (no mapping to [0, 1]).
    a, b, size = 0.5, -0.25, 16
    c1, c2 = 0.01**2, 0.03**2
    mass = _window_mass(size)
    values = []
    for wi in mass:
        for wj in mass:
            w = wi * wj
            num = (2 * a * b * w * w + c1) * (2 * a * b * w * (1 - w) + c2)
            den = ((a * a + b * b) * w * w + c1) * ((a * a + b * b) * w * (1 - w) + c2)
            values.append(num / den)
    expected = 1 - sum(values) / len(values)
    s = torch.full((1, 1, size, size), a, dtype=torch.float64)
    t = torch.full((1, 1, size, size), b, dtype=torch.float64)
    assert L.ssim_loss(s, t).item() == pytest.approx(expected, rel=1e-9)
    # Far from the border the window is whole: SSIM → (2ab + C1)/(a² + b² + C1) = −0.7996...
    assert min(values) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)


def test_ssim_loss_equals_a_direct_2d_window_computation():
    # The definition with one 2-D 11×11 window (outer product of the 1-D Gaussian), zero padding
    # 5, every moment filtered separately — independent of the separable implementation.
    torch.manual_seed(0)
    s, t = torch.rand(2, 3, 20, 20) * 2 - 1, torch.rand(2, 3, 20, 20) * 2 - 1
    g = torch.tensor([math.exp(-((k - 5) ** 2) / 4.5) for k in range(11)])
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)

    def filt(z):
        return F.conv2d(z, w, padding=5, groups=3)

    mu_s, mu_t = filt(s), filt(t)
    var_s = filt(s * s) - mu_s**2
    var_t = filt(t * t) - mu_t**2
    cov = filt(s * t) - mu_s * mu_t
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_s * mu_t + c1) * (2 * cov + c2)) / (
        (mu_s**2 + mu_t**2 + c1) * (var_s + var_t + c2)
    )
    assert L.ssim_loss(s, t).item() == pytest.approx(1 - ssim_map.mean().item(), abs=1e-6)


# -- Gram, style, feature, TV ------------------------------------------------------------------

# Channel 0 = [[1, 2], [3, 4]], channel 1 = [[0, 1], [1, 0]]: F = [[1,2,3,4], [0,1,1,0]],
# F·Fᵀ = [[30, 5], [5, 2]], divided by C·H·W = 2·2·2 = 8.
KNOWN = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]])
KNOWN_GRAM = torch.tensor([[[3.75, 0.625], [0.625, 0.25]]])


def test_gram_of_a_known_two_channel_input():
    assert torch.allclose(L.gram(KNOWN), KNOWN_GRAM)
    batch = torch.cat([KNOWN, 2 * KNOWN])  # per image; the second scales by 4
    assert torch.allclose(L.gram(batch), torch.cat([KNOWN_GRAM, 4 * KNOWN_GRAM]))


def test_style_loss_sums_mean_l1_of_grams_over_layers():
    zeros = torch.zeros_like(KNOWN)
    # mean |G| = (3.75 + 0.625 + 0.625 + 0.25) / 4 = 1.3125 per layer; two layers → 2.625
    assert L.style_loss([KNOWN, KNOWN], [zeros, zeros]).item() == pytest.approx(2.625)
    assert L.style_loss([KNOWN], [KNOWN]).item() == 0.0
    with pytest.raises(ValueError, match="same non-zero number"):
        L.style_loss([KNOWN], [KNOWN, KNOWN])


def test_feature_loss_reads_one_layer():
    a, b = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)
    # layer 1 differs by 3 everywhere, layer 0 by 1: only layer 1 counts
    assert L.feature_loss([a, a], [b, 3 * b]).item() == pytest.approx(3.0)
    assert L.feature_loss([a, a], [b, 3 * b], layer=0).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="layer 2"):
        L.feature_loss([a, a], [a, a], layer=2)


def test_tv_sum_and_mean_on_a_known_3x3_input():
    x = torch.tensor([[1.0, 2.0, 4.0], [0.0, 0.0, 0.0], [3.0, 1.0, 1.0]]).view(1, 1, 3, 3)
    # horizontal: |2−1|+|4−2| + 0+0 + |1−3|+|1−1| = 3 + 0 + 2 = 5
    # vertical:   |0−1|+|0−2|+|0−4| + |3−0|+|1−0|+|1−0| = 7 + 5 = 12
    assert L.tv_loss(x).item() == pytest.approx(17.0)
    # OMGD's sum grows with the batch: x and 2x → 17 + 34
    assert L.tv_loss(torch.cat([x, 2 * x])).item() == pytest.approx(51.0)
    # mean: 5/6 + 12/6
    assert L.tv_loss(x, "mean").item() == pytest.approx(5 / 6 + 2.0)
    with pytest.raises(ValueError, match="reduction"):
        L.tv_loss(x, "max")  # type: ignore[arg-type]


# -- channel distillation ------------------------------------------------------------------------


def _identity_adapter(c: int) -> torch.nn.Sequential:
    adapter = L.make_cd_adapter(c, c)
    with torch.no_grad():
        adapter[0].weight.copy_(torch.eye(c).view(c, c, 1, 1))
        bn = adapter[1]
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)  # eval BN: x / sqrt(var + eps) = x
    return adapter.eval()


def test_cd_adapter_layout_and_omgd_initialisation():
    torch.manual_seed(0)
    adapter = L.make_cd_adapter(64, 256)
    conv, bn, relu = adapter
    assert isinstance(conv, torch.nn.Conv2d) and conv.bias is None
    assert conv.weight.shape == (256, 64, 1, 1)
    assert isinstance(bn, torch.nn.BatchNorm2d) and isinstance(relu, torch.nn.ReLU)
    # init_net's N(0, 0.02) replaces the He draw (std sqrt(2/256) = 0.088); BN scale ~ N(1, 0.02)
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert 0 < bn.weight.std().item() < 0.05
    assert torch.all(bn.bias == 0)


def test_channel_distillation_is_zero_for_matching_features():
    torch.manual_seed(0)
    adapter = L.make_cd_adapter(3, 5).eval()
    s = torch.randn(2, 3, 4, 4)
    t = adapter(s).detach()
    assert L.channel_distillation_loss([s], [t], [adapter]).item() == pytest.approx(0, abs=1e-12)


def test_channel_distillation_known_value_and_gradients():
    # Identity adapter on non-negative student maps, so A(S) = S.
    # tap 1: S channel means (1, 2), T channel means (0, 4) for image 0; S (3, 3), T (3, 1) for
    #        image 1 → squared errors 1, 4, 0, 4 → mean 9/4 = 2.25
    # tap 2: one channel, one image: S mean 2, T mean 5 → 9
    def const(*means):
        return (
            torch.tensor(means, dtype=torch.float32)
            .view(len(means) // 2, 2, 1, 1)
            .expand(-1, -1, 3, 3)
        )

    s1 = const(1, 2, 3, 3).clone().requires_grad_(True)
    t1 = const(0, 4, 3, 1).clone().requires_grad_(True)
    s2 = torch.full((1, 1, 2, 2), 2.0, requires_grad=True)
    t2 = torch.full((1, 1, 2, 2), 5.0)
    adapters = [_identity_adapter(2), _identity_adapter(1)]
    loss = L.channel_distillation_loss([s1, s2], [t1, t2], adapters)
    assert loss.item() == pytest.approx(2.25 + 9.0)
    loss.backward()
    assert s1.grad is not None and s1.grad.abs().sum() > 0
    assert t1.grad is None  # teacher taps are detached, as OMGD's calc_CD_loss
    assert adapters[0][0].weight.grad is not None  # the adapters learn with the student


def test_channel_distillation_checks_its_inputs():
    s = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match="one adapter per"):
        L.channel_distillation_loss([s], [s], [])
    with pytest.raises(ValueError, match="channels"):
        L.channel_distillation_loss([s], [torch.zeros(1, 3, 2, 2)], [_identity_adapter(2)])


# -- GAN losses ---------------------------------------------------------------------------------

X = torch.tensor([-2.0, 0.0, 0.5, 3.0])
ONES = torch.ones(4)


def test_hinge_values_by_hand():
    # real: mean max(0, 1 − x) = (3 + 1 + 0.5 + 0)/4 = 1.125
    # fake: mean max(0, 1 + x) = (0 + 1 + 1.5 + 4)/4 = 1.625
    assert L.gan_loss(X, True, "hinge", for_discriminator=True).item() == pytest.approx(1.125)
    assert L.gan_loss(X, False, "hinge", for_discriminator=True).item() == pytest.approx(1.625)
    assert L.gan_loss_d(X, X, "hinge").item() == pytest.approx(0.5 * (1.125 + 1.625))
    # generator: −mean x = −1.5/4
    assert L.gan_loss_g(X, "hinge").item() == pytest.approx(-0.375)
    with pytest.raises(ValueError, match="real"):
        L.gan_loss(X, False, "hinge", for_discriminator=False)


def test_lsgan_values_by_hand():
    # real: mean (x − 1)² = (9 + 1 + 0.25 + 4)/4 = 3.5625; fake: mean x² = (4+0+0.25+9)/4
    assert L.gan_loss_d(X, X, "lsgan").item() == pytest.approx(0.5 * (3.5625 + 3.3125))
    assert L.gan_loss_g(X, "lsgan").item() == pytest.approx(3.5625)


def test_vanilla_is_bce_with_logits():
    real = F.binary_cross_entropy_with_logits(X, torch.ones(4))
    fake = F.binary_cross_entropy_with_logits(X, torch.zeros(4))
    assert L.gan_loss_d(X, X, "vanilla").item() == pytest.approx(0.5 * (real + fake).item())
    assert L.gan_loss_g(X, "vanilla").item() == pytest.approx(real.item())
    assert L.gan_loss_g(torch.zeros(3), "vanilla").item() == pytest.approx(math.log(2))


def test_lists_of_logits_are_averaged_or_summed():
    # hinge real: X → 1.125, ONES → 0; mean 0.5625, sum 1.125
    assert L.gan_loss([X, ONES], True, "hinge", for_discriminator=True).item() == pytest.approx(
        0.5625
    )
    assert L.gan_loss(
        [X, ONES], True, "hinge", for_discriminator=True, reduce="sum"
    ).item() == pytest.approx(1.125)
    # pix2pixHD-style nested lists: the last entry of each is the logit map
    nested = [[torch.full((4,), 99.0), X], [ONES]]
    assert L.gan_loss_g(nested, "lsgan").item() == pytest.approx((3.5625 + 0.0) / 2)
    with pytest.raises(ValueError, match="gan_mode"):
        L.gan_loss_g(X, "wgan")  # type: ignore[arg-type]


# -- ImagePool ----------------------------------------------------------------------------------


def _images(n: int, start: float = 0.0) -> torch.Tensor:
    # image i is constant start + i, so an output's identity can be read off its value
    return (torch.arange(n, dtype=torch.float32) + start).view(n, 1, 1, 1).expand(n, 3, 2, 2)


def test_pool_of_size_zero_passes_images_through():
    pool = L.ImagePool(0)
    x = _images(3)
    assert pool.query(x) is x and len(pool) == 0


def test_pool_fills_then_swaps_about_half_the_time():
    pool = L.ImagePool(4, seed=1)
    out = pool.query(_images(3))  # not full: stored and returned as they are
    assert torch.equal(out, _images(3)) and len(pool) == 3
    seen_old, seen_new, total = 0, 0, 0
    shown = set(range(3))
    for step in range(100):
        new_value = 100.0 + step
        out = pool.query(_images(1, new_value))
        value = out[0, 0, 0, 0].item()
        shown.add(new_value)
        assert value in shown  # always an image seen before (or the new one)
        if len(pool) == 4 and step > 0:
            total += 1
            seen_new += value == new_value
            seen_old += value != new_value
        assert len(pool) <= 4
    assert len(pool) == 4
    # p = 1/2 per query: 99 draws, 30..70 is > 4 standard deviations wide
    assert 30 <= seen_old <= 70 and seen_old + seen_new == total


def test_pool_state_round_trip_continues_identically():
    pool = L.ImagePool(3, seed=7)
    for step in range(5):
        pool.query(_images(2, 10.0 * step))
    state = pool.state_dict()
    assert state["size"] == 3 and state["images"].shape == (3, 3, 2, 2)
    assert state["rng"].dtype == torch.uint8
    expected = [pool.query(_images(2, 100.0 + 10 * k)) for k in range(10)]

    resumed = L.ImagePool(3, seed=999)  # different seed: the state must override it
    resumed.load_state_dict(state)
    got = [resumed.query(_images(2, 100.0 + 10 * k)) for k in range(10)]
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a, b)

    other = L.ImagePool(3, seed=999)
    other.load_state_dict({**state, "rng": L.ImagePool(3, seed=999).state_dict()["rng"]})
    diverged = [other.query(_images(2, 100.0 + 10 * k)) for k in range(10)]
    assert any(not torch.equal(a, b) for a, b in zip(expected, diverged, strict=True))


def test_empty_pool_state_and_size_mismatch():
    empty = L.ImagePool(2).state_dict()
    assert empty["images"].numel() == 0
    pool = L.ImagePool(2, seed=3)
    pool.load_state_dict(empty)
    assert len(pool) == 0
    with pytest.raises(ValueError, match="size 2"):
        L.ImagePool(5).load_state_dict(empty)


def test_pools_state_dict_keys_by_method_and_side_and_skips_missing_pools():
    pools = {"A": L.ImagePool(2, seed=1), "B": L.ImagePool(2, seed=2)}
    pools["A"].query(_images(2, 5.0))
    saved = L.pools_state_dict(pools, "cat")
    assert sorted(saved) == ["cat.pool.A", "cat.pool.B"]
    assert (
        saved["cat.pool.A"]["images"].shape[0] == 2 and saved["cat.pool.B"]["images"].numel() == 0
    )

    fresh = {"A": L.ImagePool(2, seed=9), "B": L.ImagePool(2, seed=9)}
    fresh["B"].query(_images(1, 7.0))
    L.load_pools_state_dict(fresh, "cat", {"cat.pool.A": saved["cat.pool.A"]})
    assert torch.equal(torch.stack(fresh["A"].images), torch.stack(pools["A"].images))
    assert len(fresh["B"]) == 1  # no saved state for B: left as it was
    assert L.pools_state_dict({}, "gc") == {}


# -- the per-teacher bundle -----------------------------------------------------------------------


def test_multi_granularity_loss_composes_the_terms():
    from vemkit_plugins.methods.perceptual import random_vgg16

    torch.manual_seed(0)
    vgg = random_vgg16(0)
    s = (torch.rand(1, 3, 16, 16) * 2 - 1).requires_grad_(True)
    t = torch.rand(1, 3, 16, 16) * 2 - 1
    terms = L.multi_granularity_loss(s, t, vgg)
    assert set(terms) == {"ssim", "style", "feature", "tv"}
    fs, ft = vgg(s), vgg(t)
    assert terms["ssim"].item() == pytest.approx(10 * L.ssim_loss(s, t).item(), rel=1e-5)
    assert terms["style"].item() == pytest.approx(1e4 * L.style_loss(fs, ft).item(), rel=1e-5)
    assert terms["feature"].item() == pytest.approx(10 * F.l1_loss(fs[1], ft[1]).item(), rel=1e-5)
    assert terms["tv"].item() == pytest.approx(1e-5 * L.tv_loss(s).item(), rel=1e-6)
    sum(terms.values()).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    # student == teacher: only TV remains
    same = L.multi_granularity_loss(t, t, vgg)
    assert same["ssim"].item() == pytest.approx(0, abs=1e-5)
    assert same["style"].item() == 0 and same["feature"].item() == 0 and same["tv"].item() > 0


# -- options ------------------------------------------------------------------------------------


def test_options_defaults_are_omgds_edges_setting():
    o = OMGDOptions()
    assert (o.ssim_weight, o.style_weight, o.feature_weight, o.tv_weight) == (10, 1e4, 10, 1e-5)
    # gan_mode and discriminator default to null: the method picks OMGD's choice for the task
    # (hinge + the two-head omgd_patchgan for pix2pix, LSGAN + PatchGANs for CycleGAN).
    assert (o.lambda_cd, o.lambda_rec, o.gan_mode, o.n_dis) == (10, 100, None, 1)
    assert o.perceptual == "inception" and o.vgg_normalize is False
    assert o.discriminator is None
    assert o.deep_teacher == {"type": "unet_deepest", "ngf": 16}
    assert (o.lambda_cycle, o.lambda_identity, o.pool_size) == (10, 0.5, 50)
    with pytest.raises(ValidationError, match="pairwise"):
        OMGDOptions(cd_teacher_taps=["model.9"], cd_student_taps=["model.9", "model.12"])
    with pytest.raises(ValidationError):
        OMGDOptions(feature_layer=4)


def test_slot_defaults_validate_against_the_registered_archs():
    from vemkit.registry import Registry
    from vemkit.spec_model import resolve_model
    from vemkit_plugins import archs

    reg = Registry()
    archs.register(reg)
    model = resolve_model(reg, OMGDOptions)
    opts = model(discriminator={"type": "omgd_patchgan", "ndf": 128})
    assert opts.discriminator.type == "omgd_patchgan" and opts.discriminator.ndf == 128
    assert opts.deep_teacher.type == "unet_deepest"
    assert model(deep_teacher=None).deep_teacher is None
    with pytest.raises(ValidationError):
        model(discriminator={"type": "omgd_patchgan", "n_shar": 2})


def _tap_shapes(net: torch.nn.Module, paths, size: int) -> list[tuple[int, ...]]:
    modules = dict(net.named_modules())
    shapes: list[tuple[int, ...]] = []
    handles = [
        modules[p].register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
        for p in paths
    ]
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return shapes


def test_unet_cd_taps_are_omgds_four_layers():
    from vemkit.registry import Registry
    from vemkit_plugins import archs

    reg = Registry()
    archs.register(reg)
    ngf = 4
    net = reg.build("arch", {"type": "unet", "ngf": ngf, "init_type": "default"}).eval()
    shapes = _tap_shapes(net, UNET_CD_TAPS, 256)
    # hooks fire in execution order: 2ngf@64², 8ngf@16², then the up path 16ngf@16², 4ngf@64²
    assert sorted(shapes) == sorted(
        [(2 * ngf, 64, 64), (8 * ngf, 16, 16), (16 * ngf, 16, 16), (4 * ngf, 64, 64)]
    )
    mobile = reg.build("arch", {"type": "mobile_resnet", "ngf": ngf, "init_type": "default"}).eval()
    assert _tap_shapes(mobile, MOBILE_RESNET_CD_TAPS, 64) == [(4 * ngf, 16, 16)] * 4


def test_style_loss_from_grams_is_the_style_loss_bit_for_bit():
    # OMGD computes the student's Grams once for both teachers' style terms.
    g = torch.Generator().manual_seed(0)
    fs = [torch.randn(2, c, 8, 8, generator=g) for c in (4, 8)]
    ft = [torch.randn(2, c, 8, 8, generator=g) for c in (4, 8)]
    grams_s = [L.gram(f) for f in fs]
    grams_t = [L.gram(f) for f in ft]
    assert torch.equal(L.gram_style_loss(grams_s, grams_t), L.style_loss(fs, ft))
    with pytest.raises(ValueError, match="same non-zero number of layers"):
        L.gram_style_loss(grams_s, grams_s[:1])
