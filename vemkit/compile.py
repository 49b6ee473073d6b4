"""``vemkit.compile(spec) -> Program``: the compile stage (see :mod:`vemkit.engine.program`)."""

from __future__ import annotations

from vemkit.engine.program import Program, compile

__all__ = ["Program", "compile"]
