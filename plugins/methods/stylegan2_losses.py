"""The StyleGAN2 training objective, as plain functions and two small stateful helpers.

Every definition follows rosinality/stylegan2-pytorch ``train.py`` (which CAGC's ``train.py``
copies), including the details that differ from the paper's equations:

* **GAN losses** are the non-saturating logistic ones: D minimises
  ``mean softplus(−D(x)) + mean softplus(D(G(z)))``, G minimises ``mean softplus(−D(G(z)))``.
* **Lazy R1**: the penalty ``E_x ‖∇_x D(x)‖²`` (squared gradient summed over C·H·W per image,
  averaged over the batch) is applied every ``interval`` D steps (16) as its own optimiser step,
  weighted ``γ/2 · interval`` (γ 10) so that its average strength matches an every-step
  penalty. ``0 · D(x)[0]`` is added so that DDP sees every D output used.
* **Path-length regularisation** every ``interval`` G steps (4), on a batch shrunk by
  ``batch_shrink`` (2): ``y ~ N(0, I)/√(H·W)``, ``J_wᵀy = ∂(G(w)·y)/∂w`` for every one of the
  ``n_latent`` w vectors, path length ``a = √(mean_over_latents Σ_dim (J_wᵀy)²)``, running mean
  ``ā ← ā + 0.01·(mean a − ā)`` (the *updated* mean, not detached, enters the penalty), penalty
  ``mean (a − ā)²`` weighted ``weight · interval`` (weight 2).
* **Lazy-regularisation optimiser scaling**: with regularisation every k steps the Adam learning
  rate is multiplied by ``c = k/(k+1)`` and the betas raised to the power c (G: k = 4, D: 16).
* **Style mixing**: with probability 0.9 two z are drawn and the second one's w takes over at a
  random ``inject_index`` in [1, n_latent − 1]; CAGC returns that index so the teacher sees the
  same z *and* the same crossover as the student.
* **EMA generator**: ``g_ema ← β·g_ema + (1 − β)·g`` over the parameters only (buffers such as
  the fixed noise maps are not averaged), ``β = 0.5^(32/(10·1000))`` — the official half-life of
  10 kimg at rosinality's fixed 32 images per step.

Random draws take an optional ``torch.Generator`` (rosinality uses Python's ``random`` for the
mixing decision; a torch generator makes runs resumable from the engine's RNG state).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "PathLengthRegularizer",
    "PathLengthResult",
    "StyleMix",
    "accumulate_ema",
    "d_logistic_loss",
    "ema_decay",
    "g_nonsaturating_loss",
    "lazy_adam_hparams",
    "lazy_r1_loss",
    "lazy_ratio",
    "make_ema",
    "mixing_noise",
    "r1_penalty",
]


# -- adversarial terms -----------------------------------------------------------------------------


def d_logistic_loss(real_pred: Tensor, fake_pred: Tensor) -> Tensor:
    """Discriminator logistic loss ``mean softplus(−D(x)) + mean softplus(D(G(z)))``."""
    return F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()


def g_nonsaturating_loss(fake_pred: Tensor) -> Tensor:
    """Generator non-saturating logistic loss ``mean softplus(−D(G(z)))``."""
    return F.softplus(-fake_pred).mean()


# -- R1 --------------------------------------------------------------------------------------------


def r1_penalty(real_pred: Tensor, real_img: Tensor) -> Tensor:
    """``E_x ‖∇_x D(x)‖²``: the squared input gradient summed per image, averaged over the batch.

    ``real_img`` must have ``requires_grad`` set before ``real_pred = D(real_img)`` was computed.
    The graph is kept (``create_graph``) so that the penalty can be back-propagated into D.
    """
    if not real_img.requires_grad:
        raise ValueError("r1_penalty: real_img must require grad before D is applied to it")
    (grad,) = torch.autograd.grad(real_pred.sum(), real_img, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def lazy_r1_loss(
    real_pred: Tensor, real_img: Tensor, gamma: float = 10.0, interval: int = 16
) -> tuple[Tensor, Tensor]:
    """``(γ/2 · interval · R1 + 0·D(x)[0], R1)``: the lazy R1 term to back-propagate on the
    steps where ``step % interval == 0``, and the unweighted penalty for logging."""
    penalty = r1_penalty(real_pred, real_img)
    # the zero term keeps every D output in the graph (DDP's unused-parameter check)
    weighted = gamma / 2 * penalty * interval + 0 * real_pred.reshape(-1)[0]
    return weighted, penalty


# -- path-length regularisation --------------------------------------------------------------------


@dataclass
class PathLengthResult:
    """What one path-length regularisation step computed."""

    loss: Tensor
    """``weight · interval · penalty`` (+ a zero term using the image): back-propagate this."""
    penalty: Tensor
    """``mean (a − ā)²`` with the updated running mean ā."""
    path_lengths: Tensor
    """Per-image path lengths ``a`` (shape (N,)), still attached to the graph."""
    mean_path_length: Tensor
    """The updated running mean ā (detached; also stored on the regulariser)."""


class PathLengthRegularizer:
    """StyleGAN2's path-length regulariser with its running mean of path lengths.

    ``mean_path_length`` starts at 0 (as rosinality's) and is state to checkpoint
    (:meth:`state_dict`); :meth:`batch_size` gives the shrunk batch to generate for the step.
    """

    def __init__(
        self,
        weight: float = 2.0,
        interval: int = 4,
        decay: float = 0.01,
        batch_shrink: int = 2,
    ) -> None:
        if interval < 1 or batch_shrink < 1:
            raise ValueError("path-length interval and batch_shrink must be at least 1")
        self.weight = weight
        self.interval = interval
        self.decay = decay
        self.batch_shrink = batch_shrink
        self.mean_path_length = torch.zeros(())

    def batch_size(self, batch: int) -> int:
        """The batch generated for the regularisation step: ``max(1, batch // batch_shrink)``."""
        return max(1, batch // self.batch_shrink)

    def due(self, step: int) -> bool:
        """Whether step ``step`` (counted from 0, as rosinality's ``i``) regularises."""
        return step % self.interval == 0

    @staticmethod
    def path_lengths(fake_img: Tensor, latents: Tensor, noise: Tensor | None = None) -> Tensor:
        """Per-image ``a = √(mean_l Σ_d (J_{w_l}ᵀ y)²)`` with ``y ~ N(0, I)/√(H·W)``.

        ``latents`` (N, n_latent, style_dim) are the w the image was generated from (the
        generator's ``return_latents=True``). ``noise`` replaces the random projection ``y``
        (already scaled; for tests).
        """
        if noise is None:
            noise = torch.randn_like(fake_img) / math.sqrt(fake_img.shape[2] * fake_img.shape[3])
        (grad,) = torch.autograd.grad((fake_img * noise).sum(), latents, create_graph=True)
        return torch.sqrt(grad.pow(2).sum(2).mean(1))

    def __call__(
        self, fake_img: Tensor, latents: Tensor, noise: Tensor | None = None
    ) -> PathLengthResult:
        lengths = self.path_lengths(fake_img, latents, noise)
        mean = self.mean_path_length.to(lengths.device, lengths.dtype)
        # rosinality: the updated mean keeps its graph inside the penalty, only the stored one
        # is detached
        path_mean = mean + self.decay * (lengths.mean() - mean)
        penalty = (lengths - path_mean).pow(2).mean()
        self.mean_path_length = path_mean.detach()
        loss = self.weight * self.interval * penalty + 0 * fake_img.reshape(-1)[0]
        return PathLengthResult(loss, penalty, lengths, self.mean_path_length)

    def state_dict(self) -> dict[str, Tensor]:
        return {"mean_path_length": self.mean_path_length.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.mean_path_length = torch.as_tensor(state["mean_path_length"]).detach().clone()


# -- lazy-regularisation optimiser scaling ---------------------------------------------------------


def lazy_ratio(interval: int) -> float:
    """``c = k/(k+1)`` for regularisation every ``k`` steps (0 disables: c = 1)."""
    if interval < 0:
        raise ValueError("the regularisation interval must be 0 (off) or more")
    return interval / (interval + 1) if interval else 1.0


def lazy_adam_hparams(
    lr: float, betas: Sequence[float], interval: int
) -> tuple[float, tuple[float, float]]:
    """Adam's ``(lr·c, (β1^c, β2^c))`` for lazy regularisation every ``interval`` steps
    (rosinality: lr 0.002, betas (0, 0.99); G every 4, D every 16)."""
    c = lazy_ratio(interval)
    b1, b2 = betas
    return lr * c, (b1**c, b2**c)


# -- style mixing ----------------------------------------------------------------------------------


@dataclass
class StyleMix:
    """Latents for one generator call: ``G(mix.z, inject_index=mix.inject_index)``."""

    z: list[Tensor]
    """One z (no mixing) or two (the second takes over at ``inject_index``)."""
    inject_index: int | None
    """Crossover layer in [1, n_latent − 1] when mixing, else None."""


def mixing_noise(
    batch: int,
    latent_dim: int,
    prob: float,
    n_latent: int,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> StyleMix:
    """Draw z for a batch with style mixing of probability ``prob`` (0.9), returning the inject
    index so that a teacher can be called on the same z with the same crossover (CAGC's
    ``index_aware_mixing_noise``). ``generator`` (on the CPU) makes the draws reproducible."""
    if n_latent < 2:
        raise ValueError("style mixing needs a generator with at least 2 latents")
    draw = torch.rand((), generator=generator).item()
    mix = prob > 0 and draw < prob
    z = torch.randn(2 if mix else 1, batch, latent_dim, generator=generator)
    z = z.to(device) if device is not None else z
    if not mix:
        return StyleMix([z[0]], None)
    index = int(torch.randint(1, n_latent, (), generator=generator).item())
    return StyleMix([z[0], z[1]], index)


# -- EMA generator ---------------------------------------------------------------------------------


def ema_decay(batch_size: int = 32, half_life_kimg: float = 10.0) -> float:
    """``0.5^(batch/(half_life_kimg·1000))``: the weight of the old average per step.

    StyleGAN2's EMA half-life is 10k images; rosinality fixes batch at 32 whatever the real
    batch, giving 0.5^(32/10000) ≈ 0.997784 (the default here)."""
    return 0.5 ** (batch_size / (half_life_kimg * 1000))


@torch.no_grad()
def accumulate_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema ← decay·ema + (1 − decay)·model`` over the parameters (matched by name); buffers
    are left alone, as rosinality's ``accumulate``."""
    source = dict(model.named_parameters())
    for name, p in ema.named_parameters():
        p.mul_(decay).add_(source[name].detach(), alpha=1 - decay)


def make_ema(generator: nn.Module) -> nn.Module:
    """A frozen copy of ``generator`` in eval mode to average into (rosinality's ``g_ema``
    starts as ``accumulate(g_ema, generator, 0)``, i.e. an exact copy)."""
    ema = copy.deepcopy(generator)
    ema.eval()
    ema.requires_grad_(False)
    return ema
