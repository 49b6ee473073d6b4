"""OMGD's CycleGAN best-teacher schedule (``method.best_teacher``), counted in iterations.

OMGD's ``cycleganbest`` distiller does not distil every iteration: its trainer runs teacher
epochs, and every ``save_epoch_freq`` epochs it scores both teachers (FID of G_A(A) and of
G_B(B)), saves G_A when *either* score improved, loads that best G_A, trains the student alone
for ``n_dis × save_epoch_freq`` epochs, then loads the latest G_A back and goes on with the
teachers. Here the same alternation is a filter on the run's phases plus a swap of the
teacher's weights at block boundaries:

* iterations ``[k·C, k·C + T)`` (``T`` = ``teacher_iterations``, ``C`` = ``T + S``) run only
  the ``teacher`` and ``discriminator`` phases; iterations ``[k·C + T, (k+1)·C)`` run every
  other phase (the student's, the MI term's energy update);
* after the last iteration of a teacher block the teachers are scored on the evaluation set,
  the best G_A so far is remembered, the latest G_A is set aside and the best one takes its
  place; after the last iteration of a student block the latest G_A is put back.

The best and the set-aside weights are part of the checkpoint (through the method's
``vemkit_state_dict``), so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.methods.options import BestTeacherOptions

__all__ = ["TEACHER_PHASES", "BestTeacherSchedule"]

TEACHER_PHASES = frozenset({"teacher", "discriminator"})
"""Phases that run in teacher blocks; every other phase runs in student blocks."""

STATE_KEY = "omgd.best_teacher"


def _copy(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class BestTeacherSchedule:
    """Alternating teacher and student blocks with best-teacher selection (module docstring).

    ``teacher``: the name of G_A in the program; ``forward``/``reverse``: the tensor names of
    G_A(A) and G_B(B) with the tensor each is judged against.
    """

    def __init__(
        self,
        options: BestTeacherOptions,
        *,
        teacher: str = "teacher",
        forward: tuple[str, str] = ("teacher.out", "target"),
        reverse: tuple[str, str] = ("omgd.fake_A", "input"),
    ) -> None:
        self.options = options
        self.teacher = teacher
        self.forward = forward
        self.reverse = reverse
        self.cycle = options.teacher_iterations + options.student_iterations
        self.best: dict[str, float | None] = {"A": None, "B": None}
        self.best_weights: dict[str, Tensor] | None = None
        self.latest_weights: dict[str, Tensor] | None = None
        """G_A's own weights while the best G_A stands in for it (a student block)."""
        self._metrics: dict[str, Any] = {}

    # -- which phases run -------------------------------------------------------------------
    def in_teacher_block(self, step: int) -> bool:
        """Whether the iteration after ``step`` completed ones belongs to a teacher block."""
        return step % self.cycle < self.options.teacher_iterations

    def allows(self, phase: Any, step: int) -> bool:
        """The phase filter: teacher phases in teacher blocks, the others in student blocks."""
        return (phase.name in TEACHER_PHASES) == self.in_teacher_block(step)

    def describe(self) -> str:
        o = self.options
        return (
            f"teacher and discriminator phases for {o.teacher_iterations} iterations, then the "
            f"other phases for {o.student_iterations} iterations against the best G_A by "
            f"'{o.score}' ({o.rule}), repeated (OMGD's best-teacher schedule)"
        )

    # -- block boundaries -------------------------------------------------------------------
    def after_iteration(self, program: Any, step: int, logs: dict[str, Any]) -> None:
        """Called after every iteration with ``step`` completed ones."""
        position = step % self.cycle
        teacher_iterations = self.options.teacher_iterations
        every = self.options.score_every
        if position == teacher_iterations:
            self.score(program, logs, step)
            self._stand_in_best(program)
            program.say(
                f"step {step}: student block of {self.options.student_iterations} iterations "
                f"against the best G_A so far (best scores: {self._best_text()})"
            )
        elif position == 0:
            self._put_back_latest(program)
            program.say(f"step {step}: teacher block; the latest G_A is back")
        elif every and position < teacher_iterations and position % every == 0:
            self.score(program, logs, step)

    def _best_text(self) -> str:
        known = {side: value for side, value in self.best.items() if value is not None}
        if not known:
            return "no finite score yet: the current G_A"
        return ", ".join(f"{self.options.score}.{side} {v:.4g}" for side, v in known.items())

    def score(self, program: Any, logs: dict[str, Any], step: int | None = None) -> bool:
        """Score the teachers; remember G_A's weights when the rule says it improved."""
        o = self.options
        sides = {"A": self.forward}
        if o.rule == "either":
            sides["B"] = self.reverse
        improved = False
        for side, (fake, real) in sides.items():
            metric = self._metric(program, side)
            scores = program.score(fake, [metric], real=real)
            if o.score not in scores:
                raise VemkitError(
                    f"method.best_teacher.score: the teacher's metric gives no score "
                    f"'{o.score}' (scores: {', '.join(sorted(scores)) or 'none'})"
                )
            value = float(scores[o.score])
            logs[f"teacher/{o.score}.{side}"] = value
            higher = bool(getattr(metric, "higher_is_better", {}).get(o.score, False))
            best = self.best[side]
            if math.isfinite(value) and (
                best is None or (value > best if higher else value < best)
            ):
                self.best[side] = value
                improved = True
        if improved:
            self.best_weights = _copy(program.module(self.teacher))
        logs["teacher/best_updated"] = float(improved)
        if step is not None:
            scored = ", ".join(
                f"{k.removeprefix('teacher/')} {v:.4g}"
                for k, v in logs.items()
                if k.startswith(f"teacher/{o.score}.")
            )
            kept = "G_A kept as the best" if improved else "no improvement"
            program.say(f"step {step}: teachers scored: {scored}; {kept}")
        return improved

    def _metric(self, program: Any, side: str) -> Any:
        metric = self._metrics.get(side)
        if metric is None:
            o = self.options
            config = o.metric
            if side == "B":
                config = o.reverse_metric
                if config is None and getattr(o.metric, "real_dir", None) is not None:
                    config = o.metric.model_copy(update={"real_dir": None})
                config = config or o.metric
            metric = program.build("metric", config)
            self._metrics[side] = metric
        return metric

    def _stand_in_best(self, program: Any) -> None:
        if self.best_weights is None:  # no finite score yet: the student learns from G_A
            return
        module = program.module(self.teacher)
        self.latest_weights = _copy(module)
        module.load_state_dict(self.best_weights)

    def _put_back_latest(self, program: Any) -> None:
        if self.latest_weights is None:
            return
        program.module(self.teacher).load_state_dict(self.latest_weights)
        self.latest_weights = None

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            STATE_KEY: {
                "best": dict(self.best),
                "best_weights": self.best_weights,
                "latest_weights": self.latest_weights,
            }
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        saved = state.get(STATE_KEY)
        if saved is None:
            return
        self.best = {side: saved["best"].get(side) for side in ("A", "B")}

        def on_device(weights: dict[str, Tensor] | None) -> dict[str, Tensor] | None:
            return None if weights is None else {k: v.to(device) for k, v in weights.items()}

        self.best_weights = on_device(saved.get("best_weights"))
        self.latest_weights = on_device(saved.get("latest_weights"))
