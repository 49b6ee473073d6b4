"""``gcc``: Generator-discriminator Cooperative Compression (Li et al., NeurIPS 2021) as a recipe,
following the public SJLeo/GCC code (``train.py``, ``models/Pix2Pix.py``, ``models/SAGAN.py``,
``utils/prune_util.py``). The pieces are in :mod:`vemkit_plugins.methods.gcc_losses`.

Stages (``method.stages``):

1. ``pretrain`` — the wide student learns alone: discriminator phase (``gcc.d_real``,
   ``gcc.d_fake``), then the student phase with its adversarial loss ``gcc.gan``, on paired data
   ``gcc.recon`` = L1 to the target, and ``gcc.sparsity`` = λ·Σ|γ| over its BatchNorm scales
   (or conv weights). GCC adds λ·sign(γ) to the gradient after the backward pass; the engine
   has no hook between a phase's backward and its optimizer step, so the term is a loss whose
   gradient is exactly that: d|γ|/dγ = sign(γ) for γ ≠ 0, and torch's |·| has gradient 0 at
   0, as sign(0) = 0 in GCC. The update is identical as long as nothing rescales the phase's
   gradient: true for fp32/bf16 and for fp16 (the scaler unscales the whole gradient), not
   under ``train.grad_clip`` (the clip would scale the sign term with the rest; GCC clips
   nothing). The term's value is logged (GCC logs none).
2. ``prune`` — one global threshold on the BatchNorm |γ| of every prunable channel space (the
   toolkit's channel groups), found by binary search so that the pruned student's MACs are at
   most the budget in the named convention (``thop_legacy`` = GCC's thop, which for SAGAN does
   not see the spectral-normalised layers); the summary gives the ``paper`` and ``exact``
   counts beside it. The pruned student is recorded as a ``pruned`` arch.
3. ``distil`` — fresh teacher, teacher discriminator and student (``inherit: []``: GCC
   re-initialises the pruned network). One iteration, in GCC's order: the teacher's
   discriminator (``gcc.teacher_d_real``/``_fake``), the teacher (``gcc.teacher_gan`` +
   ``gcc.teacher_recon`` on paired data), the student's gated discriminator (``gcc.d_real``,
   ``gcc.d_fake``; gates frozen), the MI term's energy phase if any, the student
   (``gcc.gan`` against its gated D, ``gcc.recon``, ``gcc.content`` and ``gcc.gram`` over the
   generator taps through 1×1 adapters plus two features of the teacher's discriminator on
   the student's image vs the teacher's), then the ``gates`` phase: on a second, independently
   shuffled batch of the training set (GCC's ``val_dataset`` is the training folder again,
   with fresh z), both generators re-run without gradients, the alphas clipped to [0, 1], the
   gate objective |gap_S − EMA(gap_T)| + w·(L_D_real + L_D_fake) minimised over the gates only
   (``gcc.gates``). The EMA's beta is 1 during the first epoch and 1 − epoch/epochs after, as
   GCC's ``adaptive_ema_beta``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.engine.hookspecs import (
    ORDER_DISCRIMINATOR,
    ORDER_STUDENT,
    ORDER_TEACHER,
    hookimpl,
)
from vemkit.engine.recipe import StepResult
from vemkit.engine.state import State
from vemkit.errors import VemkitError
from vemkit_plugins.methods.gcc_losses import (
    GapEMA,
    GatedDiscriminator,
    gan_gap,
    gate_objective,
    gcc_distill_losses,
    gcc_ema_beta,
    make_gcc_adapter,
    sparsity_targets,
)
from vemkit_plugins.methods.kd import probe_discriminator
from vemkit_plugins.methods.omgd_losses import gan_loss
from vemkit_plugins.methods.options import (
    GCC_PATCHGAN_TAPS,
    GCC_SAGAN_D_TAPS,
    GCC_SAGAN_TAPS,
    GCC_UNET_TAPS,
)
from vemkit_plugins.methods.recipe_options import GCCOptions

__all__ = ["GCC", "build", "features_of"]

DISCRIMINATOR = "discriminator"
TEACHER_DISCRIMINATOR = "teacher_discriminator"
GATES = "discriminator_gates"
ADAPTERS = "adapters"

ORDER_TEACHER_DISCRIMINATOR = ORDER_TEACHER - 50
"""GCC steps the teacher's discriminator, then the teacher, then the student's D and G."""
ORDER_STUDENT_DISCRIMINATOR = ORDER_TEACHER + 50
ORDER_GATES = ORDER_STUDENT + 100
"""The gate update comes after the whole training step (GCC ``train.py``)."""

_GEN_TAPS = {"unet": GCC_UNET_TAPS, "sagan_generator": GCC_SAGAN_TAPS}
_D_TAPS = {"patchgan": GCC_PATCHGAN_TAPS, "sagan_discriminator": GCC_SAGAN_D_TAPS}


def _arch_type(arch: Any) -> str | None:
    """The arch's type, looking through a ``pruned`` wrapper to its base."""
    kind = arch.get("type") if isinstance(arch, dict) else getattr(arch, "type", None)
    if kind == "pruned":
        base = arch.get("base") if isinstance(arch, dict) else getattr(arch, "base", None)
        return _arch_type(base) if base is not None else None
    return kind


