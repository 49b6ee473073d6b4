"""Channel spaces derived from the module graph (vemkit_plugins.compress.channels)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vemkit import registry
from vemkit.errors import VemkitError
from vemkit_plugins.compress.channels import analyze, channel_spaces


def meta_build(config):
    """A registered arch with meta-device weights: the paper's sizes cost no memory or init."""
    with torch.device("meta"):
        return registry.build("arch", config)


def _by_name(spaces):
    return {s.name: s for s in spaces}


class Chain(nn.Module):
    """conv-bn-relu ×2 then an output conv."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 6, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(6)
        self.out = nn.Conv2d(6, 3, 1)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        x = nn.functional.leaky_relu(self.b2(self.c2(x)), 0.2)
        return self.out(x)


class Residual(nn.Module):
    """stem → two residual blocks (the trunk is one space) → head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a1 = nn.Conv2d(8, 5, 3, padding=1)
        self.a2 = nn.Conv2d(5, 8, 3, padding=1)
        self.n = nn.InstanceNorm2d(8)
        self.b1 = nn.Conv2d(8, 4, 1)
        self.b2 = nn.Conv2d(4, 8, 1)
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.n(self.a2(torch.relu(self.a1(x))))
        x = self.b2(nn.functional.relu(self.b1(x))) + x
        return self.head(x)


class CatSkip(nn.Module):
    """U-Net-like: the consumer reads cat([skip, up]) as two segments."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 6, 4, 2, 1)
        self.inner = nn.Conv2d(6, 10, 3, padding=1)
        self.up = nn.ConvTranspose2d(10, 7, 3, padding=1)
        self.bn = nn.BatchNorm2d(7)
        self.out = nn.ConvTranspose2d(13, 3, 4, 2, 1)

    def forward(self, x):
        d = nn.functional.leaky_relu(self.down(x), 0.2)
        u = self.bn(self.up(torch.relu(self.inner(d))))
        return torch.tanh(self.out(torch.cat([d, u], 1)))


class Depthwise(nn.Module):
    """pointwise → depthwise → pointwise: the depthwise conv shares its input's space."""

    def __init__(self) -> None:
        super().__init__()
        self.pw1 = nn.Conv2d(3, 12, 1)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.pw2 = nn.Conv2d(12, 3, 1)

    def forward(self, x):
        return self.pw2(nn.functional.relu6(self.dw(self.pw1(x))))


def test_chain_groups():
    spaces = channel_spaces(Chain(), (3, 16, 16))
    s = _by_name(spaces)
    assert [x.name for x in spaces] == ["c1", "c2", "out"]
    assert (s["c1"].size, s["c1"].prunable, s["c1"].norms, s["c1"].consumers) == (
        8,
        True,
        ["b1"],
        ["c2"],
    )
    assert (s["c2"].size, s["c2"].norms, s["c2"].consumers) == (6, ["b2"], ["out"])
    assert not s["out"].prunable and "output" in s["out"].reason


def test_residual_merges_both_operands():
    s = _by_name(channel_spaces(Residual(), (3, 16, 16)))
    assert set(s) == {"stem", "a1", "b1", "head"}
    trunk = s["stem"]
    assert trunk.producers == ["stem", "a2", "b2"] and trunk.norms == ["n"]
    assert trunk.consumers == ["a1", "b1", "head"] and trunk.prunable
    assert s["a1"].size == 5 and s["a1"].consumers == ["a2"]
    assert s["b1"].size == 4 and s["b1"].prunable


def test_cat_makes_segments_with_offsets():
    model = CatSkip()
    graph = analyze(model, (3, 16, 16))
    s = _by_name(graph.spaces)
    assert set(s) == {"down", "inner", "up", "out"}
    assert s["down"].consumers == ["inner", "out"] and s["up"].consumers == ["out"]
    assert s["up"].norms == ["bn"] and s["up"].size == 7
    # The consumer's input is two segments: 6 channels of 'down', then 7 of 'up'.
    layer = graph.layers["out"]
    assert [graph.space_of(n) for n in layer.in_layout] == ["down", "up"]
    assert [graph.node_size(n) for n in layer.in_layout] == [6, 7]
    assert not s["out"].prunable


def test_depthwise_shares_its_input_space():
    graph = analyze(Depthwise(), (3, 8, 8))
    s = _by_name(graph.spaces)
    assert list(s) == ["pw1", "pw2"]
    assert s["pw1"].depthwise == ["dw"] and s["pw1"].consumers == ["pw2"]
    assert graph.layers["dw"].depthwise


