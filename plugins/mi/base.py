"""The common face of the mutual-information terms (``mi`` kind).

An MI term is an ``nn.Module`` whose ``student_term(t_pos, s, t_neg, index=...)`` returns the scalar
the student *adds* to its loss, ``λ·(−Ĩ(T;S) + const)``; the gradient reaches the student through
``s`` only (``t_pos`` and ``t_neg`` are detached inside). Its own parameters (``parameters()``) are
trained either

* in a separate **energy phase** before the student phase (``has_energy_phase``: VEM, through
  ``energy_step``/``energy_loss``, with its own optimizer), or
* jointly with the student by the student term itself (VID's regressor and variances, CRD's
  embedding heads): put ``term.parameters()`` in the student's optimizer.
"""

from __future__ import annotations

from torch import Tensor, nn

from vemkit_plugins.mi.hooks import MIRunHooks


class MITerm(MIRunHooks, nn.Module):
    """Base class of the MI terms; ``MIRunHooks`` makes every term a run plugin."""

    has_energy_phase: bool = False
    """True when the term trains its parameters in an energy phase of its own (VEM)."""
    needs_index: bool = False
    """True when ``student_term`` needs the data loader's sample indices (CRD's memory bank)."""

    def __init__(self, *, weight: float, positive: str = "target") -> None:
        super().__init__()
        self.weight = float(weight)
        self.positive = positive

    def student_term(
        self, t_pos: Tensor, s: Tensor, t_neg: Tensor | None = None, *, index: Tensor | None = None
    ) -> Tensor:
        """The weighted term to add to the student loss (a 0-dim tensor)."""
        raise NotImplementedError(f"{type(self).__name__} does not define student_term")
