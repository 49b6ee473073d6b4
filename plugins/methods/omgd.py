"""``omgd``: Online Multi-Granularity Distillation (Ren et al., ICCV 2021) as a run plugin.

The facts follow the public bytedance/OMGD code (``distillers/multiteacher_distiller.py`` for
pix2pix, ``distillers/cycleganbest_distiller.py`` for CycleGAN); the loss functions live in
:mod:`vemkit_plugins.methods.omgd_losses`, the perceptual networks in
:mod:`vemkit_plugins.methods.perceptual`.

**pix2pix** (``task: paired``). Modules: the spec's ``teacher`` (the wide U-Net), the
``deep_teacher`` (U-Net-deepest), one ``discriminator`` shared by both (a head per teacher), and
the channel-distillation ``cd_adapters`` (trained with the student). One iteration:

* ``teacher`` phase (every ``n_dis``): per teacher ``omgd.teacher_gan.<t>`` (the GAN loss of
  its image under its head of D, weight ``lambda_gan``) and ``omgd.teacher_l1.<t>`` (L1 to the
  ground truth, weight ``lambda_rec``);
* ``discriminator`` phase (every ``n_dis``): ``omgd.d.<t>`` = ½(L(real) + L(fake)) per head;
* the MI term's ``energy`` phase, if any (VEM);
* ``student`` phase: per teacher ``omgd.ssim.<t>``, ``omgd.style.<t>``, ``omgd.feature.<t>``,
  ``omgd.tv.<t>`` against the teacher's (detached) image, and ``omgd.cd`` against the wide
  teacher's taps. No GAN loss and no L1 to the ground truth: the student never reads
  ``target``.

``<t>`` is ``wide`` or ``deep``; with one teacher (``deep_teacher: null``) the names carry no
suffix. OMGD computes the teachers' GAN loss with the discriminator *before* its update and
steps both afterwards (``backward_D_teacher``, then ``backward_G_teacher``, then the steps), so
the discriminator phase runs right after the teacher phase (order ``ORDER_TEACHER + 50``), on
the same detached images, which gives exactly that update.

**CycleGAN** (``task: unpaired``). The spec's teacher is G_A (A→B); this method adds the reverse
generator ``teacher_B`` (same arch), ``discriminator_A`` (judges B images) and
``discriminator_B`` (judges A images), and a history pool per discriminator. The ``teacher``
phase holds ``omgd.teacher_gan.A/B``, ``omgd.cycle.A/B`` (weight ``lambda_cycle``) and
``omgd.idt.A/B`` (weight ``lambda_cycle·lambda_identity``); the ``discriminator`` phase
``omgd.d.A/B`` against pooled fakes; the student phase ``omgd.ssim``, ``omgd.style``,
``omgd.feature``, ``omgd.tv`` and ``omgd.cd`` against G_A(A). Without ``best_teacher`` the
student learns every iteration from the current teacher; with it, OMGD's alternating schedule
runs (teacher blocks, then student blocks against the best G_A so far; see
:mod:`vemkit_plugins.methods.omgd_schedule`).

With ``teacher.mode: frozen`` there are no teacher and discriminator phases and no
discriminators; the students' terms are the same.

The perceptual network is frozen and is an attribute of this object, not a program module, so
it is never saved in checkpoints; it follows the run's device on first use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.engine.hookspecs import ORDER_TEACHER, hookimpl
from vemkit.engine.state import State
from vemkit.errors import VemkitError
from vemkit_plugins._precision import bf16_autocast
from vemkit_plugins.methods.omgd_losses import (
    ImagePool,
    channel_distillation_loss,
    feature_loss,
    gan_loss_d,
    gan_loss_g,
    gram,
    gram_style_loss,
    load_pools_state_dict,
    make_cd_adapter,
    pools_state_dict,
    ssim_loss,
    tv_loss,
)
from vemkit_plugins.methods.omgd_schedule import BestTeacherSchedule
from vemkit_plugins.methods.options import (
    MOBILE_RESNET_CD_TAPS,
    UNET_CD_TAPS,
    OMGDOptions,
)

__all__ = ["OMGD", "ORDER_DISCRIMINATOR_AFTER_TEACHER", "PERCEPTUAL_BF16_TOLERANCE", "build"]

PERCEPTUAL_BF16_TOLERANCE = 2.0**-8
"""The largest relative difference that ``perceptual_autocast: bf16`` (a default) may cause in
any loss term against fp32 in the first iteration of a run, and over the first few iterations
``vemkit_plugins.mi.vem.DRIFT_TOLERANCE`` (the rules of ``vemkit_plugins.mi.vem.BF16_TOLERANCE``).
Measured by ``benchmarks/throughput.py --losses`` and asserted by ``tests/test_mi_precision.py``."""

TEACHER = "teacher"
DISCRIMINATOR = "discriminator"
DEEP = "deep_teacher"
REVERSE = "teacher_B"
ADAPTERS = "cd_adapters"
ORDER_DISCRIMINATOR_AFTER_TEACHER = ORDER_TEACHER + 50
"""The discriminator phase: after the teachers' update (which used the old discriminator, as in
OMGD), before the energy (300) and student (400) phases."""

DEFAULT_CD_TAPS = {"unet": UNET_CD_TAPS, "mobile_resnet": MOBILE_RESNET_CD_TAPS}
"""OMGD's channel-distillation taps (``mapping_layers``) by student arch."""


