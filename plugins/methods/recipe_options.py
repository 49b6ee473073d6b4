"""Options of the built-in recipe methods: GAN-Compression, GCC, CAT and CAGC (torch-free).

Apart from :mod:`.options` (KD, OMGD and the shared taps) because a recipe's options hold its
stages (:mod:`vemkit.stages`) and make about twenty classes: registered by path, this module is
imported only when a spec names one of these methods (start-up of ``vemkit validate``).
"""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made (see options.py).

from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from vemkit.options import Options, Slot
from vemkit.stages import Stages, StepStage, TrainingStage
from vemkit_plugins.methods.options import CAT_KA_TAPS, MOBILE_RESNET_CD_TAPS, NonNegative


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

    scheduler: Annotated[dict[str, Any], Slot("scheduler")] = {"type": "constant"}
    """Learning-rate schedule of the generator and the discriminator within each stage.
    StyleGAN2 and CAGC keep the rate constant; a short run (the CPU ablation) may decay it
    (``{type: linear_decay}``) so that its learning curves settle by the stage's end."""


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


# -- GAN-Compression ---------------------------------------------------------------------------
GAN_COMPRESSION_CHANNELS: dict[str, tuple[tuple[int, ...], ...]] = {
    "channels-48": (
        (48, 32), (48, 32), (48, 40, 32), (48, 40, 32), (48, 40, 32), (48, 40, 32),
        (48, 32, 24, 16), (48, 32, 24, 16),
    ),
    "channels-32": ((32, 24, 16),) * 8,
    "channels-64-cycleGAN": ((64, 48, 32, 24, 16),) * 8,
    "channels-64-pix2pix": ((64, 56, 48, 40, 32, 24, 16),) * 8,
}  # fmt: skip
"""GAN-Compression's channel choices (``configs/resnet_configs.py``) per sub-network entry
(stem, down 1, down 2 / trunk, blocks 1–3, 4–6, 7–9, up 1, up 2), in units of the entry's ngf
multiple, as ``sub_mobile_resnet``'s ``config`` counts them."""


class GanCompressionTeacherStage(TrainingStage):
    """Training of the Mobile-ResNet teacher (pix2pix on paired data, CycleGAN on unpaired)."""

    iterations: Annotated[int, Field(gt=0)] | None = 200_000
    """Iterations of the teacher's training (GAN-Compression: pix2pix 5+15 epochs at batch 4
    on edges→shoes, about 200k iterations; CycleGAN 100+100 epochs at batch 1)."""
    teacher: Literal["online", "frozen"] | None = "online"
    """The teacher trains in this stage."""
    student: bool = False
    """No student trains in this stage; its evaluation scores the teacher."""

    def describe(self, spec: Any) -> str:
        if getattr(spec, "task", "paired") == "unpaired":
            return "train the teacher as CycleGAN's G_A (with G_B, D_A, D_B, cycle and identity)"
        return "train the teacher with the pix2pix objective (GAN + L1 to the ground truth)"


class GanCompressionDistillStage(TrainingStage):
    """Pre-distillation of the teacher into the narrower spec student."""

    enabled: bool = False
    """Off by default: the supernet then starts from a freshly initialised student."""
    iterations: Annotated[int, Field(gt=0)] | None = 200_000
    """Iterations of the pre-distillation (horse→zebra: 100+100 epochs of 1,067 images)."""
    teacher: Literal["online", "frozen"] | None = "frozen"
    """The teacher stays fixed."""

    init_from_teacher: bool = True
    """Initialise the student from the teacher by L1-magnitude channel selection before the
    first iteration (each layer keeps the input channels its producer kept and the output
    filters of largest L1 norm: GAN-Compression's ``--restore_pretrained_G_path``)."""

    def describe(self, spec: Any) -> str:
        init = ", initialised by L1 channel selection" if self.init_from_teacher else ""
        return f"distil the teacher into the narrower student{init}"


class GanCompressionSupernetStage(TrainingStage):
    """Once-for-all training of every sub-network of the student."""

    iterations: Annotated[int, Field(gt=0)] | None = 400_000
    """Iterations of the supernet's training (horse→zebra: 200+200 epochs)."""
    teacher: Literal["online", "frozen"] | None = "frozen"
    """The teacher stays fixed."""

    def describe(self, spec: Any) -> str:
        return (
            "once-for-all supernet: each iteration trains the first-k-channel sub-network of a "
            "configuration drawn uniformly from method.channels"
        )


