"""Slicing a network to a width configuration, and the ``pruned`` arch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.test_compress_channels import CatSkip, Chain, Depthwise, Residual
from vemkit import registry
from vemkit.errors import VemkitError
from vemkit_plugins.compress.channels import analyze
from vemkit_plugins.compress.slicing import apply_widths, meta_copy


def _seeded(cls):
    torch.manual_seed(0)
    model = cls().eval()
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return model


def test_chain_slices_weights_norms_and_consumers():
    model = _seeded(Chain)
    full = {k: v.clone() for k, v in model.state_dict().items()}
    keep = torch.tensor([1, 4, 6])
    apply_widths(model, {"c1": keep, "c2": 2}, (3, 8, 8))
    assert model.c1.out_channels == 3 and model.b1.num_features == 3
    assert model.c2.in_channels == 3 and model.c2.out_channels == 2
    assert model.out.in_channels == 2
    sd = model.state_dict()
    assert set(sd) == set(full)  # state-dict keys unchanged
    assert torch.equal(sd["c1.weight"], full["c1.weight"][keep])
    assert torch.equal(sd["b1.running_var"], full["b1.running_var"][keep])
    assert torch.equal(sd["c2.weight"], full["c2.weight"][:2][:, keep])
    assert torch.equal(sd["out.weight"], full["out.weight"][:, :2])
    assert sd["b1.num_batches_tracked"] == full["b1.num_batches_tracked"]


def test_dropping_dead_channels_keeps_the_function():
    """Channels whose BN scale and shift are 0 output relu(0) = 0: cutting them is exact."""
    model = _seeded(Chain)
    dead = [0, 3, 5]
    with torch.no_grad():
        model.b1.weight[dead] = 0
        model.b1.bias[dead] = 0
    x = torch.randn(2, 3, 8, 8)
    expected = model(x)
    alive = torch.tensor([i for i in range(8) if i not in dead])
    apply_widths(model, {"c1": alive}, (3, 8, 8))
    torch.testing.assert_close(model(x), expected)


def test_residual_cat_depthwise():
    res = _seeded(Residual)
    apply_widths(res, {"stem": 5, "a1": 2, "b1": 1}, (3, 8, 8))
    assert (res.stem.out_channels, res.a2.out_channels, res.b2.out_channels) == (5, 5, 5)
    assert (res.a1.in_channels, res.b1.in_channels, res.head.in_channels) == (5, 5, 5)
    assert res.n.num_features == 5 and res(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)

    cat = _seeded(CatSkip)
    full = cat.out.weight.detach().clone()
    apply_widths(cat, {"down": torch.tensor([0, 5]), "up": torch.tensor([1, 2, 6])}, (3, 8, 8))
    # The consumer keeps rows 0, 5 of the first segment and 6+1, 6+2, 6+6 of the second.
    assert torch.equal(cat.out.weight, full[[0, 5, 7, 8, 12]])
    assert cat.up.out_channels == 3 and cat.bn.num_features == 3 and cat.inner.in_channels == 2
    assert cat(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)

    dw = _seeded(Depthwise)
    w = dw.dw.weight.detach().clone()
    apply_widths(dw, {"pw1": torch.tensor([2, 3, 11])}, (3, 8, 8))
    assert dw.dw.groups == dw.dw.in_channels == dw.dw.out_channels == 3
    assert torch.equal(dw.dw.weight, w[[2, 3, 11]])


def test_bad_widths_name_the_place():
    model = Chain()
    with pytest.raises(VemkitError, match=r"widths\.cc1: no such channel space; did you mean 'c1'"):
        apply_widths(model, {"cc1": 2}, (3, 8, 8))
    with pytest.raises(VemkitError, match=r"widths\.zz: no such channel space \(spaces: c1, c2"):
        apply_widths(model, {"zz": 2}, (3, 8, 8))
    with pytest.raises(VemkitError, match=r"widths\.c1: 0 channels, must be 1\.\.8"):
        apply_widths(model, {"c1": 0}, (3, 8, 8))
    with pytest.raises(VemkitError, match=r"widths\.out: not prunable"):
        apply_widths(model, {"out": 2}, (3, 8, 8))


def test_meta_copy_has_no_data():
    model = Chain()
    meta = meta_copy(model)
    assert all(p.is_meta for p in meta.parameters()) and not any(
        p.is_meta for p in model.parameters()
    )
    apply_widths(meta, {"c1": 2}, (3, 8, 8))
    assert meta.c1.weight.shape == (2, 3, 3, 3) and meta.c1.weight.is_meta
    assert model.c1.weight.shape == (8, 3, 3, 3)


def _half(graph):
    return {s.name: max(1, s.size // 2) for s in graph.spaces if s.prunable}


@pytest.mark.parametrize(
    ("base", "shape"),
    [
        ({"type": "unet", "ngf": 4, "num_downs": 6}, [3, 64, 64]),
        ({"type": "mobile_resnet", "ngf": 4, "n_blocks": 3}, [3, 32, 32]),
        ({"type": "sub_mobile_resnet", "config": "4_4_8_4_8_8_4_4"}, [3, 32, 32]),
        ({"type": "resnet", "ngf": 4, "n_blocks": 2}, [3, 32, 32]),
        ({"type": "sagan_generator", "ngf": 8, "z_dim": 16}, [16]),
    ],
)
def test_pruned_arch_rebuilds_and_loads_strictly(base, shape):
    torch.manual_seed(0)
    full = registry.build("arch", base)
    graph = analyze(full, shape)
    # Keep the *last* channels: the saved (sliced) weights still load into the first-k layout.
    keep = {
        n: torch.arange(graph.space(n).size - w, graph.space(n).size)
        for n, w in _half(graph).items()
    }
    pruned = apply_widths(full, keep, graph=graph).eval()
    config = {"type": "pruned", "base": base, "input": shape, "widths": _half(graph)}
    rebuilt = registry.build("arch", config)
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    rebuilt.eval()
    x = torch.randn(2, *shape)
    torch.testing.assert_close(rebuilt(x), pruned(x), rtol=0, atol=0)
    assert sum(p.numel() for p in rebuilt.parameters()) < sum(
        p.numel() for p in registry.build("arch", base).parameters()
    )


def test_spectral_norm_vectors_are_sliced():
    full = registry.build("arch", {"type": "sagan_generator", "ngf": 8, "z_dim": 16})
    u = full.l2[0].parametrizations.weight[0]._u.clone()  # ConvT (64 -> 32), dim 0: input axis
    v = full.l2[0].parametrizations.weight[0]._v.clone()  # flattened (32, 4, 4)
    apply_widths(full, {"l1.0": 10, "l2.0": 7}, [16])
    sn = full.l2[0].parametrizations.weight[0]
    assert torch.equal(sn._u, u[:10])
    assert torch.equal(sn._v, v.view(32, 16)[:7].reshape(-1))
    assert full.l2[0].parametrizations.weight.original.shape == (10, 7, 4, 4)


def test_pruned_options_are_validated():
    base = {"type": "unet", "ngf": 4, "num_downs": 5}
    with pytest.raises(VemkitError, match=r"pruned\.widths\.nope: no such channel space"):
        registry.build(
            "arch", {"type": "pruned", "base": base, "input": [3, 32, 32], "widths": {"nope": 1}}
        )
    with pytest.raises(Exception, match="input"):
        registry.build("arch", {"type": "pruned", "base": base, "widths": {}})


def test_profile_reads_channels_through_the_base():
    from vemkit.profile import arch_channels

    options = registry.options(
        "arch",
        {
            "type": "pruned",
            "base": {"type": "unet", "input_nc": 1, "output_nc": 2},
            "input": [1, 256, 256],
        },
    )
    assert arch_channels(options) == 1
    assert arch_channels(options, ("output_nc",)) == 2
