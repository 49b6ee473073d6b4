"""Mobile ResNet generators of GAN-Compression and OMGD.

The CycleGAN ResNet layout (``model.0``–``model.27`` for 9 blocks) with depthwise-separable
residual blocks. One class covers the full network (``mobile_resnet``, every group ngf wide)
and GAN-Compression's channel-pruned sub-networks (``sub_mobile_resnet``); the layouts of the
official ``MobileResnetGenerator`` and ``SubMobileResnetGenerator`` are the same modules with
different widths. ``mobile_resnet_deepest`` is OMGD's deeper ResNet teacher.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vemkit_plugins.archs._blocks import (
    ExpansionResnetBlock,
    MobileResnetBlock,
    conv_bias,
    init_weights,
    norm_factory,
)


def _up(cin: int, cout: int, bias: bool) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=bias)


class MobileResnetGenerator(nn.Module):
    """Stem → two stride-2 downs → separable residual trunk → two transposed-conv ups → tanh.

    ``widths`` = (stem, down 1, trunk, up 1, up 2) output channels; ``hidden`` = the inner width
    of each residual block (its length is the number of blocks). ``clamp_input`` clamps the input
    to [−1, 1] first, as GAN-Compression's sub-networks do.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        widths: Sequence[int],
        hidden: Sequence[int],
        *,
        norm: str = "instance",
        dropout_rate: float = 0.0,
        padding_type: str = "reflect",
        clamp_input: bool = False,
    ) -> None:
        super().__init__()
        stem, down1, trunk, up1, up2 = widths
        self.clamp_input = clamp_input
        make_norm = norm_factory(norm)
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, stem, 7, bias=bias),
            make_norm(stem),
            nn.ReLU(True),
            nn.Conv2d(stem, down1, 3, stride=2, padding=1, bias=bias),
            make_norm(down1),
            nn.ReLU(True),
            nn.Conv2d(down1, trunk, 3, stride=2, padding=1, bias=bias),
            make_norm(trunk),
            nn.ReLU(True),
        ]
        layers += [
            MobileResnetBlock(
                trunk, h, norm=norm, dropout_rate=dropout_rate, padding_type=padding_type
            )
            for h in hidden
        ]
        layers += [_up(trunk, up1, bias), make_norm(up1), nn.ReLU(True)]
        layers += [_up(up1, up2, bias), make_norm(up2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(up2, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.clamp_input:
            x = x.clamp(-1, 1)
        return self.model(x)


def sub_network_widths(config: Sequence[int]) -> tuple[list[int], list[int]]:
    """(widths, hidden) of a GAN-Compression channel config (8 numbers, or 6 legacy ones).

    8: (stem c0, downs 2·c1 and 4·c2, blocks 1–3 / 4–6 / 7–9 hidden 4·c3 / 4·c4 / 4·c5, ups 2·c6
    and c7); 6: (c0, 2·c1, 4·c2, all blocks 4·c3, ups 2·c4 and c5).
    """
    c = list(config)
    if len(c) == 8:
        hidden = [4 * c[3 + i // 3] for i in range(9)]
        ups = (2 * c[6], c[7])
    elif len(c) == 6:
        hidden = [4 * c[3]] * 9
        ups = (2 * c[4], c[5])
    else:
        raise ValueError(f"a channel config has 8 (or 6) numbers, got {len(c)}")
    return [c[0], 2 * c[1], 4 * c[2], *ups], hidden


class MobileResnetDeepestGenerator(nn.Module):
    """OMGD's ``MobileResnetDeepestGenerator``.

    [pad, 7×7 conv, norm, ReLU,
     (3×3 s2 conv, norm, ReLU, expansion block, 3×3 conv, norm, ReLU) ×2,
     mobile block ×(n//2), expansion block ×2, mobile block ×(n − n//2),
     (transposed conv, norm, ReLU, expansion block, 3×3 conv, norm, ReLU) ×2, pad, 7×7 conv, tanh]
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 16,
        n_blocks: int = 9,
        *,
        norm: str = "instance",
        dropout_rate: float = 0.0,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        make_norm = norm_factory(norm)
        bias = conv_bias(norm)
        block_args: dict[str, Any] = {
            "norm": norm,
            "dropout_rate": dropout_rate,
            "padding_type": padding_type,
        }

        def refine(c: int) -> list[nn.Module]:
            return [
                ExpansionResnetBlock(c, **block_args),
                nn.Conv2d(c, c, 3, padding=1, bias=bias),
                make_norm(c),
                nn.ReLU(True),
            ]

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, 7, bias=bias),
            make_norm(ngf),
            nn.ReLU(True),
        ]
        for mult in (1, 2):
            c = 2 * mult * ngf
            layers += [
                nn.Conv2d(mult * ngf, c, 3, stride=2, padding=1, bias=bias),
                make_norm(c),
                nn.ReLU(True),
                *refine(c),
            ]
        trunk = 4 * ngf
        first = n_blocks // 2
        layers += [MobileResnetBlock(trunk, trunk, **block_args) for _ in range(first)]
        layers += [ExpansionResnetBlock(trunk, **block_args) for _ in range(2)]
        layers += [MobileResnetBlock(trunk, trunk, **block_args) for _ in range(n_blocks - first)]
        for mult in (4, 2):
            c = mult * ngf // 2
            layers += [_up(mult * ngf, c, bias), make_norm(c), nn.ReLU(True), *refine(c)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build(options: Any, **context: Any) -> MobileResnetGenerator:
    """Factory of ``arch: mobile_resnet`` (:class:`~.options.MobileResnetOptions`)."""
    ngf = options.ngf
    net = MobileResnetGenerator(
        options.input_nc,
        options.output_nc,
        (ngf, 2 * ngf, 4 * ngf, 2 * ngf, ngf),
        [4 * ngf] * options.n_blocks,
        norm=options.norm,
        dropout_rate=options.dropout_rate,
        padding_type=options.padding_type,
    )
    return init_weights(net, options.init_type, options.init_gain)


def build_sub(options: Any, **context: Any) -> MobileResnetGenerator:
    """Factory of ``arch: sub_mobile_resnet`` (:class:`~.options.SubMobileResnetOptions`)."""
    widths, hidden = sub_network_widths(options.config)
    net = MobileResnetGenerator(
        options.input_nc,
        options.output_nc,
        widths,
        hidden,
        norm=options.norm,
        dropout_rate=options.dropout_rate,
        padding_type=options.padding_type,
        clamp_input=True,
    )
    return init_weights(net, options.init_type, options.init_gain)


def build_deepest(options: Any, **context: Any) -> MobileResnetDeepestGenerator:
    """Factory of ``arch: mobile_resnet_deepest`` (``MobileResnetDeepestOptions``)."""
    net = MobileResnetDeepestGenerator(
        options.input_nc,
        options.output_nc,
        options.ngf,
        options.n_blocks,
        norm=options.norm,
        dropout_rate=options.dropout_rate,
        padding_type=options.padding_type,
    )
    return init_weights(net, options.init_type, options.init_gain)
