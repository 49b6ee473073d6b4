"""The loss terms of OMGD (Online Multi-Granularity Distillation, ICCV 2021), as plain functions.

Every definition follows the public bytedance/OMGD code (``distillers/multiteacher_distiller.py``,
``distillers/cycleganbest_distiller.py``, ``distillers/base_*_distiller.py``; GAN losses from
``models/modules/loss.py`` as shared with mit-han-lab/gan-compression), including the details
that differ from textbook versions:

* **SSIM** is computed on the generators' [-1, 1] outputs directly (no mapping to [0, 1]) with
  the fixed constants C1 = 0.01², C2 = 0.03² (i.e. data range 1), an 11×11 Gaussian window of
  σ 1.5 and zero "same" padding, averaged over every pixel, channel and image (OMGD vendors
  Po-Hsun Su's ``pytorch_ssim``). That is exactly :func:`vemkit_plugins.metrics.pixel.ssim` with
  ``data_range=1, padding="same"``, which is reused here.
* **Gram** matrices are divided by C·H·W; the style loss is the *mean* absolute difference of the
  Grams, summed over the feature layers; the feature loss is the mean absolute difference at one
  layer (relu2_2 for VGG16).
* **TV** is a *sum* over batch, channels and pixels (so it grows with batch size and resolution);
  the weight 1e-5 was tuned for that. ``reduction="mean"`` is offered for other settings.
* **Channel distillation** compares global-average-pooled activations of an adapted student tap
  with the (detached) teacher tap: mean over N and C of the squared difference, summed over taps.
  The adapter is 1×1 conv (no bias) → BatchNorm → ReLU, initialised like every OMGD network.
* **GAN losses**: hinge (pix2pix), LSGAN (CycleGAN), vanilla. The discriminator loss is
  ``0.5·(L_real + L_fake)`` as in both OMGD distillers.

The teacher images passed to these functions should be detached by the caller, as OMGD does
(``Tfake_Bs = [T_w.detach(), T_d.detach()]``); :func:`channel_distillation_loss` detaches its
teacher taps itself, as OMGD's ``calc_CD_loss`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit_plugins.archs._blocks import init_weights
from vemkit_plugins.metrics.pixel import ssim

GANMode = Literal["hinge", "lsgan", "vanilla"]
Logits = Tensor | Sequence[Any]
"""One logit tensor, or a list of them (multi-scale / multi-head D); an element that is itself
a list (pix2pixHD-style intermediate features) contributes its last entry."""


# -- image-level terms --------------------------------------------------------------------------


def ssim_loss(s: Tensor, t: Tensor) -> Tensor:
    """``1 − SSIM(s, t)`` on [-1, 1] images, exactly as OMGD computes it (see module docstring)."""
    return 1.0 - ssim(s, t, 1.0, window_size=11, sigma=1.5, padding="same")


def tv_loss(x: Tensor, reduction: Literal["sum", "mean"] = "sum") -> Tensor:
    """Total variation: absolute differences of horizontal and vertical neighbours.

    ``sum`` (OMGD): summed over batch, channels and pixels. ``mean``: the mean of the horizontal
    differences plus the mean of the vertical ones (independent of batch size and resolution).
    """
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs()
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs()
    if reduction == "sum":
        return dx.sum() + dy.sum()
    if reduction == "mean":
        return dx.mean() + dy.mean()
    raise ValueError(f"tv_loss reduction must be 'sum' or 'mean', got {reduction!r}")


# -- feature-level terms ------------------------------------------------------------------------


def gram(f: Tensor) -> Tensor:
    """Gram matrices ``F·Fᵀ / (C·H·W)`` of an N×C×H×W batch, shape N×C×C."""
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def style_loss(feats_s: Sequence[Tensor], feats_t: Sequence[Tensor]) -> Tensor:
    """Σ over layers of the mean absolute difference between student and teacher Grams."""
    if len(feats_s) != len(feats_t) or not feats_s:
        raise ValueError(
            f"style_loss needs the same non-zero number of layers, got {len(feats_s)} and "
            f"{len(feats_t)}"
        )
    return gram_style_loss([gram(s) for s in feats_s], [gram(t) for t in feats_t])


def gram_style_loss(grams_s: Sequence[Tensor], grams_t: Sequence[Tensor]) -> Tensor:
    """:func:`style_loss` from the Gram matrices (the same value): a student learning from
    several teachers computes its own Grams once."""
    if len(grams_s) != len(grams_t) or not grams_s:
        raise ValueError(
            f"style_loss needs the same non-zero number of layers, got {len(grams_s)} and "
            f"{len(grams_t)}"
        )
    return sum(
        (F.l1_loss(s, t) for s, t in zip(grams_s, grams_t, strict=True)),
        start=grams_s[0].new_zeros(()),
    )


def feature_loss(feats_s: Sequence[Tensor], feats_t: Sequence[Tensor], layer: int = 1) -> Tensor:
    """Mean absolute difference of the features at index ``layer`` (OMGD: 1 = VGG16 relu2_2)."""
    if not -len(feats_s) <= layer < len(feats_s) or len(feats_s) != len(feats_t):
        raise ValueError(
            f"feature_loss layer {layer} is not among the {len(feats_s)} / {len(feats_t)} "
            "feature maps given"
        )
    return F.l1_loss(feats_s[layer], feats_t[layer])


def make_cd_adapter(c_in: int, c_out: int, *, init_gain: float = 0.02) -> nn.Sequential:
    """OMGD's channel-distillation connector: 1×1 conv (no bias) c_in→c_out, BatchNorm, ReLU.

    ``c_in`` is the student tap's width, ``c_out`` the teacher's. OMGD first draws the conv
    weight He-style and sets BN to (1, 0), but then runs its ``init_net`` over the adapter, which
    overwrites that with the pix2pix init: conv ~ N(0, 0.02), BN scale ~ N(1, 0.02), shift 0.
    The effective (second) initialisation is the one used here.
    """
    adapter = nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )
    init_weights(adapter, "normal", init_gain)
    return adapter


def channel_distillation_loss(
    s_feats: Sequence[Tensor],
    t_feats: Sequence[Tensor],
    adapters: Sequence[Callable[[Tensor], Tensor]],
) -> Tensor:
    """Σ over taps of mean_{N,C} (GAP(A_l(S_l)) − GAP(T_l))², teacher taps detached."""
    if not (len(s_feats) == len(t_feats) == len(adapters)) or not s_feats:
        raise ValueError(
            "channel_distillation_loss needs one adapter per (student, teacher) tap pair, got "
            f"{len(s_feats)} student taps, {len(t_feats)} teacher taps, {len(adapters)} adapters"
        )
    total = s_feats[0].new_zeros(())
    for s, t, adapter in zip(s_feats, t_feats, adapters, strict=True):
        source = adapter(s).mean(dim=(2, 3))
        target = t.detach().mean(dim=(2, 3))
        if source.shape != target.shape:
            raise ValueError(
                f"channel distillation: adapted student tap has {tuple(source.shape)} channels "
                f"per image, teacher tap {tuple(target.shape)}"
            )
        total = total + (source - target).pow(2).mean()
    return total


def multi_granularity_loss(
    student: Tensor,
    teacher: Tensor,
    extractor: Callable[[Tensor], Sequence[Tensor]],
    *,
    ssim_weight: float = 10.0,
    style_weight: float = 1e4,
    feature_weight: float = 10.0,
    tv_weight: float = 1e-5,
    feature_layer: int = 1,
    tv_reduction: Literal["sum", "mean"] = "sum",
) -> dict[str, Tensor]:
    """OMGD's weighted student terms against ONE teacher image: ``{ssim, style, feature, tv}``.

    OMGD calls this once per teacher and adds everything up, so with two teachers the TV term
    of the student image is counted twice (kept: the published weights were tuned with it).
    ``teacher`` should already be detached; its features are computed without a graph.
    """
    feats_s = extractor(student)
    with torch.no_grad():
        feats_t = extractor(teacher.detach())
    return {
        "ssim": ssim_weight * ssim_loss(student, teacher),
        "style": style_weight * style_loss(feats_s, feats_t),
        "feature": feature_weight * feature_loss(feats_s, feats_t, feature_layer),
        "tv": tv_weight * tv_loss(student, tv_reduction),
    }


# -- adversarial terms --------------------------------------------------------------------------


def _as_list(logits: Logits) -> list[Tensor]:
    if isinstance(logits, Tensor):
        return [logits]
    out = [item[-1] if isinstance(item, list | tuple) else item for item in logits]
    if not out or not all(isinstance(t, Tensor) for t in out):
        raise ValueError("GAN logits must be a tensor or a non-empty list of tensors")
    return out


def _single(logits: Tensor, real: bool, mode: GANMode, for_discriminator: bool) -> Tensor:
    if mode == "hinge":
        if not for_discriminator:
            if not real:
                raise ValueError("the hinge generator loss is defined for target 'real' only")
            return -logits.mean()
        # max(0, 1 − x) for real, max(0, 1 + x) for fake (== −min(x − 1, 0), −min(−x − 1, 0))
        return F.relu(1.0 - logits).mean() if real else F.relu(1.0 + logits).mean()
    if mode == "lsgan":
        return (logits - 1.0).pow(2).mean() if real else logits.pow(2).mean()
    if mode == "vanilla":
        # BCE with logits against 1 / 0, written stably with softplus.
        return F.softplus(-logits).mean() if real else F.softplus(logits).mean()
    raise ValueError(f"unknown gan_mode {mode!r} (hinge, lsgan, vanilla)")


def gan_loss(
    logits: Logits,
    real: bool,
    mode: GANMode,
    *,
    for_discriminator: bool,
    reduce: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """The GAN criterion against target ``real`` (GANLoss of OMGD / GAN-Compression).

    A list of logit maps (multi-scale D) is averaged (``reduce="mean"``, as GAN-Compression's
    hinge loss and SPADE do) or summed (``"sum"``, as GAN-Compression's LSGAN/vanilla loss does);
    OMGD's own discriminators return one tensor per call, where both agree.
    """
    values = [_single(t, real, mode, for_discriminator) for t in _as_list(logits)]
    total = torch.stack(values).sum()
    return total / len(values) if reduce == "mean" else total


def gan_loss_d(
    real_logits: Logits,
    fake_logits: Logits,
    mode: GANMode,
    *,
    reduce: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """Discriminator loss ``0.5·(L(real, 1) + L(fake, 0))`` (OMGD ``backward_D_*``; per head)."""
    real = gan_loss(real_logits, True, mode, for_discriminator=True, reduce=reduce)
    fake = gan_loss(fake_logits, False, mode, for_discriminator=True, reduce=reduce)
    return 0.5 * (real + fake)


def gan_loss_g(
    fake_logits: Logits, mode: GANMode, *, reduce: Literal["mean", "sum"] = "mean"
) -> Tensor:
    """Generator loss: the D's verdict on fakes against target real (hinge: −mean logit)."""
    return gan_loss(fake_logits, True, mode, for_discriminator=False, reduce=reduce)


# -- CycleGAN's history of generated images ------------------------------------------------------


class ImagePool:
    """CycleGAN's buffer of up to ``size`` earlier fakes shown to the discriminator.

    ``query(images)`` behaves as pytorch-CycleGAN-and-pix2pix's ``ImagePool.query``: per image,
    while the pool is not full the image is stored and returned; afterwards, with probability
    1/2 a random stored image is returned and replaced by the new one, otherwise the new image
    is returned. ``size`` 0 returns the input unchanged. The random draws come from the pool's
    own seeded generator (not Python's global ``random``), and :meth:`state_dict` holds the
    stored images and that generator's state, so a resumed run continues identically.
    """

    def __init__(self, size: int = 50, *, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"ImagePool size must be >= 0, got {size}")
        self.size = size
        self.images: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: Tensor) -> Tensor:
        """Images to show the discriminator for this batch (same shape as ``images``)."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.clone()
            if len(self.images) < self.size:
                self._check_shape(image)
                self.images.append(image)
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                index = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[index].to(image.device))
                self.images[index] = image
            else:
                out.append(image)
        return torch.stack(out)

    def _check_shape(self, image: Tensor) -> None:
        if self.images and image.shape != self.images[0].shape:
            raise ValueError(
                f"ImagePool holds {tuple(self.images[0].shape)} images; got {tuple(image.shape)}"
            )

    def state_dict(self) -> dict[str, Any]:
        """``{"size", "images" (stacked, or shape [0] when empty), "rng"}`` — tensors and ints."""
        stored = (
            torch.stack([im.detach().cpu() for im in self.images])
            if self.images
            else torch.zeros(0)
        )
        return {"size": self.size, "images": stored, "rng": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the pool size must match)."""
        if int(state["size"]) != self.size:
            raise ValueError(
                f"ImagePool state is for size {state['size']}, this pool is {self.size}"
            )
        stored = state["images"]
        self.images = [im.clone() for im in stored] if stored.numel() else []
        self.generator.set_state(state["rng"].to(torch.uint8).cpu())


def pools_state_dict(pools: Mapping[str, ImagePool], prefix: str) -> dict[str, Any]:
    """Every pool's :meth:`ImagePool.state_dict` under ``"<prefix>.pool.<side>"``, the keys a
    method returns from ``vemkit_state_dict`` so that a resumed run draws the same fakes."""
    return {f"{prefix}.pool.{side}": pool.state_dict() for side, pool in pools.items()}


def load_pools_state_dict(
    pools: Mapping[str, ImagePool], prefix: str, state: Mapping[str, Any]
) -> None:
    """Restore what :func:`pools_state_dict` saved; a pool missing from ``state`` (a run saved
    before it had one) keeps its fresh state."""
    for side, pool in pools.items():
        saved = state.get(f"{prefix}.pool.{side}")
        if saved is not None:
            pool.load_state_dict(saved)
