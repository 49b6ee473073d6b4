"""Options of the built-in ResNet-family generators: CycleGAN's ResNet, GAN-Compression's Mobile
ResNet (and its sub-networks) and CAT's Inception ResNet (torch-free).
"""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made (see options.py).

from typing import Annotated, Literal, Self

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from vemkit.options import Options
from vemkit_plugins.archs.options import ImageNorm, ImagePadding, Width, _ImageGeneratorOptions


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
    # Written back (resolved specs, a recipe's DONE.json) as GAN-Compression spells it.
    PlainSerializer(lambda v: "_".join(str(int(c)) for c in v), return_type=str, when_used="json"),
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
