"""Options of the built-in architectures (torch-free: ``vemkit validate`` imports this module).

Each class documents one registered ``arch``; the code lives in one module per family
(``unet.py``, ``resnet.py``, ``mobile_resnet.py``, ``patchgan.py``, ...).
"""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from vemkit.options import Options

# -- image-to-image generators and discriminators (pix2pix / CycleGAN / OMGD / GAN-Compression) --

ImageNorm = Literal["batch", "instance", "none"]
"""batch: BatchNorm2d (affine, running stats); instance: InstanceNorm2d (no affine, no running
stats), as in pytorch-CycleGAN-and-pix2pix; none: no normalisation."""

ImagePadding = Literal["reflect", "replicate", "zero"]

ImageInit = Literal["normal", "xavier", "kaiming", "orthogonal", "default"]
"""Weight init of pytorch-CycleGAN-and-pix2pix's ``init_weights``; ``default`` keeps PyTorch's."""

Width = Annotated[int, Field(gt=0)]


class _ImageNetOptions(Options):
    """Fields shared by the image-to-image networks."""

    init_type: ImageInit = "normal"
    """Weight initialisation: ``normal`` draws conv weights from N(0, init_gain) and BatchNorm
    scales from N(1, init_gain), biases 0 (pix2pix, CycleGAN, OMGD, GAN-Compression);
    ``default`` keeps PyTorch's own initialisation."""

    init_gain: Annotated[float, Field(gt=0)] = 0.02
    """Standard deviation (normal) or gain (xavier, orthogonal) of the initialisation."""


class _ImageGeneratorOptions(_ImageNetOptions):
    input_nc: Width = 3
    """Channels of the input image (3 for RGB, 1 for a grey edge map)."""

    output_nc: Width = 3
    """Channels of the generated image; the output passes through tanh, so it lies in [-1, 1]."""


class UNetOptions(_ImageGeneratorOptions):
    """pix2pix U-Net generator (``unet_256`` at num_downs 8), state dict as the official one.

    Encoder: num_downs stride-2 4×4 convs with widths ngf×(1, 2, 4, 8, 8, ...); decoder:
    transposed convs with skip concatenation. ngf 64 is the pix2pix teacher (54,413,955 params),
    ngf 16 the OMGD student (3,404,451 params). Inputs must be divisible by 2**num_downs.
    """

    num_downs: Annotated[int, Field(ge=5)] = 8
    """Number of stride-2 levels: 8 for 256 px (the innermost feature is 1×1), 7 for 128 px."""

    ngf: Width = 64
    """Channels of the outermost level (64 pix2pix teacher, 16 OMGD student)."""

    norm: ImageNorm = "batch"
    """Normalisation layer. With ``batch`` the convs have no bias (except the outermost
    transposed conv); otherwise every conv is biased."""

    use_dropout: bool = False
    """Dropout 0.5 after the num_downs−5 innermost 8·ngf decoder levels. Original pix2pix trains
    with it; OMGD (and therefore VEM) does not."""


class UNetDeepestOptions(UNetOptions):
    """OMGD's deeper pix2pix teacher ``unet_deepest_256``: the U-Net with two bottleneck residual
    blocks (1×1 → 3×3 at 4× width → 1×1, then 3×3) on both sides of every level except the
    innermost. ngf 16 has 44,171,939 params (about the MACs of the ngf-64 U-Net)."""

    ngf: Width = 16
    """Channels of the outermost level (16 in OMGD)."""


class ResnetOptions(_ImageGeneratorOptions):
    """CycleGAN ResNet generator (``resnet_9blocks`` / ``resnet_6blocks``), official state dict.

    7×7 stem, two stride-2 3×3 downs to 4·ngf, n_blocks residual blocks, two transposed-conv ups,
    7×7 head, tanh. ngf 64 with 9 blocks has 11,378,179 params.
    """

    ngf: Width = 64
    """Channels after the stem."""

    n_blocks: Annotated[int, Field(ge=0)] = 9
    """Residual blocks at 4·ngf channels: 9 for 256 px, 6 for 128 px."""

    norm: ImageNorm = "instance"
    """Normalisation layer; instance norm has no affine parameters, so every conv is biased."""

    use_dropout: bool = False
    """Dropout 0.5 between the two convs of each residual block (off in CycleGAN)."""

    padding_type: ImagePadding = "reflect"
    """Padding of the 3×3 convs inside the residual blocks."""


