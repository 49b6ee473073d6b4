"""Options of the built-in baseline methods (torch-free)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from vemkit.options import Options, Slot

NonNegative = Annotated[float, Field(ge=0)]


class KDOptions(Options):
    """Plain output distillation: the student mimics the teacher's output (L1 or MSE), with an
    optional reconstruction loss to the ground truth and an optional GAN loss of its own."""

    distance: Literal["l1", "mse"] = "l1"
    """Distance between student and teacher outputs."""
    weight: NonNegative = 1.0
    """Weight of the output-distillation term ``kd.output``."""
    recon_weight: NonNegative = 0.0
    """Weight of the L1 to the ground truth ``kd.recon`` (paired data only)."""
    gan_weight: NonNegative = 0.0
    """Weight of the student's own GAN loss ``kd.gan``; 0 trains no discriminator."""
    gan_mode: Literal["hinge", "lsgan", "vanilla"] = "hinge"
    """Adversarial loss of the student and its discriminator."""
    discriminator: Annotated[dict[str, Any], Slot("arch")] = {
        "type": "patchgan",
        "ndf": 64,
        "n_layers": 3,
    }
    """Discriminator of the student GAN loss (used only when ``gan_weight`` > 0)."""
    teacher_recon_weight: NonNegative = 100.0
    """Online teacher only: weight of its L1 to the ground truth (pix2pix lambda_L1)."""


UNET_CD_TAPS = (
    "model.model.1.model.3.model.0",
    "model.model.1.model.3.model.3.model.3.model.0",
    "model.model.1.model.3.model.3.model.4",
    "model.model.1.model.4",
)
"""OMGD's channel-distillation taps of ``unet_256`` (its ``mapping_layers``), valid for our U-Net
too (same nesting): the in-place LeakyReLU entering level 3 (2·ngf @ 64²), the one entering
level 5 (8·ngf @ 16²), the ReLU after level 5's concat in level 4 (16·ngf @ 16²) and the ReLU
after level 3's concat in level 2 (4·ngf @ 64²) — sizes for a 256 px input."""

MOBILE_RESNET_CD_TAPS = ("model.9", "model.12", "model.15", "model.18")
"""OMGD's taps of ``mobile_resnet_9blocks``: the ReLU after the second down (4·ngf) and the
outputs of residual blocks 3, 6 and 9."""


