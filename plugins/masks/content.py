"""The built-in content masks: images in [-1, 1] (N, 3, H, W) → masks in {0, 1} (N, 1, H, W).

Every mask is an ``nn.Module`` without trainable parameters, evaluated without gradients, with
a ``label`` that a report prints next to the numbers it produced.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.masks.options import (
    FaceParserMaskOptions,
    SaliencyMaskOptions,
    WholeMaskOptions,
)

__all__ = [
    "ContentMask",
    "FaceParserMask",
    "SaliencyMask",
    "WholeMask",
    "build_face_parser",
    "build_saliency",
    "build_whole",
    "spectral_residual_saliency",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ContentMask(nn.Module):
    """Base class: ``mask(images)`` with images in [-1, 1] returns a float {0, 1} mask."""

    label = "content mask"

    def _check(self, images: Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise VemkitError(
                f"{type(self).__name__}: expected RGB images (N, 3, H, W), got "
                f"{tuple(images.shape)}"
            )

    def forward(self, images: Tensor) -> Tensor:
        raise NotImplementedError


class WholeMask(ContentMask):
    label = "whole image"

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        self._check(images)
        n, _, h, w = images.shape
        return images.new_ones(n, 1, h, w)


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def spectral_residual_saliency(
    images: Tensor, work_size: int = 64, avg_kernel: int = 3, sigma: float = 3.0
) -> Tensor:
    """Hou & Zhang's spectral-residual saliency of images in [-1, 1]: (N, 1, H, W), ≥ 0.

    ``S = G_σ * |F⁻¹[exp(R + iP)]|²`` with ``R = log|F| − h * log|F|`` (h: the
    ``avg_kernel``² mean filter), ``P`` the phase of the grey image's spectrum at ``work_size``.
    """
    h, w = images.shape[2:]
    grey = ((images.float() + 1) / 2).mean(1, keepdim=True)
    small = F.interpolate(grey, (work_size, work_size), mode="bilinear", antialias=True)
    spectrum = torch.fft.fft2(small)
    log_amp = torch.log(spectrum.abs().clamp_min(1e-8))
    phase = torch.angle(spectrum)
    pad = avg_kernel // 2
    # the spectrum is periodic: wrap around when smoothing it
    padded = F.pad(log_amp, (pad, avg_kernel - 1 - pad, pad, avg_kernel - 1 - pad), "circular")
    residual = log_amp - F.avg_pool2d(padded, avg_kernel, stride=1)
    saliency = torch.fft.ifft2(torch.exp(torch.complex(residual, phase))).abs().pow(2)
    k = _gaussian_kernel(sigma, saliency.dtype, saliency.device)
    r = k.numel() // 2
    saliency = F.pad(saliency, (r, r, r, r), mode="reflect" if r < work_size else "replicate")
    saliency = F.conv2d(saliency, k.view(1, 1, 1, -1))
    saliency = F.conv2d(saliency, k.view(1, 1, -1, 1))
    return F.interpolate(saliency, (h, w), mode="bilinear", align_corners=False)


class SaliencyMask(ContentMask):
    label = "spectral-residual saliency (offline fallback)"

    def __init__(self, options: SaliencyMaskOptions) -> None:
        super().__init__()
        self.options = options

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        self._check(images)
        o = self.options
        saliency = spectral_residual_saliency(images, o.work_size, o.avg_kernel, o.sigma)
        mean = saliency.mean((1, 2, 3), keepdim=True)
        return (saliency > o.threshold * mean).to(images.dtype)


class FaceParserMask(ContentMask):
    label = "BiSeNet face parser"

    def __init__(self, parser: nn.Module, options: FaceParserMaskOptions) -> None:
        super().__init__()
        self.parser = parser.eval().requires_grad_(False)
        self.exclude = tuple(options.exclude)
        self.parse_size = options.parse_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def train(self, mode: bool = True) -> FaceParserMask:
        super().train(mode)
        self.parser.eval()  # frozen BatchNorm statistics whatever the caller's mode
        return self

    def classes(self, images: Tensor) -> Tensor:
        """Parser class per pixel at ``parse_size`` (CAGC's ``Batch_Img_Parsing``)."""
        x = ((images.float() + 1) / 2).clamp(0, 1)
        x = F.interpolate(x, (self.parse_size, self.parse_size), mode="bilinear")
        return self.parser((x - self.mean) / self.std).argmax(1)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        self._check(images)
        parsing = self.classes(images)
        keep = torch.ones_like(parsing, dtype=torch.bool)
        for c in self.exclude:
            keep &= parsing != c
        # CAGC's Get_Masked_Tensor: bilinear resize of the 0/1 map, then > 0.5
        resized = F.interpolate(keep[:, None].float(), images.shape[2:], mode="bilinear")
        return (resized > 0.5).to(images.dtype)


# -- factories -------------------------------------------------------------------------------------


def build_whole(options: WholeMaskOptions, **context: object) -> WholeMask:
    return WholeMask()


def build_saliency(options: SaliencyMaskOptions, **context: object) -> SaliencyMask:
    return SaliencyMask(options)


def build_face_parser(options: FaceParserMaskOptions, **context: object) -> FaceParserMask:
    from vemkit_plugins.masks.bisenet import BiSeNet

    path = Path(options.weights)
    if not path.is_file():
        raise VemkitError(
            f"mask face_parser: weights file {str(path)!r} not found. The BiSeNet face parser "
            "needs its released weights (79999_iter.pth of zllackey/face-parsing.PyTorch, also "
            "in CAGC's Util/face_parsing/pretrained_model), which vemkit does not download; "
            "give their path in `weights`, or use the offline `saliency` or `whole` mask"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means "not a plain state dict"
        raise VemkitError(f"mask face_parser: cannot read {path} as weights: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise VemkitError(f"mask face_parser: {path} does not hold a state dict")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    parser = BiSeNet(n_classes=19)
    try:
        parser.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise VemkitError(
            f"mask face_parser: {path} is not a 19-class BiSeNet face parser ({first})"
        ) from None
    return FaceParserMask(parser, options)