class MobileResnetOptions(_ImageGeneratorOptions):
    """GAN-Compression / OMGD Mobile ResNet generator: the CycleGAN ResNet whose residual blocks
    use depthwise-separable convs (depthwise 3×3 with bias → InstanceNorm → pointwise 1×1 with
    bias). ngf 64 is the GAN-Compression / OMGD teacher (1,987,075 params), ngf 16 the OMGD
    student (137,347 params). Module ``model.9`` is the ReLU after the second down (4·ngf),
    ``model.10``–``model.18`` are the blocks (the distillation taps 9/12/15/18)."""

    ngf: Width = 64
    """Channels after the stem (64 teacher, 16 OMGD student)."""

    n_blocks: Annotated[int, Field(ge=0)] = 9
    """Residual blocks at 4·ngf channels."""

    norm: ImageNorm = "instance"
    """Normalisation after each conv (the separable convs keep their own inner InstanceNorm)."""

    dropout_rate: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Dropout probability inside each residual block (0 in every published setting)."""

    padding_type: ImagePadding = "reflect"
    """Padding of the 3×3 convs inside the residual blocks."""


class MobileResnetDeepestOptions(MobileResnetOptions):
    """OMGD's deeper ResNet teacher ``mobile_deepest_resnet``: the Mobile ResNet with an
    expansion residual block and a 3×3 conv after each down and up, and two expansion blocks in
    the middle of the trunk. ngf 16 has 2,547,123 params."""

    ngf: Width = 16
    """Channels after the stem (16 in OMGD)."""

    n_blocks: Annotated[int, Field(ge=0)] = 9
    """Mobile residual blocks in the trunk (split n//2 before and the rest after the two
    expansion blocks)."""


def _parse_channel_config(value: object) -> object:
    # GAN-Compression writes a sub-network as "16_16_32_16_32_32_16_16".
    if isinstance(value, str):
        try:
            return tuple(int(part) for part in value.split("_"))
        except ValueError:
            raise ValueError(
                f"channel config {value!r} is not of the form '16_16_32_16_32_32_16_16'"
            ) from None
    return value


ChannelConfig = Annotated[
    tuple[Width, ...],
    BeforeValidator(_parse_channel_config),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "array",
                    "items": {"type": "integer", "exclusiveMinimum": 0},
                    "minItems": 6,
                    "maxItems": 8,
                },
                {"type": "string", "pattern": r"^[0-9]+(_[0-9]+){5}(_[0-9]+){0,2}$"},
            ]
        }
    ),
]


class SubMobileResnetOptions(_ImageGeneratorOptions):
    """A GAN-Compression sub-network of the Mobile ResNet with a channel count per layer group.

    ``config`` = (stem, down 1, down 2 / trunk, blocks 1–3, blocks 4–6, blocks 7–9, up 1, up 2)
    in units of the corresponding ngf multiple, e.g. horse→zebra ``16_16_32_16_32_32_16_16``
    (356,867 params), edges→shoes ``32_32_48_32_48_48_16_16`` (822,051), Cityscapes
    ``32_32_48_32_32_48_24_24`` (780,819). The legacy 6-number form (stem, down 1, trunk,
    blocks, up 1, up 2) is accepted too. The input is clamped to [−1, 1] as in the original.
    """

    config: ChannelConfig = (16, 16, 32, 16, 32, 32, 16, 16)
    """Channels per layer group, as a list or GAN-Compression's ``a_b_c_...`` string (8 numbers,
    or 6 in the legacy form)."""

    norm: ImageNorm = "instance"
    """Normalisation after each conv."""

    dropout_rate: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Dropout probability inside each residual block."""

    padding_type: ImagePadding = "reflect"
    """Padding of the 3×3 convs inside the residual blocks."""

    @field_validator("config")
    @classmethod
    def _six_or_eight(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) not in (6, 8):
            raise ValueError(f"a channel config has 8 numbers (or 6, legacy), got {len(value)}")
        return value


