"""Options of the built-in baseline methods (torch-free)."""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from vemkit.options import Options, Slot
from vemkit.stages import StepStage, TrainingStage

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


class StyleGAN2TrainingOptions(Options):
    """The StyleGAN2 training objective (rosinality/stylegan2-pytorch ``train.py``, which CAGC
    retrains with): non-saturating logistic GAN losses, lazy R1 on D, lazy path-length
    regularisation on G, style mixing and an EMA generator. A section of the StyleGAN2-based
    methods' options (``vemkit_plugins.methods.stylegan2_losses`` implements it)."""

    lr: Annotated[float, Field(gt=0)] = 0.002
    """Adam learning rate before the lazy-regularisation scaling c = k/(k+1)."""

    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.0,
        0.99,
    )
    """Adam betas before the scaling (each raised to the power c)."""

    r1_gamma: NonNegative = 10.0
    """R1 weight γ: D minimises γ/2·E‖∇D(x)‖² on real images (0 turns R1 off)."""

    r1_every: Annotated[int, Field(ge=1)] = 16
    """D steps between R1 steps (lazy regularisation; the penalty is multiplied by it)."""

    path_weight: NonNegative = 2.0
    """Path-length regularisation weight (0 turns it off)."""

    path_every: Annotated[int, Field(ge=1)] = 4
    """G steps between path-length steps (the penalty is multiplied by it)."""

    path_batch_shrink: Annotated[int, Field(ge=1)] = 2
    """The path-length step generates batch // path_batch_shrink images (at least 1)."""

    path_decay: Annotated[float, Field(gt=0, le=1)] = 0.01
    """Update rate of the running mean of path lengths."""

    mixing: Annotated[float, Field(ge=0, le=1)] = 0.9
    """Probability of style mixing (two z, a random crossover layer)."""

    ema_half_life_kimg: Annotated[float, Field(gt=0)] = 10.0
    """Half-life of the EMA generator in thousands of images."""

    ema_batch: Annotated[int, Field(ge=1)] = 32
    """Images per step assumed by the EMA decay 0.5^(ema_batch/(1000·half_life)); rosinality
    and CAGC fix it at 32 whatever the real batch size."""


class ContentAwarePruningOptions(Options):
    """CAGC's content-aware pruning of a StyleGAN2 generator (``prune.py``): channel scores
    mean |∂L/∂W| with L = Σ|G(z)_noisy − G(z)| after salt-and-pepper noise inside the content
    mask, then uniform removal of the lowest-scored int(C·remove_ratio) channels of every layer
    (``vemkit_plugins.methods.cagc_scores`` and ``vemkit_plugins.archs.stylegan2_prune``)."""

    mask: Annotated[dict[str, Any], Slot("mask")] = {"type": "whole"}
    """Which pixels count as content. CAGC: ``{type: face_parser, weights: .../79999_iter.pth}``
    (BiSeNet, classes other than background and cloth); offline fallbacks ``saliency`` and
    ``whole`` (the content-agnostic score), named as such in reports."""

    n_samples: Annotated[int, Field(ge=1)] = 400
    """Generated images the scores are estimated from (CAGC: 400)."""

    batch_size: Annotated[int, Field(ge=1)] = 10
    """Images per scoring batch (CAGC: 10); per-batch scores are summed."""

    noise_prob: Annotated[float, Field(gt=0, le=1)] = 0.05
    """Probability that a masked pixel gets salt-and-pepper noise (CAGC: 0.05)."""

    remove_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.7
    """Fraction of channels removed from every layer: int(C·ratio) (CAGC: 0.7 → 4.1B MACs at
    256 px)."""


class CAGCPruneStage(StepStage, ContentAwarePruningOptions):
    """CAGC's ``prune.py`` as a recipe step: content-aware channel scores of the teacher's EMA
    generator, then uniform removal of the lowest-scored ``int(C·remove_ratio)`` channels of
    every layer; the student becomes a ``stylegan2_generator`` with those widths (``net_shape``),
    holding the kept slices of the teacher's weights."""

    changes = ("student",)

    def describe(self, spec: Any) -> str:
        mask = self.mask.get("type") if isinstance(self.mask, dict) else self.mask.type
        return (
            f"score the teacher's channels on {self.n_samples} samples ({mask} mask), remove "
            f"int(C·{self.remove_ratio:g}) channels of every layer"
        )


class CAGCTeacherStage(TrainingStage):
    """CAGC's teacher, trained in the recipe (StyleGAN2's own training): off by default."""

    enabled: bool = False
    """Run this stage (off by default: the paper's teacher is a released checkpoint)."""
    iterations: Annotated[int, Field(gt=0)] | None = 800_000
    """Iterations of the teacher's training (rosinality's default: 800k)."""
    teacher: Literal["online", "frozen"] | None = "online"
    """The teacher trains in this stage."""
    student: bool = False
    """No student in this stage; its evaluation scores the teacher's EMA generator."""

    def describe(self, spec: Any) -> str:
        return "train the StyleGAN2 teacher; its EMA generator is the teacher after"


