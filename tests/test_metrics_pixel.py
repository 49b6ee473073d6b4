"""PSNR / SSIM / L1 against hand-computed values (and scikit-image for SSIM when present)."""

from __future__ import annotations

import math

import pytest
import torch

from vemkit.errors import VemkitError
from vemkit.registry import Registry
from vemkit_plugins import metrics
from vemkit_plugins.metrics.pixel import ssim


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    metrics.register(r)
    return r


def _gen(seed: int, shape=(2, 3, 24, 20)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _score(reg, config, fake, real, **batch):
    metric = reg.build("metric", config)
    metric.update(fake, real, **batch)
    return metric.compute()


def test_identical_images(reg):
    x = _gen(0)
    # Identical images: infinite PSNR reported as the documented cap, SSIM exactly 1, L1 0.
    assert _score(reg, {"type": "psnr"}, x, x) == {"psnr": 100.0}
    assert _score(reg, {"type": "psnr", "max_db": 60}, x, x) == {"psnr": 60.0}
    assert _score(reg, {"type": "ssim"}, x, x)["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert _score(reg, {"type": "l1"}, x, x) == {"l1": 0.0}


def test_known_noise_gives_known_psnr_and_l1(reg):
    real = torch.zeros(3, 3, 16, 16, dtype=torch.float64)  # mid-grey: 0.5 on [0, 1]
    sign = torch.ones(16, 16, dtype=torch.float64)
    sign[::2] = -1  # alternating rows of +/- noise
    fake = real + 0.1 * sign  # ±0.1 in [-1, 1] = ±0.05 on [0, 1] -> MSE 0.0025
    psnr = _score(reg, {"type": "psnr"}, fake, real)["psnr"]
    assert psnr == pytest.approx(10 * math.log10(1 / 0.0025), abs=1e-9)  # 26.0206 dB
    assert _score(reg, {"type": "l1"}, fake, real)["l1"] == pytest.approx(0.1, abs=1e-12)


def test_psnr_averages_per_image_values(reg):
    real = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    fake = real.clone()
    fake[0] += 0.2  # 0.1 on [0,1]: 20 dB
    fake[1] += 0.02  # 0.01 on [0,1]: 40 dB
    assert _score(reg, {"type": "psnr"}, fake, real)["psnr"] == pytest.approx(30.0, abs=1e-9)


def test_ssim_of_constant_images_is_the_luminance_term():
    # With zero variance SSIM = (2ab + C1) / (a² + b² + C1), C1 = 0.01² (Wang et al., eq. 13).
    a, b = 0.5, 0.25
    x = torch.full((1, 1, 16, 16), a, dtype=torch.float64)
    y = torch.full((1, 1, 16, 16), b, dtype=torch.float64)
    expected = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)
    assert float(ssim(x, y)) == pytest.approx(expected, abs=1e-12)  # 0.800064
    # With zero padding the borders see the zeros too, so 'same' differs and is lower here.
    assert float(ssim(x, y, padding="same")) < expected


def test_ssim_metric_maps_to_unit_range(reg):
    a, b = 0.5, 0.25  # on [0, 1]; the metric receives them in [-1, 1]
    fake = torch.full((1, 3, 12, 12), 2 * a - 1)
    real = torch.full((1, 3, 12, 12), 2 * b - 1)
    expected = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)
    assert _score(reg, {"type": "ssim"}, fake, real)["ssim"] == pytest.approx(expected, abs=1e-9)


def test_ssim_matches_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2),
                               dtype=torch.float64)).clamp(0, 1)  # fmt: skip
    reference = skm.structural_similarity(
        x[0].numpy(), y[0].numpy(), data_range=1.0, channel_axis=0,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )  # fmt: skip
    assert float(ssim(x, y)) == pytest.approx(reference, abs=1e-10)


def test_ssim_per_image_reduction_and_gradient():
    x = _gen(3).double().requires_grad_(True)
    y = _gen(4).double()
    per_image = ssim(x, y, reduction="none")
    assert per_image.shape == (2,)
    assert float(ssim(x, y).detach()) == pytest.approx(float(per_image.detach().mean()))
    (1 - ssim(x, y, padding="same")).backward()  # usable as a loss (OMGD)
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_pixel_metrics_need_ground_truth(reg):
    metric = reg.build("metric", {"type": "psnr"})
    with pytest.raises(VemkitError, match="ground truth"):
        metric.update(_gen(0), None)
    with pytest.raises(VemkitError, match="differ in shape"):
        metric.update(_gen(0), _gen(1, shape=(2, 3, 8, 8)))


def test_even_ssim_window_is_rejected(reg):
    with pytest.raises(Exception, match="odd"):
        reg.options("metric", {"type": "ssim", "window_size": 10})


def test_reset_and_directions(reg):
    metric = reg.build("metric", {"type": "l1"})
    metric.update(_gen(0), _gen(1))
    metric.reset()
    metric.update(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4))
    assert metric.compute() == {"l1": 1.0}
    assert metric.higher_is_better == {"l1": False}
    assert reg.build("metric", {"type": "psnr"}).higher_is_better == {"psnr": True}