def _store(found: dict[str, Tensor], name: str, module: nn.Module, args: Any, out: Any) -> None:
    found[name] = out[0] if isinstance(out, list | tuple) else out


def features_of(net: nn.Module, paths: Sequence[str], x: Tensor) -> tuple[Any, list[Tensor]]:
    """``(net(x), [output of each submodule in paths])`` for one call of ``net``.

    The teacher's discriminator is run on several images per iteration, so its features are
    captured per call here rather than by the program's per-iteration taps.
    """
    modules = dict(net.named_modules())
    missing = [p for p in paths if p not in modules]
    if missing:
        raise VemkitError(f"{type(net).__name__} has no submodule(s) {missing}")
    found: dict[str, Tensor] = {}
    handles = [modules[p].register_forward_hook(partial(_store, found, p)) for p in paths]
    try:
        out = net(x)
    finally:
        for h in handles:
            h.remove()
    return out, [found[p] for p in paths]


class GCC:
    """The ``gcc`` method as a run plugin (one object per compiled stage)."""

    def __init__(
        self, options: GCCOptions, spec: Any = None, num_samples: int | None = None
    ) -> None:
        self.options = options
        self.spec = spec
        self.num_samples = num_samples
        self.paired = spec is not None and spec.task == "paired"
        self.conditional = False
        self.gated: GatedDiscriminator | None = None
        self.s_keys: list[str] = []
        self.t_keys: list[str] = []
        self.d_taps: list[str] = []
        self.ema = GapEMA()
        self.gate_set: Any = None
        self.gate_stream: Any = None
        self.gate_position = (0, 0)

    # -- GCC's per-task defaults --------------------------------------------------------------
    @property
    def unconditional(self) -> bool:
        return self.spec is not None and self.spec.task == "unconditional"

    def _channels(self, spec: Any) -> tuple[int, int]:
        from vemkit.profile import arch_channels

        arch = spec.student.arch
        return arch_channels(arch), arch_channels(arch, ("output_nc", "out_channels"))

    def discriminator_config(self, spec: Any, teacher: bool = False) -> dict[str, Any]:
        """The (teacher's) discriminator config, GCC's for the task when not given."""
        o = self.options
        chosen = o.teacher_discriminator if teacher else None
        chosen = chosen if chosen is not None else o.discriminator
        if chosen is not None:
            return dict(chosen) if isinstance(chosen, dict) else chosen.model_dump(mode="json")
        if spec.task == "unconditional":
            return {"type": "sagan_discriminator", "ndf": 64}
        in_c, out_c = self._channels(spec)
        return {"type": "patchgan", "ndf": 128, "n_layers": 3, "input_nc": in_c + out_c}

    def _weight(self, value: float | None, paired: float, unconditional: float) -> float:
        if value is not None:
            return float(value)
        return unconditional if self.unconditional else paired

    @property
    def content_weight(self) -> float:
        return self._weight(self.options.content_weight, 50.0, 1.0)

    @property
    def gram_weight(self) -> float:
        return self._weight(self.options.gram_weight, 1.0e4, 1.0)

    @property
    def gate_d_weight(self) -> float:
        return self._weight(self.options.gate_d_weight, 0.5, 1.0)

    @property
    def d_weight(self) -> float:
        """GCC's discriminator loss: 0.5·(real + fake) for pix2pix, real + fake for SAGAN."""
        return 1.0 if self.unconditional else 0.5

    def _d_optimizer(self, spec: Any) -> dict[str, Any]:
        scale = self._weight(self.options.discriminator_lr_scale, 1.0, 4.0)
        cfg = spec.train.optimizer
        data = dict(cfg) if isinstance(cfg, dict) else cfg.model_dump(mode="json")
        data["lr"] = float(data["lr"]) * scale
        return data

    def _stage(self, program: Any) -> str:
        stage = program.stage
        if stage is None:  # pragma: no cover - the options always declare the recipe
            raise VemkitError("method gcc runs as a recipe (method.stages)")
        return stage.name

    # -- hooks --------------------------------------------------------------------------------
    @hookimpl
    def vemkit_build(self, program: Any, spec: Any) -> None:
        if not program.stage.is_training:
            return
        distil = self._stage(program) == "distil"
        d_config = self.discriminator_config(spec)
        in_c, out_c = self._channels(spec)
        self.conditional = self.paired and d_config.get("input_nc") == in_c + out_c
        program.add_group(DISCRIMINATOR, optimizer=self._d_optimizer(spec))
        net = program.build("arch", d_config)
        if distil and self.options.gates:
            self.gated = GatedDiscriminator(net, threshold=self.options.gate_threshold)
            program.add_group(
                GATES,
                optimizer={"type": "adam", "lr": self.options.gate_lr},
                scheduler={"type": "constant"},
            )
            program.add_module(
                GATES, self.gated.gates, role="discriminator", group=GATES, config=None
            )
        program.add_module(
            DISCRIMINATOR, net, role="discriminator", group=DISCRIMINATOR, config=d_config
        )
        if not distil:
            return
        t_config = self.discriminator_config(spec, teacher=True)
        program.add_group(TEACHER_DISCRIMINATOR, optimizer=self._d_optimizer(spec))
        program.add_module(
            TEACHER_DISCRIMINATOR,
            program.build("arch", t_config),
            role="discriminator",
            group=TEACHER_DISCRIMINATOR,
            config=t_config,
        )
        self._build_distillation(program, spec, t_config)
        if self.options.gates and not program.meta:
            self.gate_set = program.build("dataset", spec.data.train, seed=spec.seed)

    def _build_distillation(self, program: Any, spec: Any, t_config: dict[str, Any]) -> None:
        o = self.options
        s_type = _arch_type(spec.student.arch)
        student_taps = o.student_taps or list(_GEN_TAPS.get(s_type or "", ()))
        if not student_taps:
            raise VemkitError(
                f"method.student_taps: GCC has no generator taps for arch '{s_type}'; give "
                "method.student_taps and method.teacher_taps"
            )
        teacher_taps = o.teacher_taps or student_taps
        if len(teacher_taps) != len(student_taps):
            raise VemkitError(
                f"method.teacher_taps: {len(teacher_taps)} paths for {len(student_taps)} "
                "student taps; they are compared pairwise"
            )
        for where, owner, paths, keys in (
            ("method.student_taps", "student", student_taps, self.s_keys),
            ("method.teacher_taps", "teacher", teacher_taps, self.t_keys),
        ):
            for i, path in enumerate(paths):
                try:
                    keys.append(program.tap(owner, path))
                except VemkitError as exc:
                    raise VemkitError(f"{where}.{i}: {exc}") from None
        d_type = t_config.get("type")
        d_taps = o.discriminator_taps
        self.d_taps = list(_D_TAPS.get(d_type, ()) if d_taps is None else d_taps)
        if d_taps is None and not self.d_taps:
            program.notes.append(
                f"method.discriminator_taps: GCC distils no features of a '{d_type}' teacher "
                "discriminator; only the generator taps are distilled"
            )
        teacher_d = program.module(TEACHER_DISCRIMINATOR)
        names = {n for n, _ in teacher_d.named_modules()}
        for i, path in enumerate(self.d_taps):
            if path not in names:
                raise VemkitError(
                    f"method.discriminator_taps.{i}: the teacher discriminator ({d_type}) has no "
                    f"submodule '{path}'"
                )
        try:
            shapes = program.probe(self.s_keys + self.t_keys)
        except VemkitError:
            raise
        except Exception as exc:  # a net that cannot run at the spec's size
            raise VemkitError(
                f"method.student_taps: could not run the generators on an example batch to read "
                f"the taps' widths: {type(exc).__name__}: {exc}"
            ) from None
        adapters = nn.ModuleList(
            make_gcc_adapter(shapes[s][1], shapes[t][1])
            for s, t in zip(self.s_keys, self.t_keys, strict=True)
        )
        program.add_module(ADAPTERS, adapters, role="adapter", group="student")

    @hookimpl
    def vemkit_phases(self, program: Any, spec: Any) -> None:
        o = self.options
        distil = self._stage(program) == "distil"
        program.add_phase(
            DISCRIMINATOR,
            order=ORDER_STUDENT_DISCRIMINATOR if distil else ORDER_DISCRIMINATOR,
            groups=[DISCRIMINATOR],
        )
        program.add_term(DISCRIMINATOR, "gcc.d_real", self._d_real(DISCRIMINATOR), self.d_weight)
        program.add_term(
            DISCRIMINATOR,
            "gcc.d_fake",
            self._d_fake(DISCRIMINATOR, "student.out"),
            self.d_weight,
        )
        program.add_term("student", "gcc.gan", self._gan(DISCRIMINATOR, "student.out"), 1.0)
        if self.paired and o.recon_weight > 0:
            program.add_term(
                "student", "gcc.recon", self._l1_to_target("student.out"), o.recon_weight
            )
        if not distil:
            if o.sparsity > 0:
                program.add_term(
                    "student",
                    "gcc.sparsity",
                    self._sparsity,
                    o.sparsity,
                    note=f"gradient λ·sign(·) on the student's {o.sparsity_on} parameters",
                )
            return
        # the online teacher and its discriminator, stepped first
        program.add_phase(
            TEACHER_DISCRIMINATOR,
            order=ORDER_TEACHER_DISCRIMINATOR,
            groups=[TEACHER_DISCRIMINATOR],
        )
        program.add_term(
            TEACHER_DISCRIMINATOR,
            "gcc.teacher_d_real",
            self._d_real(TEACHER_DISCRIMINATOR),
            self.d_weight,
        )
        program.add_term(
            TEACHER_DISCRIMINATOR,
            "gcc.teacher_d_fake",
            self._d_fake(TEACHER_DISCRIMINATOR, "teacher.out"),
            self.d_weight,
        )
        if spec.teacher.mode == "online":
            program.add_phase("teacher", order=ORDER_TEACHER, groups=["teacher"])
            program.add_term(
                "teacher", "gcc.teacher_gan", self._gan(TEACHER_DISCRIMINATOR, "teacher.out"), 1.0
            )
            if self.paired and o.teacher_recon_weight > 0:
                program.add_term(
                    "teacher",
                    "gcc.teacher_recon",
                    self._l1_to_target("teacher.out"),
                    o.teacher_recon_weight,
                )
        program.add_term("student", "gcc.content", self._distilled("content"), self.content_weight)
        program.add_term("student", "gcc.gram", self._distilled("gram"), self.gram_weight)
        if self.gated is not None:
            program.add_phase("gates", order=ORDER_GATES, groups=[GATES])
            program.add_term("gates", "gcc.gates", self._gate_term, 1.0)

    @hookimpl
    def vemkit_check(self, program: Any, spec: Any) -> list[str]:
        problems = []
        if spec.task not in ("paired", "unconditional"):
            problems.append(
                f"task: gcc supports pix2pix (paired) and unconditional GANs, not {spec.task} "
                "(GCC's CycleGAN recipe overwrites its pruning with hard-coded channel lists)"
            )
        if self._stage(program) == "distil" and spec.teacher.mode != "online":
            problems.append(
                "method.stages.distil.teacher: GCC trains its teacher online from scratch in the "
                "distillation stage; set it to online"
            )
        if spec.train.grad_clip is not None and self._stage(program) == "pretrain":
            program.notes.append(
                "train.grad_clip also scales GCC's sparsity gradient λ·sign(γ) in the pretrain "
                "stage (GCC clips nothing)"
            )
        if not program.meta and not problems:
            for name in (DISCRIMINATOR, TEACHER_DISCRIMINATOR):
                if name in program.modules:
                    where = (
                        "method.discriminator"
                        if name == DISCRIMINATOR
                        else "method.teacher_discriminator"
                    )
                    problem = probe_discriminator(
                        program, name, conditional=self.conditional, where=where
                    )
                    if problem:
                        problems.append(problem)
        return problems

    # -- terms ----------------------------------------------------------------------------------
    def _image(self, state: State, image: Tensor) -> Tensor:
        """What a discriminator sees: concat(input, image) for pix2pix's conditional D."""
        if self.conditional:
            return torch.cat([state["input"].to(image.dtype), image], dim=1)
        return image

    def _d_real(self, d_name: str) -> Any:
        mode = self.options.gan_mode

        def term(state: State) -> Tensor:
            net = state.program.module(d_name)
            return gan_loss(
                net(self._image(state, state["target"])), True, mode, for_discriminator=True
            )

        return term

    def _d_fake(self, d_name: str, fake: str) -> Any:
        mode = self.options.gan_mode

        def term(state: State) -> Tensor:
            net = state.program.module(d_name)
            scores = net(self._image(state, state.detached(fake)))
            return gan_loss(scores, False, mode, for_discriminator=True)

        return term

    def _gan(self, d_name: str, fake: str) -> Any:
        mode = self.options.gan_mode

        def term(state: State) -> Tensor:
            net = state.program.module(d_name)
            return gan_loss(
                net(self._image(state, state[fake])), True, mode, for_discriminator=False
            )

        return term

    def _l1_to_target(self, name: str) -> Any:
        return lambda s: F.l1_loss(s[name], s["target"])

    def _sparsity(self, state: State) -> Tensor:
        # d/dp Σ|p| = sign(p) (0 at p = 0, as GCC's sign): the exact gradient GCC adds.
        targets = sparsity_targets(state.program.module("student"), self.options.sparsity_on)
        if not targets:
            raise VemkitError(
                f"method.sparsity_on: the student has no {self.options.sparsity_on} parameters"
            )
        return torch.stack([p.abs().sum() for p in targets.values()]).sum()

    def _distillation(self, state: State) -> dict[str, Tensor]:
        cached = state.values.get("gcc.distill")
        if cached is not None:
            return cached
        program = state.program
        s_feats = [state[k] for k in self.s_keys]
        t_feats = [state[k] for k in self.t_keys]
        adapters: list[Any] = list(program.module(ADAPTERS))
        if self.d_taps:
            teacher_d = program.module(TEACHER_DISCRIMINATOR)
            _, on_student = features_of(
                teacher_d, self.d_taps, self._image(state, state["student.out"])
            )
            with torch.no_grad():
                _, on_teacher = features_of(
                    teacher_d, self.d_taps, self._image(state, state.detached("teacher.out"))
                )
            s_feats += on_student
            t_feats += on_teacher
            adapters += [None] * len(self.d_taps)
        cached = gcc_distill_losses(s_feats, t_feats, adapters, root=self.options.root)
        state.values["gcc.distill"] = cached
        return cached

    def _distilled(self, which: str) -> Any:
        return lambda s: self._distillation(s)[which]

    # -- the gate update ------------------------------------------------------------------------
    def ema_beta(self, step: int) -> float:
        """GCC's EMA beta at ``step``: 1 in the first epoch, 1 − epoch/epochs after."""
        n = self.num_samples
        if not n:
            return 1.0
        batch = self.spec.train.batch_size
        epochs = max(1, math.ceil(self.spec.train.iterations * batch / n))
        done = min((step * batch) // n, epochs)
        return 1.0 if done == 0 else gcc_ema_beta(done, epochs)

    def _gate_batch(self, state: State) -> dict[str, Any]:
        from vemkit.engine.data import BatchStream

        if self.gate_set is None:
            raise VemkitError("method gcc: the gate update has no data (compiled for plan only?)")
        if self.gate_stream is None:
            epoch, index = self.gate_position
            # Seeded apart from the training stream: GCC's second, independently shuffled loader.
            self.gate_stream = BatchStream(
                self.gate_set,
                self.spec.train.batch_size,
                seed=self.spec.seed + 1,
                epoch=epoch,
                index=index,
                device=state.device,
                name="data.train (gcc gate batches)",
            )
        return self.gate_stream.next()

    def _gate_term(self, state: State) -> tuple[Tensor, dict[str, Any]]:
        assert self.gated is not None
        program = state.program
        mode = self.options.gan_mode
        self.gated.clip_gates_()  # GCC: clipping_mask_alpha() before every gate step
        batch = self._gate_batch(state)
        real = batch["target"]
        student, teacher = program.module("student"), program.module("teacher")
        if "input" in batch:
            x = batch["input"]
        else:  # unconditional: fresh z, the same for both generators (GCC's dataset draws it)
            x = torch.randn(len(real), int(student.z_dim), device=real.device)
        student_d = program.module(DISCRIMINATOR)
        teacher_d = program.module(TEACHER_DISCRIMINATOR)

        def seen(image: Tensor) -> Tensor:
            return torch.cat([x.to(image.dtype), image], dim=1) if self.conditional else image

        # The program's taps must not see these forwards (they belong to this iteration's batch).
        with program.activate(None):
            with torch.no_grad():
                s_fake = student(x)
                t_fake = teacher(x)
                t_gap = gan_gap(teacher_d(seen(t_fake)), mode)
            beta = self.ema_beta(state.step)
            target = self.ema.update(t_gap, beta)
            out = gate_objective(
                student_d(seen(s_fake)),
                student_d(seen(real)),
                target,
                mode,
                d_weight=self.gate_d_weight,
            )
        closed = torch.cat([(m == 0).float() for m in self.gated.masks().values()]).mean()
        return out["total"], {
            "gap": out["gap"].detach(),
            "d": out["d"].detach(),
            "student_gap": out["student_gap"],
            "teacher_gap": float(target),
            "ema_beta": beta,
            "closed": closed,
        }

    @hookimpl
    def vemkit_evaluate(
        self, program: Any, step: int, run_dir: str | None
    ) -> dict[str, float] | None:
        if self.gated is None:
            return None
        masks = self.gated.masks()
        closed = torch.cat([(m == 0).float() for m in masks.values()]).mean()
        return {"gcc.closed_channels": float(closed)}

    @hookimpl
    def vemkit_state_dict(self, program: Any) -> dict[str, Any] | None:
        if self.gated is None:
            return None
        stream = self.gate_stream
        epoch, index = (stream.epoch, stream.index) if stream is not None else self.gate_position
        return {
            "gcc.gate_epoch": int(epoch),
            "gcc.gate_index": int(index),
            "gcc.teacher_gap": self.ema.state_dict()["value"],
        }

    @hookimpl
    def vemkit_load_state_dict(self, program: Any, state: dict[str, Any]) -> None:
        if self.gated is None or "gcc.gate_epoch" not in state:
            return
        self.gate_position = (int(state["gcc.gate_epoch"]), int(state["gcc.gate_index"]))
        self.gate_stream = None
        self.ema.load_state_dict({"value": state["gcc.teacher_gap"]})

    @hookimpl
    def vemkit_run_end(self, program: Any, status: str, run_dir: str | None) -> None:
        if self.gate_stream is not None:
            self.gate_stream.close()

    # -- the prune step -------------------------------------------------------------------------
    @hookimpl
    def vemkit_stage_step(self, program: Any, stage: Any, context: Any) -> StepResult:
        from vemkit.profile import spec_input_shape
        from vemkit_plugins.compress.channels import analyze
        from vemkit_plugins.compress.importance import norm_scale_scores
        from vemkit_plugins.compress.macs import WidthMacs
        from vemkit_plugins.compress.prune import prune_to_budget

        opts = stage.options
        student = program.module("student")
        z_dim = getattr(student, "z_dim", None)
        shape = (int(z_dim),) if z_dim is not None else spec_input_shape(program.spec)
        graph = analyze(student, shape)
        scores = norm_scale_scores(student, graph)
        if not scores:
            raise VemkitError(
                f"method.stages.{stage.name}: the student has no BatchNorm scales to rank "
                "channels by (GCC prunes by |γ|)"
            )
        try:
            result = prune_to_budget(
                student, scores, opts.budget, graph=graph, convention=opts.convention
            )
        except VemkitError as exc:
            raise VemkitError(f"method.stages.{stage.name}.budget: {exc}") from None
        counts = {c: WidthMacs(graph, c) for c in ("thop_legacy", "paper", "exact")}
        table = [
            {"layer": r["name"], "before": r["before"], "after": r["after"]}
            for r in result.table
            if r["prunable"]
        ]
        context["say"](
            f"{stage.name}: {result.macs_before:,} → {result.macs_after:,} MACs "
            f"({opts.convention}; budget {int(opts.budget):,}), "
            f"{result.params_before:,} → {result.params_after:,} parameters"
        )

        def side(when: str, widths: Any) -> dict[str, Any]:
            return {
                "macs": result.macs_before if when == "before" else result.macs_after,
                **{f"macs_{c}": int(m(widths)) for c, m in counts.items()},
                "params": result.params_before if when == "before" else result.params_after,
                "channels": {r["layer"]: r[when] for r in table},
            }

        base = program.spec.student.arch.model_dump(mode="json")
        return StepResult(
            archs={"student": result.arch_config(base)},
            modules={"student": result.apply(student, graph)},
            summary={
                "before": side("before", None),
                "after": side("after", result.widths),
                "budget": int(opts.budget),
                "convention": opts.convention,
                "threshold": result.threshold,
            },
            tables={"channels": table},
        )


def build(options: GCCOptions, spec: Any = None, num_samples: int | None = None, **_: Any) -> GCC:
    """Factory of the ``gcc`` method (the engine registers the object as a run plugin)."""
    return GCC(options, spec, num_samples)
