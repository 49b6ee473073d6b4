"""pix2pix U-Net generator and OMGD's "deepest" U-Net teacher.

The nesting is the official one (``model.model.1.model.3....``): each level is a block whose
``model`` Sequential holds its down path, the next level, and its up path, so checkpoints of
pytorch-CycleGAN-and-pix2pix and OMGD load unchanged and feature taps use their module paths.

Behaviour kept on purpose: every inner level starts with an *in-place* LeakyReLU, which also
rewrites the tensor that the level concatenates as its skip connection. The skip therefore
carries LeakyReLU(x), not x, exactly as in the original networks (whose weights were trained
that way).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vemkit_plugins.archs._blocks import (
    ExpansionResnetBlock,
    conv_bias,
    init_weights,
    norm_factory,
)


class UNetBlock(nn.Module):
    """One U-Net level: ``x -> cat(x, up(sub(down(x))))`` (the outermost level skips the cat).

    ``outer`` channels enter and leave the level, ``inner`` channels are produced by its down
    conv. ``deep`` adds OMGD's two expansion residual blocks after the down path and after the
    up path (not on the innermost level).
    """

    def __init__(
        self,
        outer: int,
        inner: int,
        *,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        dropout: float = 0.0,
        deep: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        make_norm = norm_factory(norm)
        bias = conv_bias(norm)
        in_ch = outer if input_nc is None else input_nc

        def res(channels: int) -> list[nn.Module]:
            if not deep:
                return []
            return [ExpansionResnetBlock(channels, norm=norm, dropout_rate=dropout) for _ in "ab"]

        downconv = nn.Conv2d(in_ch, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            assert submodule is not None
            # The output layer always has a bias: no norm follows it.
            upconv = nn.ConvTranspose2d(2 * inner, outer, 4, stride=2, padding=1, bias=True)
            layers = [
                downconv,
                *res(inner),
                submodule,
                *res(2 * inner),
                nn.ReLU(True),
                upconv,
                nn.Tanh(),
            ]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, make_norm(outer)]
        else:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(2 * inner, outer, 4, stride=2, padding=1, bias=bias)
            layers = [
                nn.LeakyReLU(0.2, True),
                downconv,
                make_norm(inner),
                *res(inner),
                submodule,
                nn.ReLU(True),
                upconv,
                make_norm(outer),
                *res(outer),
            ]
            # Dropout comes last, so with or without it the other indices are the official ones.
            if dropout > 0 or deep:
                layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        y = self.model(x)  # model[0] activates x in place: the skip carries LeakyReLU(x)
        return torch.cat([x, y], 1)


class UNetGenerator(nn.Module):
    """U-Net with ``num_downs`` levels of widths ngf·(1, 2, 4, 8, 8, ..., 8), tanh output.

    ``dropout`` applies to the num_downs−5 innermost 8·ngf levels (pix2pix uses 0.5 there);
    ``deep`` builds OMGD's ``UnetDeepestGenerator`` (where the dropout also reaches the residual
    blocks of those levels).
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        *,
        norm: str = "batch",
        dropout: float = 0.0,
        deep: bool = False,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"a U-Net needs num_downs >= 5, got {num_downs}")
        self.num_downs = num_downs
        common: dict[str, Any] = {"norm": norm, "deep": deep}
        block = UNetBlock(8 * ngf, 8 * ngf, innermost=True, **common)
        for _ in range(num_downs - 5):
            block = UNetBlock(8 * ngf, 8 * ngf, submodule=block, dropout=dropout, **common)
        block = UNetBlock(4 * ngf, 8 * ngf, submodule=block, **common)
        block = UNetBlock(2 * ngf, 4 * ngf, submodule=block, **common)
        block = UNetBlock(ngf, 2 * ngf, submodule=block, **common)
        self.model = UNetBlock(
            output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, **common
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _make(options: Any, *, deep: bool) -> UNetGenerator:
    net = UNetGenerator(
        options.input_nc,
        options.output_nc,
        options.num_downs,
        options.ngf,
        norm=options.norm,
        dropout=0.5 if options.use_dropout else 0.0,
        deep=deep,
    )
    return init_weights(net, options.init_type, options.init_gain)


def build(options: Any, **context: Any) -> UNetGenerator:
    """Factory of ``arch: unet`` (options: :class:`~vemkit_plugins.archs.options.UNetOptions`)."""
    return _make(options, deep=False)


def build_deepest(options: Any, **context: Any) -> UNetGenerator:
    """Factory of ``arch: unet_deepest`` (:class:`~.options.UNetDeepestOptions`)."""
    return _make(options, deep=True)
