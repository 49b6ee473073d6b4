"""``gan_compression``: GAN-Compression (Li et al., CVPR 2020) as a recipe of stages.

teacher → distill (optional) → supernet → search → finetune, on Mobile-ResNet generators:

* ``teacher``: the Mobile-ResNet teacher. Paired data: pix2pix, the ``gan_mode`` loss against
  a conditional PatchGAN plus ``teacher_recon_weight``·L1, D updated before G. Unpaired data:
  CycleGAN (GAN-Compression's ``cycle_gan_model.py``), the teacher as G_A with a reverse
  generator ``teacher_B``, D_A (``discriminator``) and D_B (``discriminator_B``) fed from
  history pools, cycle and identity L1s, G updated before D. The discriminator it leaves
  (module ``discriminator``, D_A on unpaired data) is the one every later stage starts from,
  GAN-Compression's ``--restore_D_path``.
* ``distill``: the spec's narrower student, initialised from the teacher by L1-magnitude
  channel selection (:func:`l1_channel_transfer`), trained with the student loss.
* ``supernet``: each iteration draws one configuration of the 8 sub-network entries uniformly
  from ``method.channels`` (a function of the seed and the step: a resumed run draws the same
  ones) and trains the first-k-channel sub-network of the student through the toolkit's
  :class:`~vemkit_plugins.compress.supernet.SuperNet`, with the same student loss.
* ``search``: exhaustive or evolutionary search of the configurations under a MAC budget
  (paper convention at ``resolution``), scored by a registered metric (FID) on a held-out part
  of the training split; the scores are cached in the stage folder, so a resumed search does
  not score a configuration twice. The chosen sub-network is recorded as ``{type:
  sub_mobile_resnet, config: "a_b_c_d_e_f_g_h"}``: GAN-Compression's config string.
* ``finetune``: that sub-network, from the supernet's weights, with the student loss (and the
  spec's MI term, whose positive ``teacher`` is the frozen T(x) the step already computes).

In the student stages the discriminator's phase runs after the student's (GAN-Compression's
distillers compute both losses with the same D, then step both).

Student loss: ``gc.gan`` + ``gc.recon`` (L1 to the ground truth on paired data, to the
teacher's output on unpaired) + ``gc.distill`` = Σ_l MSE(A_l(S_l), T_l) over the 4 taps, A_l a
1×1 conv with bias (in the supernet its input channels are sliced to the sub-network's width,
as GAN-Compression's ``SuperConv2d`` adapters).
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.engine.hookspecs import ORDER_DISCRIMINATOR, ORDER_STUDENT, ORDER_TEACHER, hookimpl
from vemkit.engine.program import Stage
from vemkit.engine.recipe import StepResult
from vemkit.engine.state import State
from vemkit.errors import VemkitError
from vemkit_plugins.methods.kd import d_fake_loss, d_real_loss, g_loss, probe_discriminator
from vemkit_plugins.methods.omgd_losses import (
    ImagePool,
    load_pools_state_dict,
    pools_state_dict,
)
from vemkit_plugins.methods.recipe_options import GanCompressionOptions

__all__ = [
    "ADAPTERS",
    "DISCRIMINATOR",
    "DISCRIMINATOR_B",
    "REVERSE",
    "GanCompression",
    "build",
    "config_string",
    "config_widths",
    "l1_channel_transfer",
]

DISCRIMINATOR = "discriminator"
DISCRIMINATOR_B = "discriminator_B"
REVERSE = "teacher_B"
ADAPTERS = "gc_adapters"
SCORES_FILE = "search_scores.json"

_BLOCK = "model.{}.conv_block.1.conv.2"
ENTRY_SPACES: tuple[tuple[tuple[str, ...], int], ...] = (
    (("model.1",), 1),
    (("model.4",), 2),
    (("model.7",), 4),
    (tuple(_BLOCK.format(i) for i in (10, 11, 12)), 4),
    (tuple(_BLOCK.format(i) for i in (13, 14, 15)), 4),
    (tuple(_BLOCK.format(i) for i in (16, 17, 18)), 4),
    (("model.19",), 2),
    (("model.22",), 1),
)
"""Per entry of GAN-Compression's 8-number config: the Mobile ResNet's channel spaces it sets
(names from the toolkit's channel analysis) and the ngf multiple its number is counted in
(stem c0, down 1 2·c1, down 2 and the residual stream 4·c2, block hidden widths 4·c3/c4/c5 for
blocks 1–3/4–6/7–9, up 1 2·c6, up 2 c7) — as ``sub_mobile_resnet`` parses the string."""

GENES = tuple(f"c{i}" for i in range(8))
GROUPS = (
    "model.1 (stem)",
    "model.4 (down 1)",
    "model.7 (down 2, residual stream)",
    "blocks 1-3 hidden",
    "blocks 4-6 hidden",
    "blocks 7-9 hidden",
    "model.19 (up 1)",
    "model.22 (up 2)",
)
"""The report's names of the 8 entries' channel groups."""


def _group_channels(config: Sequence[int]) -> dict[str, int]:
    """Channels per group (the entry times its ngf multiple), for the report."""
    return {
        name: mult * int(v) for name, (_, mult), v in zip(GROUPS, ENTRY_SPACES, config, strict=True)
    }


def config_widths(config: Sequence[int]) -> dict[str, int]:
    """The channel-space widths of the Mobile ResNet (9 blocks) for an 8-number config."""
    if len(config) != len(ENTRY_SPACES):
        raise VemkitError(f"a GAN-Compression config has 8 numbers, got {len(config)}")
    widths = {}
    for value, (spaces, mult) in zip(config, ENTRY_SPACES, strict=True):
        for space in spaces:
            widths[space] = mult * int(value)
    return widths


def config_string(config: Sequence[int]) -> str:
    """GAN-Compression's spelling of a config: ``16_16_32_16_32_32_16_16``."""
    return "_".join(str(int(v)) for v in config)


def _genes_to_config(genes: Mapping[str, int]) -> list[int]:
    return [int(genes[g]) for g in GENES]


def l1_channel_transfer(source: nn.Module, target: nn.Module, inputs: Sequence[int]) -> None:
    """Initialise ``target`` (a narrower network of the same family, same state-dict keys)
    from ``source`` by L1-magnitude channel selection, in place.

    Every channel space keeps the ``target``'s width of channels with the largest L1 norm of
    their producing filters (GAN-Compression's ``utils/weight_transfer.py``: the residual
    stream's channels by the second down conv's filters, each block's hidden channels by its
    first pointwise conv's); consumers keep the matching input channels. Differences from the
    original: a filter's norm is taken over all its input channels, not only the ones its
    input layer kept."""
    from vemkit_plugins.compress.channels import analyze
    from vemkit_plugins.compress.importance import l1_scores, producer_weight
    from vemkit_plugins.compress.slicing import apply_widths

    graph = analyze(source, tuple(inputs))
    sizes = {s.name: s.size for s in analyze(target, tuple(inputs)).spaces}
    scores = l1_scores(source, graph)
    for space in graph.prunable():
        path = space.name
        # The residual stream (and any space with several producers) is ranked by the one
        # conv that opens it, as GAN-Compression does; l1_scores sums over every producer.
        if path in graph.layers:
            w = producer_weight(source.get_submodule(path), graph.layers[path].kind)
            scores[path] = w.detach().abs().float().flatten(1).sum(1).cpu()
    keep: dict[str, Tensor] = {}
    for space in graph.spaces:
        k = sizes.get(space.name)
        if k is None:
            raise VemkitError(f"the student has no channel space '{space.name}' of the teacher")
        if k > space.size:
            raise VemkitError(
                f"the student's '{space.name}' has {k} channels, more than the teacher's "
                f"{space.size}: L1 selection needs a narrower student"
            )
        if k < space.size:
            s = scores.get(space.name)
            if s is None:
                raise VemkitError(f"channel space '{space.name}' cannot be pruned")
            order = torch.sort(-s, stable=True).indices
            keep[space.name] = order[:k].sort().values
    cut = apply_widths(copy.deepcopy(source), keep, tuple(inputs), graph=graph)
    target.load_state_dict(cut.state_dict())


def _make_adapter(c_in: int, c_out: int) -> nn.Conv2d:
    # GAN-Compression's netA: a 1×1 conv with bias through init_net (N(0, 0.02), bias 0).
    conv = nn.Conv2d(c_in, c_out, kernel_size=1, bias=True)
    nn.init.normal_(conv.weight, 0.0, 0.02)
    nn.init.zeros_(conv.bias)
    return conv


class GanCompression:
    """The ``gan_compression`` method as a run plugin (one object per compiled stage)."""

    def __init__(self, options: GanCompressionOptions, spec: Any) -> None:
        self.options = options
        paired = spec.task == "paired"
        self.paired = paired
        o = options
        self.recon_weight = (
            o.recon_weight if o.recon_weight is not None else (100.0 if paired else 10.0)
        )
        self.distill_weight = (
            o.distill_weight if o.distill_weight is not None else (1.0 if paired else 0.01)
        )
        self.gan_mode = o.gan_mode or ("hinge" if paired else "lsgan")
        out_c = getattr(spec.student.arch, "output_nc", 3)
        in_c = getattr(spec.student.arch, "input_nc", 3)
        self.discriminator = o.discriminator or {
            "type": "patchgan",
            "input_nc": in_c + out_c if paired else out_c,
            "ndf": 128 if paired else 64,
            "n_layers": 3,
            "norm": "instance",
        }
        self.choices = o.channel_choices()
        self.conditional = False
        self.tap_keys: list[tuple[str, str]] = []
        self.supernet: Any = None
        self.widths: dict[str, int] = {}
        self.pools: dict[str, ImagePool] = {}
        self.seed = int(spec.seed)

    # -- which stage ------------------------------------------------------------------------
    @staticmethod
    def _stage(program: Any) -> str:
        # Compiled outside a recipe (a stage folder opened on its own): the student's training.
        return program.stage.name if program.stage is not None else "finetune"

    # -- hooks --------------------------------------------------------------------------------
    @hookimpl
    def vemkit_build(self, program: Any, spec: Any) -> None:
        stage = self._stage(program)
        if stage == "search":
            return
        self._build_discriminator(program, spec)
        if stage == "teacher":
            if not self.paired:
                self._build_cyclegan(program, spec)
            return
        if stage == "supernet" and not program.meta:
            self._build_supernet(program, spec)
        if self.distill_weight > 0:
            self._build_adapters(program)

    def _build_discriminator(self, program: Any, spec: Any) -> None:
        from vemkit.weights import load_weights

        program.add_group(DISCRIMINATOR)
        net = program.build("arch", self.discriminator)
        program.add_module(
            DISCRIMINATOR, net, role="discriminator", group=DISCRIMINATOR, config=self.discriminator
        )
        path = self.options.discriminator_checkpoint
        if path is not None and not program.meta:
            try:
                load_weights(net, path)
            except VemkitError as exc:
                raise VemkitError(f"method.discriminator_checkpoint: {exc}") from None
        d = self.discriminator
        d_in = d.get("input_nc") if isinstance(d, dict) else getattr(d, "input_nc", None)
        in_c = getattr(spec.student.arch, "input_nc", None)
        out_c = getattr(spec.student.arch, "output_nc", None)
        self.conditional = self.paired and None not in (d_in, in_c, out_c) and d_in == in_c + out_c

    def _build_cyclegan(self, program: Any, spec: Any) -> None:
        """CycleGAN's teacher pair: the teacher is G_A; G_B, D_B and the pools are added."""
        g_a = program.module("teacher")
        g_b = program.add_module(
            REVERSE,
            program.build("arch", spec.teacher.arch),
            role="teacher",
            group="teacher",
            config=spec.teacher.arch,
        )
        d = self.discriminator
        config_b = dict(d) if isinstance(d, dict) else d.model_dump(mode="json")
        if "input_nc" in config_b:
            config_b["input_nc"] = getattr(spec.teacher.arch, "input_nc", 3)
        program.add_module(
            DISCRIMINATOR_B,
            program.build("arch", config_b),
            role="discriminator",
            group=DISCRIMINATOR,
            config=config_b,
        )
        # Pool "B" keeps G_A's fakes (domain B) for D_A, pool "A" G_B's fakes for D_B.
        size = self.options.pool_size
        self.pools = {side: ImagePool(size, seed=self.seed * 2 + k) for k, side in enumerate("AB")}

        def quiet(net: nn.Module, x: Tensor) -> Tensor:
            # G_A also runs on B images: its feature taps keep G_A(A)'s activations.
            with program.activate(None):
                return net(x)

        program.add_producer("gc.fake_A", lambda s: g_b(s["target"]))
        program.add_producer("gc.rec_A", lambda s: g_b(s["teacher.out"]))
        program.add_producer("gc.rec_B", lambda s: quiet(g_a, s["gc.fake_A"]))
        program.add_producer("gc.idt_A", lambda s: quiet(g_a, s["target"]))
        program.add_producer("gc.idt_B", lambda s: g_b(s["input"]))

    def _build_supernet(self, program: Any, spec: Any) -> None:
        from vemkit.profile import spec_input_size
        from vemkit_plugins.compress.supernet import SuperNet

        student = program.module("student")
        size = spec_input_size(spec)
        in_c = getattr(spec.student.arch, "input_nc", 3)
        self.supernet = SuperNet(student, (in_c, size, size))
        net = self

        def produce(state: State) -> Tensor:
            # Evaluation scores the largest sub-network (the whole student).
            widths = net.widths if state.training else {}
            return net.supernet(state["input"], widths)

        program.add_producer("student.out", produce, replace=True)

    def _build_adapters(self, program: Any) -> None:
        keys = []
        for i, path in enumerate(self.options.taps):
            try:
                keys.append((program.tap("student", path), program.tap("teacher", path)))
            except VemkitError as exc:
                raise VemkitError(f"method.taps.{i}: {exc}") from None
        self.tap_keys = keys
        try:
            shapes = program.probe([k for pair in keys for k in pair])
        except VemkitError:
            raise
        except Exception as exc:  # a network that cannot run at the spec's size
            raise VemkitError(
                f"method.taps: could not run the networks on an example batch to read the "
                f"taps' widths: {type(exc).__name__}: {exc}"
            ) from None
        adapters = nn.ModuleList(_make_adapter(shapes[s][1], shapes[t][1]) for s, t in keys)
        program.add_module(ADAPTERS, adapters, role="adapter", group="student")

    @hookimpl
    def vemkit_phases(self, program: Any, spec: Any) -> None:
        stage = self._stage(program)
        if stage == "teacher":
            if self.paired:
                self._pix2pix_teacher_terms(program)
            else:
                self._cyclegan_teacher_terms(program)
            return
        # GAN-Compression's distillers compute D's loss and the student's from the same
        # forward with the same (old) D, then step both: D's phase runs after the student's.
        program.add_phase(DISCRIMINATOR, order=ORDER_STUDENT + 50, groups=[DISCRIMINATOR])
        program.add_term(DISCRIMINATOR, "gc.d_real", self._d_real, 0.5)
        program.add_term(DISCRIMINATOR, "gc.d_fake", self._d_fake("student.out"), 0.5)
        program.add_term("student", "gc.gan", self._gan("student.out"), self.options.gan_weight)
        reference = "target" if self.paired else "teacher.out"
        program.add_term(
            "student",
            "gc.recon",
            lambda s: F.l1_loss(s["student.out"], s.detached(reference)),
            self.recon_weight,
        )
        if self.distill_weight > 0:
            program.add_term("student", "gc.distill", self._distill, self.distill_weight)

    def _pix2pix_teacher_terms(self, program: Any) -> None:
        # pix2pix: D is updated first, then G against the updated D.
        program.add_phase(DISCRIMINATOR, order=ORDER_DISCRIMINATOR, groups=[DISCRIMINATOR])
        program.add_term(DISCRIMINATOR, "gc.d_real", self._d_real, 0.5)
        program.add_term(DISCRIMINATOR, "gc.d_fake", self._d_fake("teacher.out"), 0.5)
        program.add_phase("teacher", order=ORDER_TEACHER, groups=["teacher"])
        program.add_term("teacher", "gc.teacher_gan", self._gan("teacher.out"), 1.0)
        program.add_term(
            "teacher",
            "gc.teacher_recon",
            lambda s: F.l1_loss(s["teacher.out"], s["target"]),
            self.options.teacher_recon_weight,
        )

    def _cyclegan_teacher_terms(self, program: Any) -> None:
        o = self.options
        program.add_phase("teacher", order=ORDER_TEACHER, groups=["teacher"])
        for side, fake, net in (
            ("A", "teacher.out", DISCRIMINATOR),
            ("B", "gc.fake_A", DISCRIMINATOR_B),
        ):
            program.add_term("teacher", f"gc.teacher_gan.{side}", self._plain_gan(fake, net), 1.0)
        program.add_term(
            "teacher", "gc.cycle.A", lambda s: F.l1_loss(s["gc.rec_A"], s["input"]), o.cycle_weight
        )
        program.add_term(
            "teacher", "gc.cycle.B", lambda s: F.l1_loss(s["gc.rec_B"], s["target"]), o.cycle_weight
        )
        if o.identity_weight > 0:
            weight = o.cycle_weight * o.identity_weight
            program.add_term(
                "teacher", "gc.idt.A", lambda s: F.l1_loss(s["gc.idt_A"], s["target"]), weight
            )
            program.add_term(
                "teacher", "gc.idt.B", lambda s: F.l1_loss(s["gc.idt_B"], s["input"]), weight
            )
        # CycleGAN: G first, then D_A (real B against pooled G_A(A)) and D_B (real A against
        # pooled G_B(B)), each 0.5·(real + fake).
        program.add_phase(DISCRIMINATOR, order=ORDER_TEACHER + 50, groups=[DISCRIMINATOR])
        program.add_term(
            DISCRIMINATOR, "gc.d.A", self._cycle_d(DISCRIMINATOR, "target", "teacher.out", "B"), 1.0
        )
        program.add_term(
            DISCRIMINATOR, "gc.d.B", self._cycle_d(DISCRIMINATOR_B, "input", "gc.fake_A", "A"), 1.0
        )

    def _plain_gan(self, fake: str, discriminator: str) -> Any:
        def term(state: State) -> Tensor:
            return g_loss(state.program.module(discriminator)(state[fake]), self.gan_mode)

        return term

    def _cycle_d(self, discriminator: str, real: str, fake: str, pool: str) -> Any:
        def term(state: State) -> Tensor:
            net = state.program.module(discriminator)
            pooled = self.pools[pool].query(state.detached(fake))
            loss = d_real_loss(net(state[real]), self.gan_mode)
            return 0.5 * (loss + d_fake_loss(net(pooled), self.gan_mode))

        return term

    @hookimpl
    def vemkit_state_dict(self, program: Any) -> dict[str, Any] | None:
        return pools_state_dict(self.pools, "gc") or None

    @hookimpl
    def vemkit_load_state_dict(self, program: Any, state: dict[str, Any]) -> None:
        load_pools_state_dict(self.pools, "gc", state)

    @hookimpl
    def vemkit_check(self, program: Any, spec: Any) -> list[str]:
        stage = self._stage(program)
        problems = []
        if stage == "teacher":
            in_c = getattr(spec.teacher.arch, "input_nc", 3)
            out_c = getattr(spec.teacher.arch, "output_nc", 3)
            if not self.paired and self.options.identity_weight > 0 and in_c != out_c:
                problems.append(
                    "method.identity_weight: the identity loss feeds B images to G_A, which "
                    f"needs as many input as output channels ({in_c} ≠ {out_c}); set it to 0"
                )
            if spec.teacher.mode != "online":
                problems.append(
                    "method.stages.teacher.teacher: the teacher stage trains the teacher; "
                    "set it to online"
                )
            return problems
        if stage in ("distill", "supernet"):
            arch = spec.student.arch
            if arch.type != "mobile_resnet" or getattr(arch, "n_blocks", None) != 9:
                problems.append(
                    f"student.arch: GAN-Compression's {stage} stage needs a mobile_resnet with "
                    f"9 blocks (got {arch.type})"
                )
            elif stage == "supernet":
                ngf = arch.ngf
                for i, entry in enumerate(self.choices):
                    if max(entry) > ngf:
                        problems.append(
                            f"method.channels.{i}: width {max(entry)} is wider than the "
                            f"student (ngf {ngf})"
                        )
        problem = probe_discriminator(program, conditional=self.conditional)
        if problem:
            problems.append(problem)
        return problems

    @hookimpl
    def vemkit_stages(self, program: Any, spec: Any) -> list[Stage] | None:
        stage = program.stage
        if stage is None or stage.name != "distill" or not stage.options.init_from_teacher:
            return None
        return [Stage("gc.l1_init", self._l1_init)]

    def _l1_init(self, program: Any, context: Any) -> None:
        from vemkit.profile import spec_input_size

        size = spec_input_size(program.spec)
        in_c = getattr(program.spec.student.arch, "input_nc", 3)
        with torch.no_grad():
            l1_channel_transfer(
                program.module("teacher"), program.module("student"), (in_c, size, size)
            )

    @hookimpl
    def vemkit_iteration_start(self, program: Any, state: Any, step: int) -> None:
        if self.supernet is None:
            return
        # A function of the seed and the step, so a resumed run draws the same configs.
        rng = random.Random(self.seed * 1_000_003 + step)
        self.config = [rng.choice(entry) for entry in self.choices]
        self.widths = config_widths(self.config)

    # -- terms ----------------------------------------------------------------------------------
    def _score(self, state: State, image: Tensor) -> Any:
        net = state.program.module(DISCRIMINATOR)
        if self.conditional:
            image = torch.cat([state["input"].to(image.dtype), image], dim=1)
        return net(image)

    def _gan(self, name: str) -> Any:
        def term(state: State) -> Tensor:
            return g_loss(self._score(state, state[name]), self.gan_mode)

        return term

    def _d_real(self, state: State) -> Tensor:
        return d_real_loss(self._score(state, state["target"]), self.gan_mode)

    def _d_fake(self, name: str) -> Any:
        def term(state: State) -> Tensor:
            return d_fake_loss(self._score(state, state.detached(name)), self.gan_mode)

        return term

    def _distill(self, state: State) -> Tensor:
        adapters = state.program.module(ADAPTERS)
        losses = []
        for (s_key, t_key), adapter in zip(self.tap_keys, adapters, strict=True):
            s = state[s_key]
            # A supernet's sub-network has the first k channels of the tap: the adapter reads
            # the first k of its input channels (GAN-Compression's SuperConv2d adapter).
            weight = adapter.weight[:, : s.shape[1]]
            losses.append(F.mse_loss(F.conv2d(s, weight, adapter.bias), state.detached(t_key)))
        return torch.stack(losses).sum()

    # -- the search step ----------------------------------------------------------------------
    @hookimpl
    def vemkit_stage_step(self, program: Any, stage: Any, context: Any) -> StepResult | None:
        if stage.name != "search":
            return None
        return self._search(program, stage.options, context)

    def _search(self, program: Any, o: Any, context: Any) -> StepResult:
        from vemkit.fileio import write_text_atomic
        from vemkit.profile import count_params
        from vemkit_plugins.compress.channels import analyze
        from vemkit_plugins.compress.macs import WidthMacs
        from vemkit_plugins.compress.search import evolutionary_search, exhaustive_search
        from vemkit_plugins.compress.supernet import SuperNet

        spec = program.spec
        arch = spec.student.arch
        if arch.type != "mobile_resnet" or getattr(arch, "n_blocks", None) != 9:
            raise VemkitError(
                f"method.stages.search: the student must be the supernet, a mobile_resnet with "
                f"9 blocks (got {arch.type})"
            )
        for i, entry in enumerate(self.choices):
            if max(entry) > arch.ngf:
                raise VemkitError(
                    f"method.channels.{i}: width {max(entry)} is wider than the student "
                    f"(ngf {arch.ngf})"
                )
        student = program.module("student")
        in_c = getattr(arch, "input_nc", 3)
        graph = analyze(student, (in_c, o.resolution, o.resolution))
        net = SuperNet(student, graph=graph)
        macs = WidthMacs(graph, "paper")
        genes = {g: list(c) for g, c in zip(GENES, self.choices, strict=True)}

        def macs_of(config: Mapping[str, int]) -> int:
            return macs(config_widths(_genes_to_config(config)))

        metric = context["registry"].build("metric", o.metric)
        better = getattr(metric, "higher_is_better", {}).get(o.score)
        if better is None:
            raise VemkitError(
                f"method.stages.search.score: the metric '{o.metric.get('type')}' has no value "
                f"'{o.score}' (it gives: {', '.join(getattr(metric, 'higher_is_better', {}))})"
            )
        _, held = context["holdout"](o.holdout)
        cache_path = context["run_dir"] / SCORES_FILE
        done: dict[str, float] = {}
        if cache_path.is_file():
            done = {k: float(v) for k, v in json.loads(cache_path.read_text()).items()}
        device = context["device"]
        dist = context.get("dist")
        main = dist is None or dist.main

        def score(config: Mapping[str, int]) -> float:
            from vemkit_plugins.compress.search import config_key

            widths = config_widths(_genes_to_config(config))
            values = context["score"](
                lambda batch: net(batch["input"].to(device), widths),
                [metric],
                held,
                limit=o.max_images,
            )
            if o.score not in values:
                raise VemkitError(
                    f"method.stages.search.score: the metric gave {', '.join(values)}, not "
                    f"'{o.score}'"
                )
            value = float(values[o.score])
            # Written after every candidate: a search killed midway rescores nothing. Every
            # process scores the same candidates; the main one writes.
            done[config_key(config)] = value
            if main:
                write_text_atomic(cache_path, json.dumps(done, sort_keys=True) + "\n")
            return value

        common = {
            "lower_is_better": not better,
            "done": done,
            "progress": context["progress"],
            "top": o.top,
        }
        with torch.no_grad():
            if o.algorithm == "exhaustive":
                result = exhaustive_search(genes, macs_of, score, o.budget, **common)
            else:
                result = evolutionary_search(
                    genes, macs_of, score, o.budget,
                    population=o.population, iterations=o.iterations, mutate_prob=o.mutate_prob,
                    parent_ratio=o.parent_ratio, mutation_ratio=o.mutation_ratio,
                    seed=spec.seed if o.seed is None else o.seed, **common,
                )  # fmt: skip
        best = _genes_to_config(result.best)
        best_str = config_string(best)
        widths = config_widths(best)
        chosen = net.extract(widths)
        sub_arch = {
            k: v
            for k, v in arch.model_dump(mode="json").items()
            if k not in ("type", "ngf", "n_blocks")
        }
        sub_arch = {"type": "sub_mobile_resnet", "config": best_str, **sub_arch}
        full = [arch.ngf] * 8
        table = [
            {
                "rank": row["rank"],
                "config": config_string(_genes_to_config(row["config"])),
                "macs": row["macs"],
                "score": row["score"],
            }
            for row in result.table
        ]
        context["say"](
            f"  chosen {best_str}: {result.best_macs / 1e9:.3f}G MACs, {o.score} "
            f"{result.best_score:.4g} ({result.evaluated} scored now, {len(result.scores)} in all)"
        )
        return StepResult(
            archs={"student": sub_arch},
            modules={"student": chosen},
            summary={
                "before": {
                    "macs": macs(),
                    "params": count_params(student),
                    "channels": _group_channels(full),
                    "config": config_string(full),
                },
                "after": {
                    "macs": result.best_macs,
                    "params": count_params(chosen),
                    "channels": _group_channels(best),
                    "config": best_str,
                },
                "budget": o.budget,
                "resolution": o.resolution,
                "score": {o.score: result.best_score},
                "evaluated": len(result.scores),
                "scored_now": result.evaluated,
                "history": result.history,
            },
            tables={"candidates": table},
        )


def build(options: GanCompressionOptions, *, spec: Any, **_: Any) -> GanCompression:
    """Factory of the ``gan_compression`` method (a run plugin per compiled stage)."""
    return GanCompression(options, spec)
