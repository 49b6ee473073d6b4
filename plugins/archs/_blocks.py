"""Building blocks shared by the image-to-image architectures.

Module lists and indices follow the official pix2pix / CycleGAN / OMGD / GAN-Compression nets so
that their checkpoints load unchanged and distillation taps (``model.9``, ...) name the same
layers; therefore padding, activation and dropout modules sit exactly where the originals put
them, and every layer is a plain ``nn.Conv2d`` / ``nn.ConvTranspose2d`` that hook-based MAC
counters see.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

NormFactory = Callable[[int], nn.Module]


def norm_factory(norm: str) -> NormFactory:
    """``channels -> module`` for a norm name of :data:`ImageNorm`.

    ``none`` gives ``nn.Identity`` so that module indices do not shift (as in the official
    code).
    """
    if norm == "batch":
        return lambda c: nn.BatchNorm2d(c, affine=True, track_running_stats=True)
    if norm == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda c: nn.Identity()
    raise ValueError(f"unknown norm {norm!r}")


def conv_bias(norm: str) -> bool:
    """Whether convs followed by ``norm`` carry a bias.

    BatchNorm's shift makes a bias redundant, so the official nets drop it; with instance norm
    (no affine) they keep it. With no norm at all we keep it too (the official code drops it
    there as well, which leaves those convs without any offset; no published model uses it).
    """
    return norm != "batch"


def padding(padding_type: str, amount: int) -> tuple[list[nn.Module], int]:
    """(padding modules to insert, padding to give the conv) for ``padding_type``."""
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(amount)], 0
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(amount)], 0
    if padding_type == "zero":
        return [], amount
    raise ValueError(f"unknown padding type {padding_type!r}")


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise ``net`` in place as pytorch-CycleGAN-and-pix2pix does; returns ``net``.

    Conv / linear weights: N(0, gain), xavier-normal(gain), kaiming-normal (fan-in) or
    orthogonal(gain); their biases 0. BatchNorm: scale N(1, gain), shift 0. ``default`` leaves
    PyTorch's initialisation.
    """
    if init_type == "default":
        return net
    for module in net.modules():
        if isinstance(module, nn.modules.conv._ConvNd | nn.Linear):
            weight = module.weight
            if init_type == "normal":
                nn.init.normal_(weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(weight, gain=gain)
            else:
                raise ValueError(f"unknown init type {init_type!r}")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d) and module.affine:
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return net


class SeparableConv2d(nn.Module):
    """Depthwise k×k conv (bias) → InstanceNorm (no affine) → pointwise 1×1 conv (bias).

    The inner norm is always InstanceNorm, whatever the network's norm, as in GAN-Compression
    and OMGD; the three layers live in ``self.conv`` (``conv.0``, ``conv.1``, ``conv.2``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 0
    ) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(
                in_channels,
                in_channels,
                kernel_size,
                padding=padding,
                groups=in_channels,
                bias=True,
            ),
            nn.InstanceNorm2d(in_channels, affine=False, track_running_stats=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class MobileResnetBlock(nn.Module):
    """Residual block of separable convs: ``x + [pad, Sep(c→h), norm, ReLU, Dropout, pad,
    Sep(h→c), norm](x)``.

    ``hidden`` (h) differs from ``channels`` (c) only in GAN-Compression sub-networks. The
    Dropout module is always present (rate 0 by default) because its index is part of the
    official layout (``conv_block.6`` is the second separable conv with reflect padding).
    """

    def __init__(
        self,
        channels: int,
        hidden: int,
        *,
        norm: str,
        dropout_rate: float = 0.0,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        make_norm = norm_factory(norm)
        pad1, p1 = padding(padding_type, 1)
        pad2, p2 = padding(padding_type, 1)
        self.conv_block = nn.Sequential(
            *pad1,
            SeparableConv2d(channels, hidden, 3, padding=p1),
            make_norm(hidden),
            nn.ReLU(True),
            nn.Dropout(dropout_rate),
            *pad2,
            SeparableConv2d(hidden, channels, 3, padding=p2),
            make_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ExpansionResnetBlock(nn.Module):
    """OMGD's bottleneck residual block of the "deepest" teachers.

    ``x + [pad, 1×1 c→4c, norm, ReLU, 3×3 4c→4c, norm, ReLU, 1×1 4c→c, norm, ReLU, Dropout,
    pad, 3×3 c→c, norm](x)``. The first padding precedes the 1×1 conv (so the 3×3 conv sees the
    padded border), exactly as in OMGD; the spatial size is preserved.
    """

    def __init__(
        self,
        channels: int,
        *,
        norm: str,
        dropout_rate: float = 0.0,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        make_norm = norm_factory(norm)
        bias = conv_bias(norm)
        wide = 4 * channels
        pad1, p1 = padding(padding_type, 1)
        pad2, p2 = padding(padding_type, 1)
        self.conv_block = nn.Sequential(
            *pad1,
            nn.Conv2d(channels, wide, 1, bias=bias),
            make_norm(wide),
            nn.ReLU(True),
            nn.Conv2d(wide, wide, 3, padding=p1, bias=bias),
            make_norm(wide),
            nn.ReLU(True),
            nn.Conv2d(wide, channels, 1, bias=bias),
            make_norm(channels),
            nn.ReLU(True),
            nn.Dropout(dropout_rate),
            *pad2,
            nn.Conv2d(channels, channels, 3, padding=p2, bias=bias),
            make_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)