class CAGCRetrainStage(TrainingStage):
    """CAGC's retraining of the pruned student (``train.py``)."""

    iterations: Annotated[int, Field(gt=0)] | None = 450_000
    """Iterations of the retraining (the paper: 450k at batch 16)."""
    teacher: Literal["online", "frozen"] | None = "frozen"
    """The teacher is fixed while the student distils from it."""

    def describe(self, spec: Any) -> str:
        return (
            "retrain the pruned student from its pruned weights: StyleGAN2 losses + "
            "content-aware KD from the frozen teacher"
        )


class CAGCStages(Options):
    """The CAGC recipe: (an optional teacher training) → content-aware pruning → retraining."""

    teacher: CAGCTeacherStage = CAGCTeacherStage()
    """Trains the StyleGAN2 teacher with the same objective (rosinality's ``train.py``); off by
    default — the paper's teacher is a released checkpoint (``method.teacher_checkpoint``). On,
    it makes a self-contained offline demo: a small teacher trained in the first stage."""

    prune: CAGCPruneStage = CAGCPruneStage()
    """Content-aware pruning of the teacher's EMA generator (CAGC ``prune.py``)."""

    retrain: CAGCRetrainStage = CAGCRetrainStage()
    """The pruned student (and its EMA copy) retrained from the pruned weights with the
    StyleGAN2 losses plus content-aware KD from the frozen teacher (CAGC ``train.py``); the
    discriminator continues from the teacher's."""


class CAGCOptions(Options):
    """CAGC — Content-Aware GAN Compression (Liu et al., CVPR 2021), a recipe of stages.

    The StyleGAN2 objective of every training stage is rosinality's (``training``): the
    ``discriminator`` phase (logistic loss on real images against this iteration's fakes, a
    fresh style-mixed z), the lazy ``r1`` phase, the generator phase (non-saturating loss on a
    second style-mixed z) and the lazy ``path`` phase, with the Adam learning rate and betas of
    both groups scaled by k/(k+1). The module ``student`` (``teacher`` in the teacher stage) is
    the **EMA** generator: what evaluation, sample grids, ``vemkit eval``/``export``/``profile``
    and the stages after see; the trained generator is ``student_g`` (``teacher_g``).

    Retraining adds to the generator phase ``cagc.kd_l1`` = mean|M⊙T(z) − M⊙S(z)| and
    ``cagc.kd_perceptual`` = perceptual(M⊙S, M⊙T) on the same z and style-mixing crossover for
    teacher and student, M the content mask of the teacher image (``stages.prune.mask``). An MI
    term (``mi.positive: teacher``) gets the teacher image of the same z and crossover.
    """

    stages: CAGCStages = CAGCStages()
    """Stages of the recipe."""

    training: StyleGAN2TrainingOptions = StyleGAN2TrainingOptions()
    """The StyleGAN2 objective and optimiser settings of every training stage."""

    discriminator: Annotated[dict[str, Any] | None, Slot("arch")] = None
    """The discriminator; null = ``{type: stylegan2_discriminator}`` at the teacher's size and
    channel multiplier (config F). Its weights pass from the teacher stage (or
    ``teacher_checkpoint``'s ``d``) to the retraining, as CAGC restores D from the teacher."""

    teacher_checkpoint: str | None = None
    """A rosinality/CAGC StyleGAN2 training checkpoint (``.pt``; CAGC's
    ``256px_full_size.pt``): its ``g_ema`` becomes the teacher and its ``d`` the
    discriminator, both loaded strictly in the recipe's first stage. ``teacher.checkpoint``
    reads only vemkit's formats."""

    kd_l1_weight: NonNegative = 3.0
    """Weight of ``cagc.kd_l1`` (CAGC ``kd_l1_lambda``: 3)."""

    kd_perceptual_weight: NonNegative = 3.0
    """Weight of ``cagc.kd_perceptual`` (CAGC ``kd_lpips_lambda``: 3)."""

    content_aware_kd: bool = True
    """Mask both KD images with the content mask of the teacher image (CAGC: on); off, the KD
    compares the whole images."""

    perceptual: Literal["auto", "lpips", "inception", "random_vgg16"] = "auto"
    """Distance of ``cagc.kd_perceptual``. ``lpips``: LPIPS v0.1 with VGG16 (CAGC), needs
    ``lpips_weights`` and ``vgg_weights``. ``inception`` — the offline substitute: the LPIPS
    formula (unit-normalised features, squared differences averaged over space and channels,
    summed over layers) on the FID Inception's four stages with uniform channel weights, images
    below 64 px upsampled to 64; numbers with it are not CAGC's. ``random_vgg16``: the same
    formula on a random VGG16, for tests only. ``auto``: ``lpips`` when ``lpips_weights`` is
    given, else ``inception``. The run's notes and ``vemkit plan`` name the one used."""

    lpips_weights: str | None = None
    """LPIPS v0.1 linear-layer weights for VGG (``lpips/weights/v0.1/vgg.pth`` of the lpips
    package or of CAGC's repository)."""

    vgg_weights: str | None = None
    """torchvision's ImageNet VGG16 state dict for ``lpips``; null reads
    $TORCH_HOME/hub/checkpoints/vgg16-397923af.pth."""
