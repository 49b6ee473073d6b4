"""Options of the built-in U-Net generators and PatchGAN discriminators, and the fields every
image-to-image network shares (torch-free: ``vemkit validate`` imports this module).

Each class documents one registered ``arch``; the code lives in one module per family
(``unet.py``, ``patchgan.py``, ...). The ResNet-family generators' options are in
:mod:`.resnet_options`, the unconditional GANs' in :mod:`.uncond_options`: each module is
imported only when a spec names one of its archs (they are registered by path).
"""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated, Literal, Self

from pydantic import (
    Field,
    model_validator,
)

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

    affine: bool = False
    """Give ``instance`` norms a learnable scale and shift (CAT's ``--norm_affine_D``; the
    pix2pix/CycleGAN default has none). BatchNorm is always affine."""


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
