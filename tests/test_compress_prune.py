"""Importance scores and pruning to a MAC budget / by a uniform ratio."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from tests.test_compress_channels import Chain, Residual
from vemkit import registry
from vemkit.errors import VemkitError
from vemkit.profile import count_macs, count_params
from vemkit_plugins.compress.channels import analyze
from vemkit_plugins.compress.importance import gradient_scores, l1_scores, norm_scale_scores
from vemkit_plugins.compress.prune import prune_to_budget, prune_uniform


# -- importance ---------------------------------------------------------------------------------
def test_norm_scale_scores():
    model = Residual()
    model.n = nn.InstanceNorm2d(8, affine=True)
    graph = analyze(model, (3, 8, 8))
    with torch.no_grad():
        model.n.weight.copy_(torch.arange(8.0) - 4)
    scores = norm_scale_scores(model, graph)
    # Only the trunk has an affine norm; a1 and b1 have none and get no entry.
    assert set(scores) == {"stem"}
    assert torch.equal(scores["stem"], (torch.arange(8.0) - 4).abs())

    chain = Chain()
    g = analyze(chain, (3, 8, 8))
    with torch.no_grad():
        chain.b1.weight.copy_(torch.tensor([1.0, -3, 0, 2, 0.5, -0.1, 4, 1]))
    assert torch.equal(
        norm_scale_scores(chain, g)["c1"], torch.tensor([1.0, 3, 0, 2, 0.5, 0.1, 4, 1])
    )


def test_l1_scores_sum_over_producers():
    model = Residual()
    graph = analyze(model, (3, 8, 8))
    scores = l1_scores(model, graph)
    trunk = sum(
        model.get_submodule(p).weight.detach().abs().flatten(1).sum(1) for p in ("stem", "a2", "b2")
    )
    torch.testing.assert_close(scores["stem"], trunk)
    assert set(scores) == {"stem", "a1", "b1"}
    normed = l1_scores(model, graph, normalize="max")
    assert all(float(v.max()) == pytest.approx(1.0) for v in normed.values())


def test_gradient_scores_hand_checked():
    """y = W2 relu(W1 x): L = sum(y); dL/dW1[i, j] = W2[:, i].sum() · 1[h_i > 0] · x_j."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    graph = analyze(model, (4,))
    x = torch.randn(5, 4)

    def loss(m):
        return m(x).sum()

    scores = gradient_scores(model, graph, loss, steps=2)
    h = x @ model[0].weight.detach().T
    grad = (model[2].weight.detach().sum(0) * (h > 0)).T @ x  # (3, 4)
    torch.testing.assert_close(scores["0"], grad.abs().mean(1))
    assert model[0].weight.grad is None  # the model's grads are left as they were


# -- pruning to a budget ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "shape", "budget", "convention", "score"),
    [
        # baselines.md §5: GCC prunes a U-Net ngf 32 (4.65G) with BN-scale scores.
        ({"type": "unet", "ngf": 32}, (3, 256, 256), 1.2e9, "paper", "norm"),
        # CAT's H→Z budget 2.6e9 on mobile ResNets (instance norm without affine: L1 scores).
        ({"type": "mobile_resnet", "ngf": 48}, (3, 256, 256), 2.6e9, "paper", "l1"),
        ({"type": "mobile_resnet", "ngf": 64}, (3, 256, 256), 2.6e9, "paper", "l1"),
        # GCC's SAGAN budget 0.016e9 in old-thop MACs: ngf 64 (23.45M) must be cut; ngf 48
        # (15.62M) already fits 16M, so it is cut to 12M.
        ({"type": "sagan_generator", "ngf": 64}, (128,), 0.016e9, "thop_legacy", "norm"),
        ({"type": "sagan_generator", "ngf": 48}, (128,), 0.012e9, "thop_legacy", "norm"),
    ],
)
def test_budget_pruning_on_paper_nets(config, shape, budget, convention, score):
    torch.manual_seed(0)
    model = registry.build("arch", config)
    graph = analyze(model, shape)
    scores = norm_scale_scores(model, graph) if score == "norm" else l1_scores(model, graph, "max")
    result = prune_to_budget(model, scores, budget, graph=graph, convention=convention)
    assert 0.99 * budget <= result.macs_after <= budget
    assert min(result.widths.values()) >= 1
    assert result.threshold is not None and result.params_after < result.params_before
    json.dumps(result.to_dict())  # JSON-able as it is
    # The kept channels are the ones above the threshold (or the floor of 1).
    for name, idx in result.keep.items():
        above = (scores[name] > result.threshold).nonzero().flatten().tolist()
        assert idx == above or (len(idx) == 1 and not above)
    # The cut network has exactly the MACs and params the result reports.
    pruned = result.apply(model, graph)
    x = torch.zeros(1, *shape)
    assert count_macs(pruned, x, convention) == result.macs_after
    assert count_params(pruned) == result.params_after
    rebuilt = registry.build("arch", result.arch_config(config))
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)


