"""``cat``: CAT — Compression And Teaching (Jin et al., CVPR 2021) as a recipe.

Facts follow the public snap-research/CAT code: ``train.py`` with the ``cycle_gan`` and
``pix2pix`` models (the teacher), ``utils/common.py: shrink_model`` (the pruning),
``trainer.py`` (the student re-initialised after pruning) and
``distillers/inception_distiller.py`` (the distillation). Three stages
(:class:`~vemkit_plugins.methods.recipe_options.CATStages`):

1. ``teacher`` (a training stage that trains only the teacher). Unpaired data (CAT's
   ``cycle_gan`` model): the spec's teacher is G_A; this method adds G_B (``teacher_B``, same
   arch), ``discriminator`` (D_A, judges B images) and ``discriminator_B`` (D_B), each D with a
   history pool. The ``teacher`` phase holds ``cat.teacher_gan.A/B``, ``cat.cycle.A/B`` and
   ``cat.idt.A/B``; then the ``discriminator`` phase ``cat.d.A/B`` (CAT updates G with D
   frozen, then D). Paired data (CAT's ``pix2pix`` model): the ``discriminator`` phase
   ``cat.d`` on concat(input, image) first, then the ``teacher`` phase ``cat.teacher_gan`` +
   ``cat.teacher_recon`` (L1 to the ground truth) with the updated D, as CAT does.
2. ``prune`` (a step): :func:`cat_prune` — one global threshold on the |γ| of the teacher's
   prunable norms, binary search until CAT's MAC count ≤ the budget, floors on the
   down/up-sampling layers, zero-width Inception branches dropped; the student is the pruned
   teacher (an ``inception_resnet`` arch with ``widths``), re-initialised as CAT does.
3. ``student`` (the teacher frozen): the ``discriminator`` phase ``cat.d`` (½ real + ½ the
   student's detached image), the MI term's energy phase if any, then the ``student`` phase
   ``cat.gan`` + ``cat.recon`` + ``cat.distill`` (= −Σ_l KA(S_l, T_l) over the taps, no
   adapter). D continues from the teacher stage's D (the modules share the name
   ``discriminator``, so the recipe hands its weights on).

The MI term (``mi: {type: vem, positive: teacher}``) joins the student stage; its positive is
``teacher.out``, the frozen teacher's image that ``cat.recon`` already computed in the step (the
engine computes each named tensor once per iteration).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.engine.hookspecs import ORDER_DISCRIMINATOR, ORDER_TEACHER, hookimpl
from vemkit.engine.recipe import StepResult
from vemkit.engine.state import State
from vemkit.errors import VemkitError
from vemkit_plugins.archs.inception import InceptionGenerator
from vemkit_plugins.methods.cat_losses import ka_distill_loss
from vemkit_plugins.methods.kd import probe_discriminator
from vemkit_plugins.methods.omgd_losses import (
    ImagePool,
    gan_loss_d,
    gan_loss_g,
    load_pools_state_dict,
    pools_state_dict,
)
from vemkit_plugins.methods.recipe_options import CATOptions

__all__ = [
    "CAT",
    "CATPruneResult",
    "build",
    "cat_prune",
    "find_threshold",
    "inception_macs",
    "prune_scores",
    "pruned_inception",
    "widths_at",
]

TEACHER = "teacher"
REVERSE = "teacher_B"
DISCRIMINATOR = "discriminator"
DISCRIMINATOR_B = "discriminator_B"
ORDER_DISCRIMINATOR_AFTER_TEACHER = ORDER_TEACHER + 50
"""CycleGAN teacher stage: D is updated after G (CAT's ``cycle_gan`` model)."""

DOWN_NORMS = (2, 5, 8)
"""Indices of the norms in ``down_sampling`` (stem, down 1, trunk); the conv before each."""
UP_NORMS = (1, 4)
"""Indices of the norms in ``up_sampling``; the transposed conv before each."""
MAX_SEARCH_STEPS = 200
"""Bound on the binary search (CAT's loop has none and never ends when a score is 0)."""


# -- CAT's MAC count, analytically ---------------------------------------------------------------
def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def inception_macs(
    widths: Mapping[str, Any],
    *,
    kernel_sizes: Sequence[int],
    input_nc: int = 3,
    output_nc: int = 3,
    height: int = 256,
    width: int = 256,
    norm: str = "instance",
) -> tuple[int, int]:
    """``(paper, cat)`` MACs of an ``inception_resnet`` of these ``widths`` on one
    ``input_nc``×``height``×``width`` image, without building it.

    ``paper``: vemkit's paper convention (every conv: output positions · C_out · C_in/groups ·
    k², transposed convs at their output resolution) — what ``vemkit profile`` reports.
    ``cat``: CAT's own count (``utils/model_profiling.py``, the unit of ``--target_flops``) —
    the same plus one MAC per output element of every norm without running statistics (the
    instance norms). Equal to :func:`vemkit_plugins.archs.inception.cat_macs` and to
    ``count_macs(net, x, "paper")`` of the built network (tested).
    """
    stem, down1, trunk = (int(c) for c in widths["down"])
    up1, up2 = (int(c) for c in widths["up"])
    charge = norm == "instance"  # CAT charges norms that track no running statistics
    convs = norms = 0
    h, w = height, width  # stem: reflection pad 3, 7×7
    convs += h * w * stem * input_nc * 49
    norms += h * w * stem
    h, w = _conv_out(h, 3, 2, 1), _conv_out(w, 3, 2, 1)
    convs += h * w * down1 * stem * 9
    norms += h * w * down1
    h, w = _conv_out(h, 3, 2, 1), _conv_out(w, 3, 2, 1)
    convs += h * w * trunk * down1 * 9
    norms += h * w * trunk
    p = h * w
    for block in widths["blocks"]:
        any_branch = False
        for hidden, k in zip(block["res"], kernel_sizes, strict=True):
            if hidden:
                any_branch = True
                convs += 2 * p * hidden * trunk * k * k  # k×k in→h, k×k h→in
                norms += p * hidden
        for hidden, k in zip(block["dw"], kernel_sizes, strict=True):
            if hidden:
                any_branch = True
                convs += 2 * p * hidden * trunk + p * hidden * k * k  # 1×1, depthwise, 1×1
                norms += 2 * p * hidden
        if any_branch:
            norms += p * trunk  # pw_bn
    h, w = 2 * h, 2 * w  # 3×3 stride-2 transposed convs, output padding 1
    convs += h * w * up1 * trunk * 9
    norms += h * w * up1
    h, w = 2 * h, 2 * w
    convs += h * w * up2 * up1 * 9
    norms += h * w * up2
    convs += h * w * output_nc * up2 * 49
    return convs, convs + (norms if charge else 0)


# -- the pruning ---------------------------------------------------------------------------------
def _kernels(block: nn.Module, kind: str) -> list[int]:
    """Kernel size of each existing branch of ``kind`` (``res``/``dw``), in module order."""
    hidden = block.res_channels if kind == "res" else block.dw_channels
    return [k for h, k in zip(hidden, block.kernel_sizes, strict=True) if h]


def prune_scores(net: InceptionGenerator) -> dict[str, Tensor]:
    """|γ| of every prunable norm of ``net`` (``net.prunable_norms()``), float64 on the CPU."""
    out = {}
    for name, module in net.prunable_norms().items():
        if getattr(module, "weight", None) is None:
            raise VemkitError(
                f"teacher.arch: CAT prunes by the scales of affine norms, but '{name}' has none"
            )
        out[name] = module.weight.detach().abs().double().cpu()
    return out


def _floor(count: int, size: int, floor: int) -> int:
    return min(max(count, floor), size)


def widths_at(
    net: InceptionGenerator, scores: Mapping[str, Tensor], threshold: float, min_channels: int
) -> dict[str, Any]:
    """The ``widths`` CAT's threshold keeps: channels with |γ| > ``threshold``, at least
    ``min_channels`` (capped at the layer's width) in each down/up-sampling layer, any number
    (0 drops the branch) in the Inception branches."""
    down = [
        _floor(int((scores[f"down_sampling.{i}"] > threshold).sum()), net.down_sampling[i]
               .num_features, min_channels)
        for i in DOWN_NORMS
    ]  # fmt: skip
    blocks = []
    for b, block in enumerate(net.features):
        widths = {}
        for kind, path in (("res", "1.1"), ("dw", "0.1")):
            per_kernel = dict.fromkeys(block.kernel_sizes, 0)
            for i, k in enumerate(_kernels(block, kind)):
                s = scores[f"features.{b}.{kind}_ops.{i}.{path}"]
                per_kernel[k] = int((s > threshold).sum())
            widths[kind] = [per_kernel[k] for k in block.kernel_sizes]
        blocks.append(widths)
    up = [
        _floor(int((scores[f"up_sampling.{i}"] > threshold).sum()), net.up_sampling[i]
               .num_features, min_channels)
        for i in UP_NORMS
    ]  # fmt: skip
    return {"down": down, "blocks": blocks, "up": up}


def _macs_fn(
    net: InceptionGenerator, input_shape: Sequence[int]
) -> Callable[[Mapping[str, Any]], tuple[int, int]]:
    c, h, w = (int(v) for v in input_shape)
    norm = "instance" if isinstance(net.down_sampling[2], nn.InstanceNorm2d) else "batch"
    out_c = net.up_sampling[7].out_channels

    def macs(widths: Mapping[str, Any]) -> tuple[int, int]:
        return inception_macs(
            widths,
            kernel_sizes=net.kernel_sizes,
            input_nc=c,
            output_nc=out_c,
            height=h,
            width=w,
            norm=norm,
        )

    return macs


@dataclass
class CATPruneResult:
    """What :func:`cat_prune` found."""

    threshold: float
    """The global |γ| threshold."""
    widths: dict[str, Any]
    """The student's ``widths`` (``inception_resnet``'s option)."""
    macs_before: int
    """CAT's count of the teacher."""
    macs_after: int
    """CAT's count of the student."""
    paper_before: int
    """Paper-convention MACs of the teacher (``vemkit profile``)."""
    paper_after: int
    """Paper-convention MACs of the student."""
    budget: float
    steps: int
    """Binary-search steps."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Each step's threshold and CAT MACs."""


def find_threshold(
    net: InceptionGenerator,
    target_macs: float,
    input_shape: Sequence[int],
    *,
    min_channels: int = 16,
    tolerance: float = 1e-3,
) -> CATPruneResult:
    """CAT's binary search (``shrink_model``) for the global |γ| threshold.

    From [min |γ|, max |γ|] over the prunable norms, halve until the interval is narrower than
    ``tolerance`` (CAT: 1e-3) times its lower end *and* the MACs at the midpoint are within
    ``target_macs``: a midpoint
    over budget raises the lower end, one within lowers the upper end, so the search ends at
    the smallest threshold found within budget. ``input_shape`` is one training image
    (C, H, W): CAT counts at the training crop. Raises when even the smallest network the
    floors allow is over budget (CAT's loop would never end then).
    """
    scores = prune_scores(net)
    macs = _macs_fn(net, input_shape)
    paper_before, cat_before = macs(net.widths())
    values = torch.cat([s.flatten() for s in scores.values()])
    lb, ub = float(values.min()), float(values.max())
    smallest = widths_at(net, scores, ub, min_channels)
    floor_macs = macs(smallest)[1]
    if floor_macs > target_macs:
        raise VemkitError(
            f"method.stages.prune.target_macs: {target_macs:.4g} MACs is below the smallest "
            f"network CAT's pruning reaches at {tuple(input_shape)} ({floor_macs:,} MACs: every "
            f"Inception branch removed, {min_channels} channels per down/up-sampling layer)"
        )
    searched = math.inf
    threshold = ub
    history = []
    steps = 0
    while abs(ub - lb) > tolerance * lb or searched > target_macs:
        if steps >= MAX_SEARCH_STEPS:
            if searched <= target_macs:
                break
            threshold, searched = ub, macs(widths_at(net, scores, ub, min_channels))[1]
            break
        threshold = (lb + ub) / 2
        searched = macs(widths_at(net, scores, threshold, min_channels))[1]
        history.append({"step": steps, "threshold": threshold, "macs": searched})
        if searched > target_macs:
            lb = threshold
        else:
            ub = threshold
        steps += 1
    widths = widths_at(net, scores, threshold, min_channels)
    paper_after, cat_after = macs(widths)
    return CATPruneResult(
        threshold=threshold,
        widths=widths,
        macs_before=cat_before,
        macs_after=cat_after,
        paper_before=paper_before,
        paper_after=paper_after,
        budget=float(target_macs),
        steps=steps,
        history=history,
    )


def _kept(scores: Tensor, threshold: float, floor: int) -> Tensor:
    """Indices (ascending: the kept channels keep their order) with |γ| > ``threshold``, or the
    ``floor`` largest when fewer pass. CAT takes ``>=`` the floor-th largest there, which keeps
    more than ``floor`` channels when scores tie (e.g. an untrained net's γ = 1); vemkit keeps
    exactly ``floor`` (stable order), so the search and the network agree."""
    idx = torch.nonzero(scores > threshold).flatten()
    if idx.numel() < floor:
        order = torch.sort(scores, descending=True, stable=True).indices
        idx = order[: min(floor, scores.numel())]
    return torch.sort(idx).values


def _copy_norm(new: nn.Module, old: nn.Module, idx: Tensor) -> None:
    if getattr(old, "weight", None) is not None:
        new.weight.copy_(old.weight[idx])
        new.bias.copy_(old.bias[idx])
    if getattr(old, "running_mean", None) is not None and new.running_mean is not None:
        new.running_mean.copy_(old.running_mean[idx])
        new.running_var.copy_(old.running_var[idx])
        new.num_batches_tracked.copy_(old.num_batches_tracked)


def _copy_conv(new: nn.Module, old: nn.Module, out_idx: Tensor | None, in_idx: Tensor | None):
    weight = old.weight
    transposed = isinstance(old, nn.ConvTranspose2d)
    out_dim, in_dim = (1, 0) if transposed else (0, 1)
    depthwise = not transposed and old.groups > 1 and old.groups == old.in_channels
    if out_idx is not None:
        weight = weight.index_select(out_dim, out_idx)
    if in_idx is not None and not depthwise:
        weight = weight.index_select(in_dim, in_idx)
    new.weight.copy_(weight)
    if old.bias is not None:
        new.bias.copy_(old.bias if out_idx is None else old.bias[out_idx])


@torch.no_grad()
def pruned_inception(
    teacher: InceptionGenerator,
    student: InceptionGenerator,
    threshold: float,
    *,
    min_channels: int = 16,
    copy_pw_bn: bool = True,
) -> InceptionGenerator:
    """Copy into ``student`` (built with ``widths_at(teacher, ..., threshold)``) the teacher's
    weights of the channels the threshold keeps, as ``shrink_model``'s last pass does: down
    convs and norms by their own masks (inputs by the previous layer's), every surviving branch
    by its first norm's mask and the trunk mask, up-sampling likewise, the last conv's inputs.
    ``copy_pw_bn``: also the trunk slice of each block's ``pw_bn`` (CAT leaves it freshly
    built). Returns ``student``."""
    scores = prune_scores(teacher)
    prev: Tensor | None = None  # kept input channels of the next layer (None: all 3 of the image)
    for i in DOWN_NORMS:
        keep = _kept(scores[f"down_sampling.{i}"], threshold, min_channels)
        _copy_conv(student.down_sampling[i - 1], teacher.down_sampling[i - 1], keep, prev)
        _copy_norm(student.down_sampling[i], teacher.down_sampling[i], keep)
        prev = keep
    trunk = prev
    for b, (old, new) in enumerate(zip(teacher.features, student.features, strict=True)):
        for kind, ops_old, ops_new in (
            ("res", old.res_ops, new.res_ops),
            ("dw", old.dw_ops, new.dw_ops),
        ):
            j = 0
            for i, op in enumerate(ops_old):
                path = "1.1" if kind == "res" else "0.1"
                mid = torch.nonzero(scores[f"features.{b}.{kind}_ops.{i}.{path}"] > threshold)
                mid = mid.flatten()
                if mid.numel() == 0:
                    continue  # the branch is dropped
                target = ops_new[j]
                if kind == "res":
                    _copy_conv(target[1][0], op[1][0], mid, trunk)
                    _copy_norm(target[1][1], op[1][1], mid)
                else:
                    _copy_conv(target[0][0], op[0][0], mid, trunk)
                    _copy_norm(target[0][1], op[0][1], mid)
                    _copy_conv(target[2][0], op[2][0], mid, None)
                    _copy_norm(target[2][1], op[2][1], mid)
                _copy_conv(target[4], op[4], trunk, mid)
                j += 1
            if j != len(ops_new):
                raise ValueError(f"features.{b}.{kind}_ops: the student's widths do not match")
        if copy_pw_bn and (len(new.res_ops) or len(new.dw_ops)):
            _copy_norm(new.pw_bn, old.pw_bn, trunk)
    for i in UP_NORMS:
        keep = _kept(scores[f"up_sampling.{i}"], threshold, min_channels)
        _copy_conv(student.up_sampling[i - 1], teacher.up_sampling[i - 1], keep, prev)
        _copy_norm(student.up_sampling[i], teacher.up_sampling[i], keep)
        prev = keep
    _copy_conv(student.up_sampling[7], teacher.up_sampling[7], None, prev)
    return student


def cat_prune(
    teacher: InceptionGenerator,
    teacher_arch: Mapping[str, Any],
    target_macs: float,
    input_shape: Sequence[int],
    *,
    build: Callable[[dict[str, Any]], nn.Module],
    min_channels: int = 16,
    tolerance: float = 1e-3,
    reinit: bool = True,
) -> tuple[InceptionGenerator, dict[str, Any], CATPruneResult]:
    """CAT's pruning of ``teacher`` to ``target_macs`` (CAT's count at ``input_shape``).

    Returns the student (the pruned teacher; re-initialised as CAT's ``trainer.py`` does when
    ``reinit``), its arch config (``teacher_arch`` with ``widths``) and the search result.
    ``build(config)`` builds an arch config (the registry's).
    """
    from vemkit_plugins.archs._blocks import init_weights

    found = find_threshold(
        teacher, target_macs, input_shape, min_channels=min_channels, tolerance=tolerance
    )
    arch = copy.deepcopy(dict(teacher_arch))
    arch["widths"] = found.widths
    student = build(arch)
    if not isinstance(student, InceptionGenerator):
        raise VemkitError("teacher.arch: CAT's pruning needs an inception_resnet teacher")
    student = student.to(next(teacher.parameters()).device)
    pruned_inception(
        teacher, student, found.threshold, min_channels=min_channels, copy_pw_bn=not reinit
    )
    if reinit:
        # trainer.py: init_net(netG_student) after shrink — conv weights and BatchNorm affines
        # re-drawn; instance norms (not BatchNorm) keep the copied γ/β.
        init_weights(student, arch.get("init_type", "normal"), arch.get("init_gain", 0.02))
    return student, arch, found


def _channels(widths: Mapping[str, Any], kernel_sizes: Sequence[int]) -> dict[str, int]:
    """Per prunable layer: its width (the summary's ``channels``)."""
    out = {f"down_sampling.{i}": int(c) for i, c in zip(DOWN_NORMS, widths["down"], strict=True)}
    for b, block in enumerate(widths["blocks"]):
        for kind in ("res", "dw"):
            for k, c in zip(kernel_sizes, block[kind], strict=True):
                out[f"features.{b}.{kind}.k{k}"] = int(c)
    out.update({f"up_sampling.{i}": int(c) for i, c in zip(UP_NORMS, widths["up"], strict=True)})
    return out


# -- the method ------------------------------------------------------------------------------------
def _image(out: Any) -> Tensor:
    while isinstance(out, tuple | list):
        out = out[0]
    return out


def _arch_int(arch: Any, name: str, default: int = 3) -> int:
    value = getattr(arch, name, None)
    return value if isinstance(value, int) and value > 0 else default


class CAT:
    """The ``cat`` method as a run plugin (see the module docstring)."""

    def __init__(self, options: CATOptions, spec: Any) -> None:
        self.options = options
        self.paired = spec.task == "paired"
        self.seed = int(spec.seed)
        o = options
        self.gan_mode = o.gan_mode or ("hinge" if self.paired else "lsgan")
        self.lambda_recon = (
            o.lambda_recon if o.lambda_recon is not None else (100.0 if self.paired else 5.0)
        )
        self.recon_target = o.recon_target or ("target" if self.paired else "teacher")
        self.lambda_distill = (
            o.lambda_distill if o.lambda_distill is not None else (0.5 if self.paired else 1.0)
        )
        self.in_c = _arch_int(spec.teacher.arch, "input_nc")
        self.out_c = _arch_int(spec.teacher.arch, "output_nc")
        self.conditional = False
        self.pools: dict[str, ImagePool] = {}
        self.ka_keys: list[tuple[str, str]] = []

    # -- which stage ----------------------------------------------------------------------------
    @staticmethod
    def _stage(program: Any) -> str:
        stage = program.stage
        if stage is None:
            return "student"
        if not stage.is_training:
            return "step"
        return "teacher" if not stage.options.student else "student"

    def discriminator_config(self, spec: Any) -> dict[str, Any]:
        """CAT's D for the task unless ``method.discriminator`` names one."""
        if self.options.discriminator is not None:
            return self.options.discriminator.model_dump(mode="json")
        norm = getattr(spec.teacher.arch, "norm", "instance")
        return {
            "type": "patchgan",
            "input_nc": self.in_c + self.out_c if self.paired else self.out_c,
            "ndf": 128 if self.paired else 64,
            "n_layers": 3,
            "norm": norm if norm in ("batch", "instance") else "instance",
            "affine": True,
        }

    # -- building -------------------------------------------------------------------------------
    @hookimpl
    def vemkit_build(self, program: Any, spec: Any) -> None:
        stage = self._stage(program)
        if stage == "step" or spec.task == "unconditional":
            return
        config = self.discriminator_config(spec)
        self.conditional = self.paired and config.get("input_nc") == self.in_c + self.out_c
        program.add_group(DISCRIMINATOR)
        disc = program.add_module(
            DISCRIMINATOR,
            program.build("arch", config),
            role="discriminator",
            group=DISCRIMINATOR,
            config=config,
        )
        if stage == "teacher":
            if not self.paired:
                self._build_cyclegan(program, spec, config)
            return
        path = self.options.discriminator_checkpoint
        if path is not None and not program.meta:
            from vemkit.weights import load_weights

            try:
                load_weights(disc, path)
            except VemkitError as exc:
                raise VemkitError(f"method.discriminator_checkpoint: {exc}") from None
        if self.lambda_distill > 0:
            keys = []
            for owner in ("student", "teacher"):
                found = []
                for i, path in enumerate(self.options.taps):
                    try:
                        found.append(program.tap(owner, path))
                    except VemkitError as exc:
                        raise VemkitError(f"method.taps.{i}: {exc}") from None
                keys.append(found)
            self.ka_keys = list(zip(keys[0], keys[1], strict=True))

    def _build_cyclegan(self, program: Any, spec: Any, config: dict[str, Any]) -> None:
        g_a = program.module(TEACHER)
        g_b = program.add_module(
            REVERSE,
            program.build("arch", spec.teacher.arch),
            role="teacher",
            group=TEACHER,
            config=spec.teacher.arch,
        )
        program.add_module(
            DISCRIMINATOR_B,
            program.build("arch", config),
            role="discriminator",
            group=DISCRIMINATOR,
            config=config,
        )
        # Pool "B" keeps G_A's fakes (B images) for D_A, pool "A" G_B's fakes for D_B.
        self.pools = {
            side: ImagePool(self.options.pool_size, seed=self.seed * 2 + k)
            for k, side in enumerate(("A", "B"))
        }
        program.add_producer("cat.fake_A", lambda s: _image(g_b(s["target"])))
        program.add_producer("cat.rec_A", lambda s: _image(g_b(s["teacher.out"])))
        program.add_producer("cat.rec_B", lambda s: _image(g_a(s["cat.fake_A"])))
        program.add_producer("cat.idt_A", lambda s: _image(g_a(s["target"])))
        program.add_producer("cat.idt_B", lambda s: _image(g_b(s["input"])))

    # -- phases -------------------------------------------------------------------------------
    @hookimpl
    def vemkit_phases(self, program: Any, spec: Any) -> None:
        stage = self._stage(program)
        if spec.task == "unconditional":
            return
        if stage == "teacher":
            if self.paired:
                self._pix2pix_teacher(program)
            else:
                self._cyclegan_teacher(program)
            return
        o = self.options
        program.add_phase(DISCRIMINATOR, order=ORDER_DISCRIMINATOR, groups=[DISCRIMINATOR])
        program.add_term(DISCRIMINATOR, "cat.d", self._d_term("student.out", DISCRIMINATOR), 1.0)
        program.add_term("student", "cat.gan", self._g_term("student.out"), o.lambda_gan)
        recon = "teacher.out" if self.recon_target == "teacher" else "target"
        program.add_term(
            "student",
            "cat.recon",
            lambda s: F.l1_loss(s["student.out"], s.detached(recon)),
            self.lambda_recon,
        )
        if self.ka_keys:
            program.add_term("student", "cat.distill", self._distill, self.lambda_distill)

    def _pix2pix_teacher(self, program: Any) -> None:
        o = self.options
        # CAT's pix2pix model: D steps on this iteration's image first, then G against the new D.
        program.add_phase(DISCRIMINATOR, order=ORDER_DISCRIMINATOR, groups=[DISCRIMINATOR])
        program.add_term(DISCRIMINATOR, "cat.d", self._d_term("teacher.out", DISCRIMINATOR), 1.0)
        program.add_phase(TEACHER, order=ORDER_TEACHER, groups=[TEACHER])
        program.add_term(TEACHER, "cat.teacher_gan", self._g_term("teacher.out"), o.lambda_gan)
        program.add_term(
            TEACHER,
            "cat.teacher_recon",
            lambda s: F.l1_loss(s["teacher.out"], s["target"]),
            o.teacher_lambda_recon,
        )

    def _cyclegan_teacher(self, program: Any) -> None:
        o = self.options
        program.add_phase(TEACHER, order=ORDER_TEACHER, groups=[TEACHER])
        program.add_phase(
            DISCRIMINATOR, order=ORDER_DISCRIMINATOR_AFTER_TEACHER, groups=[DISCRIMINATOR]
        )
        for side, fake, disc in (
            ("A", "teacher.out", DISCRIMINATOR),
            ("B", "cat.fake_A", DISCRIMINATOR_B),
        ):
            program.add_term(
                TEACHER, f"cat.teacher_gan.{side}", self._g_term(fake, disc), o.lambda_gan
            )
        for side, rec, real in (("A", "cat.rec_A", "input"), ("B", "cat.rec_B", "target")):
            program.add_term(
                TEACHER,
                f"cat.cycle.{side}",
                lambda s, rec=rec, real=real: F.l1_loss(s[rec], s[real]),
                o.lambda_cycle,
            )
        if o.lambda_identity > 0:
            for side, idt, real in (("A", "cat.idt_A", "target"), ("B", "cat.idt_B", "input")):
                program.add_term(
                    TEACHER,
                    f"cat.idt.{side}",
                    lambda s, idt=idt, real=real: F.l1_loss(s[idt], s[real]),
                    o.lambda_cycle * o.lambda_identity,
                )
        # D_A: real B against pooled G_A(A); D_B: real A against pooled G_B(B).
        program.add_term(
            DISCRIMINATOR,
            "cat.d.A",
            self._d_term("teacher.out", DISCRIMINATOR, real="target", pool="B"),
            1.0,
        )
        program.add_term(
            DISCRIMINATOR,
            "cat.d.B",
            self._d_term("cat.fake_A", DISCRIMINATOR_B, real="input", pool="A"),
            1.0,
        )

    # -- terms ---------------------------------------------------------------------------------
    def _score(self, state: State, net: nn.Module, image: Tensor) -> Any:
        if self.conditional:
            image = torch.cat([state["input"].to(image.dtype), image], dim=1)
        return net(image)

    def _g_term(self, fake: str, disc: str = DISCRIMINATOR) -> Callable[[State], Tensor]:
        def term(state: State) -> Tensor:
            net = state.program.module(disc)
            return gan_loss_g(self._score(state, net, state[fake]), self.gan_mode)

        return term

    def _d_term(
        self, fake: str, disc: str, *, real: str = "target", pool: str | None = None
    ) -> Callable[[State], Tensor]:
        def term(state: State) -> Tensor:
            net = state.program.module(disc)
            image = state.detached(fake)
            if pool is not None:
                image = self.pools[pool].query(image)
            return gan_loss_d(
                self._score(state, net, state[real]),
                self._score(state, net, image),
                self.gan_mode,
            )

        return term

    def _distill(self, state: State) -> Tensor:
        students = [state[s] for s, _ in self.ka_keys]
        teachers = [state.detached(t) for _, t in self.ka_keys]
        return ka_distill_loss(students, teachers, chunks=self.options.ka_chunks)

    # -- checks --------------------------------------------------------------------------------
    @hookimpl
    def vemkit_check(self, program: Any, spec: Any) -> list[str]:
        o = self.options
        if spec.task == "unconditional":
            return [
                "method: cat distils image-to-image generators: it needs task paired (pix2pix) "
                "or unpaired (CycleGAN), not unconditional"
            ]
        problems = []
        stage = self._stage(program)
        if stage == "student" and self.recon_target == "target" and not self.paired:
            problems.append(
                "method.recon_target: an L1 to the ground truth needs paired data (task is "
                "unpaired); use recon_target: teacher"
            )
        chunk = spec.train.batch_size // o.ka_chunks
        if stage == "student" and self.ka_keys and chunk < 2:
            problems.append(
                f"method.ka_chunks: kernel alignment compares the samples of a batch; "
                f"train.batch_size {spec.train.batch_size} in {o.ka_chunks} chunk(s) leaves "
                f"{chunk} per chunk, and with 1 KA ≡ 1 has no gradient (CAT: batch 80 on 4 GPUs)"
            )
        if o.discriminator_checkpoint is not None and o.stages.teacher.enabled:
            problems.append(
                "method.discriminator_checkpoint: the teacher stage trains the discriminator the "
                "student stage continues; give it only with stages.teacher.enabled: false"
            )
        identity = o.lambda_identity > 0 and self.in_c != self.out_c
        if stage == "teacher" and not self.paired and identity:
            problems.append(
                f"method.lambda_identity: the identity loss feeds B images to G_A, which needs "
                f"as many input as output channels ({self.in_c} ≠ {self.out_c}); set it to 0"
            )
        if not program.meta:
            problem = probe_discriminator(program, conditional=self.conditional)
            if problem:
                problems.append(problem)
        return problems

    # -- the prune step -----------------------------------------------------------------------
    @hookimpl
    def vemkit_stage_step(self, program: Any, stage: Any, context: Any) -> StepResult | None:
        if stage.name != "prune":
            return None
        o = stage.options
        teacher = program.module(TEACHER)
        if not isinstance(teacher, InceptionGenerator):
            raise VemkitError(
                f"teacher.arch: CAT prunes its Inception generator (inception_resnet), not "
                f"'{program.spec.teacher.arch.type}'"
            )
        batch = context["data"].next()
        shape = tuple(int(v) for v in batch["input"].shape[1:])
        teacher_arch = program.spec.teacher.arch.model_dump(mode="json")
        student, arch, found = cat_prune(
            teacher,
            teacher_arch,
            o.target_macs,
            shape,
            build=lambda config: program.build("arch", config),
            min_channels=o.min_channels,
            tolerance=o.tolerance,
            reinit=o.reinit,
        )
        from vemkit.profile import count_params

        before = _channels(teacher.widths(), teacher.kernel_sizes)
        after = _channels(found.widths, teacher.kernel_sizes)
        context["say"](
            f"  threshold {found.threshold:.6g} after {found.steps} steps: CAT's count "
            f"{found.macs_before / 1e9:.3f}G → {found.macs_after / 1e9:.3f}G "
            f"(budget {o.target_macs / 1e9:.3f}G; paper convention "
            f"{found.paper_before / 1e9:.3f}G → {found.paper_after / 1e9:.3f}G)"
        )
        summary = {
            "before": {
                "macs": found.paper_before,
                "macs_cat": found.macs_before,
                "params": count_params(teacher),
                "channels": before,
            },
            "after": {
                "macs": found.paper_after,
                "macs_cat": found.macs_after,
                "params": count_params(student),
                "channels": after,
            },
            "budget_cat": found.budget,
            "threshold": found.threshold,
            "input": list(shape),
            "reinit": o.reinit,
            "widths": found.widths,
        }
        rows = [{"layer": name, "before": before[name], "after": after[name]} for name in before]
        return StepResult(
            archs={"student": arch},
            modules={"student": student},
            summary=summary,
            tables={"channels": rows, "search": found.history},
        )

    # -- state ---------------------------------------------------------------------------------
    @hookimpl
    def vemkit_state_dict(self, program: Any) -> dict[str, Any] | None:
        return pools_state_dict(self.pools, "cat") or None

    @hookimpl
    def vemkit_load_state_dict(self, program: Any, state: dict[str, Any]) -> None:
        load_pools_state_dict(self.pools, "cat", state)


def build(options: CATOptions, **context: Any) -> CAT:
    """Factory of the ``cat`` method (the engine registers the object as a run plugin)."""
    spec = context.get("spec")
    if spec is None:
        raise VemkitError("method cat is built by a run: its factory needs the spec")
    return CAT(options, spec)
