"""The ``l1`` and ``mse`` loss terms: ``forward(x, y)`` is the mean distance of two tensors of
the same shape (``y`` is cast to ``x``'s dtype, so it may come from an fp32 teacher under
autocast)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.losses.options import L1LossOptions, MSELossOptions


class Distance(nn.Module):
    """Mean L1 or squared-L2 distance."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("l1", "mse"):
            raise VemkitError(f"loss: unknown distance '{kind}' (l1, mse)")
        self.kind = kind

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape:
            raise VemkitError(
                f"loss {self.kind}: the inputs differ in shape, {list(x.shape)} and {list(y.shape)}"
            )
        y = y.to(x.dtype)
        return F.l1_loss(x, y) if self.kind == "l1" else F.mse_loss(x, y)

    def extra_repr(self) -> str:
        return self.kind


def l1(options: L1LossOptions, **_: Any) -> Distance:
    """Factory of the ``l1`` loss term."""
    return Distance("l1")


def mse(options: MSELossOptions, **_: Any) -> Distance:
    """Factory of the ``mse`` loss term."""
    return Distance("mse")
