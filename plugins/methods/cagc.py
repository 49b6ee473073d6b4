"""``cagc``: Content-Aware GAN Compression of StyleGAN2 (Liu et al., CVPR 2021) as a recipe.

Stages (``method.stages``, see :class:`~vemkit_plugins.methods.recipe_options.CAGCStages`):
``teacher`` (off by default) → ``prune`` → ``retrain``. Every training stage runs rosinality's
StyleGAN2 loop (``vemkit_plugins.methods.stylegan2_losses``) as phases of one iteration:

======================  =====  =====================  =========================================
phase                   order  steps                  terms
======================  =====  =====================  =========================================
``discriminator``       100    discriminator          ``cagc.d_logistic`` (real vs a fresh fake)
``r1``  (every 16)      110    discriminator          ``cagc.r1`` weighted γ/2 · 16
``teacher`` / student   200 /  teacher / student      ``cagc.g_nonsaturating`` (+ KD, MI)
                        400
``teacher_path`` /      250 /  teacher / student      ``cagc.path`` weighted 2 · 4
``path`` (every 4)      450
======================  =====  =====================  =========================================

The EMA generator is the run's ``student`` module (``teacher`` in the teacher stage), taken out
of its optimizer group; the generator the phases train is ``student_g`` (``teacher_g``), in the
group ``student`` (``teacher``) whose Adam learning rate and betas are scaled for lazy
regularisation. After every iteration ``ema ← β·ema + (1 − β)·g``. The ``student.out`` tensor
(``teacher.out``) is ``g(z)`` with style mixing while training and the EMA generator's output
during evaluation and sample grids; so everything downstream of a run — ``vemkit eval``,
``export``, ``profile``, the next stage's inheritance — sees the EMA generator, as CAGC's
``g_ema``. At the start of a fresh stage the trained generator is copied from the EMA one
(rosinality's ``accumulate(g_ema, g, 0)``; CAGC's pruned checkpoint holds the same weights as
``g`` and ``g_ema``).

The ``prune`` step scores the teacher's EMA generator with
:func:`~vemkit_plugins.methods.cagc_scores.content_aware_prune` and records the student as a
``stylegan2_generator`` with the pruned ``net_shape``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.engine.hookspecs import ORDER_DISCRIMINATOR, ORDER_STUDENT, ORDER_TEACHER, hookimpl
from vemkit.engine.program import Stage
from vemkit.engine.recipe import StepResult
from vemkit.engine.state import State
from vemkit.errors import VemkitError
from vemkit_plugins.methods.recipe_options import CAGCOptions
from vemkit_plugins.methods.stylegan2_losses import (
    PathLengthRegularizer,
    StyleMix,
    accumulate_ema,
    d_logistic_loss,
    ema_decay,
    g_nonsaturating_loss,
    lazy_adam_hparams,
    mixing_noise,
    r1_penalty,
)

__all__ = ["CAGC", "build", "generator_arch"]

DISCRIMINATOR = "discriminator"
ORDER_R1 = ORDER_DISCRIMINATOR + 10
ORDER_TEACHER_PATH = ORDER_TEACHER + 50
ORDER_PATH = ORDER_STUDENT + 50
MIX = "cagc.mix"
"""``state.values`` key of the generator phase's style-mixed z (shared by teacher and student)."""
MASK = "cagc.mask"
LPIPS_SIZE = 256
"""CAGC's ``LPIPS_IMAGE_SIZE``: larger images are resized to it for the perceptual KD."""


def generator_arch(generator: nn.Module) -> dict[str, Any]:
    """The ``stylegan2_generator`` arch config that rebuilds ``generator`` at its widths."""
    return {
        "type": "stylegan2_generator",
        "size": int(generator.size),
        "style_dim": int(generator.style_dim),
        "n_mlp": int(generator.n_mlp),
        "lr_mlp": float(generator.lr_mlp),
        "blur_kernel": [int(k) for k in generator.blur_kernel],
        "net_shape": [int(c) for c in generator.net_shape],
    }


def _channels(generator: nn.Module) -> dict[str, int]:
    names = ["input", "conv1"] + [f"convs.{i}" for i in range(len(generator.net_shape) - 2)]
    return dict(zip(names, (int(c) for c in generator.net_shape), strict=True))