class GanCompressionSearchStage(StepStage):
    """Search of the supernet's sub-networks under a MAC budget."""

    changes = ("student",)

    budget: Annotated[float, Field(gt=0)] = 2.55e9
    """MACs allowed for the chosen sub-network (torchprofile/paper convention, batch 1, at
    ``resolution``). GAN-Compression's budgets: horse→zebra 3e9 (fast), edges→shoes 4.9e9,
    Cityscapes 5.7e9; the VEM paper's summer→winter row: 2.55e9."""

    resolution: Annotated[int, Field(gt=0)] = 256
    """Side of the square input at which the budget is counted (the papers: 256), whatever the
    training size."""

    algorithm: Literal["evolution", "exhaustive"] = "evolution"
    """``evolution`` (``evolution_search.py``) or ``exhaustive`` (``search.py``: every
    configuration under the budget)."""

    population: Annotated[int, Field(ge=2)] = 100
    """Evolution: configurations per generation (``--population_size``)."""

    iterations: Annotated[int, Field(ge=0)] = 500
    """Evolution: generations after the first (``--evolution_iters``)."""

    mutate_prob: Annotated[float, Field(ge=0, le=1)] = 0.2
    """Evolution: probability that a mutant resamples each entry (horse→zebra fast: 0.4)."""

    parent_ratio: Annotated[float, Field(gt=0, le=1)] = 0.25
    """Evolution: share of the population kept as parents."""

    mutation_ratio: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Evolution: share of the next generation made by mutation (the rest by crossover)."""

    metric: Annotated[dict[str, Any], Slot("metric")] = {"type": "fid"}
    """Metric of a candidate's images on the held-out images; FID as GAN-Compression (its real
    statistics: the held-out targets, or the metric's own reference such as ``real_dir``)."""

    score: str = "fid"
    """Name of the metric's value that ranks candidates (its direction comes from the metric)."""

    holdout: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """Share of the training split held out (seeded, without augmentation) to score candidates
    on (GAN-Compression: the half in its ``train2`` metas); never the test split."""

    max_images: Annotated[int, Field(gt=0)] | None = None
    """Score each candidate on the first this many held-out images only (null: all of them;
    GAN-Compression: all). Fewer makes a CPU demo's search affordable, and FID noisier."""

    seed: int | None = None
    """Seed of the evolution; null: the spec's seed."""

    top: Annotated[int, Field(ge=1)] = 20
    """Rows of the ranked candidates table (``tables/candidates.csv``)."""

    def describe(self, spec: Any) -> str:
        how = (
            f"evolution (population {self.population}, {self.iterations} generations)"
            if self.algorithm == "evolution"
            else "exhaustive search"
        )
        return (
            f"{how} of the supernet's sub-networks under {self.budget / 1e9:.3g}G MACs at "
            f"{self.resolution} px, scored by {self.score} on {self.holdout:.0%} of the "
            "training split"
        )


class GanCompressionFinetuneStage(TrainingStage):
    """Fine-tuning of the chosen sub-network."""

    iterations: Annotated[int, Field(gt=0)] | None = 100_000
    """Iterations of the fine-tuning (GAN-Compression: 5+15 epochs)."""
    teacher: Literal["online", "frozen"] | None = "frozen"
    """The teacher stays fixed."""

    def describe(self, spec: Any) -> str:
        return "fine-tune the chosen sub-network (a sub_mobile_resnet) from the supernet's weights"


