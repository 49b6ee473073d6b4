"""Options of the built-in one-loop methods, KD and OMGD, and the distillation taps the methods
share (torch-free). The recipe methods' options are in :mod:`.recipe_options`."""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated, Any, Literal, Self

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


CAT_KA_TAPS = ("down_sampling.9", "features.2", "features.5", "features.8")
"""CAT's distillation taps of ``inception_resnet`` (its ``mapping_layers``): the ReLU after the
second down-sampling (trunk width @ 64² for 256 px) and the outputs of Inception blocks 3, 6 and
9. The same names exist in the teacher and in a pruned student; kernel alignment compares them
without an adapter."""

GCC_UNET_TAPS = (
    "model.model.1.model.2",
    "model.model.1.model.3.model.3.model.2",
    "model.model.1.model.3.model.3.model.4",
    "model.model.1.model.4",
)
"""GCC's generator taps of the pix2pix U-Net (``Pix2Pix.py`` ``generator_extract_layers``),
valid for our ``unet`` (same pix2pix nesting): the BatchNorm after the second down conv
(2·ngf @ 64² at 256 px), the BatchNorm after the fourth (8·ngf @ 16²), and the in-place ReLUs
that open the fourth (16·ngf @ 16², the skip concat) and the second (4·ngf @ 64²) up levels.
Each gets a 1×1 adapter (no bias) to the teacher's width. The two BatchNorm outputs are then
modified in place by the next level's LeakyReLU(0.2) before the loss reads them, in GCC as with
vemkit's (uncloned) taps, so the distilled feature is LeakyReLU(BN(·))."""

GCC_MOBILE_RESNET_TAPS = ("model.9", "model.12", "model.15", "model.18")
"""GCC's generator taps of the Mobile ResNet (CycleGAN and the ResNet pix2pix): the ReLU after
the second down and the outputs of residual blocks 3, 6 and 9."""

GCC_SAGAN_TAPS = ("l2", "attn2")
"""GCC's generator taps of the SAGAN generator: the 8×8 up block ``l2`` (4·ngf) and the 32×32
self-attention ``attn2`` (ngf)."""

GCC_PATCHGAN_TAPS = ("model.3", "model.9")
"""The two features of the *teacher's* plain PatchGAN (n_layers 3) that GCC distils (its
``discriminator_extract_layers`` without gates): the norm after the second conv and the norm after
the fourth (stride-1) conv — both then rewritten by the in-place LeakyReLU(0.2) that follows,
so (in GCC as with vemkit's uncloned taps) the feature is LeakyReLU(norm(·)). The teacher D is
evaluated on the student's image and on the teacher's; no adapter."""

GCC_SAGAN_D_TAPS = ("l2", "attn2")
"""The two features of the teacher's SAGAN discriminator that GCC distils: block ``l2`` and the
second self-attention ``attn2``."""


class BestTeacherOptions(Options):
    """OMGD's CycleGAN schedule (``cycleganbest`` distiller), counted in iterations.

    Iterations alternate between blocks: ``teacher_iterations`` in which only the teacher pair
    and its discriminators train, then ``student_iterations`` in which only the student (and the
    MI term's energy net) trains, against the *best* G_A so far; then the latest G_A is put back
    and the next teacher block continues from it. The teachers are scored at the end of every
    teacher block (and every ``score_every`` teacher iterations) on the evaluation set. OMGD's
    scripts: a teacher block is ``save_epoch_freq`` (10) epochs, a student block ``n_dis`` times
    that (horse→zebra: n_dis 4). Learning-rate schedules run over all iterations, so the
    student's rate follows the teachers' schedule, as in OMGD.
    """

    teacher_iterations: Annotated[int, Field(ge=1)]
    """Length of a teacher block (OMGD: 10 epochs of the training set at batch 1)."""

    student_iterations: Annotated[int, Field(ge=1)]
    """Length of a student block (OMGD: n_dis × the teacher block)."""

    metric: Annotated[dict[str, Any], Slot("metric")] = {"type": "fid"}
    """Metric of the teacher's images; G_A(A) is judged against the evaluation set's B images
    (or the metric's own reference, e.g. FID ``real_dir``)."""

    score: str = "fid"
    """Name of the metric's score that picks the best teacher."""

    rule: Literal["either", "forward"] = "either"
    """``either`` (OMGD): G_A is kept as the best teacher when G_A's score *or* G_B's score
    (G_B(B) against the A images) improves — a quirk of OMGD's code, kept because the paper's
    rows were produced with it. ``forward``: only G_A's own score counts."""

    reverse_metric: Annotated[dict[str, Any] | None, Slot("metric")] = None
    """``rule: either``: metric of G_B(B), judged against the evaluation set's A images; null =
    ``metric`` without its ``real_dir`` (the A images of the evaluation set as reference).
    Give ``{type: fid, real_dir: data/horse2zebra/allA}`` for OMGD's protocol."""

    score_every: Annotated[int, Field(ge=1)] | None = None
    """Also score the teachers every this many iterations inside a teacher block (OMGD scores
    at every ``save_latest_freq``); null = at the end of each teacher block only."""