class Unprunables(nn.Module):
    """Each branch ends in something the analysis must refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)  # summed over its channels
        self.b = nn.Conv2d(3, 4, 1)  # reshaped so that its channels mix with space
        self.c = nn.Conv2d(3, 4, 1)  # grouped (not depthwise) consumer
        self.g = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.d = nn.Conv2d(3, 4, 1)  # added to the network input's channels
        self.e = nn.Conv2d(3, 3, 1)
        self.f = nn.Conv2d(3, 4, 1)  # indexed
        self.gate = nn.Parameter(torch.ones(1, 4, 1, 1))
        self.h = nn.Conv2d(3, 4, 1)  # multiplied by a channel-wide parameter

    def forward(self, x):
        a = self.a(x).sum(1, keepdim=True)
        b = self.b(x).reshape(x.shape[0], 2, -1).mean(2, keepdim=True)
        c = self.g(self.c(x))
        e = self.e(x) + x
        f = self.f(x)[:, :2]
        h = self.h(x) * self.gate
        return a, b, c, e, f, h


def test_conservative_cases_are_unprunable():
    s = _by_name(channel_spaces(Unprunables(), (3, 8, 8)))
    for name in ("a", "b", "c", "e", "f", "h", "g"):
        assert not s[name].prunable, name
        assert s[name].reason
    assert "grouped" in s["c"].reason
    assert "fixed-width" in s["h"].reason


class Attention(nn.Module):
    """SAGAN-style self-attention over a conv's output, with a residual."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.q = nn.Conv2d(16, 2, 1)
        self.k = nn.Conv2d(16, 2, 1)
        self.v = nn.Conv2d(16, 16, 1)
        self.out = nn.Conv2d(16, 3, 1)

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.shape
        att = torch.softmax(self.q(x).flatten(2).transpose(1, 2) @ self.k(x).flatten(2), dim=-1)
        y = (self.v(x).flatten(2) @ att.transpose(1, 2)).view(n, c, h, w)
        return self.out(x + 0.5 * y)


def test_attention_couples_query_key_and_value_residual():
    graph = analyze(Attention(), (3, 8, 8))
    s = _by_name(graph.spaces)
    assert set(s) == {"conv", "q", "out"}
    assert s["conv"].producers == ["conv", "v"] and s["conv"].prunable
    assert s["q"].producers == ["q", "k"] and s["q"].prunable  # contracted together
    assert len(graph.matmuls) == 2


@pytest.mark.parametrize(
    ("config", "shape", "expected"),
    [
        # pix2pix U-Net ngf 64, 8 levels: 15 internal spaces (8 downs, 7 ups), output fixed.
        ({"type": "unet", "ngf": 64}, (3, 256, 256), 15),
        ({"type": "unet", "ngf": 4, "num_downs": 6, "norm": "instance"}, (3, 64, 64), 11),
        # ResNet-9 and mobile ResNet-9: stem, first down, the trunk (second down + every
        # block's output), 9 block-internal widths, 2 ups = 14.
        ({"type": "mobile_resnet", "ngf": 16}, (3, 256, 256), 14),
        ({"type": "sub_mobile_resnet", "config": "16_16_32_16_32_32_16_16"}, (3, 64, 64), 14),
        ({"type": "resnet", "ngf": 8}, (3, 64, 64), 14),
        # SAGAN: l1..l4 (l3/l4 merged with the attention values) and two query/key pairs.
        ({"type": "sagan_generator", "ngf": 64}, (128,), 6),
    ],
)
def test_paper_archs(config, shape, expected):
    model = meta_build(config)
    spaces = channel_spaces(model, shape)
    prunable = [s for s in spaces if s.prunable]
    assert len(prunable) == expected
    unprunable = [s for s in spaces if not s.prunable]
    # Only the output layer's space is fixed.
    assert len(unprunable) == 1 and "output" in unprunable[0].reason
    assert len({s.name for s in spaces}) == len(spaces)


def test_paper_arch_details():
    s = _by_name(channel_spaces(meta_build({"type": "mobile_resnet", "ngf": 16}), (3, 64, 64)))
    trunk = s["model.7"]
    # 4·ngf trunk: the last down conv plus the 9 blocks' closing pointwise convs.
    assert trunk.size == 64 and len(trunk.producers) == 10 and len(trunk.depthwise) == 9
    hidden = s["model.10.conv_block.1.conv.2"]
    assert hidden.size == 64 and hidden.depthwise == ["model.10.conv_block.6.conv.0"]
    sagan = _by_name(channel_spaces(meta_build({"type": "sagan_generator"}), (128,)))
    assert sagan["l3.0"].producers == ["l3.0", "attn1.value_conv"] and sagan["l3.0"].size == 128
    assert sagan["attn1.query_conv"].size == 16
    assert sagan["l1.0"].size == 512 and sagan["l1.0"].prunable  # spectral-normalised ConvT


def test_untraceable_model_is_a_clear_error():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.c(x) if x.sum() > 0 else x

    with pytest.raises(VemkitError, match="cannot trace Branchy"):
        analyze(Branchy(), (3, 4, 4))
    with pytest.raises(VemkitError, match="does not run on an input"):
        analyze(Chain(), (5, 8, 8))
    with pytest.raises(VemkitError, match="example input"):
        analyze(Chain(), "3x8x8")


def test_weight_transforms_other_than_spectral_norm_are_unprunable():
    from torch.nn.utils import parametrizations

    model = Chain()
    model.c1 = nn.utils.spectral_norm(model.c1)  # old-style hook: weight_orig
    model.c2 = parametrizations.weight_norm(model.c2)
    s = _by_name(channel_spaces(model, (3, 8, 8)))
    assert not s["c1"].prunable and "old-style weight hook" in s["c1"].reason
    assert not s["c2"].prunable and "other than spectral norm" in s["c2"].reason
    model = Chain()
    model.c1 = parametrizations.spectral_norm(model.c1)
    assert _by_name(channel_spaces(model, (3, 8, 8)))["c1"].prunable