class GanCompressionStages(Stages):
    """GAN-Compression's recipe, in order."""

    teacher: GanCompressionTeacherStage = GanCompressionTeacherStage.as_default()
    """Train the Mobile-ResNet teacher. Paired data: pix2pix (``gan_mode`` GAN against the
    conditional discriminator, then ``teacher_recon_weight``·L1; D updated before G). Unpaired:
    CycleGAN, the teacher as G_A with a reverse ``teacher_B``, ``discriminator`` (D_A) and
    ``discriminator_B``, history pools, ``cycle_weight`` and ``identity_weight`` (G updated
    before D). The discriminator (D_A) is what the student stages start from. Disable it to
    start from ``teacher.checkpoint`` (a released ``latest_net_G_A.pth`` loads strictly) and
    ``discriminator_checkpoint``."""

    distill: GanCompressionDistillStage = GanCompressionDistillStage.as_default()
    """Optional pre-distillation into the narrower spec student (GAN-Compression's
    ``distill.py``, student ngf 32 or 48), initialised from the teacher by L1-magnitude channel
    selection; disabled by default (the supernet then starts from a fresh student)."""

    supernet: GanCompressionSupernetStage = GanCompressionSupernetStage.as_default()
    """Once-for-all supernet: each iteration draws one configuration uniformly from
    ``method.channels`` (a function of the step, so a resumed run draws the same), and the
    student's first k channels of every layer are trained with the student loss."""

    search: GanCompressionSearchStage = GanCompressionSearchStage.as_default()
    """The best sub-network under the MAC budget, scored on held-out training images."""

    finetune: GanCompressionFinetuneStage = GanCompressionFinetuneStage.as_default()
    """Fine-tune the chosen sub-network, starting from the supernet's weights (the MI term, if
    any, joins here)."""


class GanCompressionOptions(Options):
    """GAN-Compression (Li et al., CVPR 2020): teacher → (pre-distillation) → once-for-all
    supernet → search under a MAC budget → fine-tune, for Mobile-ResNet generators.

    Student loss in every student stage: ``gan_weight``·GAN (``gc.gan``) + ``recon_weight``·L1
    (``gc.recon``: to the ground truth on paired data, to the frozen teacher's output on
    unpaired) + ``distill_weight``·Σ_l MSE(A_l(S_l), T_l) (``gc.distill``) over the 4 ``taps``
    with 1×1 adapters with bias (module ``gc_adapters``, trained with the student). The
    discriminator (module ``discriminator``) is inherited from the stage before (the teacher
    stage's on paired data). Defaults per task are GAN-Compression's: pix2pix λ 1/100/1,
    hinge, conditional PatchGAN ndf 128; CycleGAN λ_recon 10, λ_distill 0.01, LSGAN, PatchGAN
    ndf 64.

    The **fast** variant (supernet distilled directly from the teacher, no pre-distillation)
    is a spec setting: a student ``mobile_resnet`` as wide as the teacher (ngf 64),
    ``channels: channels-64-cycleGAN`` (or ``channels-64-pix2pix``), ``stages.distill`` disabled
    (the default); the teacher may then be the original ``resnet`` (``teacher.checkpoint``).
    """

    stages: GanCompressionStages = GanCompressionStages.as_default()
    """The recipe's stages."""

    channels: (
        str | Annotated[list[list[Annotated[int, Field(gt=0)]]], Field(min_length=8, max_length=8)]
    ) = "channels-32"
    """Channel choices of the 8 sub-network entries: a GAN-Compression set name
    (``channels-32``, ``channels-48``, ``channels-64-cycleGAN``, ``channels-64-pix2pix``) or
    8 lists of widths in ngf units (stem, down 1, down 2 / trunk, blocks 1–3, 4–6, 7–9, up 1,
    up 2). The largest choice of each entry must not exceed the student's ngf."""

    gan_weight: NonNegative = 1.0
    """λ_gan of the student's adversarial loss ``gc.gan``."""

    recon_weight: NonNegative | None = None
    """λ_recon of ``gc.recon``; null: 100 on paired data, 10 on unpaired."""

    distill_weight: NonNegative | None = None
    """λ_distill of ``gc.distill``; null: 1 on paired data, 0.01 on unpaired."""

    gan_mode: Literal["hinge", "lsgan", "vanilla"] | None = None
    """Adversarial loss of generator and discriminator; null: hinge on paired data, lsgan on
    unpaired."""

    discriminator: Annotated[dict[str, Any] | None, Slot("arch")] = None
    """Discriminator (module ``discriminator``); null: PatchGAN n_layers 3 with instance norm,
    ndf 128 on concat(A, B) for paired data, ndf 64 on the image for unpaired."""

    discriminator_checkpoint: str | None = None
    """Weights to start the discriminator from when no earlier stage trained it (unpaired data:
    the teacher's ``latest_net_D_A.pth``, GAN-Compression's ``--restore_D_path``)."""

    teacher_recon_weight: NonNegative = 100.0
    """Teacher stage, paired data: weight of the teacher's L1 to the ground truth (pix2pix
    λ_L1)."""

    cycle_weight: NonNegative = 10.0
    """Teacher stage, unpaired data: weight of each cycle-consistency L1 (CycleGAN λ_A = λ_B)."""

    identity_weight: NonNegative = 0.5
    """Teacher stage, unpaired data: identity L1 weight relative to ``cycle_weight`` (CycleGAN
    λ_identity; 0 turns it off)."""

    pool_size: Annotated[int, Field(ge=0)] = 50
    """Teacher stage, unpaired data: earlier fakes kept per discriminator (CycleGAN's image
    pool)."""

    taps: Annotated[list[str], Field(min_length=1)] = list(MOBILE_RESNET_CD_TAPS)
    """Dotted paths of the distilled features, the same in student and teacher: the ReLU after
    the second down and the outputs of residual blocks 3, 6 and 9 (``model.9/12/15/18``)."""

    @model_validator(mode="after")
    def _known_channels(self) -> Self:
        if isinstance(self.channels, str) and self.channels not in GAN_COMPRESSION_CHANNELS:
            raise ValueError(
                f"channels: unknown set '{self.channels}' "
                f"(known: {', '.join(GAN_COMPRESSION_CHANNELS)}) or give 8 lists of widths"
            )
        if isinstance(self.channels, list) and any(not c for c in self.channels):
            raise ValueError("channels: every entry needs at least one width")
        return self

    def channel_choices(self) -> list[list[int]]:
        """The 8 entries' choices, largest first."""
        raw = (
            GAN_COMPRESSION_CHANNELS[self.channels]
            if isinstance(self.channels, str)
            else self.channels
        )
        return [sorted({int(v) for v in entry}, reverse=True) for entry in raw]


