"""OMGD's shared multi-head PatchGAN (``arch: omgd_patchgan``): the official state dict (keys
derived independently from bytedance/OMGD by tests/data/derive_omgd_discriminator_keys.py), head
selection and sharing, and equality with the plain PatchGAN it is cut from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from vemkit.registry import Registry
from vemkit_plugins import archs

KEYS = json.loads((Path(__file__).parent / "data" / "omgd_discriminator_keys.json").read_text())


@pytest.fixture(scope="module")
def reg() -> Registry:
    registry = Registry()
    archs.register(registry)
    return registry


@pytest.mark.parametrize("name", sorted(KEYS["layouts"]))
def test_state_dict_is_omgds(reg, name):
    entry = KEYS["layouts"][name]
    net = reg.build("arch", {**entry["arch"], "init_type": "default"})
    layout = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert layout == entry["keys"]
    assert sum(p.numel() for p in net.parameters()) == entry["params"]


def test_omgd_pix2pix_discriminator_size(reg):
    # 2 copies × (6·128·16 + 128 + 128·256·16 + 2·256 + 256·512·16 + 2·512 + 512·1024·16
    # + 2·1024 + 1024·16 + 1) = 2 × 11,042,433, by hand from OMGD's block widths
    net = reg.build("arch", {"type": "omgd_patchgan", "init_type": "default"})
    assert sum(p.numel() for p in net.parameters()) == 22_084_866


def _tiny(reg, **kw):
    torch.manual_seed(0)
    cfg = {"type": "omgd_patchgan", "input_nc": 3, "ndf": 4, "norm": "instance", **kw}
    return reg.build("arch", cfg)


def test_heads_use_their_own_blocks_after_the_shared_ones(reg):
    net = _tiny(reg, n_share=2)
    x = torch.randn(2, 3, 32, 32)
    out0 = net(x, 0)
    net(x, 0).sum().backward()
    grads = {n: p.grad is not None for n, p in net.named_parameters()}
    # shared blocks 1-2 use the last copy (OMGD's index -1); head 0 owns copy 0 of blocks 3-5
    assert grads["block1s.1.block.0.weight"] and not grads["block1s.0.block.0.weight"]
    assert grads["block2s.1.block.0.weight"] and not grads["block2s.0.block.0.weight"]
    assert grads["block3s.0.block.0.weight"] and not grads["block3s.1.block.0.weight"]
    assert grads["block5s.0.block.0.weight"] and not grads["block5s.1.block.0.weight"]
    with torch.no_grad():
        both = net(x)
        assert isinstance(both, list) and len(both) == 2
        assert torch.allclose(both[0], out0) and torch.allclose(both[1], net(x, 1))
        assert not torch.allclose(both[0], both[1])
        assert torch.equal(net(x, -1), net(x, 1))
    with pytest.raises(IndexError):
        net(x, 2)


def test_fully_shared_heads_are_one_network(reg):
    net = _tiny(reg, n_share=5)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x, 0), net(x, 1))


def test_each_head_is_the_70x70_patchgan(reg):
    # A head with its blocks filled from a pix2pix NLayerDiscriminator (our `patchgan`, official
    # layout model.0/2,3/5,6/8,9/11) computes exactly the same logit map.
    torch.manual_seed(0)
    plain = reg.build("arch", {"type": "patchgan", "input_nc": 6, "ndf": 8, "norm": "batch"})
    multi = reg.build(
        "arch", {"type": "omgd_patchgan", "input_nc": 6, "ndf": 8, "norm": "batch", "n_share": 0}
    )
    src = plain.state_dict()
    mapping = {1: ("model.0",), 2: ("model.2", "model.3"), 3: ("model.5", "model.6")}
    mapping |= {4: ("model.8", "model.9"), 5: ("model.11",)}
    target = {}
    for k, parts in mapping.items():
        for index, part in enumerate(parts):
            for key, value in src.items():
                if key.startswith(part + "."):
                    target[f"block{k}s.1.block.{index}.{key[len(part) + 1 :]}"] = value
    missing = multi.load_state_dict(target, strict=False).missing_keys
    assert all(key.split(".")[1] == "0" for key in missing)  # only head 0's blocks left out
    plain.eval()
    multi.eval()
    x = torch.randn(2, 6, 64, 64)
    with torch.no_grad():
        expected = plain(x)
        assert expected.shape == (2, 1, 6, 6)
        assert torch.allclose(multi(x, 1), expected, atol=1e-6)


def test_options_reject_sharing_more_blocks_than_exist(reg):
    with pytest.raises(ValidationError, match="n_share"):
        reg.options("arch", {"type": "omgd_patchgan", "n_layers": 2, "n_share": 5})
    assert reg.options("arch", {"type": "omgd_patchgan", "n_layers": 2, "n_share": 4})
