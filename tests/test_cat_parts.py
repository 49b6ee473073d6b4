"""CAT's building blocks: the Inception-style ResNet generator (``arch: inception_resnet``) and
the kernel-alignment distillation loss. Official layouts are checked in test_archs_image.py
(``cat_inception_9blocks_ngf64_*`` in tests/data/official_layouts.json)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.fx
from pydantic import ValidationError

from vemkit.profile import count_macs
from vemkit.registry import Registry
from vemkit.weights import load_weights
from vemkit_plugins import archs
from vemkit_plugins.archs.inception import cat_macs, widths_from_state_dict
from vemkit_plugins.methods.cat_losses import ka_distill_loss, kernel_alignment
from vemkit_plugins.methods.options import CAT_KA_TAPS

LAYOUTS = json.loads((Path(__file__).parent / "data" / "official_layouts.json").read_text())[
    "layouts"
]


@pytest.fixture(scope="module")
def reg() -> Registry:
    registry = Registry()
    archs.register(registry)
    return registry


def tiny(reg: Registry, **options):
    return reg.build("arch", {"type": "inception_resnet", "ngf": 4, "n_blocks": 3, **options})


# -- the generator -----------------------------------------------------------------------------
def test_paper_size_params(reg):
    # baselines.md §0: CAT teacher 8.15M (horse→zebra: instance norm, biased convs).
    net = reg.build("arch", {"type": "inception_resnet", "init_type": "default"})
    assert sum(p.numel() for p in net.parameters()) == 8_154_255
    assert round(8_154_255 / 1e6, 2) == 8.15


@pytest.mark.slow
def test_paper_size_params_and_macs(reg):
    # baselines.md §0: CAT teacher 43.53G / 8.15M at 256 px.
    net = reg.build("arch", {"type": "inception_resnet", "init_type": "default"})
    assert sum(p.numel() for p in net.parameters()) == 8_154_255
    assert round(8_154_255 / 1e6, 2) == 8.15
    x = torch.zeros(1, 3, 256, 256)
    # CAT's profiler = convs (output-based transposed convs) + 1 per element of every norm
    # without running stats; convs alone are the 43.49G of vemkit's paper convention.
    assert cat_macs(net, x) == 43_527_405_568
    assert count_macs(net, x, "paper") == 43_490_402_304
    assert count_macs(net, x, "exact") == 36_242_644_992
    assert round(cat_macs(net, x) / 1e9, 2) == 43.53


def test_hidden_width_is_cat_default():
    # 4·ngf // channels_reduction_factor = 256 // 6 = 42 for every branch of every block.
    from vemkit_plugins.archs.inception import full_widths

    down, blocks, up = full_widths(64, 9, [1, 3, 5])
    assert down == [64, 128, 256] and up == [128, 64]
    assert blocks == [([42, 42, 42], [42, 42, 42])] * 9
    assert full_widths(64, 1, [1, 3], channels=[120, 60])[1] == [([20, 10], [20, 10])]
    assert full_widths(64, 1, [1, 3], channels=120)[1] == [([20, 20], [20, 20])]


def test_forward_backward_and_tanh(reg):
    torch.manual_seed(0)
    net = tiny(reg).train()
    x = torch.randn(2, 3, 32, 32)
    out = net(x)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1.0 and out.std() > 0
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_block_is_residual_sum_of_branches(reg):
    # x + pw_bn(Σ res_ops(x) + Σ dw_ops(x)), checked against the modules called by hand.
    torch.manual_seed(0)
    block = tiny(reg, norm="batch").features[0].eval()
    x = torch.randn(2, 16, 8, 8)
    branches = [op(x) for op in block.res_ops] + [op(x) for op in block.dw_ops]
    assert len(branches) == 6
    expected = x + block.pw_bn(torch.stack(branches).sum(0))
    assert torch.allclose(block(x), expected, atol=1e-6)


def test_module_layout_matches_cat(reg):
    net = tiny(reg)
    keys = set(net.state_dict())
    # InstanceNorm is affine without running stats; every conv but the head is biased.
    assert "down_sampling.2.weight" in keys and "down_sampling.2.running_mean" not in keys
    assert "features.0.res_ops.2.1.0.weight" in keys  # ConvBNReLU's conv of the k=5 branch
    assert net.features[0].res_ops[2][4].kernel_size == (5, 5)
    assert net.features[0].dw_ops[1][2][0].groups == net.features[0].dw_ops[1][2][0].in_channels
    batch = tiny(reg, norm="batch")
    bkeys = set(batch.state_dict())
    assert "down_sampling.1.bias" not in bkeys and "up_sampling.7.bias" in bkeys
    assert "features.0.pw_bn.running_var" in bkeys


def test_official_state_dict_loads(reg, tmp_path):
    item = LAYOUTS["cat_inception_9blocks_ngf64_instance"]
    net = reg.build("arch", {**item["arch"], "init_type": "default"})
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=gen) for k, v in net.state_dict().items()}
    path = tmp_path / "best_A_net_G_A.pth"
    torch.save(state, path)  # how CAT saves its generators
    report = load_weights(net, path)
    assert report.missing == [] and report.unexpected == []
    assert torch.equal(
        net.state_dict()["features.8.dw_ops.2.2.0.weight"], state["features.8.dw_ops.2.2.0.weight"]
    )


def test_fx_traces_and_matches(reg):
    torch.manual_seed(0)
    net = tiny(reg).eval()
    traced = torch.fx.symbolic_trace(net)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(traced(x), net(x))
    ops = {n.target for n in traced.graph.nodes if n.op == "call_function"}
    assert ops <= {__import__("operator").add}  # only the branch sums and the residual add


def test_distillation_taps_exist_with_cat_shapes(reg):
    net = reg.build("arch", {"type": "inception_resnet", "ngf": 4})
    names = dict(net.named_modules())
    seen = {}
    for tap in CAT_KA_TAPS:
        names[tap].register_forward_hook(lambda m, a, o, tap=tap: seen.__setitem__(tap, o.shape))
    net(torch.randn(2, 3, 32, 32))
    # 4·ngf channels at a quarter of the resolution, for every tap (ngf 4, 32 px).
    assert seen == {tap: (2, 16, 8, 8) for tap in CAT_KA_TAPS}
    assert isinstance(names["down_sampling.9"], torch.nn.ReLU)


def test_prunable_norms_are_cat_list(reg):
    net = reg.build("arch", {"type": "inception_resnet", "ngf": 4})
    norms = net.prunable_norms()
    # 3 downs + 9 blocks × (3 res + 3 dw) first-branch norms + 2 ups (CAT shrink_model)
    assert len(norms) == 3 + 9 * 6 + 2
    assert "features.4.res_ops.1.1.1" in norms and "features.4.dw_ops.2.0.1" in norms
    assert "features.4.pw_bn" not in norms and "features.4.dw_ops.2.2.1" not in norms
    modules = dict(net.named_modules())
    assert all(modules[name] is m and m.affine for name, m in norms.items())


def test_pruned_widths_build_and_round_trip(reg):
    widths = {
        "down": [5, 7, 11],
        "blocks": [
            {"res": [0, 3, 0], "dw": [2, 0, 4]},
            {"res": [0, 0, 0], "dw": [0, 0, 0]},  # a block pruned away: the identity
        ],
        "up": [6, 9],
    }
    net = reg.build("arch", {"type": "inception_resnet", "widths": widths})
    block = net.features[0]
    # Surviving branches are renumbered from 0, as CAT's pruned students are.
    assert len(block.res_ops) == 1 and block.res_ops[0][1][0].weight.shape == (3, 11, 3, 3)
    assert block.dw_ops[1][2][0].weight.shape == (4, 1, 5, 5)
    x = torch.randn(2, 11, 4, 4)
    assert torch.equal(net.features[1](x), x)
    assert widths_from_state_dict(net.state_dict()) == widths
    assert net.widths() == widths
    out = net(torch.randn(1, 3, 16, 16))
    assert out.shape == (1, 3, 16, 16)
    full = reg.build("arch", {"type": "inception_resnet", "ngf": 4, "n_blocks": 2})
    again = reg.build("arch", {"type": "inception_resnet", "widths": full.widths()})
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in full.state_dict().items()
    }


def test_instance_norm_affine_keeps_default_init(reg):
    # CAT's init_weights touches Conv/Linear weights and *BatchNorm2d* only: affine instance
    # norms keep PyTorch's (1, 0).
    torch.manual_seed(0)
    net = tiny(reg)
    norm = net.down_sampling[2]
    assert torch.equal(norm.weight, torch.ones(4)) and torch.equal(norm.bias, torch.zeros(4))
    bn = tiny(reg, norm="batch").down_sampling[2]
    assert not torch.equal(bn.weight, torch.ones(4))
    assert abs(net.down_sampling[1].weight.std().item() - 0.02) < 0.01


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kernel_sizes": [3, 4]}, "odd and distinct"),
        ({"kernel_sizes": [3, 3]}, "odd and distinct"),
        ({"channels": [12, 12]}, "2 entries for 3 kernel sizes"),
        ({"ngf": 1}, "no branch"),
        ({"norm": "none"}, "'instance' or 'batch'"),
        (
            {
                "widths": {
                    "down": [4, 4, 4],
                    "blocks": [{"res": [1], "dw": [1, 1, 1]}],
                    "up": [4, 4],
                }
            },
            r"widths.blocks\[0\] needs one res and one dw width",
        ),
        ({"widths": {"down": [4, 4], "blocks": [], "up": [4, 4]}}, "at least 3 items"),
    ],
)
def test_bad_options(reg, config, message):
    with pytest.raises(ValidationError, match=message):
        reg.options("arch", {"type": "inception_resnet", **config})


# -- kernel alignment ------------------------------------------------------------------------
def test_ka_identical_is_one_and_scale_invariant():
    torch.manual_seed(0)
    x = torch.randn(6, 4, 5, 5)
    y = torch.randn(6, 8, 3, 3)
    assert kernel_alignment(x, x).item() == pytest.approx(1.0, abs=1e-6)
    base = kernel_alignment(x, y).item()
    assert 0.0 < base < 1.0
    assert kernel_alignment(3.7 * x, 0.2 * y).item() == pytest.approx(base, rel=1e-5)
    assert kernel_alignment(-x, y).item() == pytest.approx(base, rel=1e-5)


def test_ka_matches_hand_computation():
    # rows x = (1, 0), (1, 1); y = (1, 0), (0, 1): Gx = [[1, 1], [1, 2]], Gy = I;
    # <Gx, Gy> = 3, |Gx| = √7, |Gy| = √2, KA = 3 / √14.
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).view(2, 2, 1, 1)
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 1, 2, 1)
    assert kernel_alignment(x, y).item() == pytest.approx(3 / math.sqrt(14), abs=1e-7)
    # No centring (CAT's KA is not CKA): a shared offset changes the value.
    assert kernel_alignment(x + 1, y).item() != pytest.approx(3 / math.sqrt(14), abs=1e-3)


def test_ka_single_sample_is_constant_one():
    # The per-GPU batch matters: with one sample the Grams are 1×1 and KA carries no signal.
    s = torch.randn(1, 4, 3, 3, requires_grad=True)
    value = kernel_alignment(s, torch.randn(1, 2, 3, 3))
    assert value.item() == pytest.approx(1.0)
    value.backward()
    assert s.grad.abs().max() < 1e-6


def test_ka_loss_is_negative_sum_and_teacher_gets_no_grad():
    torch.manual_seed(0)
    s = [torch.randn(4, 3, 4, 4, requires_grad=True) for _ in range(2)]
    t = [torch.randn(4, 5, 4, 4, requires_grad=True) for _ in range(2)]
    loss = ka_distill_loss(s, t)
    expected = -(kernel_alignment(s[0], t[0]) + kernel_alignment(s[1], t[1]))
    assert loss.item() == pytest.approx(expected.item())
    assert -2.0 <= loss.item() <= 0.0
    loss.backward()
    assert s[0].grad is not None and t[0].grad is None
    # Raising the alignment lowers the loss: a gradient step on s moves toward t.
    with torch.no_grad():
        stepped = [si - 1.0 * si.grad for si in s]
    assert ka_distill_loss(stepped, t).item() < loss.item()


def test_ka_chunks_reproduce_cats_data_parallel_sum():
    # CAT: batch 80 scattered over 4 GPUs, −KA per replica, summed (gather(loss).sum()).
    torch.manual_seed(0)
    s, t = torch.randn(8, 3, 4, 4), torch.randn(8, 6, 2, 2)
    per_gpu = sum(kernel_alignment(s[i : i + 2], t[i : i + 2]) for i in range(0, 8, 2))
    assert ka_distill_loss([s], [t], chunks=4).item() == pytest.approx(-per_gpu.item(), rel=1e-6)
    assert ka_distill_loss([s], [t], chunks=4).item() != pytest.approx(
        4 * ka_distill_loss([s], [t]).item(), rel=1e-3
    )
    with pytest.raises(ValueError, match="chunks must be between 1 and the batch size 8"):
        ka_distill_loss([s], [t], chunks=9)


def test_ka_in_float32_under_autocast():
    torch.manual_seed(0)
    x, y = torch.randn(4, 16, 8, 8) * 30, torch.randn(4, 16, 8, 8) * 30
    ref = kernel_alignment(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = kernel_alignment(x.bfloat16(), y.bfloat16())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), abs=0.02)


def test_ka_errors():
    with pytest.raises(ValueError, match="same batch size"):
        kernel_alignment(torch.randn(2, 3), torch.randn(3, 3))
    with pytest.raises(ValueError, match="same non-zero number"):
        ka_distill_loss([torch.randn(2, 3)], [])


def test_deepcopy_keeps_architecture(reg):
    net = tiny(reg)
    clone = copy.deepcopy(net)
    assert clone.widths() == net.widths()


def test_profile_prints_cats_own_count_beside_the_paper_convention(reg):
    from vemkit.profile import profile_module

    net = reg.build("arch", {"type": "inception_resnet", "init_type": "default"})
    row = profile_module("teacher", net, (3, 256, 256), latency_runs=0)
    assert row.macs_named == {"cat": 43_527_405_568}
    assert round(row.params / 1e6, 2) == 8.15
    assert round(row.macs_paper / 1e9, 2) == 43.49
