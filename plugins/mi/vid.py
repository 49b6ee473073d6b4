"""VID (Ahn et al., CVPR 2019): q(t|s) a fully factorised Gaussian, as an MI-term ablation.

``−log q(t|s) = Σ ½[(t − μ(s))²/σ_c² + log σ_c²] + const`` with a learned variance per channel,
σ_c² = softplus(a_c) + ε, initialised to 5; μ(s) is a 1×1-conv regressor on the student tensor,
or s itself (the VEM authors' module on output images). Its parameters are trained by the student
term together with the student. Tensors are ``[N, C, ...]`` (images) or ``[N, C]`` (vectors).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.mi.base import MITerm
from vemkit_plugins.mi.options import VIDOptions

__all__ = ["VID", "build"]


def _as_image(x: Tensor) -> Tensor:
    # [N, C] vectors become [N, C, 1, 1] so that 1×1 convs act on them as linear layers.
    return x[:, :, None, None] if x.dim() == 2 else x


class VID(MITerm):
    """The VID term; ``nll(t, s)`` is the mean Gaussian negative log-likelihood per element
    (without the ½·log 2π constant)."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        *,
        regressor: str = "conv",
        hidden: int | None = None,
        init_variance: float = 5.0,
        min_variance: float = 1e-5,
        weight: float = 0.1,
        positive: str = "target",
    ) -> None:
        super().__init__(weight=weight, positive=positive)
        if regressor == "none":
            if in_channels != out_channels:
                raise VemkitError(
                    f"mi vid: regressor 'none' uses s as the mean, so in_channels ({in_channels}) "
                    f"must equal out_channels ({out_channels}); use regressor: conv"
                )
            self.regressor: nn.Module = nn.Identity()
        elif regressor == "conv":
            mid = hidden or out_channels
            self.regressor = nn.Sequential(
                nn.Conv2d(in_channels, mid, 1),
                nn.ReLU(),
                nn.Conv2d(mid, mid, 1),
                nn.ReLU(),
                nn.Conv2d(mid, out_channels, 1),
            )
        else:
            raise VemkitError(f"mi vid: unknown regressor '{regressor}' (conv, none)")
        if init_variance <= min_variance:
            raise VemkitError("mi vid: init_variance must exceed min_variance")
        self.min_variance = min_variance
        # softplus(a) + ε = init_variance  <=>  a = log(exp(init_variance − ε) − 1)
        a0 = math.log(math.expm1(init_variance - min_variance))
        self.log_scale = nn.Parameter(torch.full((out_channels,), a0))

    def variance(self) -> Tensor:
        """σ_c², one per channel of t."""
        return F.softplus(self.log_scale) + self.min_variance

    def mean(self, s: Tensor) -> Tensor:
        """μ(s), shaped like the positives."""
        mu = self.regressor(_as_image(s))
        return mu.flatten(1) if s.dim() == 2 else mu

    def nll(self, t: Tensor, s: Tensor) -> Tensor:
        """Mean over elements of ½[(t − μ(s))²/σ_c² + log σ_c²]."""
        mu = self.mean(s)
        var = self.variance().view(1, -1, *([1] * (t.dim() - 2)))
        return 0.5 * ((t - mu).pow(2) / var + var.log()).mean()

    def student_term(
        self, t_pos: Tensor, s: Tensor, t_neg: Tensor | None = None, *, index: Tensor | None = None
    ) -> Tensor:
        """``λ·nll(t⁺, s)``: trains the student (through s) and the regressor and variances."""
        return self.weight * self.nll(t_pos.detach(), s)


def build(options: VIDOptions, **_: Any) -> VID:
    """Factory of the ``vid`` MI term."""
    return VID(
        options.in_channels,
        options.out_channels,
        regressor=options.regressor,
        hidden=options.hidden,
        init_variance=options.init_variance,
        min_variance=options.min_variance,
        weight=options.weight,
        positive=options.positive,
    )
