"""Perceptual distances of CAGC's distillation: LPIPS (VGG16, v0.1) and offline substitutes.

LPIPS (Zhang et al., CVPR 2018; the ``lpips`` package CAGC vendors, ``net='vgg'``,
``model='net-lin'``): images in [-1, 1] are shifted and scaled by the ``ScalingLayer``
constants, VGG16 features are taken at relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, each
feature vector is divided by its L2 norm over channels (+1e-10), the squared difference of the
two images' normalised features is weighted per channel by a learned non-negative 1×1 conv
(``lin0``..``lin4``, no bias), averaged over space and summed over the five layers: one distance
per image, shape (N, 1, 1, 1).

Offline, neither the VGG16 ImageNet weights nor the LPIPS linear weights can be obtained, so
:class:`FeatureDistance` applies the same formula with **uniform** channel weights (the mean over
channels) to another frozen extractor of :mod:`vemkit_plugins.methods.perceptual` — the FID
Inception's four stages (images smaller than 64 px upsampled to 64 first) or, in tests, a
random VGG16. Each object carries ``label``, the name a run's notes and logs give it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.methods.perceptual import (
    FrozenExtractor,
    build_extractor,
    vgg16_trunk,
    vgg16_weights_path,
)

__all__ = [
    "LPIPS",
    "LPIPS_CHANNELS",
    "FeatureDistance",
    "build_distance",
    "lpips_form",
]

LPIPS_CHANNELS = (64, 128, 256, 512, 512)
"""Channels of VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (the LPIPS taps)."""
_VGG16_TAPS = (3, 8, 15, 22, 29)
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
)  # fmt: skip
# lpips ScalingLayer: inputs in [-1, 1] are mapped to ImageNet-normalised values
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _normalise(x: Tensor, eps: float = 1e-10) -> Tensor:
    return x / (torch.sqrt((x * x).sum(dim=1, keepdim=True)) + eps)


def lpips_form(a: list[Tensor], b: list[Tensor], weights: list[Tensor] | None = None) -> Tensor:
    """Σ_layers mean_space [w · (â − b̂)²] summed over channels, with â the channel-normalised
    features; ``weights`` (one (C,) vector per layer) None = uniform 1/C (a mean over channels).
    Returns (N, 1, 1, 1) like the lpips package."""
    total: Tensor | None = None
    for i, (fa, fb) in enumerate(zip(a, b, strict=True)):
        diff = (_normalise(fa.float()) - _normalise(fb.float())).pow(2)
        if weights is None:
            per_pixel = diff.mean(dim=1, keepdim=True)
        else:
            per_pixel = (diff * weights[i].view(1, -1, 1, 1).to(diff)).sum(dim=1, keepdim=True)
        layer = per_pixel.mean(dim=(2, 3), keepdim=True)
        total = layer if total is None else total + layer
    assert total is not None
    return total


class LPIPS(FrozenExtractor):
    """LPIPS v0.1 with VGG16 (``lpips.LPIPS(net='vgg')``): ``forward(a, b)`` → (N, 1, 1, 1)."""

    label = "LPIPS (VGG16, v0.1)"

    def __init__(self, vgg: Mapping[str, Tensor], lin: Mapping[str, Tensor]) -> None:
        super().__init__()
        # torchvision's vgg16().features[:30] (up to relu5_3), not in place: LPIPS taps 5 layers
        self.features = vgg16_trunk(_VGG16_CFG, inplace=False)
        self.features.load_state_dict(dict(vgg), strict=True)
        self.lins = nn.ParameterList(
            [nn.Parameter(t.reshape(-1).float().clone(), requires_grad=False) for t in _lins(lin)]
        )
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def _features(self, x: Tensor) -> list[Tensor]:
        x = (self._layout(x) - self.shift) / self.scale
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _VGG16_TAPS:
                out.append(x)
        return out

    def forward(self, a: Tensor, b: Tensor) -> Tensor:  # type: ignore[override]
        return lpips_form(self._features(a), self._features(b), list(self.lins))


def _lins(lin: Mapping[str, Tensor]) -> list[Tensor]:
    out = []
    for i, channels in enumerate(LPIPS_CHANNELS):
        key = f"lin{i}.model.1.weight"
        value = lin.get(key)
        if value is None:
            raise VemkitError(
                f"LPIPS weights: no '{key}' (an lpips v0.1 vgg.pth holds lin0..lin4); found "
                f"{sorted(lin)[:5]}"
            )
        if value.numel() != channels:
            raise VemkitError(
                f"LPIPS weights: '{key}' has {value.numel()} channels, not {channels}"
            )
        out.append(value)
    return out


def _load(path: str | os.PathLike[str], what: str) -> dict[str, Tensor]:
    source = Path(path)
    if not source.is_file():
        raise VemkitError(f"{what}: no such file {source}")
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; all mean "unreadable"
        raise VemkitError(f"{what}: cannot read {source}: {exc}") from exc
    if not isinstance(state, Mapping):
        raise VemkitError(f"{what}: {source} is not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}


def load_lpips(
    lpips_weights: str | os.PathLike[str], vgg_weights: str | os.PathLike[str] | None = None
) -> LPIPS:
    """LPIPS-VGG from the lpips v0.1 ``vgg.pth`` and torchvision's VGG16 state dict."""
    lin = _load(lpips_weights, "method.lpips_weights")
    vgg_all = _load(vgg16_weights_path(vgg_weights), "method.vgg_weights")
    vgg = {
        k.removeprefix("features."): v
        for k, v in vgg_all.items()
        if k.startswith("features.") and int(k.split(".")[1]) < 30
    }
    try:
        return LPIPS(vgg, lin)
    except RuntimeError as exc:
        raise VemkitError(f"method.vgg_weights: not torchvision's VGG16: {exc}") from None


class FeatureDistance(nn.Module):
    """The LPIPS formula with uniform channel weights on a frozen extractor (the offline
    substitute; see the module docstring)."""

    def __init__(self, extractor: FrozenExtractor, label: str, min_size: int = 0) -> None:
        super().__init__()
        self.extractor = extractor
        self.label = label
        self.min_size = min_size

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if self.min_size and min(a.shape[-2:]) < self.min_size:
            size = (self.min_size, self.min_size)
            a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
            b = F.interpolate(b, size=size, mode="bilinear", align_corners=False)
        return lpips_form(self.extractor(a), self.extractor(b))


def build_distance(
    kind: str,
    *,
    lpips_weights: str | None = None,
    vgg_weights: str | None = None,
    seed: int = 0,
) -> nn.Module:
    """The perceptual distance ``kind`` (``auto``, ``lpips``, ``inception``, ``random_vgg16``)
    as a frozen module with a ``label``."""
    if kind == "auto":
        kind = "lpips" if lpips_weights is not None else "inception"
    if kind == "lpips":
        if lpips_weights is None:
            raise VemkitError("method.perceptual: lpips needs method.lpips_weights (vgg.pth)")
        return load_lpips(lpips_weights, vgg_weights)
    if kind == "inception":
        label = "offline substitute: LPIPS formula on FID-Inception features, uniform weights"
        return FeatureDistance(build_extractor("inception"), label, min_size=64).requires_grad_(
            False
        )
    if kind == "random_vgg16":
        label = "test substitute: LPIPS formula on a random VGG16"
        return FeatureDistance(build_extractor("random_vgg16", seed=seed), label).requires_grad_(
            False
        )
    raise VemkitError(f"method.perceptual: unknown distance {kind!r}")
