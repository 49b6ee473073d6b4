"""The VEM authors' conditional energy network ``E(t, s)`` (reference/baselines.md §8).

Layout: optional 3×3/stride-2 average pre-pools of t and s, channel concatenation, a 3×3 stem
conv to c channels + LeakyReLU(0.01), residual down-blocks (c→2c, 2c→4c, then 4c→4c), and a head
ReLU → spatial mean → linear 4c→1. Every conv/linear is spectrally normalised with one power
iteration per call; the second conv of each residual branch is normalised one-sidedly (only when
σ > 1) and starts near zero, so every block starts as its shortcut.

There is no normalisation layer with batch statistics: positives and negatives are scored in one
concatenated batch and each sample's energy must not depend on the others.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit_plugins.energies.options import ConvSNEnergyOptions, check_resolution

__all__ = ["ConvSNEnergy", "SNConv2d", "SNLinear", "build", "check_resolution"]

_SLOPE = 0.01  # LeakyReLU slope of the authors' network (torch's default)


def _normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    return x / (x.norm() + eps)


class _SpectralNorm:
    """Mixin: divides ``self.weight`` by its largest singular value, estimated by one power
    iteration per call with a persistent left vector ``u``.

    As in the authors' layers, σ is computed from the weight's data, so it acts as a constant in
    the backward pass (no gradient through the power iteration). ``one_sided`` divides by
    ``max(σ, 1)``: the layer is only ever shrunk, never amplified.
    """

    weight: Tensor
    u: Tensor
    one_sided: bool

    def _init_sn(self, out_features: int, one_sided: bool) -> None:
        self.one_sided = one_sided
        self.register_buffer("u", _normalize(torch.randn(out_features)))  # type: ignore[attr-defined]

    @torch.no_grad()
    def _sigma(self) -> Tensor:
        w = self.weight.detach().flatten(1)
        # Keep the estimate in full precision under autocast (bf16 would blur sigma).
        with torch.autocast(device_type=w.device.type, enabled=False):
            w = w.float()
            v = _normalize(self.u.float() @ w)
            u = _normalize(w @ v)
            self.u.copy_(u)
            return (u @ (w @ v)).to(self.weight.dtype)

    def normalized_weight(self) -> Tensor:
        sigma = self._sigma()
        if self.one_sided:
            sigma = sigma.clamp(min=1.0)
        return self.weight / sigma


class SNConv2d(_SpectralNorm, nn.Conv2d):
    """3×3 (or any) convolution with spectral normalisation; weights N(0, std²), bias 0."""

    def __init__(
        self, cin: int, cout: int, *, kernel: int = 3, one_sided: bool = False, std: float = 1.0
    ) -> None:
        nn.Conv2d.__init__(self, cin, cout, kernel, padding=kernel // 2)
        self._init_sn(cout, one_sided)
        nn.init.normal_(self.weight, 0.0, std)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.normalized_weight(), self.bias)


class SNLinear(_SpectralNorm, nn.Linear):
    """Linear layer with spectral normalisation; weights N(0, 1), bias 0."""

    def __init__(self, fin: int, fout: int) -> None:
        nn.Linear.__init__(self, fin, fout)
        self._init_sn(fout, one_sided=False)
        nn.init.normal_(self.weight, 0.0, 1.0)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class ResidualDownBlock(nn.Module):
    """``lrelu(avgpool2(shortcut(x) + conv(lrelu(conv(x)))))``; the branch's last conv is
    one-sided and initialised at N(0, 1e-10²), so the block starts as its shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = SNConv2d(cin, cin)
        self.conv2 = SNConv2d(cin, cout, one_sided=True, std=1e-10)
        self.shortcut: nn.Module = SNConv2d(cin, cout) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        branch = self.conv2(F.leaky_relu(self.conv1(x), _SLOPE))
        return F.leaky_relu(F.avg_pool2d(self.shortcut(x) + branch, 2), _SLOPE)


class ConvSNEnergy(nn.Module):
    """``E(t, s) -> Tensor[N]`` for image pairs ``t, s: [N, C, H, W]``."""

    def __init__(
        self, in_channels: int = 3, width: int = 32, blocks: int = 7, downsample: int = 1
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.downsample = downsample
        self.stem = SNConv2d(2 * in_channels, width)
        widths = [width, 2 * width] + [4 * width] * max(blocks - 1, 0)
        self.blocks = nn.Sequential(
            *(ResidualDownBlock(widths[i], widths[i + 1]) for i in range(blocks))
        )
        self.head = SNLinear(widths[blocks], 1)

    def forward(self, t: Tensor, s: Tensor) -> Tensor:
        x = torch.cat([t, s], dim=1)
        for _ in range(self.downsample):
            # Pooling commutes with the channel concatenation: one call instead of two.
            x = F.avg_pool2d(x, 3, stride=2, padding=1)
        x = F.leaky_relu(self.stem(x), _SLOPE)
        x = self.blocks(x)
        x = F.relu(x).mean(dim=(2, 3))
        return self.head(x).squeeze(-1)


def build(options: ConvSNEnergyOptions, **_: Any) -> ConvSNEnergy:
    """Factory of the ``conv_sn`` energy."""
    return ConvSNEnergy(
        in_channels=options.in_channels,
        width=options.width,
        blocks=options.blocks,
        downsample=options.downsample,
    )
