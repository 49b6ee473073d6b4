"""The VEM authors' conditional energy network ``E(t, s)`` (reference/baselines.md §8).

Layout: optional 3×3/stride-2 average pre-pools of t and s, channel concatenation, a 3×3 stem
conv to c channels + LeakyReLU(0.01), residual down-blocks (c→2c, 2c→4c, then 4c→4c), and a head
ReLU → spatial mean → linear 4c→1. Every conv/linear is spectrally normalised with one power
iteration per call; the second conv of each residual branch is normalised one-sidedly (only when
σ > 1) and starts near zero, so every block starts as its shortcut.

There is no normalisation layer with batch statistics: positives and negatives are scored in one
concatenated batch and each sample's energy must not depend on the others.

Evaluation is cheaper than the layout suggests, with the same function (float rounding aside):

* a block's 2×2 average pool is folded into the convolutions before it: ``avgpool2(conv3×3(x))``
  is one 4×4/stride-2 convolution with the box-filtered kernel (both are linear), so the
  branch's second conv and the shortcut run at the block's *output* resolution (4·HW·Cin·Cout
  MACs instead of 9·HW·Cin·Cout). At 256 px, c = 32, one pre-pool, a (t, s) pair costs 1.16G
  MACs instead of the authors' 1.94G (c = 8: 77.8M instead of 126.7M; counted as run,
  power iterations included, so ``vemkit profile`` reports these);
* on the CPU the activations are kept channels-last inside the network (oneDNN's faster
  layout); what goes in and the gradients that come out stay in the caller's NCHW layout.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit_plugins._layout import channels_last
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

    def pooled(self, x: Tensor) -> Tensor:
        """``avg_pool2d(self(x), 2)`` as ONE stride-2 convolution: the 2×2 box filter is folded
        into the (odd, "same"-padded) kernel, so the output is computed at the pooled
        resolution only. Exact up to float rounding (the pool and the conv are both linear;
        zero padding contributes zero either way)."""
        return F.conv2d(
            x, _box2(self.normalized_weight()), self.bias, stride=2, padding=self.padding
        )


def _box2(w: Tensor) -> Tensor:
    # K[p, q] = ¼ Σ_{a,b ∈ {0,1}} W[p − a, q − b]: the kernel of conv-then-2×2-average, whose
    # output pixel (i, j) averages the conv outputs (2i + a, 2j + b). One zero-padded copy and
    # four shifted views of it (the terms in the order a, b = 00, 01, 10, 11): fewer copies on
    # every energy call than four separately padded kernels, the same sums bit for bit.
    p = F.pad(w, (1, 1, 1, 1))
    return 0.25 * (p[..., 1:, 1:] + p[..., 1:, :-1] + p[..., :-1, 1:] + p[..., :-1, :-1])


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
    one-sided and initialised at N(0, 1e-10²), so the block starts as its shortcut.

    The pool is distributed over the sum and folded into the branch's last conv and the
    shortcut conv (:meth:`SNConv2d.pooled`); an identity shortcut is pooled directly.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = SNConv2d(cin, cin)
        self.conv2 = SNConv2d(cin, cout, one_sided=True, std=1e-10)
        self.shortcut: nn.Module = SNConv2d(cin, cout) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        branch = self.conv2.pooled(F.leaky_relu(self.conv1(x), _SLOPE))
        if isinstance(self.shortcut, SNConv2d):
            shortcut = self.shortcut.pooled(x)
        else:
            shortcut = F.avg_pool2d(self.shortcut(x), 2)
        return F.leaky_relu(shortcut + branch, _SLOPE)


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
        if x.device.type == "cpu":
            x = channels_last(x)
        x = F.leaky_relu(self.stem(x), _SLOPE)
        x = self.blocks(x)
        # The head in its parameters' precision (fp32) under autocast: a bf16 energy (3
        # significant digits) would swamp the small differences E(t+) - E(t~) that the losses
        # are made of. A no-op without autocast.
        x = F.relu(x).to(self.head.weight.dtype).mean(dim=(2, 3))
        with torch.autocast(x.device.type, enabled=False):
            return self.head(x).squeeze(-1)


def build(options: ConvSNEnergyOptions, **_: Any) -> ConvSNEnergy:
    """Factory of the ``conv_sn`` energy."""
    return ConvSNEnergy(
        in_channels=options.in_channels,
        width=options.width,
        blocks=options.blocks,
        downsample=options.downsample,
    )
