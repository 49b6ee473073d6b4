"""The ``none`` MI term: the baseline alone."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from vemkit_plugins.mi.base import MITerm
from vemkit_plugins.mi.options import NoMIOptions

__all__ = ["NoMI", "build"]


class NoMI(MITerm):
    """Adds nothing: ``student_term`` is a zero on ``s``'s device (no parameters)."""

    def __init__(self) -> None:
        super().__init__(weight=0.0)

    def student_term(
        self, t_pos: Tensor, s: Tensor, t_neg: Tensor | None = None, *, index: Tensor | None = None
    ) -> Tensor:
        return torch.zeros((), device=s.device, dtype=s.dtype)


def build(options: NoMIOptions, **_: Any) -> NoMI:
    """Factory of the ``none`` MI term."""
    return NoMI()
