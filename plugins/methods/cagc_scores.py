"""CAGC's content-aware channel score of a StyleGAN2 generator (``Util/content_aware_pruning.py``).

For each batch of z: generate ``G(z)``, get the content mask of every image, put salt-and-pepper
noise (each masked pixel with probability ``noise_prob``, all three channels set to the same −1
or +1) on a copy, and back-propagate ``L = Σ |G(z)_noisy − G(z)|`` into the generator. The
noisy copy is a constant at the noised pixels and equal to ``G(z)`` elsewhere, so only noised
(hence masked) pixels contribute: ``∂L/∂G(z) = −sign(noise − G(z))`` there and 0 elsewhere.

The score of a channel is ``mean |∂L/∂W|`` over the weights of the layer that **reads** it,
i.e. CAGC's ``torch.mean(|grad|, axis=[0, 1, 3, 4])`` on the (1, out, in, k, k) modulated-conv
weight: one score per input channel. The layers are conv1 (scoring the constant input), every
styled conv (scoring the previous conv's output) and the **last toRGB only** (scoring the last
conv's output, which no styled conv reads): one score vector per net-shape entry. Batch scores
are summed (CAGC sums, it does not average), which does not change the ranking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError

__all__ = [
    "ContentAwarePruning",
    "content_aware_prune",
    "content_aware_scores",
    "salt_and_pepper",
    "scored_layers",
]


def scored_layers(generator: nn.Module) -> list[nn.Module]:
    """The modulated convs whose weight gradients score the net-shape entries: conv1, every
    styled conv, the last toRGB."""
    return (
        [generator.conv1.conv]
        + [c.conv for c in generator.convs]
        + [generator.to_rgbs[-1].conv if len(generator.to_rgbs) else generator.to_rgb1.conv]
    )


def salt_and_pepper(
    images: Tensor, mask: Tensor, prob: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``(positions, values)``: which pixels get noise (N, 1, H, W) bool — inside ``mask`` with
    probability ``prob`` — and the ±1 value each pixel would get (same for all channels)."""
    n, _, h, w = images.shape
    draw = torch.rand(n, 1, h, w, generator=generator).to(images.device)
    sign = torch.randint(0, 2, (n, 1, h, w), generator=generator).to(images.device)
    positions = (draw < prob) & (mask > 0.5)
    return positions, (sign * 2 - 1).to(images.dtype)


def content_aware_scores(
    generator: nn.Module,
    mask: Callable[[Tensor], Tensor],
    *,
    n_samples: int = 400,
    batch_size: int = 10,
    noise_prob: float = 0.05,
    rng: torch.Generator | None = None,
) -> list[Tensor]:
    """One score vector per net-shape entry of ``generator`` (a StyleGAN2 generator in the
    rosinality layout), from ``n_samples`` images in batches of ``batch_size`` (the last batch
    takes the remainder, as CAGC's). ``mask`` maps images in [-1, 1] to a {0, 1} mask
    (N, 1, H, W). ``rng`` (CPU) draws z and the noise (the generator's noise maps come from
    the global RNG, as in CAGC). Gradients are taken with ``torch.autograd.grad``: the
    generator's ``.grad`` fields are untouched and its ``requires_grad`` flags restored."""
    if n_samples < 1 or batch_size < 1 or not 0 < noise_prob <= 1:
        raise VemkitError(
            "content-aware scores need n_samples ≥ 1, batch_size ≥ 1 and 0 < noise_prob ≤ 1"
        )
    layers = scored_layers(generator)
    n_batch = max(1, n_samples // batch_size)
    sizes = [batch_size] * (n_batch - 1) + [n_samples - batch_size * (n_batch - 1)]
    device = next(generator.parameters()).device
    flags = [(p, p.requires_grad) for p in generator.parameters()]
    totals = [torch.zeros(layer.weight.shape[2], dtype=torch.float64) for layer in layers]
    generator.requires_grad_(False)
    for layer in layers:
        layer.weight.requires_grad_(True)
    try:
        for n in sizes:
            z = torch.randn(n, generator.style_dim, generator=rng).to(device)
            images = generator([z])
            with torch.no_grad():
                m = mask(images.detach())
            if m.shape != (n, 1, *images.shape[2:]):
                raise VemkitError(
                    f"content mask returned shape {tuple(m.shape)}; expected "
                    f"{(n, 1, *images.shape[2:])}"
                )
            positions, values = salt_and_pepper(images, m, noise_prob, rng)
            # Σ|noisy − G(z)|: non-noised pixels contribute |G − G| = 0 with zero gradient
            loss = ((values - images).abs() * positions).sum()
            grads = torch.autograd.grad(loss, [layer.weight for layer in layers], allow_unused=True)
            for total, grad in zip(totals, grads, strict=True):
                if grad is not None:
                    total += grad.abs().mean(dim=(0, 1, 3, 4)).double().cpu()
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return [t.float() for t in totals]


@dataclass
class ContentAwarePruning:
    """The outcome of CAGC's ``prune.py``: the pruned generator and how it was chosen."""

    generator: nn.Module
    """The generator at the kept widths, holding the kept slices of the original's weights."""
    keep: list[Tensor]
    """Kept channel indices (ascending) of every net-shape entry."""
    scores: list[Tensor]
    """The content-aware score of every channel of every net-shape entry."""


def content_aware_prune(
    generator: nn.Module,
    mask: Callable[[Tensor], Tensor],
    *,
    remove_ratio: float = 0.7,
    n_samples: int = 400,
    batch_size: int = 10,
    noise_prob: float = 0.05,
    rng: torch.Generator | None = None,
) -> ContentAwarePruning:
    """Score ``generator`` (usually the teacher's EMA generator, as CAGC prunes ``g_ema``)
    with :func:`content_aware_scores`, remove the ``int(C · remove_ratio)`` lowest-scored
    channels of every layer and return the pruned copy (the original is left unchanged)."""
    from vemkit_plugins.archs.stylegan2_prune import prune_generator, uniform_keep_indices

    scores = content_aware_scores(
        generator,
        mask,
        n_samples=n_samples,
        batch_size=batch_size,
        noise_prob=noise_prob,
        rng=rng,
    )
    keep = uniform_keep_indices(scores, list(generator.net_shape), remove_ratio)
    return ContentAwarePruning(prune_generator(generator, keep), keep, scores)