class InceptionBlockWidths(Options):
    """Hidden widths of one Inception block, one number per kernel size (0 drops the branch)."""

    res: list[Annotated[int, Field(ge=0)]]
    """Hidden width of the plain branch (k×k conv → norm → ReLU → k×k conv) per kernel size."""

    dw: list[Annotated[int, Field(ge=0)]]
    """Hidden width of the depthwise branch (1×1 conv → norm → ReLU → k×k depthwise conv →
    norm → ReLU → 1×1 conv) per kernel size."""


class InceptionWidths(Options):
    """Every width of a CAT generator, layer by layer (the shape of CAT's pruned students)."""

    down: Annotated[list[Width], Field(min_length=3, max_length=3)]
    """Output channels of the stem, of the first down-sampling conv and of the second (the
    trunk width, shared by every block's input and output)."""

    blocks: list[InceptionBlockWidths]
    """One entry per Inception block (their number replaces ``n_blocks``)."""

    up: Annotated[list[Width], Field(min_length=2, max_length=2)]
    """Output channels of the two transposed convs."""


class InceptionResnetOptions(_ImageGeneratorOptions):
    """CAT's Inception-style ResNet generator (snap-research/CAT ``InceptionGenerator``,
    netG ``inception_9blocks``), official state-dict keys.

    The CycleGAN ResNet skeleton (7×7 stem, two stride-2 downs to 4·ngf, blocks, two transposed
    convs, 7×7 head, tanh) whose residual blocks sum, for every kernel size, a plain k×k branch
    and a depthwise branch of hidden width 4·ngf // channels_reduction_factor, then normalise the
    sum and add the input. Every norm is affine (CAT prunes by their |γ|). At ngf 64 with CAT's
    settings (kernel sizes 1, 3, 5; reduction 6, hidden width 42) and instance norm it has
    8,154,255 parameters and 43.53G MACs at 256 px as CAT counts them (43.49G for the convs
    alone, the paper convention). ``widths`` builds a pruned student instead.
    Distillation taps: ``down_sampling.9`` (after the second down), ``features.2/5/8``.
    """

    ngf: Width = 64
    """Channels after the stem (CAT teachers: 64)."""

    n_blocks: Annotated[int, Field(ge=0)] = 9
    """Inception blocks at 4·ngf channels (``inception_9blocks``: 9)."""

    norm: Literal["instance", "batch"] = "instance"
    """Normalisation, always affine: ``instance`` (CycleGAN scripts; no running statistics,
    every conv biased) or ``batch`` (pix2pix Cityscapes scripts; running statistics tracked,
    convs without bias)."""

    kernel_sizes: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = [1, 3, 5]
    """Kernel sizes of the branches, odd and distinct (CAT's scripts: 1 3 5; its code default
    3 5 7)."""

    channels: Width | list[Width] | None = None
    """Hidden width per branch before the reduction: null = 4·ngf (CAT's default), one number
    for every kernel, or one per kernel size."""

    channels_reduction_factor: Annotated[int, Field(ge=1)] = 6
    """The hidden widths are ``channels // channels_reduction_factor`` (CAT's scripts: 6, so
    256 // 6 = 42 at ngf 64)."""

    dropout_rate: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Dropout probability inside every branch (0 in CAT)."""

    padding_type: ImagePadding = "reflect"
    """Padding of the k×k convs inside the blocks."""

    widths: InceptionWidths | None = None
    """Every width given explicitly (a CAT pruned student; ``vemkit_plugins.archs.inception.
    widths_from_state_dict`` reads it from a checkpoint): replaces ``ngf``, ``n_blocks``,
    ``channels`` and ``channels_reduction_factor``."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ks = self.kernel_sizes
        if any(k % 2 == 0 for k in ks) or len(set(ks)) != len(ks):
            raise ValueError(f"kernel_sizes must be odd and distinct, got {ks}")
        if isinstance(self.channels, list) and len(self.channels) != len(ks):
            raise ValueError(
                f"channels has {len(self.channels)} entries for {len(ks)} kernel sizes"
            )
        if self.widths is None:
            hidden = (
                [4 * self.ngf] * len(ks)
                if self.channels is None
                else [self.channels] * len(ks)
                if isinstance(self.channels, int)
                else self.channels
            )
            if self.n_blocks and all(c // self.channels_reduction_factor == 0 for c in hidden):
                raise ValueError(
                    f"every hidden width is 0 ({hidden} // {self.channels_reduction_factor}): "
                    "the blocks would have no branch"
                )
        for b, block in enumerate(self.widths.blocks if self.widths else []):
            if len(block.res) != len(ks) or len(block.dw) != len(ks):
                raise ValueError(
                    f"widths.blocks[{b}] needs one res and one dw width per kernel size "
                    f"({len(ks)}), got {len(block.res)} and {len(block.dw)}"
                )
        return self


class PatchGANOptions(_ImageNetOptions):
    """PatchGAN discriminator (pix2pix/CycleGAN ``NLayerDiscriminator``; n_layers 3 = 70×70).

    4×4 convs: stride 2 to ndf, n_layers−1 more stride-2 convs doubling up to 8·ndf, one
    stride-1 conv, and a stride-1 conv to one logit per patch. Returns the logit map.
    """

    input_nc: Width = 3
    """Input channels: 3 for CycleGAN; 6 for pix2pix, whose D sees concat(A, B)."""

    ndf: Width = 64
    """Channels of the first conv (64 pix2pix/CycleGAN; 128 in OMGD and GAN-Compression)."""

    n_layers: Annotated[int, Field(ge=1)] = 3
    """Stride-2 convs; 3 gives 70×70 receptive fields."""

    norm: ImageNorm = "batch"
    """Normalisation (batch for pix2pix, instance for CycleGAN)."""


class MultiscalePatchGANOptions(PatchGANOptions):
    """num_D PatchGANs (pix2pixHD style) applied to the input downsampled 0, 1, ... times by a
    3×3 stride-2 average pool (padding not counted). Returns a list of logit maps, finest
    first."""

    num_D: Annotated[int, Field(ge=1)] = 2
    """Number of scales (2 in pix2pixHD)."""


class PixelDiscriminatorOptions(_ImageNetOptions):
    """1×1 PixelGAN discriminator (pix2pix ``pixel``): three 1×1 convs, one logit per pixel."""

    input_nc: Width = 3
    """Input channels: 3, or 6 for a pix2pix D on concat(A, B)."""

    ndf: Width = 64
    """Channels of the first conv."""

    norm: ImageNorm = "batch"
    """Normalisation after the second conv."""


class OMGDPatchGANOptions(_ImageNetOptions):
    """OMGD's multi-head PatchGAN (``MultiNLayerDiscriminator``, netD ``multi_n_layers``) that
    the teachers share: the PatchGAN's n_layers + 2 blocks, each stored once per head
    (``block1s.0``, ``block1s.1``, ...; the official state dict). The first ``n_share`` blocks
    are shared by every head (they use the last copy). ``D(x, head)`` returns head ``head``'s
    logit map (head i judges teacher i), ``D(x)`` the list of every head's map. Defaults are
    OMGD's pix2pix setting: concat(A, B) input, ndf 128, BatchNorm, all 5 blocks shared,
    2 heads (22,084,866 params)."""

    input_nc: Width = 6
    """Input channels: 6 for pix2pix (the D sees concat(A, B)), 3 for an unconditional D."""

    ndf: Width = 128
    """Channels of the first conv (OMGD: 128)."""

    n_layers: Annotated[int, Field(ge=1)] = 3
    """Stride-2 convs of the PatchGAN (OMGD hard-codes 3, the 70×70 PatchGAN)."""

    norm: ImageNorm = "batch"
    """Normalisation of the middle blocks (OMGD's pix2pix scripts: batch)."""

    n_share: Annotated[int, Field(ge=0)] = 5
    """Leading blocks shared by all heads, 0..n_layers+2 (OMGD's scripts: 5, i.e. everything;
    OMGD's code default 0 shares nothing)."""

    heads: Annotated[int, Field(ge=1)] = 2
    """Number of heads, one per teacher (OMGD: 2, wide and deep teacher)."""

    @model_validator(mode="after")
    def _share_fits(self) -> Self:
        if self.n_share > self.n_layers + 2:
            raise ValueError(
                f"n_share {self.n_share} exceeds the {self.n_layers + 2} blocks of a PatchGAN "
                f"with n_layers {self.n_layers}"
            )
        return self


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
