"""VEM: mutual-information distillation with a conditional energy-based model.

The student maximises the Barber–Agakov bound ``Ĩ = H(T) + E[log q(t|s)]`` with
``q(t|s) = exp(−E(t, s)) / Z(s)``. ``Z`` is never evaluated; the negatives of a sampler stand in
for it (paper eqs. 6 and 9):

* energy step (θ):   mean E(t⁺, s̄) − mean E(t̃, s̄) + α·mean(E(t⁺, s̄)² + E(t̃, s̄)²), s̄ detached;
* student term (φs): λ·[mean E(t⁺, s) − mean E(t̃, s)], θ frozen, t̃ reused from the energy step,
  gradient through the conditioning s only.

Usable in any training loop::

    from vemkit_plugins.mi.vem import VEM
    vem = VEM.default(channels=3, width=8)       # authors' energy net + the paper's sampler
    t_neg, diag = vem.fit(target, student_out)   # one energy update (Adam 1e-4, betas (0, .999))
    loss = loss_algo + vem.student_term(target, student_out, t_neg)
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins._precision import bf16_autocast
from vemkit_plugins.mi.base import MITerm
from vemkit_plugins.mi.options import VEMOptions
from vemkit_plugins.samplers.langevin import Langevin, frozen

__all__ = ["BF16_TOLERANCE", "DRIFT_TOLERANCE", "VEM", "build"]

BF16_TOLERANCE = 2.0**-8
"""The largest relative difference ``|a − b| / max(|a|, |b|)`` that a lower-precision *default*
may cause in any loss term against the fp32 computation in the first iteration of a run (the same
weights, batch and sampler noise: the precision's own effect): 2⁻⁸ ≈ 0.39 %, the spacing of bf16
numbers, so a default moves a loss by less than one bf16 rounding of it. Later iterations add
the drift of training on slightly different gradients, bounded by ``DRIFT_TOLERANCE``.

``autocast: sampler`` stays within both (``benchmarks/throughput.py --losses``,
``tests/test_mi_precision.py``): its losses differ from fp32 by under half of what another draw
of the sampler's own noise changes (a tenth on an AMD EPYC with AVX512-BF16, 0.3 on an Intel
Xeon with AMX), its samples and student gradient by under a tenth and a fifth. ``autocast: all``
does not (the energy's loss moved by 1.7 % in the first iteration of a pix2pix OMGD+VEM run at
64²), so it is an option."""

DRIFT_TOLERANCE = 2e-2
"""The bound on the same relative difference over the first few iterations (3 in the test, 5 in
the benchmark's measurement): 2 %. Training on slightly different gradients compounds: the VEM
term (a difference of two energies, so its relative error is inflated) drifted by 1.05 % over 3
iterations of the test's tiny run on an Intel Xeon (AMX), under 1 % on an AMD EPYC (in one step,
another draw of the sampler's noise moves the VEM losses about 3x more than bf16 does)."""


Autocast = Literal["none", "sampler", "all"]
AUTOCASTS = ("none", "sampler", "all")


class VEM(MITerm):
    """The VEM term around an energy network ``E(t, s) -> Tensor[N]`` and a sampler
    ``sampler(energy, s, positive=, teacher=) -> (negatives, diagnostics)``.

    ``state_dict()`` holds the energy's weights and the sampler's replay buffer (if any); the
    energy optimizer is the caller's (``fit`` keeps a default one in ``self.optimizer``).
    """

    has_energy_phase = True

    def __init__(
        self,
        energy: nn.Module,
        sampler: nn.Module | None = None,
        *,
        weight: float = 0.1,
        alpha: float = 0.05,
        positive: str = "target",
        autocast: Autocast = "sampler",
    ) -> None:
        super().__init__(weight=weight, positive=positive)
        if autocast not in AUTOCASTS:
            raise VemkitError(
                f"mi vem: autocast must be one of {', '.join(AUTOCASTS)}, got {autocast!r}"
            )
        self.energy = energy
        self.sampler = sampler if sampler is not None else Langevin()
        self.alpha = float(alpha)
        self.autocast = autocast
        self.optimizer: torch.optim.Optimizer | None = None

    def precision(self, like: Tensor, *, sampler: bool) -> contextlib.AbstractContextManager[Any]:
        """The context of an energy pass of the sampler (``sampler=True``) or of the losses:
        bfloat16 autocast on ``like``'s device where ``autocast`` says so and the device has
        bf16 units, else nothing (the caller's precision)."""
        wanted = self.autocast == "all" or (sampler and self.autocast == "sampler")
        return bf16_autocast(like.device, wanted)

    @classmethod
    def default(
        cls,
        channels: int = 3,
        width: int = 32,
        blocks: int = 7,
        downsample: int = 1,
        **kwargs: Any,
    ) -> VEM:
        """The authors' setting: the ``conv_sn`` energy and the paper's Langevin sampler
        (K 10, η 100, σ 0.005, start at the student output); ``kwargs`` go to :class:`VEM`."""
        from vemkit_plugins.energies.conv_sn import ConvSNEnergy

        energy = ConvSNEnergy(channels, width, blocks, downsample)
        return cls(energy, Langevin(), **kwargs)

    # -- the energy phase -----------------------------------------------------------------
    def energies(self, t_pos: Tensor, t_neg: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """``E(t⁺, s)`` and ``E(t̃, s)`` from one forward over the concatenated batch (the energy
        net has no batch statistics, so this equals two separate calls at lower cost)."""
        n = len(t_pos)
        with self.precision(s, sampler=False):
            e = self.energy(torch.cat([t_pos, t_neg]), torch.cat([s, s]))
        if e.dtype in (torch.bfloat16, torch.float16):
            e = e.float()  # energies (and so the losses) in fp32 whatever the passes ran in
        return e[:n], e[n:]

    def sample(
        self, t_pos: Tensor, s: Tensor, *, teacher: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Negatives t̃ ~ q(·|s) from the sampler (detached), with its diagnostics."""
        if teacher is None and self.positive == "teacher":
            teacher = t_pos
        # Under bf16 autocast the chain's samples and steps stay fp32 (the gradient of a
        # cast comes back in the input's dtype); only the energy's passes run in bf16.
        with self.precision(s, sampler=True):
            return self.sampler(self.energy, s.detach(), positive=t_pos.detach(), teacher=teacher)

    def energy_loss(
        self, t_pos: Tensor, s: Tensor, *, teacher: Tensor | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """The energy's loss on a batch: ``(loss, negatives, diagnostics)``.

        ``t_pos``: positives t⁺ (real target or teacher output), ``s``: the student output
        (detached here), ``teacher``: the teacher output when the sampler starts from it.
        Call ``loss.backward()`` and step the energy optimizer yourself, or use
        :meth:`energy_step`. Diagnostics are detached 0-dim tensors.
        """
        t_pos, s = t_pos.detach(), s.detach()
        t_neg, sampler_diag = self.sample(t_pos, s, teacher=teacher)
        e_pos, e_neg = self.energies(t_pos, t_neg, s)
        contrast = e_pos.mean() - e_neg.mean()
        loss = contrast + self.alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        diag = {
            "loss": loss.detach(),
            "energy_pos": e_pos.detach().mean(),
            "energy_neg": e_neg.detach().mean(),
            **{f"sampler_{k}": v for k, v in sampler_diag.items()},
        }
        return loss, t_neg, diag

    def energy_step(
        self,
        t_pos: Tensor,
        s: Tensor,
        optimizer: torch.optim.Optimizer,
        *,
        teacher: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One energy update with ``optimizer``; returns ``(negatives, diagnostics)`` so that the
        student term can reuse the negatives (no second chain)."""
        loss, t_neg, diag = self.energy_loss(t_pos, s, teacher=teacher)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return t_neg, diag

    def default_optimizer(self) -> torch.optim.Optimizer:
        """The authors' energy optimizer: Adam, lr 1e-4, betas (0, 0.999)."""
        return torch.optim.Adam(self.energy.parameters(), lr=1e-4, betas=(0.0, 0.999))

    def fit(
        self,
        t_pos: Tensor,
        s: Tensor,
        *,
        steps: int = 1,
        optimizer: torch.optim.Optimizer | None = None,
        teacher: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``steps`` energy updates on one batch, for use in a hand-written loop; the optimizer
        defaults to :meth:`default_optimizer`, created once and kept in ``self.optimizer``.
        Returns the last ``(negatives, diagnostics)``."""
        if steps < 1:
            raise VemkitError(f"VEM.fit: steps must be at least 1, got {steps}")
        if optimizer is None:
            if self.optimizer is None:
                self.optimizer = self.default_optimizer()
            optimizer = self.optimizer
        for _ in range(steps):
            t_neg, diag = self.energy_step(t_pos, s, optimizer, teacher=teacher)
        return t_neg, diag

    # -- the student phase ----------------------------------------------------------------
    def student_term(
        self,
        t_pos: Tensor,
        s: Tensor,
        t_neg: Tensor | None = None,
        *,
        index: Tensor | None = None,
        teacher: Tensor | None = None,
    ) -> Tensor:
        """``λ·[mean E(t⁺, s) − mean E(t̃, s)]`` with the energy frozen: add it to the student
        loss; its gradient reaches the student through ``s`` only. ``t_neg`` should be the
        negatives of the energy step (the paper reuses them); if omitted, they are drawn now."""
        t_pos = t_pos.detach()
        if t_neg is None:
            t_neg, _ = self.sample(t_pos, s, teacher=teacher)
        with frozen(self.energy):
            e_pos, e_neg = self.energies(t_pos, t_neg.detach(), s)
        return self.weight * (e_pos.mean() - e_neg.mean())


def build(options: VEMOptions, **context: Any) -> VEM:
    """Factory of the ``vem`` MI term. The nested energy and sampler are built with the
    ``build(kind, config)`` callable of the context (the process-wide registry if absent); the
    energy optimizer (``options.optimizer``) is left to the caller, who owns the phases."""
    registry_build = context.get("build")
    if registry_build is None:
        from vemkit import registry

        registry_build = registry.build
    energy = registry_build("energy", options.energy)
    sampler = registry_build("sampler", options.sampler)
    return VEM(
        energy,
        sampler,
        weight=options.weight,
        alpha=options.alpha,
        positive=options.positive,
        autocast=options.autocast,
    )
