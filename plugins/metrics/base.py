"""The metric protocol and the image conversions the metrics share.

A metric object is built by its factory once per evaluation plan and used as::

    metric.reset()
    for batch in eval_batches:
        metric.update(fake, real, **batch)   # fake/real: N×C×H×W in [-1, 1]
    scores = metric.compute()                # {"fid": 31.2, "kid_mean": ...}

``higher_is_better`` maps every key ``compute`` can return to its direction (for best-checkpoint
selection and report arrows). ``compute`` does not reset; ``reset`` forgets the accumulated
images but keeps what is expensive to rebuild (feature extractors, cached statistics).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from vemkit.errors import VemkitError


class Metric:
    """Base class of the built-in metrics (duck typing is enough for third-party ones)."""

    name: str = "metric"
    higher_is_better: Mapping[str, bool] = {}

    def update(self, fake: Tensor, real: Tensor | None = None, **batch: Any) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError


def check_images(x: Tensor, what: str, metric: str) -> Tensor:
    """``x`` as a detached N×C×H×W float tensor; a clear error otherwise."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise VemkitError(f"metric '{metric}': {what} must be an N×C×H×W tensor, got {shape}")
    if not x.is_floating_point():
        raise VemkitError(f"metric '{metric}': {what} must be a float tensor in [-1, 1]")
    return x.detach()


def require_real(real: Tensor | None, fake: Tensor, metric: str) -> Tensor:
    """The ground truth of a paired metric, checked against ``fake``."""
    if real is None:
        raise VemkitError(
            f"metric '{metric}' compares generated images with their ground truth, but the eval "
            "batch has no real target (use it on paired data, or remove it from eval.metrics)"
        )
    real = check_images(real, "real", metric)
    if real.shape != fake.shape:
        raise VemkitError(
            f"metric '{metric}': generated {tuple(fake.shape)} and real {tuple(real.shape)} "
            "images differ in shape"
        )
    return real


def to_unit(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1] (clamped)."""
    return ((x + 1) * 0.5).clamp(0, 1)


def to_uint8(x: Tensor, mode: Literal["floor", "round"]) -> Tensor:
    """[-1, 1] float -> uint8 in [0, 255].

    ``floor`` is pix2pix's ``tensor2im`` (``((x + 1) / 2 * 255).astype(uint8)``, a truncation);
    ``round`` recovers exactly the uint8 values an image loader scaled by ``v / 127.5 - 1``.
    """
    y = (x.detach().float() + 1) * 127.5
    y = y.floor_() if mode == "floor" else y.round_()
    return y.clamp_(0, 255).to(torch.uint8)


def to_rgb(x: Tensor, metric: str) -> Tensor:
    """Gray images are repeated to three channels (Inception and DRN read RGB)."""
    if x.shape[1] == 3:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    raise VemkitError(f"metric '{metric}' reads RGB or gray images, got {x.shape[1]} channels")


def resize_square(x: Tensor, size: int | None) -> Tensor:
    """Bilinear (antialiased) resize of float images to size×size; a no-op when it matches."""
    if size is None or (x.shape[-2] == size and x.shape[-1] == size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
