"""Unconditional GAN architectures: GCC's SAGAN and CAGC's StyleGAN2 (rosinality layout)."""

from __future__ import annotations

import argparse
import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from scipy.signal import convolve2d

from vemkit.errors import VemkitError
from vemkit.registry import Registry
from vemkit_plugins import archs
from vemkit_plugins.archs.sagan import SelfAttention, convert_gcc_sagan, sagan_thop_legacy_macs
from vemkit_plugins.archs.stylegan2 import (
    ModulatedConv2d,
    stylegan2_analytic_macs,
    stylegan2_net_shape,
    upfirdn2d,
)
from vemkit_plugins.archs.stylegan2_convert import (
    convert_rosinality,
    discriminator_options,
    generator_options,
    load_rosinality,
)

KEYS = json.loads((Path(__file__).parent / "data" / "stylegan2_rosinality_keys.json").read_text())

# A StyleGAN2 small enough for CPU tests.
TINY_G = {"size": 16, "style_dim": 16, "n_mlp": 2, "channels": {4: 16, 8: 16, 16: 8}}
TINY_D = {"size": 16, "channels": {4: 16, 8: 16, 16: 8}}


@pytest.fixture(scope="module")
def reg() -> Registry:
    r = Registry()
    archs.register(r)
    return r


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def backward_reaches_all(net: torch.nn.Module, out: torch.Tensor) -> None:
    out.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, missing


# -- SAGAN ---------------------------------------------------------------------------------------


def test_sagan_generator_paper_size(reg: Registry) -> None:
    g = reg.build("arch", {"type": "sagan_generator"})
    # 3.83M in baselines.md §0 (GCC ngf 64, z 128). Exact sum over GCC's layer list:
    # ConvTs 1,048,576+512 / 2,097,152+256 / 524,288+128 / 131,072+64, BN 2·(512+256+128+64),
    # last ConvT 3,072+3, attention(128) 20,641, attention(64) 5,201.
    assert n_params(g) == 3_832_885
    # GCC's spectral norm flattens every weight as (shape[0], -1): for a ConvT that is C_in.
    assert g.l1[0].parametrizations.weight[0]._u.shape == (128,)
    assert g.l4[0].parametrizations.weight[0]._u.shape == (128,)
    assert not hasattr(g.last[0], "parametrizations")  # GCC's last layer is plain


def test_sagan_legacy_macs_reproduce_paper(reg: Registry) -> None:
    z = torch.randn(1, 128)
    g64 = reg.build("arch", {"type": "sagan_generator"})
    g48 = reg.build("arch", {"type": "sagan_generator", "ngf": 48})
    # Paper Table 3 "23.45M" (old thop, SN layers invisible); baselines.md §0: ngf 48 → 15.62M.
    assert sagan_thop_legacy_macs(g64, z) == 23_449_600
    assert sagan_thop_legacy_macs(g48, z) == 15_624_192
    assert g64.training  # mode restored


def test_sagan_widths_express_pruned_student(reg: Registry) -> None:
    by_ngf = reg.build("arch", {"type": "sagan_generator", "ngf": 48})
    by_widths = reg.build("arch", {"type": "sagan_generator", "widths": [384, 192, 96, 48]})
    assert n_params(by_ngf) == n_params(by_widths)
    pruned = reg.build("arch", {"type": "sagan_generator", "widths": [300, 150, 64, 40]})
    assert pruned.attn1.value_conv.in_channels == 64 and pruned.attn2.query_conv.out_channels == 5
    assert pruned(torch.randn(2, 128)).shape == (2, 3, 64, 64)
    with pytest.raises(ValidationError):
        reg.options("arch", {"type": "sagan_generator", "widths": [64, 32, 16]})


def test_sagan_forward_backward(reg: Registry) -> None:
    g = reg.build("arch", {"type": "sagan_generator", "ngf": 8, "z_dim": 16})
    d = reg.build("arch", {"type": "sagan_discriminator", "ndf": 8})
    img = g(torch.randn(3, 16))
    assert img.shape == (3, 3, 64, 64)
    assert img.abs().max() <= 1.0  # tanh
    score = d(img)
    assert score.shape == (3,)
    assert d(img[:1]).shape == (1,)
    backward_reaches_all(d, score)
    g.zero_grad()
    backward_reaches_all(g, d(g(torch.randn(2, 16))))


