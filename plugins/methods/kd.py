"""``kd``: plain output distillation (Hinton-style KD for image generators).

Terms of the student phase:

* ``kd.output`` = ``weight`` · L1 (or MSE) between the student's and the teacher's outputs, the
  teacher output detached;
* ``kd.recon`` = ``recon_weight`` · L1 to the ground truth (paired data);
* ``kd.gan`` = ``gan_weight`` · the student's adversarial loss against a discriminator of its
  own (``hinge``, ``lsgan`` or ``vanilla``), which a ``discriminator`` phase trains on real
  targets against this iteration's fakes (the student's, and an online teacher's).

An **online** teacher (``teacher.mode: online``) is trained in a ``teacher`` phase as pix2pix
trains it: its adversarial loss against the same discriminator (when there is one) plus
``teacher_recon_weight`` · L1 to the ground truth. A frozen teacher has no phase, no optimizer,
and stays in eval mode (the engine's rule).

On paired data the discriminator is conditional (pix2pix) when its ``input_nc`` equals the
input's channels plus the output's: it then sees ``cat(input, image)``; otherwise it sees the
image alone.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vemkit.engine.hookspecs import ORDER_DISCRIMINATOR, ORDER_TEACHER, hookimpl
from vemkit.engine.state import State
from vemkit_plugins.methods.options import KDOptions

__all__ = ["KD", "build", "d_fake_loss", "d_real_loss", "g_loss", "probe_discriminator"]

DISCRIMINATOR = "discriminator"


def _outputs(out: Any) -> list[Tensor]:
    """A discriminator's output(s): multiscale discriminators return one map per scale."""
    if isinstance(out, list | tuple):
        return [o for item in out for o in _outputs(item)]
    return [out]


def _mean_over_scales(scores: Any, per_scale: Any) -> Tensor:
    return torch.stack([per_scale(s) for s in _outputs(scores)]).mean()


def d_real_loss(scores: Any, mode: str) -> Tensor:
    """The discriminator's loss on real images' scores (averaged over scales)."""
    if mode == "hinge":
        return _mean_over_scales(scores, lambda r: F.relu(1 - r).mean())
    if mode == "lsgan":
        return _mean_over_scales(scores, lambda r: F.mse_loss(r, torch.ones_like(r)))
    return _mean_over_scales(
        scores, lambda r: F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
    )


def d_fake_loss(scores: Any, mode: str) -> Tensor:
    """The discriminator's loss on fakes' scores (averaged over scales)."""
    if mode == "hinge":
        return _mean_over_scales(scores, lambda f: F.relu(1 + f).mean())
    if mode == "lsgan":
        return _mean_over_scales(scores, lambda f: F.mse_loss(f, torch.zeros_like(f)))
    return _mean_over_scales(
        scores, lambda f: F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    )


def g_loss(scores: Any, mode: str) -> Tensor:
    """The generator's adversarial loss on its fakes' scores (averaged over scales)."""
    if mode == "hinge":
        return _mean_over_scales(scores, lambda f: -f.mean())
    if mode == "lsgan":
        return _mean_over_scales(scores, lambda f: F.mse_loss(f, torch.ones_like(f)))
    return _mean_over_scales(
        scores, lambda f: F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
    )


def probe_discriminator(
    program: Any,
    name: str = DISCRIMINATOR,
    *,
    conditional: bool = False,
    where: str = "method.discriminator",
) -> str | None:
    """Run the discriminator ``name`` once on an example batch (``cat(input, target)`` when
    ``conditional``), so that a network too deep for the image size fails before training,
    with the spec path ``where`` named; the problem, or None."""
    batch = program.example_batch(1)
    image = batch["target"]
    if conditional:
        image = torch.cat([batch["input"], image], dim=1)
    try:
        with torch.no_grad(), program.eval_mode():
            program.module(name)(image)
    except Exception as exc:  # a shape error of the user's network choice
        return f"{where}: cannot score images of shape {tuple(image.shape[1:])}: {exc}"
    return None