# -- GCC ----------------------------------------------------------------------------------------


class GCCPruneStage(StepStage):
    """GCC's pruning step: every prunable channel space of the sparse pre-trained student keeps
    the channels whose mean |γ| over its BatchNorms is above one global threshold, found by
    binary search so that the pruned generator's MACs land at or under ``budget`` in the named
    convention (never fewer than one channel per space); the pruned net is then re-initialised
    by the ``distil`` stage (its ``inherit: []``)."""

    changes = ("student",)

    budget: Annotated[float, Field(gt=0)] = 3.0e9
    """MAC budget of the pruned student in ``convention`` (GCC's ``--target_budget``:
    pix2pix Cityscapes 3.0G; SAGAN 0.016G, whose search with a 1M tolerance landed at the
    paper's 15.45M)."""

    convention: Literal["thop_legacy", "paper", "exact"] = "thop_legacy"
    """MAC count the budget is in. ``thop_legacy`` is the old thop GCC measured with (for SAGAN
    the spectral-normalised layers are invisible to it, baselines.md §0); the summary reports
    the ``paper`` (torchprofile) and ``exact`` counts beside it."""

    def describe(self, spec: Any) -> str:
        """One line for ``vemkit plan``: the budget and the student's MACs in every convention
        (the student is built on the meta device; nothing is trained)."""
        line = (
            f"prune the student by BatchNorm |γ| (one global threshold) to ≤ "
            f"{_format_macs(self.budget)} MACs ({self.convention})"
        )
        try:
            counts = gcc_student_macs(spec)
        except Exception as exc:  # an arch the channel analysis cannot trace
            return f"{line}; the student's MACs could not be counted ({type(exc).__name__})"
        shown = ", ".join(f"{_format_macs(v)} {k}" for k, v in counts.items())
        return f"{line}; the student before pruning: {shown}"


def _format_macs(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.4g}{unit}"
    return f"{n:.4g}"


