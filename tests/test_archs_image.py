"""Image-to-image architectures: tiny forward/backward runs, paper parameter counts, and state
dicts equal to the official ones (``tests/data/official_layouts.json``, derived independently
from the official code by ``tests/data/derive_official_layouts.py``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from vemkit.registry import Registry
from vemkit.weights import load_weights
from vemkit_plugins import archs

LAYOUTS = json.loads((Path(__file__).parent / "data" / "official_layouts.json").read_text())[
    "layouts"
]


@pytest.fixture(scope="module")
def reg() -> Registry:
    registry = Registry()
    archs.register(registry)
    return registry


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def layout_of(net: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in net.state_dict().items()}


# -- tiny forward and backward ----------------------------------------------------------------
GENERATORS = [
    {"type": "unet", "ngf": 4, "num_downs": 5},
    {"type": "unet", "ngf": 4, "num_downs": 5, "norm": "instance", "use_dropout": True},
    {"type": "unet", "ngf": 4, "num_downs": 6, "norm": "none", "input_nc": 1},
    {"type": "unet_deepest", "ngf": 4, "num_downs": 5},
    {"type": "resnet", "ngf": 4, "n_blocks": 2},
    {"type": "resnet", "ngf": 4, "n_blocks": 2, "padding_type": "zero", "use_dropout": True},
    {"type": "resnet", "ngf": 4, "n_blocks": 1, "padding_type": "replicate", "norm": "batch"},
    {"type": "mobile_resnet", "ngf": 4, "n_blocks": 3},
    {"type": "mobile_resnet", "ngf": 4, "n_blocks": 2, "padding_type": "zero", "dropout_rate": 0.1},
    {"type": "sub_mobile_resnet", "config": "4_4_8_4_8_8_4_4"},
    {"type": "sub_mobile_resnet", "config": [4, 8, 4, 8, 4, 4]},
    {"type": "mobile_resnet_deepest", "ngf": 4, "n_blocks": 3},
]


@pytest.mark.parametrize("config", GENERATORS, ids=lambda c: json.dumps(c, separators=(",", ":")))
def test_generator_forward_backward(reg, config):
    torch.manual_seed(0)
    net = reg.build("arch", config).train()
    input_nc = config.get("input_nc", 3)
    size = 64 if config.get("num_downs") == 6 else 32
    x = torch.randn(2, input_nc, size, size)
    out = net(x)
    assert out.shape == (2, 3, size, size)
    assert torch.isfinite(out).all()
    assert out.abs().max() <= 1.0  # tanh head
    assert out.std() > 0  # not a constant map
    ((out - 0.5) ** 2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert sum(p.grad.abs().sum() for p in net.parameters()) > 0


def test_patchgan_logit_map_and_backward(reg):
    torch.manual_seed(0)
    # pix2pix D on concat(A, B): 32 -> 16 -> 8 -> 4 (stride 2) -> 3 -> 2 (stride 1, k4, p1)
    net = reg.build("arch", {"type": "patchgan", "input_nc": 6, "ndf": 4})
    out = net(torch.randn(2, 6, 32, 32))
    assert out.shape == (2, 1, 2, 2)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_patchgan_receptive_field_is_70(reg):
    # One output logit of the 3-layer PatchGAN sees a 70x70 input patch (pix2pix paper).
    net = reg.build("arch", {"type": "patchgan", "ndf": 2, "norm": "none", "init_type": "default"})
    x = torch.zeros(1, 3, 128, 128, requires_grad=True)
    out = net(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = (x.grad[0].abs().sum(0) > 0).nonzero(as_tuple=True)
    assert int(rows.max() - rows.min() + 1) == 70
    assert int(cols.max() - cols.min() + 1) == 70


def test_multiscale_patchgan_returns_one_map_per_scale(reg):
    torch.manual_seed(0)
    net = reg.build("arch", {"type": "multiscale_patchgan", "ndf": 4, "n_layers": 2, "num_D": 3})
    outs = net(torch.randn(2, 3, 64, 64))
    assert isinstance(outs, list) and len(outs) == 3
    # 64 -> 32 -> 16 -> 15 -> 14; the input halves per scale (avg-pool k3 s2 p1).
    assert [tuple(o.shape) for o in outs] == [(2, 1, 14, 14), (2, 1, 6, 6), (2, 1, 2, 2)]
    sum(o.mean() for o in outs).backward()
    assert all(p.grad is not None for p in net.parameters())
    assert len(net.scales) == 3
    # The scales are independent networks, not one shared D.
    assert net.scales[0].model[0].weight.data_ptr() != net.scales[1].model[0].weight.data_ptr()


def test_multiscale_downsampling_ignores_padding(reg):
    net = reg.build("arch", {"type": "multiscale_patchgan", "ndf": 4})
    pooled = net.downsample(torch.ones(1, 1, 8, 8))
    assert pooled.shape == (1, 1, 4, 4)
    assert torch.allclose(pooled, torch.ones_like(pooled))  # borders not darkened by zeros


def test_pixel_discriminator(reg):
    net = reg.build("arch", {"type": "pixel", "ndf": 4, "input_nc": 6})
    out = net(torch.randn(2, 6, 16, 16))
    assert out.shape == (2, 1, 16, 16)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


# -- behaviour the official weights depend on ------------------------------------------------
def test_unet_skip_carries_the_in_place_leaky_relu(reg):
    # Official behaviour: an inner level's first op is an in-place LeakyReLU(0.2), so the tensor
    # it concatenates as skip is LeakyReLU(x), not x (baselines.md §0).
    net = reg.build("arch", {"type": "unet", "ngf": 4, "num_downs": 5}).eval()
    level = net.model.model[1]  # the ngf -> 2ngf level
    x = torch.randn(1, 4, 16, 16)
    out = level(x.clone())
    assert out.shape == (1, 8, 16, 16)
    assert torch.equal(out[:, :4], F.leaky_relu(x, 0.2))


def test_sub_mobile_input_is_clamped(reg):
    torch.manual_seed(0)
    net = reg.build("arch", {"type": "sub_mobile_resnet", "config": "4_4_8_4_8_8_4_4"}).eval()
    x = torch.randn(1, 3, 16, 16) * 3
    with torch.no_grad():
        assert torch.equal(net(x), net(x.clamp(-1, 1)))


def test_full_config_sub_network_equals_mobile_resnet(reg):
    # GAN-Compression's sub-network with every group at ngf is the Mobile ResNet itself.
    sub = reg.build("arch", {"type": "sub_mobile_resnet", "config": [16] * 8})
    full = reg.build("arch", {"type": "mobile_resnet", "ngf": 16})
    assert layout_of(sub) == layout_of(full)


def test_normal_init_matches_pix2pix(reg):
    torch.manual_seed(0)
    net = reg.build("arch", {"type": "unet", "ngf": 16})
    conv = net.model.model[1].model[1].weight  # 16 -> 32, 8192 weights
    bn = net.model.model[1].model[2]
    assert abs(conv.std().item() - 0.02) < 0.002
    assert abs(conv.mean().item()) < 0.002
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and bn.weight.std() > 0.005
    assert torch.equal(bn.bias, torch.zeros_like(bn.bias))
    assert torch.equal(net.model.model[3].bias, torch.zeros(3))
    default = reg.build("arch", {"type": "unet", "ngf": 16, "init_type": "default"})
    assert default.model.model[1].model[1].weight.std() > 0.03  # PyTorch's kaiming-uniform


# -- paper sizes -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"type": "unet", "ngf": 64}, 54_413_955),  # pix2pix teacher; offline_assets.md §5
        ({"type": "unet", "ngf": 16}, 3_404_451),  # OMGD student; baselines.md §0
        ({"type": "resnet", "ngf": 64, "n_blocks": 9}, 11_378_179),  # CycleGAN; §5
        ({"type": "mobile_resnet", "ngf": 16}, 137_347),  # OMGD student; baselines.md §0
        ({"type": "sub_mobile_resnet", "config": "16_16_32_16_32_32_16_16"}, 356_867),  # H->Z
        ({"type": "sub_mobile_resnet", "config": "32_32_48_32_48_48_16_16"}, 822_051),  # E->S
        ({"type": "sub_mobile_resnet", "config": "32_32_48_32_32_48_24_24"}, 780_819),  # City
    ],
    ids=lambda v: v["type"] if isinstance(v, dict) else None,
)
def test_parameter_counts_at_paper_sizes(reg, config, expected):
    net = reg.build("arch", {**config, "init_type": "default"})
    assert n_params(net) == expected


@pytest.mark.parametrize(
    ("config", "millions"),
    [
        ({"type": "mobile_resnet", "ngf": 64}, 1.987),  # GAN-Comp./OMGD teacher; baselines.md §0
        ({"type": "unet_deepest", "ngf": 16}, 44.17),  # OMGD deeper teacher; baselines.md §0
        ({"type": "mobile_resnet_deepest", "ngf": 16}, 2.55),  # OMGD deeper teacher; §0
    ],
    ids=lambda v: v["type"] if isinstance(v, dict) else None,
)
def test_parameter_counts_quoted_in_millions(reg, config, millions):
    net = reg.build("arch", {**config, "init_type": "default"})
    assert round(n_params(net) / 1e6, len(str(millions).split(".")[1])) == millions


# -- official layouts --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_state_dict_equals_official_layout(reg, name):
    item = LAYOUTS[name]
    net = reg.build("arch", {**item["arch"], "init_type": "default"})
    ours = layout_of(net)
    assert len(ours) == item["num_entries"]
    assert n_params(net) == item["params"]
    if "state_dict" in item:
        assert ours == item["state_dict"]
    else:
        lines = [f"{k}:{','.join(str(d) for d in ours[k])}" for k in sorted(ours)]
        assert lines[:10] == item["first"]
        assert lines[-10:] == item["last"]
        assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == item["sha256"]


@pytest.mark.parametrize(
    "name",
    ["omgd_unet_256_ngf16", "omgd_mobile_resnet_9blocks_ngf16", "cyclegan_resnet_9blocks_ngf64"],
)
def test_official_state_dict_loads_unchanged(reg, name, tmp_path):
    # A checkpoint written in the official layout (keys and shapes from the JSON, not from our
    # modules, saved like the official repos do: torch.save of the bare state dict) loads as is.
    item = LAYOUTS[name]
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen) for k, shape in item["state_dict"].items()}
    for k in state:
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path)
    net = reg.build("arch", {**item["arch"], "init_type": "default"})
    report = load_weights(net, path)
    assert report.missing == [] and report.unexpected == []
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k


# -- options -----------------------------------------------------------------------------------
def test_channel_config_accepts_gan_compression_strings(reg):
    opts = reg.options("arch", {"type": "sub_mobile_resnet", "config": "32_32_48_32_48_48_16_16"})
    assert opts.config == (32, 32, 48, 32, 48, 48, 16, 16)
    assert reg.options("arch", {"type": "sub_mobile_resnet", "config": [8] * 6}).config == (8,) * 6


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "sub_mobile_resnet", "config": "16_16_x"}, "is not of the form"),
        ({"type": "sub_mobile_resnet", "config": [16] * 7}, "8 numbers"),
        ({"type": "sub_mobile_resnet", "config": [16, 0, 16, 16, 16, 16]}, "greater than 0"),
        ({"type": "unet", "num_downs": 4}, "greater than or equal to 5"),
        ({"type": "unet", "norm": "group"}, "'batch', 'instance' or 'none'"),
        ({"type": "resnet", "padding_type": "circular"}, "'reflect', 'replicate' or 'zero'"),
        ({"type": "mobile_resnet", "dropout_rate": 1.0}, "less than 1"),
        ({"type": "patchgan", "n_layers": 0}, "greater than or equal to 1"),
        ({"type": "unet", "dropout": 0.5}, "Extra inputs"),
    ],
)
def test_bad_options_are_rejected(reg, config, message):
    with pytest.raises(ValidationError, match=message):
        reg.options("arch", config)


def test_options_import_without_torch():
    import subprocess
    import sys

    code = (
        "import sys, vemkit_plugins.archs as a\n"
        "import vemkit_plugins.archs.options, vemkit_plugins.archs.resnet_options\n"
        "import vemkit_plugins.archs.uncond_options\n"
        "from vemkit.registry import Registry\n"
        "a.register(Registry())\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