def _type(config: Any) -> str:
    """The ``type`` of a component config (a dict or validated options)."""
    return str(config["type"] if isinstance(config, dict) else getattr(config, "type", "?"))


def _generic_macs(generator: nn.Module) -> int:
    """``vemkit profile``'s generic count (paper convention) of one z → image forward."""
    from vemkit.profile import count_macs

    return count_macs(generator, torch.zeros(1, generator.style_dim), "paper")


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class CAGC:
    """The ``cagc`` method as a run plugin (one object per compiled stage)."""

    def __init__(self, options: CAGCOptions, spec: Any = None) -> None:
        self.options = options
        self.spec = spec
        t = options.training
        self.path = PathLengthRegularizer(
            weight=1.0, interval=1, decay=t.path_decay, batch_shrink=t.path_batch_shrink
        )
        self.decay = ema_decay(t.ema_batch, t.ema_half_life_kimg)
        self.trained: str | None = None
        """The trained generator of this stage: ``student_g`` or ``teacher_g`` (None: a step)."""
        self.ema: str | None = None
        """Its EMA module: ``student`` or ``teacher``."""
        self.mask: nn.Module | None = None
        self.distance: nn.Module | None = None

    # -- building -------------------------------------------------------------------------------
    def _discriminator_config(self, spec: Any) -> Any:
        if self.options.discriminator is not None:
            return self.options.discriminator
        arch = spec.teacher.arch
        return {
            "type": "stylegan2_discriminator",
            "size": int(getattr(arch, "size", 256)),
            "channel_multiplier": int(getattr(arch, "channel_multiplier", 2)),
        }

    def _lazy_adam(self, interval: int) -> dict[str, Any]:
        t = self.options.training
        lr, betas = lazy_adam_hparams(t.lr, t.betas, interval)
        return {"type": "adam", "lr": lr, "betas": list(betas)}

    @hookimpl
    def vemkit_build(self, program: Any, spec: Any) -> None:
        stage = program.stage
        if stage is None:
            raise VemkitError("method cagc: runs as a recipe (method.stages); no stage is set")
        o, t = self.options, self.options.training
        training = stage.is_training
        d_config = self._discriminator_config(spec)
        if training:
            r1_interval = t.r1_every if t.r1_gamma > 0 else 0  # no R1: no lazy scaling
            program.add_group(
                DISCRIMINATOR,
                optimizer=self._lazy_adam(r1_interval),
                scheduler=t.scheduler,
            )
        program.add_module(
            DISCRIMINATOR,
            program.build("arch", d_config),
            role="discriminator",
            group=DISCRIMINATOR if training else None,
            config=d_config,
        )
        if o.teacher_checkpoint is not None and stage.index == 0:
            # the core's warning about a frozen teacher without teacher.checkpoint does not apply
            program.notes[:] = [n for n in program.notes if "teacher.checkpoint is null" not in n]
            program.notes.append(
                f"cagc: the teacher and discriminator come from {o.teacher_checkpoint}"
            )
            if not program.meta:
                self._load_teacher(program)
        if not training:
            return
        role = "student" if stage.options.student else "teacher"
        if role not in program.groups:  # a teacher-only stage with a frozen teacher
            raise VemkitError(
                f"method.stages.{stage.name}: a stage that trains no student trains the teacher; "
                "set its teacher: online"
            )
        self.ema, self.trained = role, f"{role}_g"
        # The EMA copy is the run's `role` module; the trained generator takes its group.
        program.set_group(role, None)
        program.configure_group(
            role,
            optimizer=self._lazy_adam(t.path_every if t.path_weight > 0 else 0),
            scheduler=t.scheduler,
        )
        arch = getattr(spec, role).arch
        program.add_module(
            self.trained,
            program.build("arch", arch),
            role=role,
            group=role,
            config=arch,
        )
        self._producers(program, role)
        if role == "student" and (o.kd_perceptual_weight > 0 or o.content_aware_kd):
            self._kd_modules(program, spec)

    def _load_teacher(self, program: Any) -> None:
        from vemkit_plugins.archs.stylegan2_convert import build_rosinality_networks

        where = "method.teacher_checkpoint"
        try:
            nets = build_rosinality_networks(self.options.teacher_checkpoint, ("g_ema", "d"))
        except VemkitError as exc:
            raise VemkitError(f"{where}: {exc}") from None
        for name, key in (("teacher", "g_ema"), (DISCRIMINATOR, "d")):
            if key not in nets:
                program.notes.append(f"{where}: holds no '{key}'; the {name} is not loaded")
                continue
            try:
                program.module(name).load_state_dict(nets[key].state_dict(), strict=True)
            except RuntimeError as exc:
                raise VemkitError(
                    f"{where}: its '{key}' does not fit the {name} of this spec: {exc}"
                ) from None

    def _kd_modules(self, program: Any, spec: Any) -> None:
        from vemkit_plugins.methods.lpips import build_distance

        o = self.options
        if o.content_aware_kd:
            if not program.meta:  # `vemkit plan` describes; a face parser needs its weights
                self.mask = program.build("mask", o.stages.prune.mask)
            program.notes.append(
                f"cagc: the KD is masked by the content mask '{_type(o.stages.prune.mask)}'"
            )
        if o.kd_perceptual_weight > 0 and not program.meta:
            self.distance = build_distance(
                o.perceptual,
                lpips_weights=o.lpips_weights,
                vgg_weights=o.vgg_weights,
                seed=spec.seed,
            )
            program.notes.append(f"cagc: cagc.kd_perceptual is {self.distance.label}")

    def _producers(self, program: Any, role: str) -> None:
        """``input``, ``teacher.out`` and ``student.out`` of the generator phase: the same
        style-mixed z (and crossover) for the trained generator and the teacher; the EMA
        generator on the standard input when not training (evaluation, sample grids)."""
        trained = program.module(self.trained)
        ema = program.module(role)
        teacher = program.module("teacher")
        standard = {n: program.producers[n].fn for n in ("input", "teacher.out", "student.out")}

        def mix_input(state: State) -> Tensor:
            if not state.training:
                return standard["input"](state)
            return self._mix(state).z[0]

        def run(net: nn.Module) -> Any:
            def produce(state: State) -> Tensor:
                if not state.training:
                    return net(state["input"])
                mix = self._mix(state)
                return trained(mix.z, inject_index=mix.inject_index)

            return produce

        program.add_producer("input", mix_input, replace=True)
        program.add_producer(f"{role}.out", run(ema), replace=True)
        if role == "student":

            def teacher_out(state: State) -> Tensor:
                if not state.training:
                    return standard["teacher.out"](state)
                mix = self._mix(state)
                return teacher(mix.z, inject_index=mix.inject_index)

            program.add_producer("teacher.out", teacher_out, no_grad=True, replace=True)

    def _mix(self, state: State) -> StyleMix:
        mix = state.values.get(MIX)
        if mix is None:
            mix = self._draw(state, len(state["target"]))
            state.values[MIX] = mix
        return mix

    def _draw(self, state: State, batch: int) -> StyleMix:
        net = state.program.module(self.trained)
        # the global RNG: the engine checkpoints it, so a resumed run draws the same z
        return mixing_noise(
            batch, net.style_dim, self.options.training.mixing, net.n_latent, device=state.device
        )

    # -- phases ---------------------------------------------------------------------------------
    @hookimpl
    def vemkit_phases(self, program: Any, spec: Any) -> None:
        o, t = self.options, self.options.training
        role = self.ema
        assert role is not None
        program.add_phase(DISCRIMINATOR, order=ORDER_DISCRIMINATOR, groups=[DISCRIMINATOR])
        program.add_term(DISCRIMINATOR, "cagc.d_logistic", self._d_logistic)
        if t.r1_gamma > 0:
            program.add_phase("r1", order=ORDER_R1, groups=[DISCRIMINATOR], every=t.r1_every)
            program.add_term(
                "r1",
                "cagc.r1",
                self._r1,
                t.r1_gamma / 2 * t.r1_every,
                note=f"lazy R1: γ/2·{t.r1_every}",
            )
        if role == "teacher":
            program.add_phase("teacher", order=ORDER_TEACHER, groups=["teacher"])
        program.add_term(role, "cagc.g_nonsaturating", self._g_loss(f"{role}.out"))
        if role == "student":
            if o.kd_l1_weight > 0:
                program.add_term("student", "cagc.kd_l1", self._kd_l1, o.kd_l1_weight)
            if o.kd_perceptual_weight > 0:
                label = getattr(self.distance, "label", o.perceptual)
                program.add_term(
                    "student",
                    "cagc.kd_perceptual",
                    self._kd_perceptual,
                    o.kd_perceptual_weight,
                    note=label,
                )
        if t.path_weight > 0:
            name = "path" if role == "student" else "teacher_path"
            order = ORDER_PATH if role == "student" else ORDER_TEACHER_PATH
            program.add_phase(name, order=order, groups=[role], every=t.path_every)
            program.add_term(
                name, "cagc.path", self._path, t.path_weight * t.path_every, note="lazy"
            )

    @hookimpl
    def vemkit_check(self, program: Any, spec: Any) -> list[str]:
        problems = []
        if spec.task != "unconditional":
            problems.append(f"task: cagc compresses unconditional StyleGAN2 (task is {spec.task})")
        for role in ("teacher", "student"):
            if getattr(spec, role).arch.type != "stylegan2_generator":
                problems.append(
                    f"{role}.arch.type: cagc needs a stylegan2_generator, got "
                    f"'{getattr(spec, role).arch.type}'"
                )
        if not program.meta:
            d = program.module(DISCRIMINATOR)
            size = int(getattr(spec.teacher.arch, "size", 0))
            if getattr(d, "size", size) != size:
                problems.append(
                    f"method.discriminator: judges {d.size} px images but the generators make "
                    f"{size} px"
                )
        return problems

    @hookimpl
    def vemkit_stages(self, program: Any, spec: Any) -> list[Stage]:
        return [Stage("cagc.copy_ema", self._copy_ema)]

    def _copy_ema(self, program: Any, context: dict[str, Any]) -> None:
        # g starts equal to g_ema (which carries what earlier stages or the checkpoint left)
        assert self.trained is not None and self.ema is not None
        source = program.module(self.ema).state_dict()
        program.module(self.trained).load_state_dict(source, strict=True)

    # -- terms ----------------------------------------------------------------------------------
    def _d_logistic(self, state: State) -> Any:
        d = state.program.module(DISCRIMINATOR)
        g = state.program.module(self.trained)
        mix = self._draw(state, len(state["target"]))  # its own z, as rosinality's D step
        with torch.no_grad():
            fake = g(mix.z, inject_index=mix.inject_index)
        real_pred = d(state["target"])
        fake_pred = d(fake)
        loss = d_logistic_loss(real_pred, fake_pred)
        return loss, {
            "real_score": real_pred.mean().detach(),
            "fake_score": fake_pred.mean().detach(),
        }

    def _r1(self, state: State) -> Tensor:
        d = state.program.module(DISCRIMINATOR)
        real = state["target"].detach().requires_grad_(True)
        pred = d(real)
        # the zero term keeps every D output in the graph, as rosinality's (DDP)
        return r1_penalty(pred, real) + 0 * pred.reshape(-1)[0]

    def _g_loss(self, name: str) -> Any:
        def term(state: State) -> Tensor:
            return g_nonsaturating_loss(state.program.module(DISCRIMINATOR)(state[name]))

        return term

    def _masked(self, state: State) -> tuple[Tensor, Tensor]:
        """(M⊙S(z), M⊙T(z)) with M the content mask of the teacher image (or S, T unmasked)."""
        teacher = state.detached("teacher.out")
        student = state["student.out"]
        if self.mask is None:
            return student, teacher
        mask = state.values.get(MASK)
        if mask is None:
            self.mask.to(teacher.device)
            with torch.no_grad():
                mask = self.mask(teacher).to(teacher.dtype)
            state.values[MASK] = mask
        return student * mask, teacher * mask

    def _kd_l1(self, state: State) -> Tensor:
        student, teacher = self._masked(state)
        return F.l1_loss(student, teacher)

    def _kd_perceptual(self, state: State) -> Tensor:
        assert self.distance is not None
        student, teacher = self._masked(state)
        if student.shape[-1] > LPIPS_SIZE:  # CAGC pools larger images to 256 px for LPIPS
            size = (LPIPS_SIZE, LPIPS_SIZE)
            student = F.interpolate(student, size=size, mode="bilinear", align_corners=False)
            teacher = F.interpolate(teacher, size=size, mode="bilinear", align_corners=False)
        self.distance.to(student.device)
        return self.distance(student, teacher).mean()

    def _path(self, state: State) -> Any:
        g = state.program.module(self.trained)
        n = self.path.batch_size(len(state["target"]))
        mix = self._draw(state, n)
        fake, latents = g(mix.z, inject_index=mix.inject_index, return_latents=True)
        result = self.path(fake, latents)
        return result.loss, {
            "path_length": result.path_lengths.mean().detach(),
            "mean_path_length": result.mean_path_length,
        }

    # -- EMA, state ---------------------------------------------------------------------------
    @hookimpl
    def vemkit_iteration_end(self, program: Any, state: Any, step: int, logs: Any) -> None:
        if self.trained is None or self.ema is None:
            return
        accumulate_ema(program.module(self.ema), program.module(self.trained), self.decay)

    @hookimpl
    def vemkit_state_dict(self, program: Any) -> dict[str, Any] | None:
        if self.trained is None:
            return None
        return {"cagc.mean_path_length": self.path.state_dict()["mean_path_length"]}

    @hookimpl
    def vemkit_load_state_dict(self, program: Any, state: dict[str, Any]) -> None:
        if "cagc.mean_path_length" in state:
            self.path.load_state_dict({"mean_path_length": state["cagc.mean_path_length"]})

    # -- the prune step -----------------------------------------------------------------------
    @hookimpl
    def vemkit_stage_step(self, program: Any, stage: Any, context: dict[str, Any]) -> StepResult:
        from vemkit_plugins.methods.cagc_scores import content_aware_prune

        o = stage.options
        teacher = program.module("teacher")
        if not hasattr(teacher, "net_shape"):
            raise VemkitError("teacher.arch: cagc prunes a stylegan2_generator")
        mask = context["registry"].build("mask", o.mask).to(context["device"])
        mask_label = getattr(mask, "label", None) or _type(o.mask)
        context["say"](
            f"  content-aware scores of the teacher over {o.n_samples} samples, mask '{mask_label}'"
        )
        rng = torch.Generator().manual_seed(int(program.spec.seed))
        result = content_aware_prune(
            teacher,
            mask,
            remove_ratio=o.remove_ratio,
            n_samples=o.n_samples,
            batch_size=o.batch_size,
            noise_prob=o.noise_prob,
            rng=rng,
        )
        student = result.generator.eval()
        before, after = _channels(teacher), _channels(student)
        summary = {
            "mask": _type(o.mask),
            "mask_label": mask_label,
            "remove_ratio": o.remove_ratio,
            "macs_convention": "cagc_analytic (CAGC's count, the paper's 45.1B / 4.1B)",
            "macs_generic": {
                "convention": "paper (torchprofile rule, every layer; `vemkit profile`)",
                "before": _generic_macs(teacher),
                "after": _generic_macs(student),
            },
            "before": {
                "macs": teacher.named_macs()["cagc_analytic"],
                "params": _params(teacher),
                "channels": before,
            },
            "after": {
                "macs": student.named_macs()["cagc_analytic"],
                "params": _params(student),
                "channels": after,
            },
        }
        rows = [
            {
                "layer": name,
                "before": before[name],
                "after": after[name],
                "kept": [int(i) for i in keep],
                "score_min": float(score.min()),
                "score_max": float(score.max()),
            }
            for name, keep, score in zip(before, result.keep, result.scores, strict=True)
        ]
        return StepResult(
            archs={"student": generator_arch(student)},
            modules={"student": copy.deepcopy(student)},
            summary=summary,
            tables={"channels": rows},
        )


def build(options: CAGCOptions, spec: Any = None, **_: Any) -> CAGC:
    """Factory of the ``cagc`` method (the engine registers the object as a run plugin)."""
    return CAGC(options, spec)