class KD:
    """The ``kd`` method as a run plugin."""

    def __init__(self, options: KDOptions) -> None:
        self.options = options
        self.conditional = False

    # -- hooks --------------------------------------------------------------------------------
    @hookimpl
    def vemkit_build(self, program: Any, spec: Any) -> None:
        o = self.options
        if o.gan_weight <= 0:
            return
        program.add_group(DISCRIMINATOR)
        net = program.build("arch", o.discriminator)
        program.add_module(
            DISCRIMINATOR, net, role="discriminator", group=DISCRIMINATOR, config=o.discriminator
        )
        d_in = getattr(o.discriminator, "input_nc", None)
        in_c = getattr(spec.student.arch, "input_nc", None)
        out_c = getattr(spec.student.arch, "output_nc", None)
        self.conditional = (
            spec.task == "paired" and None not in (d_in, in_c, out_c) and d_in == in_c + out_c
        )

    @hookimpl
    def vemkit_phases(self, program: Any, spec: Any) -> None:
        o = self.options
        paired = spec.task == "paired"
        dist = F.l1_loss if o.distance == "l1" else F.mse_loss
        program.add_term(
            "student",
            "kd.output",
            lambda s: dist(s["student.out"], s.detached("teacher.out")),
            o.weight,
        )
        if o.recon_weight > 0:
            program.add_term(
                "student",
                "kd.recon",
                lambda s: F.l1_loss(s["student.out"], s["target"]),
                o.recon_weight,
            )
        if o.gan_weight > 0:
            program.add_term("student", "kd.gan", self._gan_term("student.out"), o.gan_weight)
            program.add_phase(DISCRIMINATOR, order=ORDER_DISCRIMINATOR, groups=[DISCRIMINATOR])
            online = spec.teacher.mode == "online"
            program.add_term(DISCRIMINATOR, "kd.d_real", self._d_real, 0.5)
            program.add_term(DISCRIMINATOR, "kd.d_fake", self._d_fake(online), 0.5)
        if spec.teacher.mode == "online":
            program.add_phase("teacher", order=ORDER_TEACHER, groups=["teacher"])
            if o.gan_weight > 0:
                program.add_term("teacher", "kd.teacher_gan", self._gan_term("teacher.out"), 1.0)
            if paired and o.teacher_recon_weight > 0:
                program.add_term(
                    "teacher",
                    "kd.teacher_recon",
                    lambda s: F.l1_loss(s["teacher.out"], s["target"]),
                    o.teacher_recon_weight,
                )

    @hookimpl
    def vemkit_check(self, program: Any, spec: Any) -> list[str]:
        o = self.options
        problems = []
        if o.recon_weight > 0 and spec.task != "paired":
            problems.append(
                f"method.recon_weight: an L1 to the ground truth needs paired data (task is "
                f"{spec.task}); set it to 0"
            )
        if o.gan_weight > 0:
            problem = probe_discriminator(program, conditional=self.conditional)
            if problem:
                problems.append(problem)
        if spec.teacher.mode == "online" and not program.phase("teacher").terms:
            problems.append(
                "teacher.mode: online, but kd trains an online teacher only with a GAN loss "
                "(method.gan_weight > 0) or an L1 to paired targets; set teacher.mode: frozen"
            )
        return problems

    # -- terms ----------------------------------------------------------------------------------
    def _score(self, state: State, image: Tensor) -> Any:
        net = state.program.module(DISCRIMINATOR)
        if self.conditional:
            image = torch.cat([state["input"].to(image.dtype), image], dim=1)
        return net(image)

    def _gan_term(self, name: str) -> Any:
        mode = self.options.gan_mode

        def term(state: State) -> Tensor:
            return g_loss(self._score(state, state[name]), mode)

        return term

    def _d_real(self, state: State) -> Tensor:
        return d_real_loss(self._score(state, state["target"]), self.options.gan_mode)

    def _d_fake(self, online: bool) -> Any:
        mode = self.options.gan_mode

        def term(state: State) -> Tensor:
            fakes = [state.detached("student.out")]
            if online:
                fakes.append(state.detached("teacher.out"))
            return torch.stack([d_fake_loss(self._score(state, f), mode) for f in fakes]).mean()

        return term


def build(options: KDOptions, **_: Any) -> KD:
    """Factory of the ``kd`` method (the engine registers the object as a run plugin)."""
    return KD(options)