class OMGDOptions(Options):
    """OMGD — Online Multi-Granularity Distillation (Ren et al., ICCV 2021).

    The teachers are trained from scratch alongside the student (``teacher.mode: online``).
    pix2pix (``task: paired``): the spec's teacher (the wide U-Net, ngf 64) and ``deep_teacher``
    (U-Net-deepest, ngf 16) share the multi-head ``discriminator`` and learn with hinge GAN +
    ``lambda_rec``·L1; the student has no GAN loss and no L1 to the ground truth: per teacher
    image it minimises ``omgd.ssim`` + ``omgd.style`` + ``omgd.feature`` + ``omgd.tv``, plus
    ``omgd.cd`` (channel distillation) against the wide teacher. CycleGAN (``task: unpaired``):
    one teacher pair (the spec's teacher G_A plus a reverse generator G_B of the same arch, Mobile
    ResNets ngf 64 in OMGD) with discriminators D_A, D_B and the CycleGAN losses; the student
    (A→B) distils from G_A's output with the same terms. Defaults are OMGD's edges→shoes U-Net
    setting.
    """

    ssim_weight: NonNegative = 10.0
    """Weight of ``omgd.ssim`` = 1 − SSIM(student, teacher) on [-1, 1] images (AGD_weights[0])."""

    style_weight: NonNegative = 1e4
    """Weight of ``omgd.style``: Σ over the 4 perceptual layers of the mean |Gram(S) − Gram(T)|,
    Grams divided by C·H·W (AGD_weights[1]). 1e4 is OMGD's value for VGG16; with the Inception
    substitute it makes the style term ~90 % of the student loss, and 300 weighs it like the
    SSIM term (the quickstart's value; calibration in ``perceptual.py``)."""

    feature_weight: NonNegative = 10.0
    """Weight of ``omgd.feature``: mean |S − T| of the perceptual features at ``feature_layer``
    (AGD_weights[2])."""

    tv_weight: NonNegative = 1e-5
    """Weight of ``omgd.tv``, the total variation of the student image (AGD_weights[3]); tuned
    for the *summed* TV (``tv_reduction: sum``). With two teachers OMGD counts it twice (once
    per teacher), and so does vemkit."""

    tv_reduction: Literal["sum", "mean"] = "sum"
    """``sum`` over batch, channels and pixels as OMGD (scales with batch and resolution), or
    ``mean`` (sum of the mean horizontal and mean vertical differences)."""

    perceptual: Literal["inception", "vgg16", "random_vgg16"] = "inception"
    """Network of the style and feature losses. OMGD uses ``vgg16`` (ImageNet weights, not
    obtainable offline: give ``vgg_weights`` or put torchvision's vgg16-397923af.pth in
    $TORCH_HOME/hub/checkpoints). ``inception`` (default, available offline; images of at least
    43 px) taps the FID Inception at 4 stages (64, 192, 288, 768 channels); results with it are
    a substitute for OMGD's, not a reproduction. ``random_vgg16``: VGG16 with random weights,
    for tests only. The network is frozen and is not saved in checkpoints."""

    perceptual_autocast: Literal["none", "bf16"] = "bf16"
    """Precision of the perceptual network's forwards (the student image with gradient, the
    teachers' without). ``bf16`` (default): its convolutions under bfloat16 autocast, the
    features cast to fp32 for the style and feature losses: about 2× faster on hardware with bf16
    units (a CPU with AVX512-BF16 or AMX, a GPU from Ampere on; elsewhere, where bf16 would be
    emulated and slower, the network runs in the run's precision), and each loss within
    ``vemkit_plugins.methods.omgd.PERCEPTUAL_BF16_TOLERANCE`` (2⁻⁸, relative) of fp32.
    ``none``: the run's own precision (``train.precision``; fp32 by default), as OMGD computes
    it."""

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

    cd_student_taps: Annotated[list[str], Field(min_length=1)] | None = None
    """Dotted module paths of the student's channel-distillation taps; null = OMGD's taps for
    the student's arch: ``unet`` → the 4 U-Net taps (2·ngf @ 64², 8·ngf @ 16², 16·ngf @ 16²,
    4·ngf @ 64² at 256 px), ``mobile_resnet`` → ``[model.9, model.12, model.15, model.18]``."""

    cd_teacher_taps: list[str] | None = None
    """Dotted module paths of the matching taps in the wide teacher; null = the student's paths
    (OMGD hooks the same names in both). Each pair gets an adapter 1×1 conv (no bias) →
    BatchNorm → ReLU from the student's to the teacher's width (read from the taps when the run
    is compiled); the adapters are trained with the student."""

    lambda_rec: NonNegative = 100.0
    """Weight of the pix2pix teachers' L1 to the ground truth (OMGD lambda_recon)."""

    lambda_gan: NonNegative = 1.0
    """Weight of the teachers' GAN loss (OMGD lambda_gan)."""

    gan_mode: Literal["hinge", "lsgan", "vanilla"] | None = None
    """Adversarial loss of teachers and discriminators; null = OMGD's choice for the task:
    ``hinge`` for pix2pix, ``lsgan`` for CycleGAN."""

    n_dis: Annotated[int, Field(ge=1)] = 1
    """Teachers and discriminators are updated every n_dis iterations, the student every
    iteration (OMGD pix2pix: 1 edges→shoes, 3 Cityscapes). OMGD's CycleGAN scripts use n_dis
    for the length of the student block of ``best_teacher`` instead (set
    ``best_teacher.student_iterations``; keep n_dis 1 there)."""

    deep_teacher: Annotated[dict[str, Any] | None, Slot("arch")] = {
        "type": "unet_deepest",
        "ngf": 16,
    }
    """pix2pix: the second ("deeper") teacher, trained like the spec's teacher and judged by the
    discriminator's second head (OMGD: U-Net-deepest ngf 16; ``mobile_resnet_deepest`` ngf 16
    in the ResNet pix2pix setting). null: one teacher only. Must be null for CycleGAN (one
    teacher pair)."""

    deep_teacher_checkpoint: str | None = None
    """Weights of ``deep_teacher`` (safetensors or an official ``.pth``) to start from; the
    counterpart of ``teacher.checkpoint`` (needed with ``teacher.mode: frozen``)."""

    discriminator: Annotated[dict[str, Any] | None, Slot("arch")] = None
    """Discriminator of the teachers; null = OMGD's for the task. pix2pix: the shared
    multi-head PatchGAN on concat(A, B), ``{type: omgd_patchgan, ndf: 128, n_share: 5}`` with
    one head per teacher and input_nc = input + output channels; a discriminator with heads is
    called as D(x, head). CycleGAN: D_A and D_B, each ``{type: patchgan, ndf: 64, norm:
    instance}`` on images of the output channels."""

    lambda_cycle: NonNegative = 10.0
    """CycleGAN: weight of both cycle-consistency L1 terms (lambda_A = lambda_B)."""

    lambda_identity: NonNegative = 0.5
    """CycleGAN: identity loss weight, relative to ``lambda_cycle`` (0 turns it off)."""

    pool_size: Annotated[int, Field(ge=0)] = 50
    """CycleGAN: size of each discriminator's history of generated images (0: no pool)."""

    best_teacher: BestTeacherOptions | None = None
    """CycleGAN: OMGD's alternating best-teacher schedule (``cycleganbest`` distiller); null =
    the student learns every iteration from the current teacher on the same batch."""

    @model_validator(mode="after")
    def _taps_pair_up(self) -> Self:
        teacher, student = self.cd_teacher_taps, self.cd_student_taps
        if teacher is not None and student is not None and len(teacher) != len(student):
            raise ValueError(
                f"cd_teacher_taps has {len(teacher)} paths but cd_student_taps "
                f"{len(student)}: the taps are compared pairwise"
            )
        return self
