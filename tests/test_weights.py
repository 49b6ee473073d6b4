"""vemkit.weights: safetensors round trips, official .pth layouts, and clear mismatch errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from vemkit.errors import VemkitError
from vemkit.weights import load_weights, read_metadata, read_state_dict, save_weights


def small_net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 2, 1),
        nn.InstanceNorm2d(2),
    )
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2)
    net[1].num_batches_tracked.fill_(11)
    return net


def assert_same(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# -- safetensors --------------------------------------------------------------------------------
def test_safetensors_round_trip_with_buffers_and_metadata(tmp_path):
    net, other = small_net(0), small_net(1)
    path = save_weights(net, tmp_path / "sub" / "g.safetensors", {"arch": "x", "step": 12})
    assert path == tmp_path / "sub" / "g.safetensors"
    assert not torch.equal(net[0].weight, other[0].weight)
    report = load_weights(other, path)
    assert_same(net, other)
    assert other[1].num_batches_tracked.item() == 11
    assert report.missing == report.unexpected == report.ignored == []
    assert read_metadata(path) == {"arch": "x", "step": "12"}  # non-strings stored as JSON


def test_save_a_state_dict_with_shared_and_offset_tensors(tmp_path):
    base = torch.arange(12.0)
    state = {"a": base, "tied": base, "view": base[4:8]}
    path = save_weights(state, tmp_path / "s.safetensors")
    loaded = read_state_dict(path)
    assert torch.equal(loaded["tied"], base) and torch.equal(loaded["view"], base[4:8])


def test_save_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(small_net(0), path)
    save_weights(small_net(1), path)
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]  # no temp files left behind
    other = small_net(2)
    load_weights(other, path)
    assert_same(small_net(1), other)


def test_failed_save_leaves_the_old_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(small_net(0), path)
    before = path.read_bytes()
    with pytest.raises(VemkitError, match="'bad' is not a tensor"):
        save_weights({"ok": torch.ones(1), "bad": 3}, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]


def test_save_refuses_other_formats(tmp_path):
    with pytest.raises(VemkitError, match=r"w\.pth: weights are saved as \.safetensors"):
        save_weights(small_net(), tmp_path / "w.pth")


# -- official .pth checkpoints ------------------------------------------------------------------
@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,  # pix2pix / GAN-Compression: the bare state dict
        lambda sd: {"state_dict": sd, "epoch": 3},  # Lightning-style
        lambda sd: {"model": sd, "optimizer": {"lr": torch.tensor(0.1)}},
        lambda sd: {"state_dict": {"model": sd}},
    ],
    ids=["bare", "state_dict", "model", "nested"],
)
def test_pth_layouts(tmp_path, wrap):
    net = small_net(0)
    path = tmp_path / "latest_net_G.pth"
    torch.save(wrap(net.state_dict()), path)
    other = small_net(1)
    load_weights(other, path)
    assert_same(net, other)


def test_data_parallel_prefix_is_stripped(tmp_path):
    net = small_net(0)
    path = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)
    other = small_net(1)
    report = load_weights(other, path)
    assert report.stripped_prefix == "module."
    assert_same(net, other)
    # With no prefix to strip the keys no longer fit.
    with pytest.raises(VemkitError, match="missing key"):
        load_weights(small_net(1), path, prefix_strip=())


def test_prefix_kept_when_the_module_itself_uses_it(tmp_path):
    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = nn.Linear(2, 2)

    net = Holder()
    path = tmp_path / "h.pth"
    torch.save(net.state_dict(), path)  # keys: module.weight, module.bias
    other = Holder()
    assert load_weights(other, path).stripped_prefix is None
    assert torch.equal(other.module.weight, net.module.weight)


def test_stale_instance_norm_statistics_are_dropped(tmp_path):
    # Checkpoints from code that tracked InstanceNorm statistics (older pix2pix/CycleGAN) carry
    # running_mean/var that today's InstanceNorm(track_running_stats=False) lacks; the official
    # loader drops them, and so do we. A BatchNorm counter missing from old files is fine too.
    net = small_net(0)
    state = net.state_dict()
    state["4.running_mean"] = torch.zeros(2)
    state["4.running_var"] = torch.ones(2)
    state["4.num_batches_tracked"] = torch.tensor(5)
    del state["1.num_batches_tracked"]
    path = tmp_path / "old.pth"
    torch.save(state, path)
    other = small_net(1)
    report = load_weights(other, path)
    assert report.ignored == ["4.num_batches_tracked", "4.running_mean", "4.running_var"]
    assert torch.equal(other[0].weight, net[0].weight)


def test_pickles_that_are_not_weights_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"net": small_net(), "note": "a whole module is pickled here"}, path)
    with pytest.raises(VemkitError, match=r"evil\.pth: cannot be read as a weights-only"):
        load_weights(small_net(), path)


def test_a_checkpoint_without_a_state_dict_is_explained(tmp_path):
    path = tmp_path / "opt.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(VemkitError, match=r"opt\.pt: no state dict found \(top-level keys: epoch"):
        load_weights(small_net(), path)


# -- mismatches -----------------------------------------------------------------------------------
def test_mismatch_message_names_file_keys_and_shapes(tmp_path):
    state = small_net(0).state_dict()
    del state["3.bias"]
    state["0.weight"] = torch.zeros(5, 3, 3, 3)
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "wrong.safetensors"
    save_weights(state, path)
    net = small_net(1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(VemkitError) as info:
        load_weights(net, path)
    message = str(info.value)
    assert message.splitlines()[0] == f"{path}: the weights do not fit the Sequential"
    assert "1 missing key(s): 3.bias" in message
    assert "1 unexpected key(s): extra.weight" in message
    assert "1 shape difference(s): 0.weight (file [5, 3, 3, 3], model [4, 3, 3, 3])" in message
    for k, v in net.state_dict().items():  # nothing was loaded
        assert torch.equal(v, before[k]), k


def test_long_key_lists_are_cut(tmp_path):
    path = tmp_path / "many.safetensors"
    save_weights({f"x{i}": torch.zeros(1) for i in range(9)}, path)
    with pytest.raises(VemkitError, match=r"9 unexpected key\(s\): x0, x1, x2, x3, x4, \.\.\. "):
        load_weights(small_net(), path)


def test_non_strict_loads_what_fits(tmp_path):
    net = small_net(0)
    state = net.state_dict()
    del state["3.weight"]
    state["head.bias"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    other = small_net(1)
    untouched = other[3].weight.clone()
    report = load_weights(other, path, strict=False)
    assert report.missing == ["3.weight"] and report.unexpected == ["head.bias"]
    assert torch.equal(other[0].weight, net[0].weight)
    assert torch.equal(other[3].weight, untouched)
    # Shape differences are errors even when not strict.
    state["0.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(VemkitError, match="shape difference"):
        load_weights(small_net(), path, strict=False)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.safetensors", None, "no such weights file"),
        ("w.npz", b"", "unknown weights format '.npz'"),
        ("broken.safetensors", b"\x00garbage", "not a readable safetensors file"),
        ("broken.pth", b"garbage", "cannot be read as a weights-only PyTorch checkpoint"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VemkitError, match=message) as info:
        load_weights(small_net(), path)
    assert str(path) in str(info.value)
