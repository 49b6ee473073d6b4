"""Short-run Langevin dynamics for a conditional energy ``E(t, s)``.

One step is ``t ← t − η·∇_t ΣE(t, s) + σ·ε``, ε ~ N(0, I): the gradient of the energy summed over
the batch (so a sample's step does not depend on the batch size), η multiplying it directly and
σ decoupled from η, as the VEM authors run it (not the ½-step form of the paper's equation (7)).
With ``σ = √(2η)`` this is the unadjusted Langevin algorithm at temperature 1, whose samples
approach ``exp(−E(t, s)) / Z(s)`` as η → 0 and K → ∞.

The energy's parameters are frozen while the chain runs (gradients are taken with respect to the
sample only, which saves their weight-gradient computations) and restored afterwards; the final
sample is detached.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.samplers.options import LangevinOptions

__all__ = ["Langevin", "build", "frozen"]

_SOURCES = ("student", "teacher", "noise", "marginal")


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Set ``requires_grad=False`` on every parameter of ``module`` for the block, then restore
    each flag as it was (a parameter the user had frozen stays frozen)."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


class Langevin(nn.Module):
    """Short-run Langevin sampler. Call as ``sampler(energy, cond, positive=..., teacher=...)``.

    With ``init="buffer"`` the sampler keeps a replay buffer of ``buffer_size`` past negatives in
    the buffers ``chains`` and ``filled``: it is part of ``state_dict()`` (exact resume) and
    belongs to this instance only (one per process under DDP).
    """

    chains: Tensor | None
    filled: Tensor | None

    def __init__(
        self,
        steps: int = 10,
        step_size: float = 100.0,
        noise_std: float | str = 0.005,
        init: str = "student",
        *,
        buffer_size: int = 1000,
        reinit_prob: float = 0.05,
        buffer_reinit: str = "student",
        clamp: tuple[float, float] | None = (-1.0, 1.0),
        clamp_every_step: bool = False,
    ) -> None:
        super().__init__()
        if init not in (*_SOURCES, "buffer"):
            raise VemkitError(f"sampler langevin: unknown init '{init}'")
        if buffer_reinit not in _SOURCES:
            raise VemkitError(f"sampler langevin: unknown buffer_reinit '{buffer_reinit}'")
        self.steps = steps
        self.step_size = step_size
        self.noise_std = noise_std
        self.init = init
        self.buffer_size = buffer_size
        self.reinit_prob = reinit_prob
        self.buffer_reinit = buffer_reinit
        self.clamp = tuple(clamp) if clamp is not None else None
        self.clamp_every_step = clamp_every_step
        self.register_buffer("chains", None)
        self.register_buffer("filled", None)

    @property
    def sigma(self) -> float:
        """The per-step noise standard deviation (``auto``: √(2η), temperature 1)."""
        if self.noise_std == "auto":
            return math.sqrt(2.0 * self.step_size)
        return float(self.noise_std)

    def extra_repr(self) -> str:
        return (
            f"steps={self.steps}, step_size={self.step_size}, noise_std={self.noise_std}, "
            f"init={self.init}, clamp={self.clamp}"
        )

    # -- chain starts -----------------------------------------------------------------------
    def _source(
        self,
        name: str,
        cond: Tensor,
        positive: Tensor | None,
        teacher: Tensor | None,
        student: Tensor | None,
    ) -> Tensor:
        if name == "student":
            return (student if student is not None else cond).detach()
        if name == "teacher":
            if teacher is None:
                raise VemkitError("sampler langevin: init 'teacher' needs the teacher output")
            return teacher.detach()
        like = positive if positive is not None else (student if student is not None else cond)
        if name == "marginal":
            if positive is None:
                raise VemkitError("sampler langevin: init 'marginal' needs the positives")
            # Positives of other samples: draws from the marginal p(t), which reach every mode
            # of a multimodal p(t|s) where a start at s would not.
            return positive.detach()[torch.randperm(len(positive), device=positive.device)]
        if self.clamp is not None:
            low, high = self.clamp
            return torch.rand_like(like).mul_(high - low).add_(low)
        return torch.randn_like(like)

    def _from_buffer(self, fresh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n, shape = len(fresh), fresh.shape[1:]
        if self.chains is None:
            self.chains = fresh.new_zeros((self.buffer_size, *shape))
            self.filled = torch.zeros(self.buffer_size, dtype=torch.bool, device=fresh.device)
        if self.chains.shape[1:] != shape:
            raise VemkitError(
                f"sampler langevin: the replay buffer holds samples of shape "
                f"{tuple(self.chains.shape[1:])}, this batch has {tuple(shape)}"
            )
        if self.chains.device != fresh.device:
            self.chains = self.chains.to(fresh.device)
            self.filled = self.filled.to(fresh.device)  # type: ignore[union-attr]
        index = torch.randint(self.buffer_size, (n,), device=fresh.device)
        restart = ~self.filled[index] | (  # type: ignore[index]
            torch.rand(n, device=fresh.device) < self.reinit_prob
        )
        mask = restart.view(n, *([1] * len(shape)))
        return torch.where(mask, fresh, self.chains[index].to(fresh.dtype)), index, restart

    # -- sampling ---------------------------------------------------------------------------
    def forward(
        self,
        energy: nn.Module,
        cond: Tensor,
        *,
        positive: Tensor | None = None,
        teacher: Tensor | None = None,
        student: Tensor | None = None,
        final_energy: bool = False,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Draw one negative per sample of ``cond``.

        ``cond`` is the conditioning s (detached here); ``student`` the chain start of
        ``init: student`` (defaults to ``cond``: in VEM s *is* the student output);
        ``positive`` the batch's positives (``marginal``, and the shape of ``noise``);
        ``teacher`` the teacher output (``init: teacher``).

        Returns ``(samples, diagnostics)``: samples detached, diagnostics detached 0-dim tensors
        (no host sync): ``energy_init`` (mean energy at the start), ``grad_norm`` (mean per-sample
        ‖∇_t E‖ over the steps), ``distance`` (mean per-sample ‖t_K − t_0‖), ``restarted``
        (buffer only) and, when ``final_energy``, ``energy_final`` (one extra forward).
        """
        if torch.is_inference_mode_enabled():
            raise VemkitError(
                "sampler langevin: sampling needs autograd; call it outside torch.inference_mode()"
            )
        cond = cond.detach()
        diag: dict[str, Tensor] = {}
        if self.init == "buffer":
            fresh = self._source(self.buffer_reinit, cond, positive, teacher, student)
            start, index, restarted = self._from_buffer(fresh)
            diag["restarted"] = restarted.float().mean()
        else:
            start = self._source(self.init, cond, positive, teacher, student)
        t, chain_diag = self.run(energy, start, cond)
        diag.update(chain_diag)
        if self.init == "buffer":
            with torch.no_grad():
                self.chains[index] = t.to(self.chains.dtype)  # type: ignore[index]
                self.filled[index] = True  # type: ignore[index]
        if final_energy:
            with torch.no_grad():
                diag["energy_final"] = energy(t, cond).float().mean()
        return t, diag

    def run(
        self, energy: nn.Module, start: Tensor, cond: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The chain itself from ``start``: K steps, clamping, the final sample detached."""
        eta, sigma = self.step_size, self.sigma
        low, high = self.clamp if self.clamp is not None else (None, None)
        t = start.detach().clone()
        grad_norm = t.new_zeros((), dtype=torch.float32)
        energy_init = grad_norm
        with frozen(energy), torch.enable_grad():
            for k in range(self.steps):
                t.requires_grad_(True)
                e = energy(t, cond)
                (grad,) = torch.autograd.grad(e.sum(), t)
                with torch.no_grad():
                    if k == 0:
                        energy_init = e.detach().float().mean()
                    grad_norm = grad_norm + grad.reshape(len(grad), -1).float().norm(dim=1).mean()
                    t = t.detach() - eta * grad
                    if sigma > 0:
                        t.add_(torch.randn_like(t), alpha=sigma)
                    if self.clamp_every_step and self.clamp is not None:
                        t.clamp_(low, high)
        if self.clamp is not None:
            t = t.clamp(low, high)
        t = t.detach()
        distance = (t - start.detach()).reshape(len(t), -1).float().norm(dim=1).mean()
        return t, {
            "energy_init": energy_init,
            "grad_norm": grad_norm / self.steps,
            "distance": distance,
        }

    # -- state ------------------------------------------------------------------------------
    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # The replay buffer is allocated lazily (its shape is the first batch's), so adopt the
        # saved shape before the default loader copies into it; a state saved before the buffer
        # existed empties it.
        for name in ("chains", "filled"):
            saved = state_dict.get(prefix + name)
            if saved is None:
                self._buffers[name] = None
            elif self._buffers.get(name) is None or self._buffers[name].shape != saved.shape:
                self._buffers[name] = torch.empty_like(saved)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


def build(options: LangevinOptions, **_: Any) -> Langevin:
    """Factory of the ``langevin`` sampler."""
    return Langevin(
        steps=options.steps,
        step_size=options.step_size,
        noise_std=options.noise_std,
        init=options.init,
        buffer_size=options.buffer_size,
        reinit_prob=options.reinit_prob,
        buffer_reinit=options.buffer_reinit,
        clamp=options.clamp,
        clamp_every_step=options.clamp_every_step,
    )