def test_sagan_discriminator_paper_size(reg: Registry) -> None:
    d = reg.build("arch", {"type": "sagan_discriminator"})
    # GCC's D at ndf 64: SN convs 3,136 + 131,200 + 524,544 + 2,097,664, last conv 8,193,
    # attention(256) 82,241, attention(512) 328,321.
    assert n_params(d) == 3_175_299


def test_self_attention_matches_definition() -> None:
    torch.manual_seed(0)
    attn = SelfAttention(16)
    with torch.no_grad():
        attn.gamma.fill_(0.7)
    x = torch.randn(2, 16, 3, 5)
    q = attn.query_conv(x).flatten(2)  # (n, 2, 15)
    k = attn.key_conv(x).flatten(2)
    v = attn.value_conv(x).flatten(2)
    weights = torch.softmax(torch.einsum("nci,ncj->nij", q, k), dim=-1)  # row i sums to 1
    expected = x + 0.7 * torch.einsum("ncj,nij->nci", v, weights).view_as(x)
    torch.testing.assert_close(attn(x), expected)


def test_convert_gcc_sagan_round_trip(reg: Registry) -> None:
    g = reg.build("arch", {"type": "sagan_generator", "ngf": 8})
    ours = g.state_dict()
    # GCC's layout: <layer>.module.weight_bar / weight_u / weight_v / bias, plus thop leftovers
    gcc = {}
    for key, value in ours.items():
        key = key.replace(".parametrizations.weight.original", ".module.weight_bar")
        key = key.replace(".parametrizations.weight.0._u", ".module.weight_u")
        key = key.replace(".parametrizations.weight.0._v", ".module.weight_v")
        if key.startswith(("l1.0.", "l2.0.", "l3.0.", "l4.0.")) and key.endswith(".bias"):
            key = key.replace(".bias", ".module.bias")
        gcc[key] = value.clone()
    gcc["l1.0.total_ops"] = torch.zeros(1)
    assert "l2.0.module.weight_bar" in gcc
    fresh = reg.build("arch", {"type": "sagan_generator", "ngf": 8})
    fresh.load_state_dict(convert_gcc_sagan(gcc), strict=True)
    g.eval()
    fresh.eval()
    z = torch.randn(2, 128)
    torch.testing.assert_close(fresh(z), g(z))


# -- StyleGAN2 building blocks ---------------------------------------------------------------------


def _reference_upfirdn(x: np.ndarray, k: np.ndarray, up: int, down: int, pad: tuple[int, int]):
    h, w = x.shape
    u = np.zeros((h * up, w * up))
    u[::up, ::up] = x
    p0, p1 = pad
    u = np.pad(u, [(max(p0, 0), max(p1, 0))] * 2)
    u = u[max(-p0, 0) : u.shape[0] - max(-p1, 0), max(-p0, 0) : u.shape[1] - max(-p1, 0)]
    return convolve2d(u, k, mode="valid")[::down, ::down]


@pytest.mark.parametrize(
    ("up", "down", "pad"),
    [(2, 1, (2, 1)), (1, 1, (1, 1)), (1, 2, (2, 2)), (1, 2, (1, 1)), (2, 1, (-1, 2))],
)
def test_upfirdn2d_matches_scipy(up: int, down: int, pad: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6))
    k = rng.standard_normal((4, 4))  # asymmetric: checks the flip of a true convolution
    out = upfirdn2d(torch.tensor(x), torch.tensor(k), up=up, down=down, pad=pad).numpy()
    for n in range(2):
        for c in range(3):
            np.testing.assert_allclose(out[n, c], _reference_upfirdn(x[n, c], k, up, down, pad))


@pytest.mark.parametrize("upsample", [False, True])
def test_modulated_conv_matches_per_sample_conv(upsample: bool) -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 4, 3, style_dim=6, upsample=upsample)
    x, w = torch.randn(3, 5, 8, 8), torch.randn(3, 6)
    styles = conv.modulation(w)
    outs = []
    for b in range(3):
        weight = conv.scale * conv.weight[0] * styles[b].view(1, 5, 1, 1)
        weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        if upsample:
            y = F.conv_transpose2d(x[b : b + 1], weight.transpose(0, 1), stride=2)
            outs.append(conv.blur(y))
        else:
            outs.append(F.conv2d(x[b : b + 1], weight, padding=1))
    out = conv(x, w)
    assert out.shape == (3, 4, 16 if upsample else 8, 16 if upsample else 8)
    torch.testing.assert_close(out, torch.cat(outs))


# -- StyleGAN2 networks ----------------------------------------------------------------------------


