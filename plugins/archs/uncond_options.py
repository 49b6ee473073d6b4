"""Options of the built-in unconditional GANs: GCC's SAGAN and CAGC's StyleGAN2 (torch-free)."""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made (see options.py).

from typing import Annotated, Literal, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from vemkit.options import Options

# -- unconditional generators and discriminators (GCC's SAGAN, CAGC's StyleGAN2) --------------


class SAGANGeneratorOptions(Options):
    """SAGAN generator, z → 64×64 RGB (GCC's CelebA setting; paper Table 3).

    Four spectral-normalised transposed convs with BatchNorm and ReLU (4→8→16→32 px), self-attention
    after the 16 px and 32 px layers, a plain transposed conv to 3 channels and tanh. ngf 64 has
    3,832,885 parameters (the spectral-norm u/v vectors are buffers, not counted).
    """

    z_dim: Annotated[int, Field(gt=0)] = 128
    """Length of the latent vector z."""

    ngf: Annotated[int, Field(ge=8)] = 64
    """Base width; the four layers get 8·ngf, 4·ngf, 2·ngf and ngf channels (GCC: teacher 64,
    the sparse pre-trained net that is pruned 48)."""

    widths: (
        Annotated[list[Annotated[int, Field(ge=8)]], Field(min_length=4, max_length=4)] | None
    ) = None
    """Widths of the four layers (GCC's ``filter_cfgs`` of a pruned student), replacing the
    ngf-derived ones; attention runs at the third and fourth width, which need ≥ 8 channels."""


class SAGANDiscriminatorOptions(Options):
    """SAGAN discriminator for 64×64 RGB (GCC): four spectral-normalised stride-2 4×4 convs with
    LeakyReLU(0.1) (ndf→8·ndf), self-attention after the third and fourth, a 4×4 conv to one
    score per image (shape (N,))."""

    ndf: Annotated[int, Field(ge=2)] = 64
    """Channels of the first conv (GCC: 64)."""


StyleGAN2Size = Literal[8, 16, 32, 64, 128, 256, 512, 1024]
_STYLEGAN2_RESOLUTIONS = (4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _StyleGAN2Options(Options):
    size: StyleGAN2Size = 256
    """Image resolution in pixels (FFHQ in CAGC: 256)."""

    channel_multiplier: Annotated[int, Field(gt=0)] = 2
    """Width multiplier of the ≥ 64 px layers (StyleGAN2 config F: 2)."""

    channels: dict[int, Annotated[int, Field(gt=0)]] | None = None
    """Widths per resolution overriding the defaults {4..32: 512, 64: 256·m, 128: 128·m,
    256: 64·m, 512: 32·m, 1024: 16·m}, e.g. ``{4: 64, 8: 64, 16: 32}`` for a tiny net."""

    blur_kernel: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2)] = (1, 3, 3, 1)
    """1-D FIR filter (outer product, normalised) used around every 2× up/down-sampling."""

    @field_validator("channels")
    @classmethod
    def _resolutions(cls, value: dict[int, int] | None) -> dict[int, int] | None:
        bad = sorted(k for k in value or {} if k not in _STYLEGAN2_RESOLUTIONS)
        if bad:
            raise ValueError(f"resolutions must be among {_STYLEGAN2_RESOLUTIONS}, got {bad}")
        return value


class StyleGAN2GeneratorOptions(_StyleGAN2Options):
    """StyleGAN2 generator (config F, rosinality/stylegan2-pytorch layout and parameter names).

    Mapping network (pixel norm + n_mlp equalised-lr linear layers with lr multiplier lr_mlp),
    a learned 4×4 constant, modulated 3×3 convs with demodulation and noise injection (two per
    resolution, the first upsampling 2× with the blur kernel), skip toRGB outputs. Called as
    ``G(z)`` with z of shape (N, style_dim), or a list of two z for style mixing; returns the
    image. Widths: the per-resolution defaults, ``channels`` overrides, then ``remove_ratio``
    (CAGC removes int(0.7·C) channels of every layer); or ``net_shape`` given layer by layer.
    """

    style_dim: Annotated[int, Field(gt=0)] = 512
    """Length of z and of the intermediate latent w."""

    n_mlp: Annotated[int, Field(ge=1)] = 8
    """Linear layers of the mapping network."""

    lr_mlp: Annotated[float, Field(gt=0)] = 0.01
    """Learning-rate multiplier of the mapping network (equalised learning rate)."""

    remove_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Fraction of channels CAGC removes from every layer: C − int(C·ratio) are kept
    (CAGC's student: 0.7, giving widths 154/77/39 at 256 px and ≈4.1B MACs)."""

    net_shape: list[Annotated[int, Field(gt=0)]] | None = None
    """Widths layer by layer as CAGC lists them (its ``Get_Network_Shape``): the constant input,
    conv1, then the two convs of each resolution 8..size — 2·log2(size) − 2 numbers. Replaces
    ``channels``/``channel_multiplier`` and cannot be combined with ``remove_ratio``."""

    @model_validator(mode="after")
    def _net_shape(self) -> Self:
        if self.net_shape is None:
            return self
        expected = 2 * (self.size.bit_length() - 1) - 2
        if len(self.net_shape) != expected:
            raise ValueError(
                f"net_shape for size {self.size} needs {expected} widths (input, conv1, two per "
                f"resolution 8..{self.size}), got {len(self.net_shape)}"
            )
        if self.remove_ratio or self.channels:
            raise ValueError("net_shape gives every width; drop channels/remove_ratio")
        return self


class StyleGAN2DiscriminatorOptions(_StyleGAN2Options):
    """StyleGAN2 discriminator (config F, rosinality layout): 1×1 fromRGB conv, residual blocks
    halving the resolution down to 4×4 (blurred stride-2 convs, skip scaled by 1/√2), minibatch
    standard deviation, a 3×3 conv and two equalised linear layers to one logit (shape (N, 1))."""

    stddev_group: Annotated[int, Field(ge=1)] = 4
    """Minibatch-stddev group size (the batch must be a multiple of min(batch, group))."""

    stddev_feat: Annotated[int, Field(ge=1)] = 1
    """Channel groups of the minibatch-stddev feature."""