def gcc_student_macs(spec: Any) -> dict[str, int]:
    """MACs of ``spec``'s student in the three conventions (imports torch: plan only)."""
    import torch

    from vemkit import registry
    from vemkit.profile import spec_input_shape
    from vemkit_plugins.compress.channels import analyze
    from vemkit_plugins.compress.macs import WidthMacs

    with torch.device("meta"):
        net = registry.default().build("arch", spec.student.arch)
    z_dim = getattr(net, "z_dim", None)
    shape = (int(z_dim),) if z_dim is not None else spec_input_shape(spec)
    graph = analyze(net, shape)
    return {c: int(WidthMacs(graph, c)()) for c in ("thop_legacy", "paper", "exact")}


class GCCPretrainStage(TrainingStage):
    """GCC's sparse pre-training: the student alone (its teacher is not used)."""

    teacher: Literal["online", "frozen"] | None = "frozen"
    """The teacher in this stage: unused, so kept frozen (no optimizer, no phase)."""


class GCCDistilStage(TrainingStage):
    """GCC's online distillation: everything starts fresh."""

    teacher: Literal["online", "frozen"] | None = "online"
    """GCC trains its full-width teacher from scratch alongside the student."""
    inherit: list[str] | None = []
    """``[]``: the pruned student, the teacher and the discriminators are re-initialised (GCC
    re-initialises the pruned network at random)."""


class GCCStages(Stages):
    """GCC's recipe: sparse pre-training → pruning to a MAC budget → online distillation."""

    pretrain: GCCPretrainStage = GCCPretrainStage.as_default(iterations=10_000)
    """Sparse pre-training of the wide student: its own GAN loss (+ L1 to the target on paired
    data) and λ·sign(γ) on its BatchNorm scales (GCC: a tenth of the distillation epochs)."""

    prune: GCCPruneStage = GCCPruneStage.as_default()
    """Global BatchNorm-|γ| threshold found by binary search to the MAC budget."""

    distil: GCCDistilStage = GCCDistilStage.as_default()
    """Online distillation: a fresh full-width teacher and its discriminator trained in the same
    loop (teacher first), the pruned student re-initialised, with its gated discriminator."""


class GCCOptions(Options):
    """GCC — Generator-discriminator Cooperative Compression (Li et al., NeurIPS 2021), as a
    recipe (``stages``). pix2pix (``task: paired``: conditional PatchGANs, L1 to the target)
    and unconditional GANs (``task: unconditional``: SAGAN, hinge losses). Defaults are GCC's;
    ``null`` fields take GCC's value for the task (pix2pix Cityscapes / SAGAN CelebA)."""

    stages: GCCStages = GCCStages.as_default()
    """The recipe's stages (``--set method.stages.distil.iterations=...``)."""

    gan_mode: Literal["hinge", "lsgan", "vanilla"] = "hinge"
    """Adversarial loss of every generator and discriminator (GCC pix2pix and SAGAN: hinge)."""

    sparsity: NonNegative = 1.0e-2
    """λ of the pre-training sparsity term ``gcc.sparsity`` (GCC ``--lambda_scale`` 1e-2 on
    BatchNorm scales; ``--lambda_weight`` 1e-3 on conv weights for the Mobile ResNet)."""

    sparsity_on: Literal["scale", "weight"] = "scale"
    """What the sparsity acts on: BatchNorm scales γ (U-Net, SAGAN) or conv weights."""

    recon_weight: NonNegative = 100.0
    """Paired data: weight of the student's L1 to the target ``gcc.recon`` in both training
    stages (GCC pix2pix ``lambda_L1`` 100)."""

    teacher_recon_weight: NonNegative = 100.0
    """Paired data: weight of the online teacher's L1 to the target ``gcc.teacher_recon``."""

    content_weight: NonNegative | None = None
    """λ_content of ``gcc.content`` (Σ √MSE of the adapted features); null: 50 (pix2pix
    Cityscapes) or 1 (SAGAN)."""

    gram_weight: NonNegative | None = None
    """λ_gram of ``gcc.gram`` (Σ √MSE of the features' Gram matrices); null: 1e4 (pix2pix
    Cityscapes) or 1 (SAGAN)."""

    root: bool = True
    """Distances of the content and Gram terms: √MSE (GCC pix2pix and SAGAN) or plain MSE
    (``false``: GCC CycleGAN)."""

    student_taps: Annotated[list[str], Field(min_length=1)] | None = None
    """Dotted module paths of the student generator's distilled features (each through a 1×1
    adapter, no bias, to the teacher's width); null: GCC's for the arch (``unet``: the 4 U-Net
    taps; ``sagan_generator``: ``l2``, ``attn2``)."""

    teacher_taps: Annotated[list[str], Field(min_length=1)] | None = None
    """The matching paths in the teacher; null: the student's."""

    discriminator_taps: list[str] | None = None
    """Features of the *teacher's* discriminator compared on the student's vs the teacher's
    image (no adapter); null: GCC's two (``patchgan``: ``model.3``, ``model.9``;
    ``sagan_discriminator``: ``l2``, ``attn2``); ``[]``: none."""

    discriminator: Annotated[dict[str, Any] | None, Slot("arch")] = None
    """The student's discriminator (gated in ``distil``); null: GCC's for the task — pix2pix
    ``{type: patchgan, ndf: 128, input_nc: in+out}`` on concat(input, image), SAGAN
    ``{type: sagan_discriminator, ndf: 64}``."""

    teacher_discriminator: Annotated[dict[str, Any] | None, Slot("arch")] = None
    """The online teacher's discriminator (never gated); null: the same as ``discriminator``
    (GCC: ``teacher_ndf`` 128 pix2pix, 64 SAGAN)."""

    discriminator_lr_scale: Annotated[float, Field(gt=0)] | None = None
    """Discriminators' learning rate = the spec's ``train.optimizer`` lr × this (same optimizer
    type and betas); null: 4 (SAGAN: D 4e-4 for G 1e-4) or 1 (pix2pix)."""

    gates: bool = True
    """Discriminator selection: the student's discriminator carries channel gates updated each
    iteration by the gap objective (``gcc.gates``); ``false``: a plain discriminator."""

    gate_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """Gates open where alpha > this (GCC default 0.5; its SAGAN script 0.1)."""

    gate_lr: Annotated[float, Field(gt=0)] = 1.0e-4
    """Adam learning rate of the gates (GCC ``--arch_lr``), constant."""

    gate_d_weight: NonNegative | None = None
    """Weight of the student D loss in the gate objective; null: 0.5 (pix2pix) or 1 (SAGAN)."""


