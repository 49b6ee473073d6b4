"""A small MLP energy for low-dimensional toys, tests and known-answer checks."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vemkit_plugins.energies.options import MLPEnergyOptions

__all__ = ["MLPEnergy", "build"]


class MLPEnergy(nn.Module):
    """``E(t, s) = mlp([flatten(t), flatten(s)])``: ``2·dims → hidden ×depth → 1`` with SiLU."""

    def __init__(self, dims: int = 1, hidden: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.dims = dims
        layers: list[nn.Module] = []
        width = 2 * dims
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, t: Tensor, s: Tensor) -> Tensor:
        x = torch.cat([t.flatten(1), s.flatten(1)], dim=1)
        return self.net(x).squeeze(-1)


def build(options: MLPEnergyOptions, **_: Any) -> MLPEnergy:
    """Factory of the ``mlp`` energy."""
    return MLPEnergy(options.dims, options.hidden, options.depth)
