"""What one iteration sees (:class:`State`) and what a run carries from one to the next
(:class:`Progress`).

``state["student.out"]`` computes the named tensor the first time it is asked for in an
iteration (through the program's producer of that name) and returns the cached value after,
so that every phase of an iteration sees the same forward pass, as in the paper's loop (one
forward, then the energy, student and teacher updates).
"""

from __future__ import annotations

import contextlib
import difflib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vemkit.errors import VemkitError

if TYPE_CHECKING:
    from vemkit.engine.program import Program


class State:
    """The tensors of one iteration, computed lazily and cached.

    ``batch``: the data loader's item dict, on the run's device. ``step``: completed
    iterations before this one. ``values``: free-form values a phase leaves for later phases
    (e.g. ``state.values["mi.negatives"]``). ``training``: False during evaluation and sample
    grids (modules in eval mode, no gradients, no taps captured).
    """

    def __init__(
        self, program: Program, batch: dict[str, Any], step: int, *, training: bool = True
    ) -> None:
        self.program = program
        self.batch = batch
        self.step = step
        self.training = training
        self.cache: dict[str, Tensor] = {}
        self.values: dict[str, Any] = {}
        self._computing: list[str] = []

    @property
    def device(self) -> torch.device:
        return self.program.device

    def __contains__(self, name: str) -> bool:
        return name in self.cache or name in self.program.producers

    def __getitem__(self, name: str) -> Tensor:
        value = self.cache.get(name)
        if value is not None:
            return value
        producer = self.program.producers.get(name)
        if producer is None:
            known = sorted(self.program.producers)
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise VemkitError(f"no tensor named '{name}'{hint} (known: {', '.join(known)})")
        if name in self._computing:
            chain = " -> ".join([*self._computing, name])
            raise VemkitError(f"tensor '{name}' depends on itself: {chain}")
        self._computing.append(name)
        try:
            no_grad = producer.no_grad or not self.training
            with torch.no_grad() if no_grad else contextlib.nullcontext():
                value = producer.fn(self)
        finally:
            self._computing.pop()
        if not isinstance(value, Tensor):
            raise VemkitError(f"producer of '{name}' returned {type(value).__name__}, not a tensor")
        self.cache[name] = value
        return value

    def detached(self, name: str) -> Tensor:
        """``state[name].detach()``: a tensor used as a fixed target."""
        return self[name].detach()


@dataclass
class Progress:
    """The counters a checkpoint carries (``state.json``)."""

    step: int = 0
    """Completed iterations."""
    epoch: int = 0
    """Epoch of the next batch."""
    index: int = 0
    """Samples of that epoch already consumed (all processes together)."""
    samples: int = 0
    """Samples seen since the start of the run."""
    bad_in_a_row: dict[str, int] = field(default_factory=dict)
    """Consecutive skipped (non-finite) steps, per phase."""
    bad_total: dict[str, int] = field(default_factory=dict)
    """Skipped steps since the start of the run, per phase."""
    best: float | None = None
    """Best value of ``eval.best`` so far."""
    best_step: int | None = None
    """Step of the best checkpoint."""
    stages_done: list[str] = field(default_factory=list)
    """Names of the stages that have run."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
