"""Options of the built-in energy networks (``energy`` kind), torch-free.

An energy network scores a pair: ``E(t, s) -> one scalar per sample``; low energy means ``t`` is
likely given ``s``. The variational distribution of VEM is ``q(t|s) = exp(-E(t, s)) / Z(s)``.
"""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated, Any

from pydantic import Field

from vemkit.errors import VemkitError
from vemkit.options import Options


class ConvSNEnergyOptions(Options):
    """The VEM authors' energy network: a spectrally normalised residual CNN over the
    concatenated pair (t, s). c=32 for pix2pix (1,708,609 params at 7 blocks), c=8 for CycleGAN
    (107,473 params)."""

    in_channels: Annotated[int, Field(gt=0)] = 3
    """Channels of each of t and s (the network sees twice as many)."""
    width: Annotated[int, Field(gt=0)] = 32
    """Base width c: the stem has c channels, the blocks widen to 2c and then 4c."""
    blocks: Annotated[int, Field(ge=0)] = 7
    """Residual down-blocks, each halving the resolution (widths c→2c, 2c→4c, then 4c→4c)."""
    downsample: Annotated[int, Field(ge=0)] = 1
    """Average pools (3×3, stride 2) applied to t and s before the stem (authors: 1 at 256 px)."""


class TimmEnergyOptions(Options):
    """Any timm backbone as an energy network: t and s are concatenated on the channel axis and
    the model's single output is the energy. Pretrained weights are never downloaded."""

    model: Annotated[str, Field(min_length=1)] = "convnext_atto"
    """timm model name (``timm.list_models()``); the default uses LayerNorm, not BatchNorm."""
    in_channels: Annotated[int, Field(gt=0)] = 3
    """Channels of each of t and s (the model is created with twice as many input channels)."""
    allow_batchnorm: bool = False
    """Accept a model with BatchNorm. Positives and negatives are scored in one concatenated
    batch, so batch statistics would make a sample's energy depend on the other samples."""
    model_kwargs: dict[str, Any] = {}
    """Extra keyword arguments for ``timm.create_model`` (e.g. ``{img_size: 64}`` for a ViT)."""


class MLPEnergyOptions(Options):
    """A small MLP energy for low-dimensional toys and tests: flattens t and s, concatenates
    them and maps ``2·dims → hidden → … → 1`` with SiLU."""

    dims: Annotated[int, Field(gt=0)] = 1
    """Features of each of t and s after flattening."""
    hidden: Annotated[int, Field(gt=0)] = 64
    """Width of every hidden layer."""
    depth: Annotated[int, Field(ge=0)] = 2
    """Number of hidden layers (0: a linear energy)."""


def _as_hw(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _side_after(n: int, downsample: int, blocks: int) -> int:
    # AvgPool2d(3, stride 2, pad 1) maps n to ceil(n / 2); each block's 2×2 pool to floor(n / 2).
    for _ in range(downsample):
        n = (n - 1) // 2 + 1
    for _ in range(blocks):
        n //= 2
    return n


def min_resolution(options: ConvSNEnergyOptions) -> int:
    """The smallest side length that survives ``downsample`` pre-pools and ``blocks`` halvings."""
    n = 2**options.blocks
    for _ in range(options.downsample):
        n = 2 * n - 1  # ceil(m / 2) >= k  <=>  m >= 2k - 1
    return n


def _fits(h: int, w: int, downsample: int, blocks: int) -> bool:
    return min(_side_after(h, downsample, blocks), _side_after(w, downsample, blocks)) >= 1


def check_resolution(options: ConvSNEnergyOptions, size: int | tuple[int, int]) -> None:
    """Raise :class:`VemkitError` when images of ``size`` (side or (H, W)) are too small for the
    ``conv_sn`` energy's halvings; called when a run is compiled, before anything is trained."""
    h, w = _as_hw(size)
    if _fits(h, w, options.downsample, options.blocks):
        return
    # The largest block count that fits, to make the message actionable (0 always fits).
    fits = max(b for b in range(options.blocks) if _fits(h, w, options.downsample, b))
    raise VemkitError(
        f"energy conv_sn: images of {h}×{w} px are too small for downsample={options.downsample} "
        f"pre-pool(s) and blocks={options.blocks} halvings (needs at least "
        f"{min_resolution(options)} px); use blocks: {fits} or fewer, or a smaller downsample"
    )
