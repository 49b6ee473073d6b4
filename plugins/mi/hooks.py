"""Run hooks for any mutual-information term (``mi`` kind): how an MI term joins a run.

:class:`MIRunHooks` is a mixin for :class:`vemkit_plugins.mi.base.MITerm` (or any object with
its face: ``weight``, ``positive``, ``has_energy_phase``, ``needs_index``, ``student_term`` and,
for terms with an energy phase, ``energy_loss``). With it, the object the ``mi`` factory
returns takes part in a run through the per-run hooks (``vemkit.engine.hookspecs``):

* a term with an **energy phase** (VEM) becomes the module ``mi`` of its own group ``mi``
  (optimizer ``spec.mi.optimizer``, constant learning rate) and adds the ``energy`` phase
  (order ``ORDER_ENERGY``: before the student) with the term ``mi.energy`` = the energy's
  loss on (positive, student output); the negatives it drew are left in
  ``state.values["mi.negatives"]``;
* a term trained **with the student** (VID, CRD) joins the ``student`` group;
* every term adds ``mi.<type>`` to the ``student`` phase: ``student_term(positive,
  student.out, negatives)``, which reuses the energy phase's negatives (no second chain).

The positive is the batch's ``target`` or the ``teacher.out`` tensor (``mi.positive``). The
module ``mi`` is saved whole in checkpoints, sampler replay buffers included.
"""

from __future__ import annotations

from typing import Any

from vemkit.engine.hookspecs import ORDER_ENERGY, hookimpl

NEGATIVES = "mi.negatives"
"""``state.values`` key of the negatives the energy phase drew in this iteration."""


class MIRunHooks:
    """Mixin that makes an MI term a run plugin (see the module docstring)."""

    def _positive_name(self) -> str:
        return "target" if getattr(self, "positive", "target") == "target" else "teacher.out"

    @hookimpl
    def vemkit_build(self, program: Any, spec: Any) -> None:
        if float(getattr(self, "weight", 0.0)) == 0.0:
            return
        if getattr(self, "has_energy_phase", False):
            program.add_group(
                "mi",
                optimizer=getattr(spec.mi, "optimizer", None),
                scheduler={"type": "constant"},
            )
            program.add_module("mi", self, role="energy", group="mi", config=spec.mi)
        elif any(True for _ in self.parameters()):  # type: ignore[attr-defined]
            program.add_module("mi", self, role="mi", group="student", config=spec.mi)
        elif any(True for _ in self.buffers()):  # type: ignore[attr-defined]
            program.add_module("mi", self, role="mi", config=spec.mi)

    @hookimpl
    def vemkit_phases(self, program: Any, spec: Any) -> None:
        weight = float(getattr(self, "weight", 0.0))
        if weight == 0.0:
            return
        positive = self._positive_name()
        if getattr(self, "has_energy_phase", False):
            program.add_phase("energy", order=ORDER_ENERGY, groups=["mi"])

            def energy(state: Any) -> Any:
                teacher = state.detached("teacher.out") if "teacher.out" in state else None
                loss, negatives, diag = self.energy_loss(  # type: ignore[attr-defined]
                    state.detached(positive), state.detached("student.out"), teacher=teacher
                )
                state.values[NEGATIVES] = negatives
                return loss, diag

            program.add_term("energy", "mi.energy", energy)
        needs_index = getattr(self, "needs_index", False)

        def student(state: Any) -> Any:
            extra = {"index": state.batch["index"]} if needs_index else {}
            return self.student_term(  # type: ignore[attr-defined]
                state.detached(positive),
                state["student.out"],
                state.values.get(NEGATIVES),
                **extra,
            )

        program.add_term(
            "student", f"mi.{spec.mi.type}", student, 1.0, note=f"λ_MI = {weight} inside the term"
        )

    @hookimpl
    def vemkit_check(self, program: Any, spec: Any) -> list[str]:
        if float(getattr(self, "weight", 0.0)) == 0.0:
            return []
        problems = []
        if getattr(self, "positive", "target") == "target" and spec.task != "paired":
            problems.append(
                f"mi.positive: 'target' pairs each student output with its ground truth, which "
                f"needs paired data (task is {spec.task}); use positive: teacher"
            )
        energy = getattr(spec.mi, "energy", None)
        if getattr(energy, "type", None) == "conv_sn":
            from vemkit.errors import VemkitError
            from vemkit.profile import spec_input_size
            from vemkit_plugins.energies.options import check_resolution

            try:
                check_resolution(energy, spec_input_size(spec))
            except VemkitError as exc:
                problems.append(f"mi.energy: {exc}")
        return problems
