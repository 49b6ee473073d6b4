"""CycleGAN ResNet generator (Johnson et al.), with the official module layout.

``model`` = [pad, 7×7 conv, norm, ReLU, (3×3 s2 conv, norm, ReLU) ×2, n_blocks residual blocks,
(3×3 s2 transposed conv, norm, ReLU) ×2, pad, 7×7 conv, tanh]; for 9 blocks the blocks are
``model.10``–``model.18`` and the head conv is ``model.26``, as in pytorch-CycleGAN-and-pix2pix.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vemkit_plugins.archs._blocks import conv_bias, init_weights, norm_factory, padding


class ResnetBlock(nn.Module):
    """``x + [pad, 3×3 conv, norm, ReLU, (Dropout 0.5,) pad, 3×3 conv, norm](x)``.

    As in the official code the Dropout module exists only when used, so it shifts the index
    of the second conv (``conv_block.5`` without, ``conv_block.6`` with dropout).
    """

    def __init__(self, dim: int, *, norm: str, use_dropout: bool, padding_type: str) -> None:
        super().__init__()
        make_norm = norm_factory(norm)
        bias = conv_bias(norm)
        pad1, p1 = padding(padding_type, 1)
        pad2, p2 = padding(padding_type, 1)
        layers: list[nn.Module] = [
            *pad1,
            nn.Conv2d(dim, dim, 3, padding=p1, bias=bias),
            make_norm(dim),
            nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [*pad2, nn.Conv2d(dim, dim, 3, padding=p2, bias=bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The CycleGAN generator: two downs to 4·ngf, residual trunk, two transposed-conv ups."""

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        *,
        norm: str = "instance",
        use_dropout: bool = False,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        make_norm = norm_factory(norm)
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, 7, bias=bias),
            make_norm(ngf),
            nn.ReLU(True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                make_norm(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [
            ResnetBlock(4 * ngf, norm=norm, use_dropout=use_dropout, padding_type=padding_type)
            for _ in range(n_blocks)
        ]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult,
                    ngf * mult // 2,
                    3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                    bias=bias,
                ),
                make_norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        # The output conv is always biased: no norm follows it.
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build(options: Any, **context: Any) -> ResnetGenerator:
    """Factory of ``arch: resnet`` (:class:`~vemkit_plugins.archs.resnet_options.ResnetOptions`)."""
    net = ResnetGenerator(
        options.input_nc,
        options.output_nc,
        options.ngf,
        options.n_blocks,
        norm=options.norm,
        use_dropout=options.use_dropout,
        padding_type=options.padding_type,
    )
    return init_weights(net, options.init_type, options.init_gain)