class CATPruneStage(StepStage):
    """CAT's pruning (``utils/common.py: shrink_model``): one global threshold on the |γ| of the
    teacher's prunable norms (the three down-sampling norms, the first norm of every Inception
    branch, the two up-sampling norms), found by binary search until the pruned network's MACs,
    as CAT counts them, are at most ``target_macs``. A down/up-sampling layer keeps at least
    ``min_channels`` channels (its largest |γ|); an Inception branch may lose every channel and
    is then dropped. The student is the pruned teacher, recorded as an ``inception_resnet``
    arch with explicit ``widths``."""

    changes = ("student",)

    target_macs: Annotated[float, Field(gt=0)] = 2.6e9
    """MAC budget of the student per image at the training crop size, in CAT's own count (the
    unit of its ``--target_flops``: paper-convention convs plus one MAC per output element of
    every norm without running statistics; 43.53G for the ngf-64 teacher at 256 px). CAT's
    scripts: 2.6e9 horse→zebra (its students land at 2.55–2.56G), 5.6e9 Cityscapes, 4.6e9
    map→satellite."""

    min_channels: Annotated[int, Field(ge=1)] = 16
    """Fewest channels of each down- and up-sampling layer (CAT's ``--prune_cin_lb 16``; capped
    at the layer's own width). Inception branches have no floor."""

    tolerance: Annotated[float, Field(gt=0, lt=1)] = 1e-3
    """The search stops once the threshold interval is narrower than this fraction of its lower
    end (and the MACs are within budget). CAT's 1e-3 leaves the student up to about 1–2 % under
    the budget (its horse→zebra students: 2.55–2.56G for 2.6e9); a smaller value lands closer."""

    reinit: bool = True
    """Re-initialise the pruned student as CAT does (``init_net`` after pruning): every conv
    weight re-drawn (N(0, init_gain), biases 0) and BatchNorm scales re-drawn (N(1, init_gain),
    shifts 0), while instance norms keep the teacher's pruned γ/β and each block's ``pw_bn``
    starts at γ = 1, β = 0 — only the architecture (and those instance-norm affines) is
    inherited. ``false`` keeps every pruned weight of the teacher (a warm start CAT does not
    use)."""

    def describe(self, spec: Any) -> str:
        start = "re-initialised" if self.reinit else "keeping the teacher's weights"
        return (
            f"prune the teacher by one global |γ| threshold to ≤ {self.target_macs / 1e9:.3g}G "
            f"MACs (CAT's count), ≥ {self.min_channels} channels per down/up-sampling layer; "
            f"the student is the pruned teacher, {start}"
        )