def test_min_channels_and_unreachable_budget():
    torch.manual_seed(0)
    model = Chain()
    graph = analyze(model, (3, 8, 8))
    scores = {"c1": torch.rand(8), "c2": torch.rand(6)}
    with pytest.raises(VemkitError, match="below what 2 channel"):
        prune_to_budget(model, scores, 1000, graph=graph, min_channels=2)
    floor = 64 * (3 * 9 * 2 + 2 * 9 * 2 + 2 * 3)
    result = prune_to_budget(model, scores, floor, graph=graph, min_channels=2)
    assert result.widths == {"c1": 2, "c2": 2, "out": 3} and result.macs_after == floor
    # A budget above the full network's MACs prunes nothing.
    full = prune_to_budget(model, scores, 1e9, graph=graph)
    assert full.keep == {} and full.macs_after == full.macs_before
    with pytest.raises(VemkitError, match="min_channels must be at least 1"):
        prune_to_budget(model, scores, 1e9, graph=graph, min_channels=0)
    with pytest.raises(VemkitError, match=r"scores\.c1: 3 scores for 8 channels"):
        prune_to_budget(model, {"c1": torch.rand(3)}, 1e9, graph=graph)


def test_budget_threshold_by_hand():
    model = Chain()
    graph = analyze(model, (3, 8, 8))
    scores = {
        "c1": torch.tensor([0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4]),
        "c2": torch.tensor([0.05, 0.95, 0.15, 0.85, 0.25, 0.75]),
    }

    def macs(w1, w2):
        return 64 * (3 * 9 * w1 + w1 * 9 * w2 + w2 * 3)

    # Budget between the threshold 0.3 (c1 keeps 5, c2 keeps 3) and 0.25 (c1 5, c2 4).
    result = prune_to_budget(model, scores, macs(5, 4) - 1, graph=graph)
    assert result.widths["c1"] == 5 and result.widths["c2"] == 3
    assert result.keep == {"c1": [0, 2, 4, 6, 7], "c2": [1, 3, 5]}
    assert result.threshold == pytest.approx(0.3) and result.macs_after == macs(5, 3)
    assert result.table[0] == {
        "name": "c1",
        "before": 8,
        "after": 5,
        "prunable": True,
        "scored": True,
    }


def test_uniform_pruning():
    torch.manual_seed(0)
    model = registry.build("arch", {"type": "mobile_resnet", "ngf": 16})
    graph = analyze(model, (3, 64, 64))
    scores = l1_scores(model, graph)
    result = prune_uniform(model, 0.7, scores=scores, graph=graph)
    for space in graph.spaces:
        expected = max(1, round(0.3 * space.size)) if space.prunable else space.size
        assert result.widths[space.name] == expected
    top = torch.sort(-scores["model.7"], stable=True).indices[: result.widths["model.7"]]
    assert result.keep["model.7"] == sorted(top.tolist())
    # Without scores: the first channels.
    plain = prune_uniform(model, 0.5, 4, graph=graph)
    assert plain.keep["model.1"] == list(range(8)) and plain.threshold is None
    assert prune_uniform(model, 0.5, 4, inputs=(3, 64, 64)).to_dict() == plain.to_dict()
    with pytest.raises(VemkitError, match="example input shape"):
        prune_uniform(model, 0.5)
    with pytest.raises(VemkitError, match=r"ratio must be in \[0, 1\)"):
        prune_uniform(model, 1.0, graph=graph)