def test_stylegan2_256_matches_rosinality_names_and_shapes(reg: Registry) -> None:
    g = reg.build("arch", {"type": "stylegan2_generator"})
    d = reg.build("arch", {"type": "stylegan2_discriminator"})
    for net, ref in ((g, KEYS["generator"]), (d, KEYS["discriminator"])):
        ours = {k: list(v.shape) for k, v in net.state_dict().items()}
        assert ours == ref["keys"]
        buffers = {k for k, _ in net.named_buffers()}
        assert buffers == set(ref["buffers"])
    # Totals of the public constructors (tests/data JSON): 30,034,338 and 28,864,129 parameters.
    assert n_params(g) == 30_034_338
    assert n_params(d) == 28_864_129


def test_stylegan2_generator_forward_backward(reg: Registry) -> None:
    g = reg.build("arch", {"type": "stylegan2_generator", **TINY_G})
    assert g.net_shape == (16, 16, 16, 16, 8, 8)
    assert g.n_latent == 6 and g.num_layers == 5
    z = torch.randn(2, 16)
    img, latents = g(z, return_latents=True)
    assert img.shape == (2, 3, 16, 16) and latents.shape == (2, 6, 16)
    with torch.no_grad():  # noise strengths start at 0; make the noise visible
        for name, p in g.named_parameters():
            if name.endswith("noise.weight"):
                p.fill_(0.5)
    torch.testing.assert_close(g(z, randomize_noise=False), g(z, randomize_noise=False))
    assert not torch.allclose(g(z), g(z))
    # style mixing: the first inject_index latents come from z, the rest from z2
    z2 = torch.randn(2, 16)
    _, mixed = g([z, z2], inject_index=2, return_latents=True)
    torch.testing.assert_close(mixed[:, :2], latents[:, :2])
    torch.testing.assert_close(mixed[:, 2:], g.get_latent(z2).unsqueeze(1).expand(-1, 4, -1))
    # truncation towards the mean latent
    mean = g.mean_latent(64)
    _, trunc = g(z, truncation=0.0, truncation_latent=mean, return_latents=True)
    torch.testing.assert_close(trunc, mean.unsqueeze(1).expand(2, 6, -1))
    backward_reaches_all(g, g(z))


def test_stylegan2_discriminator_forward_backward(reg: Registry) -> None:
    d = reg.build("arch", {"type": "stylegan2_discriminator", **TINY_D})
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    out = d(x)
    assert out.shape == (4, 1)
    assert d(x[:2]).shape == (2, 1)
    backward_reaches_all(d, out)
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(VemkitError, match="minibatch-stddev"):
        d(torch.randn(6, 3, 16, 16))


def test_stylegan2_options_validation(reg: Registry) -> None:
    with pytest.raises(ValidationError, match="needs 8 widths"):
        reg.options("arch", {"type": "stylegan2_generator", "size": 32, "net_shape": [8, 8, 8]})
    with pytest.raises(ValidationError, match="drop channels/remove_ratio"):
        reg.options(
            "arch",
            {"type": "stylegan2_generator", "size": 16, "net_shape": [8] * 6, "remove_ratio": 0.5},
        )
    with pytest.raises(ValidationError, match="resolutions must be among"):
        reg.options("arch", {"type": "stylegan2_discriminator", "channels": {3: 8}})


# -- CAGC's analytic MACs --------------------------------------------------------------------------


def test_stylegan2_analytic_macs(reg: Registry) -> None:
    full = reg.options("arch", {"type": "stylegan2_generator"})
    # CAGC Util/Calculators.py: GENERATOR_FLOPS_256PX = 45124673536, _1024PX = 74266894336.
    assert stylegan2_analytic_macs(full) == 45_124_673_536
    big = reg.options("arch", {"type": "stylegan2_generator", "size": 1024})
    assert stylegan2_analytic_macs(big) == 74_266_894_336
    # Modulated 3×3 + toRGB 1×1 only (baselines.md's wording) is the same 45.12G.
    assert stylegan2_analytic_macs(full, styles=False) == 45_118_119_936

    student = reg.options("arch", {"type": "stylegan2_generator", "remove_ratio": 0.7})
    # CAGC prune.py: remove int(0.7·C) per layer → 512→154, 256→77, 128→39.
    assert stylegan2_net_shape(256, remove_ratio=0.7) == [154] * 10 + [77, 77, 39, 39]
    # By hand: 3×3 convs 4,106,166,912 + toRGB 13,973,088 + mapping 2,097,152
    # + modulation 512·2,619 = 4,123,578,080 — paper Table 3 "4.1B".
    assert stylegan2_analytic_macs(student) == 4_123_578_080
    rate = 1 - 4_123_578_080 / 45_124_673_536
    assert rate == pytest.approx(0.9086, abs=1e-4)  # paper: 90.91% (from the rounded 4.1/45.1)


