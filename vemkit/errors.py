"""Errors a user can act on.

Every error that reaches the command line is a :class:`VemkitError`; the CLI prints its message
(no traceback unless ``--debug``) and exits with its ``exit_code`` (2 for bad input).
:class:`SpecError` carries several located problems at once, printed one per line as
``FILE:LINE:COL dotted.path: message``.
"""

from __future__ import annotations

from dataclasses import dataclass


class VemkitError(Exception):
    """An error with a message meant for the user."""

    exit_code = 2


class PluginError(VemkitError):
    """A plugin could not be loaded or registered, or a required one is missing."""


class DataError(VemkitError):
    """Bad or missing data; the message names the file or folder."""


@dataclass(frozen=True)
class Problem:
    """One problem at one place of a spec."""

    path: str
    message: str
    source: str | None = None
    line: int | None = None
    column: int | None = None

    def sort_key(self) -> tuple[int, str, int, int, str]:
        # Located problems first, in file order; then override/unlocated ones by path.
        if self.line is None:
            return (1, self.source or "", 0, 0, self.path)
        return (0, self.source or "", self.line, self.column or 0, self.path)

    def __str__(self) -> str:
        where = self.source or "<spec>"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        path = f" {self.path}" if self.path else ""
        return f"{where}{path}: {self.message}"


class SpecError(VemkitError):
    """One or more problems in a spec, all reported at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__("\n".join(str(p) for p in self.problems))
