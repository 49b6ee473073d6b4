"""Pixel metrics against the ground truth: PSNR, SSIM, L1; and the plain :func:`ssim` function.

Conventions (documented in the options too):

* ``psnr`` — images mapped from [-1, 1] to [0, 1], data range 1, PSNR per image from its MSE over
  pixels and channels, averaged over images. Identical images would give +inf; the per-image
  MSE is floored at 10^(-max_db/10) so they report ``max_db`` (100 dB by default).
* ``ssim`` — on [0, 1], Gaussian window 11×11 σ 1.5, C1 = (0.01·L)², C2 = (0.03·L)² with L = 1;
  the SSIM map is averaged per image (pixels and channels), then over images. ``valid`` padding
  (default) is Wang et al.'s reference and equals scikit-image's ``structural_similarity`` with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``.
* ``l1`` — mean absolute difference in [-1, 1] over every pixel of every image.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from vemkit_plugins.metrics.base import Metric, check_images, require_real, to_unit
from vemkit_plugins.metrics.options import L1Options, PSNROptions, SSIMOptions


def gaussian_window(size: int, sigma: float, *, dtype=torch.float32, device=None) -> Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (the 2-D window is its outer product)."""
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def ssim(
    x: Tensor,
    y: Tensor,
    data_range: float = 1.0,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    padding: Literal["valid", "same"] = "valid",
    reduction: Literal["mean", "none"] = "mean",
) -> Tensor:
    """Structural similarity of two N×C×H×W batches (differentiable; used by losses too).

    ``C1 = (0.01·data_range)²``, ``C2 = (0.03·data_range)²``; channels are treated
    independently. ``padding="same"`` zero-pads the window (pytorch-ssim / OMGD's SSIM loss,
    which calls it on [-1, 1] tensors with ``data_range=1``); ``"valid"`` keeps only positions
    where the window fits. Returns the mean SSIM (``reduction="mean"``) or one mean per image
    (``"none"``, shape N).
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim needs two N×C×H×W tensors of one shape, got {x.shape}, {y.shape}")
    if window_size % 2 != 1:
        raise ValueError(f"ssim window_size must be odd, got {window_size}")
    c, h, w = x.shape[1:]
    if padding == "valid" and (h < window_size or w < window_size):
        raise ValueError(f"ssim with valid padding needs images of at least {window_size}² px")
    dtype = x.dtype if x.is_floating_point() else torch.float32
    x, y = x.to(dtype), y.to(dtype)
    g = gaussian_window(window_size, sigma, dtype=dtype, device=x.device)
    pad = window_size // 2 if padding == "same" else 0
    # One separable depthwise pass filters the five moments of every channel at once.
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    groups = stack.shape[1]
    stack = F.conv2d(
        stack, g.view(1, 1, -1, 1).expand(groups, 1, -1, 1), padding=(pad, 0), groups=groups
    )
    stack = F.conv2d(
        stack, g.view(1, 1, 1, -1).expand(groups, 1, 1, -1), padding=(0, pad), groups=groups
    )
    mu_x, mu_y, xx, yy, xy = stack.split(c, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x, var_y, cov = xx - mu_xx, yy - mu_yy, xy - mu_xy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    per_image = ssim_map.flatten(1).mean(dim=1)
    return per_image.mean() if reduction == "mean" else per_image


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0, max_db: float = 100.0) -> Tensor:
    """Per-image PSNR (shape N) of two N×C×H×W batches, capped at ``max_db``."""
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(dim=1)
    floor = data_range**2 * 10 ** (-max_db / 10)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(floor))


class _Averaged(Metric):
    """A metric that is the mean of a per-image (or per-pixel) quantity."""

    key = ""

    def reset(self) -> None:
        self._sum = 0.0
        self._count = 0

    def compute(self) -> dict[str, float]:
        return {self.key: self._sum / self._count if self._count else math.nan}


class PSNR(_Averaged):
    name = key = "psnr"
    higher_is_better = {"psnr": True}

    def __init__(self, options: PSNROptions) -> None:
        self.options = options
        self.reset()

    def update(self, fake: Tensor, real: Tensor | None = None, **batch: Any) -> None:
        fake = check_images(fake, "fake", self.name)
        real = require_real(real, fake, self.name)
        values = psnr(to_unit(fake.double()), to_unit(real.double()), 1.0, self.options.max_db)
        self._sum += float(values.sum())
        self._count += len(values)


class SSIM(_Averaged):
    name = key = "ssim"
    higher_is_better = {"ssim": True}

    def __init__(self, options: SSIMOptions) -> None:
        self.options = options
        self.reset()

    def update(self, fake: Tensor, real: Tensor | None = None, **batch: Any) -> None:
        fake = check_images(fake, "fake", self.name)
        real = require_real(real, fake, self.name)
        o = self.options
        with torch.no_grad():
            values = ssim(
                to_unit(fake).double(),
                to_unit(real).double(),
                1.0,
                window_size=o.window_size,
                sigma=o.sigma,
                padding=o.padding,
                reduction="none",
            )
        self._sum += float(values.sum())
        self._count += len(values)


class L1(_Averaged):
    name = key = "l1"
    higher_is_better = {"l1": False}

    def __init__(self, options: L1Options) -> None:
        self.options = options
        self.reset()

    def update(self, fake: Tensor, real: Tensor | None = None, **batch: Any) -> None:
        fake = check_images(fake, "fake", self.name)
        real = require_real(real, fake, self.name)
        self._sum += float((fake.double() - real.double()).abs().sum())
        self._count += fake.numel()


def build_psnr(options: PSNROptions, **context: Any) -> PSNR:
    return PSNR(options)


def build_ssim(options: SSIMOptions, **context: Any) -> SSIM:
    return SSIM(options)


def build_l1(options: L1Options, **context: Any) -> L1:
    return L1(options)