def _image(out: Any) -> Tensor:
    # A generator that also returns extras (latents) gives its image first.
    while isinstance(out, tuple | list):
        out = out[0]
    return out


def _channels(arch: Any, names: tuple[str, ...], default: int = 3) -> int:
    for name in names:
        value = getattr(arch, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


class OMGD:
    """The ``omgd`` method as a run plugin (see the module docstring)."""

    def __init__(self, options: OMGDOptions, spec: Any) -> None:
        self.options = options
        self.cyclegan = spec.task == "unpaired"
        self.online = spec.teacher.mode == "online"
        self.gan_mode = options.gan_mode or ("lsgan" if self.cyclegan else "hinge")
        self.seed = int(spec.seed)
        self.in_c = _channels(spec.student.arch, ("input_nc", "in_channels"))
        self.out_c = _channels(spec.student.arch, ("output_nc", "out_channels"))
        self.teachers: list[tuple[str, str]] = [("wide", "teacher.out")]
        """(label, tensor name) of each teacher image the student learns from."""
        self.extractor: nn.Module | None = None
        self.pools: dict[str, ImagePool] = {}
        self.cd_keys: list[tuple[str, str]] = []
        self.conditional = False
        self.discriminator_config: Any = None
        self.reuse_fake_scores = False
        """pix2pix: the discriminator phase scores the fakes through the teacher phase's graph."""
        self.schedule = (
            BestTeacherSchedule(options.best_teacher, teacher=TEACHER)
            if options.best_teacher is not None and self.cyclegan and self.online
            else None
        )

    # -- building ---------------------------------------------------------------------------
    @hookimpl
    def vemkit_build(self, program: Any, spec: Any) -> None:
        if spec.task == "unconditional":
            return  # vemkit_check reports it
        o = self.options
        teacher_group = TEACHER if self.online else None
        if not self.cyclegan and o.deep_teacher is not None:
            deep = program.add_module(
                DEEP,
                program.build("arch", o.deep_teacher),
                role="teacher",
                group=teacher_group,
                config=o.deep_teacher,
            )
            if o.deep_teacher_checkpoint is not None and not program.meta:
                self._load(deep, o.deep_teacher_checkpoint)
            elif not self.online:
                program.notes.append(
                    "teacher.mode is frozen but method.deep_teacher_checkpoint is null: the deep "
                    "teacher keeps its random initialisation"
                )
            program.add_producer(
                f"{DEEP}.out", lambda s: _image(deep(s["input"])), no_grad=not self.online
            )
            self.teachers.append(("deep", f"{DEEP}.out"))
        if self.online:
            program.add_group(DISCRIMINATOR)
            if self.cyclegan:
                self._build_cyclegan(program, spec)
            else:
                self._build_pix2pix_discriminator(program)
        if o.lambda_cd > 0:
            self._build_cd(program, spec)
        if not program.meta:
            self.extractor = self._build_extractor()

    def _load(self, module: nn.Module, path: str) -> None:
        from vemkit.weights import load_weights

        try:
            load_weights(module, path)
        except VemkitError as exc:
            raise VemkitError(f"method.deep_teacher_checkpoint: {exc}") from None

    def _build_pix2pix_discriminator(self, program: Any) -> None:
        o = self.options
        config = o.discriminator or {
            "type": "omgd_patchgan",
            "input_nc": self.in_c + self.out_c,
            "ndf": 128,
            "n_share": 5,
            "heads": len(self.teachers),
        }
        self.discriminator_config = config
        net = program.build("arch", config)
        program.add_module(
            DISCRIMINATOR, net, role="discriminator", group=DISCRIMINATOR, config=config
        )
        d_in = getattr(o.discriminator, "input_nc", None) if o.discriminator else config["input_nc"]
        self.conditional = d_in == self.in_c + self.out_c

    def _build_cyclegan(self, program: Any, spec: Any) -> None:
        o = self.options
        g_a = program.module(TEACHER)
        g_b = program.add_module(
            REVERSE,
            program.build("arch", spec.teacher.arch),
            role="teacher",
            group=TEACHER,
            config=spec.teacher.arch,
        )
        config = o.discriminator or {
            "type": "patchgan",
            "input_nc": self.out_c,
            "ndf": 64,
            "norm": "instance",
        }
        self.discriminator_config = config
        if spec.teacher.checkpoint is not None:
            program.notes.append(
                "teacher.checkpoint loads G_A only: the reverse generator teacher_B and the "
                "discriminators start from random weights"
            )
        for side in ("A", "B"):
            program.add_module(
                f"{DISCRIMINATOR}_{side}",
                program.build("arch", config),
                role="discriminator",
                group=DISCRIMINATOR,
                config=config,
            )
        # Pool "B" keeps G_A's fakes (domain B) for D_A, pool "A" G_B's fakes for D_B.
        self.pools = {
            side: ImagePool(o.pool_size, seed=self.seed * 2 + k)
            for k, side in enumerate(("A", "B"))
        }

        def quiet(net: nn.Module, x: Tensor) -> Tensor:
            # G_A also runs on B images here; its feature taps must keep G_A(A)'s activations.
            with program.activate(None):
                return _image(net(x))

        program.add_producer("omgd.fake_A", lambda s: _image(g_b(s["target"])))
        program.add_producer("omgd.rec_A", lambda s: _image(g_b(s["teacher.out"])))
        program.add_producer("omgd.rec_B", lambda s: quiet(g_a, s["omgd.fake_A"]))
        program.add_producer("omgd.idt_A", lambda s: quiet(g_a, s["target"]))
        program.add_producer("omgd.idt_B", lambda s: _image(g_b(s["input"])))

    def _build_cd(self, program: Any, spec: Any) -> None:
        o = self.options
        student_taps = o.cd_student_taps
        if student_taps is None:
            student_taps = list(DEFAULT_CD_TAPS.get(spec.student.arch.type, ()))
            if not student_taps:
                raise VemkitError(
                    f"method.cd_student_taps: OMGD's channel-distillation taps are known for "
                    f"{' and '.join(DEFAULT_CD_TAPS)} students, not '{spec.student.arch.type}'; "
                    "list the taps (and cd_teacher_taps), or set lambda_cd: 0"
                )
        teacher_taps = o.cd_teacher_taps or student_taps
        # Without cd_teacher_taps the student's paths are looked up in the teacher too.
        teacher_where = "method.cd_teacher_taps" if o.cd_teacher_taps else "method.cd_student_taps"
        keys = []
        for where, owner, paths in (
            ("method.cd_student_taps", "student", student_taps),
            (teacher_where, "teacher", teacher_taps),
        ):
            found = []
            for i, path in enumerate(paths):
                try:
                    found.append(program.tap(owner, path))
                except VemkitError as exc:
                    raise VemkitError(f"{where}.{i}: {exc}") from None
            keys.append(found)
        self.cd_keys = list(zip(keys[0], keys[1], strict=True))
        try:
            shapes = program.probe([k for pair in self.cd_keys for k in pair])
        except VemkitError:
            raise
        except Exception as exc:  # a net that cannot run at the spec's size
            raise VemkitError(
                f"method.cd_student_taps: could not run the networks on an example batch to read "
                f"the taps' widths: {type(exc).__name__}: {exc}"
            ) from None
        adapters = nn.ModuleList(
            make_cd_adapter(shapes[s][1], shapes[t][1]) for s, t in self.cd_keys
        )
        program.add_module(ADAPTERS, adapters, role="adapter", group="student")

    def _build_extractor(self) -> nn.Module:
        from vemkit_plugins.methods.perceptual import build_extractor

        o = self.options
        try:
            return build_extractor(
                o.perceptual,
                vgg_weights=o.vgg_weights,
                normalize=o.vgg_normalize,
                seed=self.seed,
            )
        except VemkitError as exc:
            raise VemkitError(f"method.perceptual: {exc}") from None

    # -- phases ------------------------------------------------------------------------------
    @hookimpl
    def vemkit_phases(self, program: Any, spec: Any) -> None:
        if spec.task == "unconditional":
            return
        o = self.options
        if self.online:
            # pix2pix: the discriminator phase reuses the fake scores of the teachers' GAN
            # terms, so their graph must outlive the teacher phase's backward.
            self.reuse_fake_scores = not self.cyclegan and o.lambda_gan > 0
            program.add_phase(
                TEACHER,
                order=ORDER_TEACHER,
                groups=[TEACHER],
                every=o.n_dis,
                retain_graph=self.reuse_fake_scores,
            )
            program.add_phase(
                DISCRIMINATOR,
                order=ORDER_DISCRIMINATOR_AFTER_TEACHER,
                groups=[DISCRIMINATOR],
                every=o.n_dis,
            )
            if self.cyclegan:
                self._cyclegan_terms(program)
            else:
                self._pix2pix_terms(program)
        self._student_terms(program)
        if self.schedule is not None:
            program.add_phase_filter(self.schedule.allows, self.schedule.describe())

    def _pix2pix_terms(self, program: Any) -> None:
        o = self.options
        for head, (label, name) in enumerate(self.teachers):
            suffix = self._suffix(label)
            program.add_term(
                TEACHER, f"omgd.teacher_gan{suffix}", self._teacher_gan(name, head), o.lambda_gan
            )
            program.add_term(
                TEACHER,
                f"omgd.teacher_l1{suffix}",
                lambda s, name=name: F.l1_loss(s[name], s["target"]),
                o.lambda_rec,
            )
            program.add_term(DISCRIMINATOR, f"omgd.d{suffix}", self._pix2pix_d(name, head), 1.0)

    def _cyclegan_terms(self, program: Any) -> None:
        o = self.options
        gan = {"A": ("teacher.out", "A"), "B": ("omgd.fake_A", "B")}
        for side, (fake, d_side) in gan.items():
            program.add_term(
                TEACHER,
                f"omgd.teacher_gan.{side}",
                self._cycle_gan(fake, f"{DISCRIMINATOR}_{d_side}"),
                o.lambda_gan,
            )
        program.add_term(
            TEACHER,
            "omgd.cycle.A",
            lambda s: F.l1_loss(s["omgd.rec_A"], s["input"]),
            o.lambda_cycle,
        )
        program.add_term(
            TEACHER,
            "omgd.cycle.B",
            lambda s: F.l1_loss(s["omgd.rec_B"], s["target"]),
            o.lambda_cycle,
        )
        if o.lambda_identity > 0:
            weight = o.lambda_cycle * o.lambda_identity
            program.add_term(
                TEACHER, "omgd.idt.A", lambda s: F.l1_loss(s["omgd.idt_A"], s["target"]), weight
            )
            program.add_term(
                TEACHER, "omgd.idt.B", lambda s: F.l1_loss(s["omgd.idt_B"], s["input"]), weight
            )
        # D_A: real B against pooled G_A(A); D_B: real A against pooled G_B(B).
        program.add_term(
            DISCRIMINATOR, "omgd.d.A", self._cycle_d("A", "target", "teacher.out", "B"), 1.0
        )
        program.add_term(
            DISCRIMINATOR, "omgd.d.B", self._cycle_d("B", "input", "omgd.fake_A", "A"), 1.0
        )

    def _student_terms(self, program: Any) -> None:
        o = self.options
        for label, name in self.teachers:
            suffix = self._suffix(label)
            program.add_term(
                "student",
                f"omgd.ssim{suffix}",
                lambda s, name=name: ssim_loss(s["student.out"], s.detached(name)),
                o.ssim_weight,
            )
            program.add_term(
                "student",
                f"omgd.style{suffix}",
                lambda s, name=name: gram_style_loss(self._grams(s), self._grams(s, name)),
                o.style_weight,
            )
            program.add_term(
                "student",
                f"omgd.feature{suffix}",
                lambda s, name=name: feature_loss(
                    self._features(s), self._features(s, name), o.feature_layer
                ),
                o.feature_weight,
            )
            # OMGD adds the student's TV once per teacher; the published weights include that.
            program.add_term(
                "student",
                f"omgd.tv{suffix}",
                lambda s: tv_loss(s["student.out"], o.tv_reduction),
                o.tv_weight,
            )
        if self.cd_keys:
            program.add_term("student", "omgd.cd", self._cd, o.lambda_cd)

    def _suffix(self, label: str) -> str:
        return f".{label}" if len(self.teachers) > 1 else ""

    # -- terms --------------------------------------------------------------------------------
    def _score(self, state: State, net: nn.Module, image: Tensor, head: int) -> Any:
        if self.conditional:
            image = torch.cat([state["input"].to(image.dtype), image], dim=1)
        return net(image, head) if hasattr(net, "heads") else net(image)

    def _teacher_gan(self, name: str, head: int) -> Callable[[State], Tensor]:
        def term(state: State) -> Tensor:
            net = state.program.module(DISCRIMINATOR)
            scores = self._score(state, net, state[name], head)
            if self.reuse_fake_scores:
                state.values[f"omgd.d_fake.{name}"] = scores
            return gan_loss_g(scores, self.gan_mode)

        return term

    def _pix2pix_d(self, name: str, head: int) -> Callable[[State], Tensor]:
        # Two savings over scoring every image anew, with the same values: the teachers' GAN
        # terms already scored the fakes with this very discriminator (its step comes after),
        # and when every block is shared (OMGD's n_share 5) all heads are one network, so the
        # real pairs are scored once for all heads. Autograd sums the reused scores' gradients.
        def term(state: State) -> Tensor:
            net = state.program.module(DISCRIMINATOR)
            fake = state.values.pop(f"omgd.d_fake.{name}", None)
            if fake is None:
                fake = self._score(state, net, state.detached(name), head)
            if getattr(net, "n_share", 0) >= getattr(net, "n_blocks", 1):
                real = state.values.get("omgd.d_real")
                if real is None:
                    real = state.values["omgd.d_real"] = self._score(
                        state, net, state["target"], head
                    )
            else:
                real = self._score(state, net, state["target"], head)
            return gan_loss_d(real, fake, self.gan_mode)

        return term

    def _cycle_gan(self, fake: str, discriminator: str) -> Callable[[State], Tensor]:
        def term(state: State) -> Tensor:
            net = state.program.module(discriminator)
            return gan_loss_g(net(state[fake]), self.gan_mode)

        return term

    def _cycle_d(self, side: str, real: str, fake: str, pool: str) -> Callable[[State], Tensor]:
        def term(state: State) -> Tensor:
            net = state.program.module(f"{DISCRIMINATOR}_{side}")
            pooled = self.pools[pool].query(state.detached(fake))
            return gan_loss_d(net(state[real]), net(pooled), self.gan_mode)

        return term

    def _features(self, state: State, name: str | None = None) -> list[Tensor]:
        """Perceptual features of the student image (with gradient) or of the teacher image
        ``name`` (without), computed once per iteration."""
        key = f"omgd.features.{name or 'student.out'}"
        feats = state.values.get(key)
        if feats is None:
            extractor = self._extractor_for(state.device)
            with self._precision(state.device):
                if name is None:
                    feats = extractor(state["student.out"])
                else:
                    with torch.no_grad():
                        feats = extractor(state.detached(name))
            if any(f.dtype in (torch.bfloat16, torch.float16) for f in feats):
                feats = [f.float() for f in feats]  # the losses (Gram matrices) in fp32
            state.values[key] = feats
        return feats

    def _precision(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        return bf16_autocast(device, self.options.perceptual_autocast == "bf16")

    def _grams(self, state: State, name: str | None = None) -> list[Tensor]:
        """Gram matrices of :meth:`_features`, computed once per iteration: the student's serve
        every teacher's style term (one Gram and one backward through it instead of one per
        teacher; the same values)."""
        key = f"omgd.grams.{name or 'student.out'}"
        grams = state.values.get(key)
        if grams is None:
            grams = state.values[key] = [gram(f) for f in self._features(state, name)]
        return grams

    def _extractor_for(self, device: torch.device) -> nn.Module:
        if self.extractor is None:  # compiled with meta=True, then run after all
            self.extractor = self._build_extractor()
        first = next(iter(self.extractor.parameters()), None)
        if first is not None and first.device != device:
            self.extractor.to(device)
        return self.extractor

    def _cd(self, state: State) -> Tensor:
        adapters = state.program.module(ADAPTERS)
        students = [state[s] for s, _ in self.cd_keys]
        teachers = [state[t] for _, t in self.cd_keys]
        return channel_distillation_loss(students, teachers, list(adapters))

    # -- checks --------------------------------------------------------------------------------
    @hookimpl
    def vemkit_check(self, program: Any, spec: Any) -> list[str]:
        o = self.options
        if spec.task == "unconditional":
            return [
                "method: omgd distils image-to-image generators: it needs task paired (pix2pix) "
                "or unpaired (CycleGAN), not unconditional"
            ]
        problems = []
        if self.cyclegan and o.deep_teacher is not None:
            problems.append(
                "method.deep_teacher: OMGD's CycleGAN setting has one teacher pair; set "
                "deep_teacher: null for task unpaired"
            )
        if o.best_teacher is not None:
            problems += self._check_best_teacher(spec)
        if self.cyclegan and self.online and o.lambda_identity > 0 and self.in_c != self.out_c:
            problems.append(
                f"method.lambda_identity: the identity loss feeds B images to G_A, which needs "
                f"as many input as output channels ({self.in_c} ≠ {self.out_c}); set it to 0"
            )
        if self.out_c != 3:
            problems.append(
                f"method.perceptual: the style and feature losses need RGB images, but the "
                f"student makes {self.out_c}-channel images"
            )
        if not program.meta:
            problems += [p for p in (self._probe_discriminators(program),) if p]
            problems += [p for p in (self._probe_extractor(program),) if p]
        return problems

    def _check_best_teacher(self, spec: Any) -> list[str]:
        where = "method.best_teacher"
        if not self.cyclegan:
            return [
                f"{where}: the best-teacher schedule is OMGD's CycleGAN schedule; it needs task "
                "unpaired (set best_teacher: null)"
            ]
        problems = []
        if not self.online:
            problems.append(
                f"{where}: the schedule trains the teachers; it needs teacher.mode: online"
            )
        if self.options.n_dis != 1:
            problems.append(
                "method.n_dis: with best_teacher the student block's length is "
                "best_teacher.student_iterations; set n_dis: 1 (OMGD's n_dis × the teacher "
                "block goes there)"
            )
        if spec.data.eval is None:
            problems.append(f"{where}: the teachers are scored on data.eval, which is not set")
        return problems

    def _probe_discriminators(self, program: Any) -> str | None:
        """Run the discriminators once on an example, so that a network too deep for the image
        size (or made for other channels) fails here, with the spec path named."""
        if not self.online:
            return None
        batch = program.example_batch(1)
        image = batch["target"]
        if self.conditional:
            image = torch.cat([batch["input"], image], dim=1)
        net = program.module(f"{DISCRIMINATOR}_A" if self.cyclegan else DISCRIMINATOR)
        heads = getattr(net, "heads", None)
        if heads is not None and heads < len(self.teachers):
            return (
                f"method.discriminator: {heads} head(s) for {len(self.teachers)} teachers; give "
                "it one head per teacher"
            )
        try:
            with torch.no_grad(), program.eval_mode():
                net(image, 0) if heads is not None else net(image)
        except Exception as exc:  # a shape error of the user's network choice
            return (
                f"method.discriminator: cannot score images of shape {tuple(image.shape[1:])} "
                f"({self.discriminator_config}): {exc}"
            )
        return None

    def _probe_extractor(self, program: Any) -> str | None:
        assert self.extractor is not None
        image = program.example_batch(1)["target"].to("cpu")
        try:
            with torch.no_grad():
                self.extractor.to("cpu")(image)
        except Exception as exc:  # too small for the network's strides
            return (
                f"method.perceptual: {self.options.perceptual} cannot take images of shape "
                f"{tuple(image.shape[1:])}: {exc}"
            )
        return None

    # -- schedule ------------------------------------------------------------------------------
    @hookimpl
    def vemkit_iteration_end(
        self, program: Any, state: State, step: int, logs: dict[str, Any]
    ) -> None:
        if self.schedule is not None:
            self.schedule.after_iteration(program, step, logs)

    # -- state ---------------------------------------------------------------------------------
    @hookimpl
    def vemkit_state_dict(self, program: Any) -> dict[str, Any] | None:
        saved = pools_state_dict(self.pools, "omgd")
        if self.schedule is not None:
            saved.update(self.schedule.state_dict())
        return saved or None

    @hookimpl
    def vemkit_load_state_dict(self, program: Any, state: dict[str, Any]) -> None:
        load_pools_state_dict(self.pools, "omgd", state)
        if self.schedule is not None:
            self.schedule.load_state_dict(state, program.device)


def build(options: OMGDOptions, **context: Any) -> OMGD:
    """Factory of the ``omgd`` method (the engine registers the object as a run plugin)."""
    spec = context.get("spec")
    if spec is None:
        raise VemkitError("method omgd is built by a run: its factory needs the spec")
    return OMGD(options, spec)
