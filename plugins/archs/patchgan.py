"""Image discriminators: PatchGAN, its multi-scale stack, and the 1×1 PixelGAN.

``PatchGAN`` and ``PixelDiscriminator`` have the official pix2pix / CycleGAN layouts
(``model.N`` and ``net.N``), so their checkpoints load unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vemkit_plugins.archs._blocks import conv_bias, init_weights, norm_factory


class PatchGAN(nn.Module):
    """``NLayerDiscriminator``: one logit per (70×70 for n_layers 3) overlapping patch.

    The first and the last conv always have a bias (no norm follows them).
    """

    def __init__(
        self,
        input_nc: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        *,
        norm: str = "batch",
        affine: bool = False,
    ) -> None:
        super().__init__()
        make_norm = norm_factory(norm)
        if affine and norm == "instance":
            # CAT's D (--norm_affine_D): instance norms with a scale and shift; convs keep
            # their bias, as CAT's NLayerDiscriminator decides the bias by the norm's class.
            make_norm = lambda c: nn.InstanceNorm2d(c, affine=True)  # noqa: E731
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last widening conv keeps the resolution
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                make_norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MultiscalePatchGAN(nn.Module):
    """``num_D`` independent PatchGANs; scale i sees the input average-pooled i times.

    The pooling is 3×3, stride 2, padding 1 with the padding left out of the average
    (pix2pixHD). ``forward`` returns the logit maps as a list, finest scale first. The PatchGANs
    themselves are the pix2pix ones (padding 1), not pix2pixHD's (padding 2).
    """

    def __init__(
        self,
        input_nc: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        num_D: int = 2,
        *,
        norm: str = "batch",
        affine: bool = False,
    ) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            PatchGAN(input_nc, ndf, n_layers, norm=norm, affine=affine) for _ in range(num_D)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, disc in enumerate(self.scales):
            if i > 0:
                x = self.downsample(x)
            outputs.append(disc(x))
        return outputs


class PixelDiscriminator(nn.Module):
    """1×1 PatchGAN (``PixelDiscriminator``): judges every pixel on its own colour."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, *, norm: str = "batch") -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, 2 * ndf, 1, bias=bias),
            norm_factory(norm)(2 * ndf),
            nn.LeakyReLU(0.2, True),
            # The official last conv follows the norm rule too (no bias with BatchNorm).
            nn.Conv2d(2 * ndf, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build(options: Any, **context: Any) -> PatchGAN:
    """Factory of ``arch: patchgan`` (:class:`~vemkit_plugins.archs.options.PatchGANOptions`)."""
    net = PatchGAN(
        options.input_nc, options.ndf, options.n_layers, norm=options.norm, affine=options.affine
    )
    return init_weights(net, options.init_type, options.init_gain)


def build_multiscale(options: Any, **context: Any) -> MultiscalePatchGAN:
    """Factory of ``arch: multiscale_patchgan`` (:class:`~.options.MultiscalePatchGANOptions`)."""
    net = MultiscalePatchGAN(
        options.input_nc,
        options.ndf,
        options.n_layers,
        options.num_D,
        norm=options.norm,
        affine=options.affine,
    )
    return init_weights(net, options.init_type, options.init_gain)


def build_pixel(options: Any, **context: Any) -> PixelDiscriminator:
    """Factory of ``arch: pixel`` (:class:`~.options.PixelDiscriminatorOptions`)."""
    net = PixelDiscriminator(options.input_nc, options.ndf, norm=options.norm)
    return init_weights(net, options.init_type, options.init_gain)
