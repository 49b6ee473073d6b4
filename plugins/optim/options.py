"""Options of the built-in optimizers and learning-rate schedules (torch-free)."""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated

from pydantic import Field

from vemkit.options import Options

PositiveFloat = Annotated[float, Field(gt=0)]
Beta = Annotated[float, Field(ge=0, lt=1)]


class AdamOptions(Options):
    """Adam (Kingma & Ba). The GAN-compression baselines use lr 2e-4 with betas (0.5, 0.999)."""

    lr: PositiveFloat = 2.0e-4
    """Initial learning rate."""
    betas: tuple[Beta, Beta] = (0.5, 0.999)
    """Coefficients of the running averages of the gradient and its square."""
    eps: PositiveFloat = 1.0e-8
    """Added to the denominator for numerical stability."""
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    """L2 penalty (coupled, as in torch.optim.Adam)."""
    fused: bool = True
    """Use torch's fused kernel (one pass per parameter tensor; about 3× faster than the default
    per-tensor loop on the CPU) where it applies: floating-point parameters on the CPU or CUDA,
    else torch's default. Equal to the default implementation up to float rounding."""


class AdamWOptions(AdamOptions):
    """AdamW: Adam with decoupled weight decay."""

    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    """Decoupled weight decay."""


class SGDOptions(Options):
    """Stochastic gradient descent with optional momentum."""

    lr: PositiveFloat = 1.0e-2
    """Learning rate."""
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Momentum factor."""
    nesterov: bool = False
    """Use Nesterov momentum (needs momentum > 0)."""
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    """L2 penalty."""


class LinearDecayOptions(Options):
    """Constant learning rate, then linear decay to zero at the last iteration (pix2pix/CycleGAN:
    ``n_epochs`` constant + ``n_epochs_decay`` decaying, usually half and half)."""

    constant_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Fraction of the iterations at the initial learning rate before the decay starts."""


class ConstantOptions(Options):
    """A constant learning rate (the VEM energy net's default)."""


class CosineOptions(Options):
    """Cosine annealing from the initial learning rate to ``min_factor`` times it."""

    min_factor: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Final learning rate as a fraction of the initial one."""
    warmup: Annotated[int, Field(ge=0)] = 0
    """Iterations of linear warm-up from zero."""
