"""Options of the built-in samplers (``sampler`` kind), torch-free.

A sampler draws negatives ``t̃ ~ q(·|s) ∝ exp(-E(t̃, s))`` for the energy's contrastive update.
"""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from vemkit.options import Options

InitSource = Literal["student", "teacher", "noise", "marginal"]


class LangevinOptions(Options):
    """Short-run Langevin dynamics, as the VEM authors run it: K steps of
    ``t ← t − step_size·∇_t ΣE(t, s) + noise_std·ε``, then one clamp.

    The defaults are the paper's (K 10, step 100, noise 0.005, start at the student output): a
    near-zero temperature, a good training signal but not a density. ``noise_std: auto``
    (σ = √(2·step_size), temperature 1) samples exp(−E) itself, for estimates and known-answer
    tests."""

    steps: Annotated[int, Field(gt=0)] = 10
    """Langevin steps K per energy update (paper: 10)."""
    step_size: Annotated[float, Field(gt=0)] = 100.0
    """η, multiplying the energy gradient directly (paper: 100; 50 for Cityscapes and FFHQ)."""
    noise_std: Annotated[float, Field(ge=0)] | Literal["auto"] = 0.005
    """σ of the Gaussian noise added per step (paper: 0.005), or ``auto`` for σ = √(2η)."""
    init: Literal["student", "teacher", "noise", "marginal", "buffer"] = "student"
    """Chain start: the student output (paper), the teacher output, uniform noise in the clamp
    range (N(0, 1) without one), ``marginal`` (the batch's positives, shuffled) or ``buffer``
    (a persistent replay buffer of past negatives)."""
    buffer_size: Annotated[int, Field(gt=0)] = 1000
    """Samples kept by ``init: buffer`` (each one the size of an output: ~0.8 MB at 3×256²)."""
    reinit_prob: Annotated[float, Field(ge=0, le=1)] = 0.05
    """With ``init: buffer``, chance that a chain restarts from ``buffer_reinit`` instead."""
    buffer_reinit: InitSource = "student"
    """Where restarted (and not yet filled) buffer chains begin."""
    clamp: tuple[float, float] | None = (-1.0, 1.0)
    """Range the samples are clamped to after the last step (images in [−1, 1]); null: none."""
    clamp_every_step: bool = False
    """Also clamp after every step (the authors clamp only once, after the last)."""

    @model_validator(mode="after")
    def _ordered_clamp(self) -> Self:
        if self.clamp is not None and not self.clamp[0] < self.clamp[1]:
            raise ValueError(f"clamp must be [low, high] with low < high, got {list(self.clamp)}")
        return self