class CATTeacherStage(TrainingStage):
    """CAT's teacher training (a stage that trains only the teacher)."""

    # Class defaults, not an instance default of the ``stages`` field: a partial override
    # (``--set method.stages.teacher.iterations=...``) builds the stage from its class.
    teacher: Literal["online", "frozen"] | None = "online"
    """The teacher trains in this stage (``online``)."""
    student: bool = False
    """No student in this stage; its evaluation scores the teacher."""

    def describe(self, spec: Any) -> str:
        how = "GAN + λ·L1 (pix2pix)" if spec.task == "paired" else "CycleGAN losses"
        return f"train the Inception teacher from scratch: {how}"


class CATStudentStage(TrainingStage):
    """CAT's distillation into the pruned student."""

    teacher: Literal["online", "frozen"] | None = "frozen"
    """The teacher is frozen while the student learns."""

    def describe(self, spec: Any) -> str:
        method = spec.method
        if method.stages.teacher.enabled:
            d = "D continues from the teacher stage's"
        elif method.discriminator_checkpoint is not None:
            d = "D from method.discriminator_checkpoint"
        else:
            d = "D starts from scratch"
        return (
            "distil the frozen teacher into the pruned student: GAN + λ_recon·L1 − "
            f"λ_distill·Σ KA; {d}"
        )


class CATStages(Stages):
    """CAT's recipe: train the teacher, prune it, distil into the pruned student."""

    teacher: CATTeacherStage = CATTeacherStage.as_default()
    """Train the Inception teacher from scratch as CAT's ``train.py`` does (CycleGAN losses on
    unpaired data, GAN + ``teacher_lambda_recon``·L1 on paired data); its evaluation scores the
    teacher. Set ``enabled: false`` when ``teacher.checkpoint`` holds a trained teacher (CAT's
    ``--restore_teacher_G_path``); give ``method.discriminator_checkpoint`` then to restore D."""

    prune: CATPruneStage = CATPruneStage.as_default()
    """One global |γ| threshold to the MAC budget; the student is the pruned teacher."""

    student: CATStudentStage = CATStudentStage.as_default()
    """Distil the frozen teacher into the pruned student: GAN + λ_recon·Recon − λ_distill·Σ KA;
    the discriminator continues from the teacher stage's. The spec's MI term (``mi:``) joins
    this stage, its positive the frozen teacher's output already computed in the step."""


