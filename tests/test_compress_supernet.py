"""The once-for-all supernet: sub-network forward, extraction, gradients, sampling."""

from __future__ import annotations

import random

import pytest
import torch

from tests.test_compress_channels import Attention, CatSkip, Residual
from vemkit import registry
from vemkit_plugins.compress.supernet import SuperNet, sample_config


def _choices(net: SuperNet) -> dict[str, list[int]]:
    return {
        s.name: sorted({max(1, s.size // 4), max(1, s.size // 2), s.size})
        for s in net.graph.prunable()
    }


@pytest.mark.parametrize(
    ("model_fn", "shape"),
    [
        (Residual, (3, 8, 8)),
        (CatSkip, (3, 8, 8)),
        (Attention, (3, 8, 8)),
        (lambda: registry.build("arch", {"type": "unet", "ngf": 4, "num_downs": 5}), (3, 32, 32)),
        (
            lambda: registry.build("arch", {"type": "mobile_resnet", "ngf": 4, "n_blocks": 3}),
            (3, 32, 32),
        ),
        (lambda: registry.build("arch", {"type": "sagan_generator", "ngf": 8, "z_dim": 16}), (16,)),
    ],
)
def test_extract_equals_supernet_forward(model_fn, shape):
    torch.manual_seed(0)
    net = SuperNet(model_fn(), shape).eval()
    x = torch.randn(2, *shape)
    rng = random.Random(1)
    for _ in range(3):
        widths = net.sample(rng, _choices(net))
        sub = net.extract(widths).eval()
        torch.testing.assert_close(sub(x), net(x, widths), rtol=1e-5, atol=1e-6)
    # No widths: the full network itself.
    assert torch.equal(net(x), net.model(x))


def test_gradients_land_in_the_kept_slices():
    torch.manual_seed(0)
    model = CatSkip()
    net = SuperNet(model, (3, 8, 8)).train()
    widths = {"down": 4, "inner": 3, "up": 5}
    net(torch.randn(2, 3, 8, 8), widths).square().mean().backward()
    g = model.down.weight.grad
    assert g[:4].abs().sum() > 0 and torch.all(g[4:] == 0)
    g = model.inner.weight.grad  # (10, 6, 3, 3): rows < 3, columns < 4
    assert g[:3, :4].abs().sum() > 0 and torch.all(g[3:] == 0) and torch.all(g[:, 4:] == 0)
    g = model.out.weight.grad  # ConvT (13 in = 6 of down + 7 of up, 3 out)
    kept = [0, 1, 2, 3, 6, 7, 8, 9, 10]
    dropped = [4, 5, 11, 12]
    assert torch.all(g[kept].abs().sum((1, 2, 3)) > 0) and torch.all(g[dropped] == 0)
    # Train-mode BatchNorm updated the kept slice of the supernet's statistics only.
    assert torch.all(model.bn.running_mean[:5] != 0) and torch.all(model.bn.running_mean[5:] == 0)
    assert int(model.bn.num_batches_tracked) == 1


def test_training_steps_match_a_standalone_copy():
    """One SGD step through the supernet changes exactly what the same step changes on the
    extracted sub-network."""
    torch.manual_seed(0)
    model = Residual()
    net = SuperNet(model, (3, 8, 8))
    widths = {"stem": 5, "a1": 2, "b1": 3}
    sub = net.extract(widths)
    x = torch.randn(2, 3, 8, 8)
    for m in (net, sub):
        params = list(m.parameters())
        out = m(x, widths) if m is net else m(x)
        out.square().mean().backward()
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p -= 0.1 * p.grad
    after = net.extract(widths)
    for (k, a), (_, b) in zip(after.state_dict().items(), sub.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=k)


def test_sample_is_uniform_and_seeded():
    choices = {"a": [1, 2, 3, 4], "b": [8, 16]}
    draws = [sample_config(random.Random(s), choices) for s in range(400)]
    counts = [sum(d["a"] == v for d in draws) for v in choices["a"]]
    # 100 expected per value; ±4 standard deviations (≈ 35) is a safe bound.
    assert all(abs(c - 100) < 35 for c in counts)
    assert sample_config(random.Random(3), choices) == sample_config(random.Random(3), choices)
