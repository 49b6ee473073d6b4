"""Memory layout helpers shared by the built-in networks."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["channels_last"]


class _ChannelsLast(torch.autograd.Function):
    """Channels-last copy whose backward hands the gradient back contiguous (NCHW), so that
    callers (a Langevin update, the student's backward) see the layout they gave."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad.contiguous()


def channels_last(x: Tensor) -> Tensor:
    """``x`` channels-last (oneDNN's faster layout on the CPU), its gradient NCHW."""
    return _ChannelsLast.apply(x)
