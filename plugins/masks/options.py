"""Options of the built-in content masks (torch-free: ``vemkit validate`` imports this module)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from vemkit.options import Options


class WholeMaskOptions(Options):
    """The whole image is content: every pixel is 1. The offline fallback that turns CAGC's
    content-aware score and distillation into their content-agnostic forms (a report names it
    ``whole image``)."""


class SaliencyMaskOptions(Options):
    """Spectral-residual saliency (Hou & Zhang, CVPR 2007), thresholded: an offline,
    weight-free stand-in for a face parser on centred, single-object images.

    The grey image is resized to ``work_size``; its log-amplitude spectrum minus the
    ``avg_kernel``-mean-filtered one (the spectral residual), recombined with the phase and
    transformed back, squared and Gaussian-blurred, is the saliency map; pixels above
    ``threshold`` × its mean are content (Hou & Zhang's object map uses 3 × the mean)."""

    work_size: Annotated[int, Field(ge=8)] = 64
    """Side of the square working resolution of the spectrum (Hou & Zhang: 64 px)."""

    avg_kernel: Annotated[int, Field(ge=1)] = 3
    """Side of the mean filter that smooths the log-amplitude spectrum (Hou & Zhang: 3)."""

    sigma: Annotated[float, Field(gt=0)] = 3.0
    """Standard deviation, in working-resolution pixels, of the Gaussian blur of the map."""

    threshold: Annotated[float, Field(gt=0)] = 3.0
    """A pixel is content when its saliency exceeds this multiple of the image's mean."""


class FaceParserMaskOptions(Options):
    """CAGC's face mask: a BiSeNet face parser (ResNet-18 context path, 19 CelebAMask-HQ
    classes, zllackey/face-parsing.PyTorch as vendored by CAGC) run on the image resized to
    ``parse_size`` with ImageNet normalisation; pixels whose class is not in ``exclude`` are
    content, the mask is resized back bilinearly and thresholded at 0.5 (CAGC's
    ``Get_Masked_Tensor``). Needs the parser's weights (``79999_iter.pth``), which the user
    supplies; nothing is downloaded."""

    weights: str
    """Path to the BiSeNet state dict (``79999_iter.pth`` of face-parsing.PyTorch / CAGC's
    ``Util/face_parsing/pretrained_model``), read with ``torch.load(weights_only=True)``."""

    exclude: list[Annotated[int, Field(ge=0, le=18)]] = [0, 16]
    """Parser classes that are not content (CAGC: 0 background and 16 cloth)."""

    parse_size: Annotated[int, Field(ge=32)] = 512
    """Side the image is resized to before parsing (CAGC: 512)."""
