"""Options of the built-in loss terms (``loss`` kind), torch-free.

A loss term is an edge of the spec's graph: it reads named tensors, is weighted, and joins a
phase (the student phase by default). The engine trains through the **first** input only; the
others are fixed targets (detached). When the first input's channels differ from the second's
(a thin student layer against a wide teacher layer), ``adapter: conv1x1`` learns a 1×1
convolution from one to the other, trained with the phase's group.
"""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated, Literal

from pydantic import Field

from vemkit.options import Options

TensorName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+(:[A-Za-z0-9_.\-]+)?$")]


class LossOptions(Options):
    """Base of the loss terms that compare two named tensors (third-party losses may subclass
    it to get the same fields)."""

    inputs: Annotated[list[TensorName], Field(min_length=2, max_length=2)]
    """The two tensors compared, trained one first: ``[student.out, teacher.out]``,
    ``[student.out, target]``, or taps ``["student:model.9", "teacher:model.9"]``."""
    weight: Annotated[float, Field(ge=0)] = 1.0
    """Weight of the term in its phase's loss."""
    adapter: Literal["none", "conv1x1"] = "none"
    """``conv1x1``: learn a 1×1 convolution mapping the first input's channels to the
    second's (needed when they differ)."""
    phase: Annotated[str, Field(min_length=1)] = "student"
    """The phase the term joins (``student``; a method may declare others, e.g. ``teacher``)."""


class L1LossOptions(LossOptions):
    """Mean absolute difference between the two inputs."""


class MSELossOptions(LossOptions):
    """Mean squared difference between the two inputs."""