# -- converter -------------------------------------------------------------------------------------


def test_convert_rosinality_named_checkpoint_loads_strict(reg: Registry) -> None:
    # A g_ema written under the public names/shapes (JSON), wrapped as convert_weight.py writes it
    # and saved from DataParallel ("module." prefix).
    gen = torch.Generator().manual_seed(0)
    shapes = KEYS["generator"]["keys"]
    g_ema = {f"module.{k}": torch.randn(shape, generator=gen) for k, shape in shapes.items()}
    checkpoint = {"g_ema": g_ema, "latent_avg": torch.zeros(512)}
    converted = convert_rosinality(checkpoint)
    g = reg.build("arch", {"type": "stylegan2_generator"})
    g.load_state_dict(converted, strict=True)
    torch.testing.assert_close(g.convs[3].conv.weight, g_ema["module.convs.3.conv.weight"])
    assert generator_options(converted) == {
        "size": 256,
        "style_dim": 512,
        "n_mlp": 8,
        "net_shape": stylegan2_net_shape(256),
    }
    with pytest.raises(VemkitError, match="no 'd' network"):
        convert_rosinality(checkpoint, network="d")


def test_load_rosinality_training_checkpoint(reg: Registry, tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = reg.build("arch", {"type": "stylegan2_generator", **TINY_G})
    d = reg.build("arch", {"type": "stylegan2_discriminator", **TINY_D})
    g_optim = torch.optim.Adam(g.parameters(), lr=0.002, betas=(0.0, 0.99))
    g(torch.randn(2, 16)).mean().backward()
    g_optim.step()
    path = tmp_path / "100000.pt"
    torch.save(
        {
            "g": {f"module.{k}": v for k, v in g.state_dict().items()},
            "d": d.state_dict(),
            "g_ema": g.state_dict(),
            "g_optim": g_optim.state_dict(),
            "args": argparse.Namespace(size=16, latent=16, n_mlp=2),
        },
        path,
    )
    torch.manual_seed(1)
    g2 = reg.build("arch", {"type": "stylegan2_generator", **TINY_G})
    g2.load_state_dict(load_rosinality(path), strict=True)
    g2.load_state_dict(load_rosinality(path, network="g"), strict=True)
    z = torch.randn(3, 16)
    torch.testing.assert_close(g2(z, randomize_noise=False), g(z, randomize_noise=False))
    d2 = reg.build("arch", {"type": "stylegan2_discriminator", **TINY_D})
    d2.load_state_dict(load_rosinality(path, network="d"), strict=True)
    torch.testing.assert_close(d2(torch.ones(2, 3, 16, 16)), d(torch.ones(2, 3, 16, 16)))


def test_load_rosinality_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(VemkitError, match="no such StyleGAN2 checkpoint"):
        load_rosinality(tmp_path / "missing.pt")
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"g_ema": {}, "extra": types.SimpleNamespace(a=1)}, unsafe)
    with pytest.raises(VemkitError, match="cannot read"):
        load_rosinality(unsafe)


def test_convert_fills_missing_noise_buffers(reg: Registry) -> None:
    g = reg.build("arch", {"type": "stylegan2_generator", **TINY_G})
    old = {k: v for k, v in g.state_dict().items() if not k.startswith("noises.")}
    converted = convert_rosinality({"g_ema": old})
    assert sorted(k for k in converted if k.startswith("noises.")) == [
        f"noises.noise_{i}" for i in range(5)
    ]
    g.load_state_dict(converted, strict=True)


def test_pruned_checkpoint_rebuilds_from_state_dict(reg: Registry) -> None:
    pruned = reg.build("arch", {"type": "stylegan2_generator", **TINY_G, "remove_ratio": 0.7})
    assert pruned.net_shape == (5, 5, 5, 5, 3, 3)  # 16 - int(11.2), 8 - int(5.6)
    options = generator_options(pruned.state_dict())
    assert options == {"size": 16, "style_dim": 16, "n_mlp": 2, "net_shape": [5, 5, 5, 5, 3, 3]}
    rebuilt = reg.build("arch", {"type": "stylegan2_generator", **options})
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)

    d = reg.build("arch", {"type": "stylegan2_discriminator", **TINY_D})
    assert discriminator_options(d.state_dict()) == TINY_D
