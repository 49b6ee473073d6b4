"""Any timm backbone as a conditional energy network ``E(t, s)``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.energies.options import TimmEnergyOptions

__all__ = ["TimmEnergy", "build"]


class TimmEnergy(nn.Module):
    """Wraps ``timm.create_model(name, in_chans=2·C, num_classes=1, pretrained=False)``; the pair
    is concatenated on the channel axis and the single logit is the energy, ``Tensor[N]``."""

    def __init__(
        self,
        model: str,
        in_channels: int = 3,
        *,
        allow_batchnorm: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import timm  # heavy; only when this energy is built

        try:
            self.net = timm.create_model(
                model,
                pretrained=False,
                in_chans=2 * in_channels,
                num_classes=1,
                **(model_kwargs or {}),
            )
        except (RuntimeError, TypeError, ValueError) as exc:
            raise VemkitError(f"energy timm: cannot create model '{model}': {exc}") from exc
        if not allow_batchnorm:
            bn = [
                n
                for n, m in self.net.named_modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)
            ]
            if bn:
                raise VemkitError(
                    f"energy timm: model '{model}' uses BatchNorm (e.g. '{bn[0]}'); positives and "
                    "negatives are scored in one batch, so batch statistics would couple them. "
                    "Choose a model without it (e.g. convnext_atto) or set allow_batchnorm: true"
                )

    def forward(self, t: Tensor, s: Tensor) -> Tensor:
        return self.net(torch.cat([t, s], dim=1)).reshape(-1)


def build(options: TimmEnergyOptions, **_: Any) -> TimmEnergy:
    """Factory of the ``timm`` energy."""
    return TimmEnergy(
        options.model,
        options.in_channels,
        allow_batchnorm=options.allow_batchnorm,
        model_kwargs=dict(options.model_kwargs),
    )