class OMGDOptions(Options):
    """OMGD — Online Multi-Granularity Distillation (Ren et al., ICCV 2021).

    The teachers are trained from scratch alongside the student. pix2pix: the spec's teacher
    (the wide U-Net, ngf 64) and ``deep_teacher`` (U-Net-deepest, ngf 16) share the multi-head
    ``discriminator`` and learn with GAN + ``lambda_rec``·L1; the student has no GAN loss and no
    L1 to the ground truth: per teacher image it minimises ``omgd.ssim`` + ``omgd.style`` +
    ``omgd.feature`` + ``omgd.tv``, plus ``omgd.cd`` (channel distillation) against the wide
    teacher. CycleGAN (unpaired data): one teacher pair (Mobile ResNets, ngf 64) with CycleGAN
    losses, no deep teacher; the student learns from the best teacher so far
    (``best_teacher_schedule``). Defaults are OMGD's edges→shoes U-Net setting.
    """

    ssim_weight: NonNegative = 10.0
    """Weight of ``omgd.ssim`` = 1 − SSIM(student, teacher) on [-1, 1] images (AGD_weights[0])."""

    style_weight: NonNegative = 1e4
    """Weight of ``omgd.style``: Σ over the 4 perceptual layers of the mean |Gram(S) − Gram(T)|,
    Grams divided by C·H·W (AGD_weights[1])."""

    feature_weight: NonNegative = 10.0
    """Weight of ``omgd.feature``: mean |S − T| of the perceptual features at ``feature_layer``
    (AGD_weights[2])."""

    tv_weight: NonNegative = 1e-5
    """Weight of ``omgd.tv``, the total variation of the student image (AGD_weights[3]); tuned
    for the *summed* TV (``tv_reduction: sum``)."""

    tv_reduction: Literal["sum", "mean"] = "sum"
    """``sum`` over batch, channels and pixels as OMGD (scales with batch and resolution), or
    ``mean`` (sum of the mean horizontal and mean vertical differences)."""

    perceptual: Literal["inception", "vgg16"] = "inception"
    """Network of the style and feature losses. OMGD uses ``vgg16`` (ImageNet weights, not
    obtainable offline: give ``vgg_weights`` or put torchvision's vgg16-397923af.pth in
    $TORCH_HOME/hub/checkpoints). ``inception`` (default, available offline) taps the FID
    Inception at 4 stages (64, 192, 288, 768 channels); results with it are a substitute for
    OMGD's, not a reproduction."""

    vgg_weights: str | None = None
    """Path of torchvision's ImageNet VGG16 state dict (``perceptual: vgg16`` only); null reads
    $TORCH_HOME/hub/checkpoints/vgg16-397923af.pth."""

    vgg_normalize: bool = False
    """Apply ImageNet mean/std after mapping [-1, 1] to [0, 1] (``vgg16`` only). OMGD does not."""

    feature_layer: Annotated[int, Field(ge=0, le=3)] = 1
    """Index of the perceptual layer of ``omgd.feature`` (1 = VGG16 relu2_2, as OMGD)."""

    lambda_cd: NonNegative = 10.0
    """Weight of ``omgd.cd``, channel distillation against the wide teacher (0 turns it off).
    OMGD's scripts: 10 edges→shoes U-Net, 50 Cityscapes U-Net, 100 edges→shoes ResNet and
    summer→winter, 500 horse→zebra, off for Cityscapes ResNet."""

    cd_student_taps: Annotated[list[str], Field(min_length=1)] = list(UNET_CD_TAPS)
    """Dotted module paths of the student's channel-distillation taps. Default: OMGD's 4 U-Net
    taps (2·ngf @ 64², 8·ngf @ 16², 16·ngf @ 16², 4·ngf @ 64²); for Mobile ResNets use
    ``[model.9, model.12, model.15, model.18]``."""

    cd_teacher_taps: list[str] | None = None
    """Dotted module paths of the matching taps in the wide teacher; null = the student's paths
    (OMGD hooks the same names in both). Each pair gets an adapter 1×1 conv (no bias) →
    BatchNorm → ReLU from the student's to the teacher's width."""

    lambda_rec: NonNegative = 100.0
    """Weight of the teachers' L1 to the ground truth (pix2pix; OMGD lambda_recon)."""

    lambda_gan: NonNegative = 1.0
    """Weight of the teachers' GAN loss (OMGD lambda_gan)."""

    gan_mode: Literal["hinge", "lsgan", "vanilla"] = "hinge"
    """Adversarial loss of teachers and discriminators: ``hinge`` in OMGD's pix2pix, ``lsgan`` in
    its CycleGAN setting."""

    n_dis: Annotated[int, Field(ge=1)] = 1
    """pix2pix: teachers and discriminator are updated every n_dis student steps (1 edges→shoes,
    3 Cityscapes). CycleGAN: a student phase lasts n_dis × ``cycle_teacher_epochs`` epochs unless
    ``cycle_student_epochs`` is given (OMGD horse→zebra: n_dis 4, i.e. 40 epochs)."""

    deep_teacher: Annotated[dict[str, Any] | None, Slot("arch")] = {
        "type": "unet_deepest",
        "ngf": 16,
    }
    """The second ("deeper") pix2pix teacher, trained like the spec's teacher and judged by the
    discriminator's second head (OMGD: U-Net-deepest ngf 16; ``mobile_resnet_deepest`` ngf 16
    in the ResNet pix2pix setting). null: one teacher only (OMGD's CycleGAN setting)."""

    discriminator: Annotated[dict[str, Any], Slot("arch")] = {
        "type": "omgd_patchgan",
        "input_nc": 6,
        "ndf": 128,
        "n_share": 5,
        "heads": 2,
    }
    """Discriminator of the teachers. pix2pix: OMGD's shared two-head PatchGAN on concat(A, B)
    (ndf 128, all 5 blocks shared). CycleGAN: a plain PatchGAN per direction, as OMGD, e.g.
    ``{type: patchgan, ndf: 64, norm: instance}``."""

    lambda_cycle: NonNegative = 10.0
    """CycleGAN: weight of both cycle-consistency L1 terms (lambda_A = lambda_B)."""

    lambda_identity: NonNegative = 0.5
    """CycleGAN: identity loss weight, relative to ``lambda_cycle`` (0 turns it off)."""

    pool_size: Annotated[int, Field(ge=0)] = 50
    """CycleGAN: size of each discriminator's history of generated images (0: no pool)."""

    best_teacher_schedule: bool = True
    """CycleGAN: alternate phases as OMGD — train the teachers ``cycle_teacher_epochs`` epochs,
    then load the best-FID teacher so far, train the student on it, restore the latest teacher.
    Off: the student learns every step from the current teacher."""

    cycle_teacher_epochs: Annotated[int, Field(ge=1)] = 10
    """CycleGAN: teacher epochs between student phases (OMGD save_epoch_freq 10)."""

    cycle_student_epochs: Annotated[int, Field(ge=1)] | None = None
    """CycleGAN: student epochs per phase; null = n_dis × ``cycle_teacher_epochs`` (OMGD)."""

    @model_validator(mode="after")
    def _taps_pair_up(self) -> OMGDOptions:
        teacher = self.cd_teacher_taps
        if teacher is not None and len(teacher) != len(self.cd_student_taps):
            raise ValueError(
                f"cd_teacher_taps has {len(teacher)} paths but cd_student_taps "
                f"{len(self.cd_student_taps)}: the taps are compared pairwise"
            )
        return self