class CATOptions(Options):
    """CAT — Compression And Teaching (Jin et al., CVPR 2021), snap-research/CAT, as a recipe.

    ``teacher`` stage → ``prune`` step → ``student`` stage (see ``stages``). The teacher and
    the student are ``inception_resnet`` generators; give ``student.arch`` the teacher's arch
    (the prune step replaces it by the pruned teacher). The student stage minimises
    ``cat.gan`` (λ_gan) + ``cat.recon`` (λ_recon · L1 to the teacher's image or the ground
    truth) + ``cat.distill`` (λ_distill · −Σ_l KA(S_l, T_l) over the four taps, no adapter) and
    trains its discriminator with ``cat.d`` (½ real + ½ fake, the student's current image).
    Defaults follow CAT's scripts per task: unpaired (horse→zebra) λ_distill 1, λ_recon 5 to the
    teacher, LSGAN, PatchGAN ndf 64; paired (Cityscapes) 0.5, 100 to the ground truth, hinge,
    PatchGAN ndf 128 on concat(input, image).
    """

    stages: CATStages = CATStages.as_default()
    """The recipe's stages, in order."""

    lambda_gan: NonNegative = 1.0
    """Weight of the adversarial terms of the teacher stage and of ``cat.gan`` (CAT
    ``--lambda_gan``)."""

    lambda_recon: NonNegative | None = None
    """Weight of ``cat.recon``; null = CAT's script for the task: 5 unpaired (horse→zebra), 100
    paired (Cityscapes)."""

    recon_target: Literal["teacher", "target"] | None = None
    """What ``cat.recon`` compares the student's image with: the frozen teacher's image (CAT on
    unaligned data) or the ground truth (CAT on aligned data); null = CAT's choice for the
    task."""

    lambda_distill: NonNegative | None = None
    """Weight of ``cat.distill`` = −Σ_l KA(S_l, T_l); null = CAT's script for the task: 1
    unpaired (horse→zebra), 0.5 paired (Cityscapes)."""

    ka_chunks: Annotated[int, Field(ge=1)] = 1
    """Kernel alignment compares every sample of a batch with every other one, so it depends on
    the batch it sees: CAT's batch of 80 on 4 GPUs under DataParallel computed it on each GPU's
    20 samples and summed the 4 values; ``ka_chunks: 4`` reproduces that on one device (the loss
    then lies in [−4·taps, 0]). Under DDP each process computes it on its own batch: changing
    the number of processes at a fixed global batch changes the objective. Each chunk needs at
    least 2 samples (with 1, KA ≡ 1 and has no gradient)."""

    taps: Annotated[list[str], Field(min_length=1)] = list(CAT_KA_TAPS)
    """Dotted module paths compared by kernel alignment, the same in the student and the
    teacher (CAT's ``mapping_layers``: after the second down-sampling and after Inception
    blocks 3, 6 and 9)."""

    gan_mode: Literal["hinge", "lsgan", "vanilla"] | None = None
    """Adversarial loss of both stages; null = CAT's choice for the task: ``lsgan`` unpaired
    (``cycle_gan`` model and the horse→zebra distillation script), ``hinge`` paired."""

    discriminator: Annotated[dict[str, Any] | None, Slot("arch")] = None
    """The discriminator of the teacher stage (D_A for unpaired data), continued by the student
    stage; null = CAT's: a PatchGAN (n_layers 3) with the teacher's norm, affine
    (``--norm_affine_D``), ndf 64 on images unpaired, ndf 128 on concat(input, image) paired."""

    discriminator_checkpoint: str | None = None
    """Weights of the student stage's discriminator (CAT's ``--restore_D_path``) when the
    recipe has no teacher stage (``stages.teacher.enabled: false``, teacher from
    ``teacher.checkpoint``); null with no teacher stage: D starts from scratch."""

    teacher_lambda_recon: NonNegative = 100.0
    """Paired data: weight of the teacher's L1 to the ground truth in the teacher stage (CAT's
    ``pix2pix`` model ``--lambda_recon``)."""

    lambda_cycle: NonNegative = 10.0
    """Unpaired data, teacher stage: weight of both cycle-consistency L1 terms (CAT's
    ``cycle_gan`` model ``--lambda_A``/``--lambda_B``)."""

    lambda_identity: NonNegative = 0.5
    """Unpaired data, teacher stage: identity loss weight relative to ``lambda_cycle`` (0 turns
    it off)."""

    pool_size: Annotated[int, Field(ge=0)] = 50
    """Unpaired data, teacher stage: size of each discriminator's history of generated images
    (CAT's ``--pool_size``; the student stage's D sees the current image, as in CAT)."""


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


class CAGCStages(Stages):
    """The CAGC recipe: (an optional teacher training) → content-aware pruning → retraining."""

    teacher: CAGCTeacherStage = CAGCTeacherStage.as_default()
    """Trains the StyleGAN2 teacher with the same objective (rosinality's ``train.py``); off by
    default — the paper's teacher is a released checkpoint (``method.teacher_checkpoint``). On,
    it makes a self-contained offline demo: a small teacher trained in the first stage."""

    prune: CAGCPruneStage = CAGCPruneStage.as_default()
    """Content-aware pruning of the teacher's EMA generator (CAGC ``prune.py``)."""

    retrain: CAGCRetrainStage = CAGCRetrainStage.as_default()
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

    stages: CAGCStages = CAGCStages.as_default()
    """Stages of the recipe."""

    training: StyleGAN2TrainingOptions = StyleGAN2TrainingOptions.as_default()
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
