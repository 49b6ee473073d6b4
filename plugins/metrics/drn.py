"""DRN-D-105 segmenter (Yu, Koltun & Funkhouser, "Dilated Residual Networks", CVPR 2017), the
network of the Cityscapes mIoU protocol in pix2pix / GAN-Compression / OMGD / VEM.

Built to load the public Cityscapes checkpoint (``drn-d-105_ms_cityscapes.pth``) unchanged: the
module names follow the authors' segmentation wrapper (``base.<i>`` = the DRN's first nine
children, ``seg`` = 1×1 classifier, ``up`` = fixed bilinear ×8 transposed conv). The weights
cannot be obtained offline, so this structure is checked here only by shape and parameter
count, not against the real file. Output: ``(log_softmax(up(seg(base(x)))), seg(base(x)))``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# DRN-D-105: stage widths and depths (layer0..layer8); stages 3-6 are bottleneck stages.
CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)
DEPTHS = (1, 1, 3, 4, 23, 3, 1, 1)


class Bottleneck(nn.Module):
    """ResNet bottleneck with a dilated 3×3 (expansion 4)."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


def _conv_stage(inplanes: int, planes: int, convs: int, stride: int = 1, dilation: int = 1):
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(
                inplanes if i == 0 else planes, planes, 3, stride=stride if i == 0 else 1,
                padding=dilation, dilation=dilation, bias=False,
            ),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
        ]  # fmt: skip
    return nn.Sequential(*layers)


def _bottleneck_stage(inplanes: int, planes: int, blocks: int, stride: int = 1, dilation: int = 1):
    downsample = None
    if stride != 1 or inplanes != planes * Bottleneck.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * Bottleneck.expansion),
        )
    layers = [Bottleneck(inplanes, planes, stride, dilation, downsample)]
    layers += [
        Bottleneck(planes * Bottleneck.expansion, planes, 1, dilation) for _ in range(blocks - 1)
    ]
    return nn.Sequential(*layers)


def _bilinear_upsampler(channels: int, factor: int = 8) -> nn.ConvTranspose2d:
    """Depthwise transposed conv initialised (and frozen) to bilinear ×``factor`` upsampling."""
    kernel = 2 * factor
    up = nn.ConvTranspose2d(
        channels, channels, kernel, stride=factor, padding=factor // 2, groups=channels, bias=False
    )
    f = math.ceil(kernel / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = torch.tensor([1 - abs(i / f - c) for i in range(kernel)])
    with torch.no_grad():
        up.weight.copy_((ramp[:, None] * ramp[None, :]).expand_as(up.weight))
    up.weight.requires_grad_(False)
    return up


class DRNSeg(nn.Module):
    """DRN-D-105 backbone + 1×1 classifier + bilinear ×8 upsampling."""

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        c, d = CHANNELS, DEPTHS
        layer0 = nn.Sequential(
            nn.Conv2d(3, c[0], 7, padding=3, bias=False),
            nn.BatchNorm2d(c[0]),
            nn.ReLU(inplace=True),
        )
        self.base = nn.Sequential(
            layer0,
            _conv_stage(c[0], c[0], d[0]),
            _conv_stage(c[0], c[1], d[1], stride=2),
            _bottleneck_stage(c[1], c[2], d[2], stride=2),
            _bottleneck_stage(c[2] * 4, c[3], d[3], stride=2),
            _bottleneck_stage(c[3] * 4, c[4], d[4], dilation=2),
            _bottleneck_stage(c[4] * 4, c[5], d[5], dilation=4),
            _conv_stage(c[5] * 4, c[6], d[6], dilation=2),
            _conv_stage(c[6], c[7], d[7], dilation=1),
        )
        self.seg = nn.Conv2d(c[7], num_classes, 1, bias=True)
        self.up = _bilinear_upsampler(num_classes, 8)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.seg(self.base(x))
        return torch.log_softmax(self.up(logits), dim=1), logits
