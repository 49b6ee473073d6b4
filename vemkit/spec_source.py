"""Reading spec files with the position of every key and value.

YAML is read with PyYAML's safe loader only (no tags that import or call code). JSON is checked
with the json module first (so that its own syntax errors are reported as JSON errors) and then
read through the same YAML node walk, which gives line and column of every key and value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vemkit.errors import Problem

PathTuple = tuple[str | int, ...]


@dataclass
class SpecSource:
    """The raw data of a spec file plus where each of its parts sits in the file."""

    name: str
    data: Any
    values: dict[PathTuple, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathTuple, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def position(self, path: PathTuple, *, key: bool = False) -> tuple[int, int] | None:
        """Line and column of ``path`` (its key when ``key``), else of its nearest ancestor."""
        table = self.keys if key else self.values
        if path in table:
            return table[path]
        if key and path in self.values:
            return self.values[path]
        for i in range(len(path) - 1, -1, -1):
            head = path[:i]
            if head in self.keys:
                return self.keys[head]
            if head in self.values:
                return self.values[head]
        return None

    def problem(self, path: PathTuple, message: str, *, key: bool = False) -> Problem:
        pos = self.position(path, key=key)
        return Problem(
            path=dotted(path),
            message=message,
            source=self.name,
            line=pos[0] if pos else None,
            column=pos[1] if pos else None,
        )


def dotted(path: PathTuple) -> str:
    return ".".join(str(p) for p in path)


class SpecLoader(yaml.SafeLoader):
    """YAML's safe loader that also reads ``2.6e9`` and ``1e-4`` as numbers: YAML 1.1 (PyYAML)
    wants a dot and a signed exponent and would hand the budget ``2.6e9`` over as the string
    "2.6e9", which validates (pydantic converts it) but is not the number a JSON Schema checker
    sees. Nothing else changes: it constructs plain data only."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))

_FastSpecLoader: type | None = None
"""SpecLoader's resolution and construction on libyaml's parser, where PyYAML was built with it:
it composes a spec several times faster (start-up of ``vemkit validate``, long specs). A file
it finds a problem in is parsed again by :class:`SpecLoader`, whose messages and places the
malformed-spec tests pin down; for a valid file both give the same data and positions (tested)."""
if getattr(yaml, "__with_libyaml__", False):

    class _CSpecLoader(yaml.CSafeLoader):
        pass

    _CSpecLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789")
    )
    _FastSpecLoader = _CSpecLoader


def load_yaml(text: str) -> Any:
    """Plain data from YAML text with :class:`SpecLoader` (``--set`` values, small snippets)."""
    return yaml.load(text, Loader=SpecLoader)  # a SafeLoader subclass: plain data only


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(node: yaml.Node, loader: SpecLoader, path: PathTuple, src: SpecSource) -> Any:
    src.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        first_seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                src.problems.append(
                    Problem(dotted(path), "keys must be plain names", src.name, *_mark(key_node))
                )
                continue
            key = str(key) if not isinstance(key, str) else key
            if key in first_seen:
                line = first_seen[key].start_mark.line + 1
                src.problems.append(
                    Problem(
                        dotted((*path, key)),
                        f"duplicate key '{key}' (first given at line {line})",
                        src.name,
                        *_mark(key_node),
                    )
                )
                continue
            first_seen[key] = key_node
            src.keys[(*path, key)] = _mark(key_node)
            out[key] = _walk(value_node, loader, (*path, key), src)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, loader, (*path, i), src) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


_OPENERS = {"flow sequence": "'['", "flow mapping": "'{'"}
"""Flow collections: an unclosed bracket is only noticed lines later, often at the end of the
file, so the bracket is the place a user must look at."""


def yaml_problem(exc: yaml.MarkedYAMLError, name: str) -> Problem:
    """One located problem for a YAML syntax error, naming both places PyYAML knows.

    PyYAML gives the mark where parsing failed (``problem_mark``) and, for errors inside a
    construct, where that construct began (``context_mark``). For an unclosed flow collection
    or quoted string the start is the place to fix, so the problem is located there and the
    failure point is named in the message; otherwise (e.g. a block mapping that began at the
    top of the file) the failure point comes first and the construct's start is named.
    """
    problem, context = exc.problem_mark, exc.context_mark
    what = exc.problem or exc.context or "not valid YAML"

    def where(mark: yaml.Mark) -> str:
        return f"{name}:{mark.line + 1}:{mark.column + 1}"

    if (
        problem is None
        or context is None
        or (problem.line, problem.column)
        == (
            context.line,
            context.column,
        )
    ):
        mark = problem or context
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        return Problem("", f"invalid YAML: {what}", name, line, col)
    construct = (exc.context or "").removeprefix("while parsing ").removeprefix("while scanning ")
    construct = construct.removeprefix("a ").removeprefix("an ")
    opener = next((sign for kind, sign in _OPENERS.items() if construct.endswith(kind)), None)
    failed = f"parsing failed at {where(problem)}: {what}"
    if opener is not None:
        message = (
            f"the {construct} opened here ({opener}) is not closed, or an item lacks its comma; "
            + failed
        )
    elif construct == "quoted scalar" and "end of stream" in what:
        message = f"the quoted string opened here is not closed; {failed}"
    elif construct == "quoted scalar":
        message = f"in the quoted string that begins here, {failed}"
    else:
        return Problem(
            "",
            f"invalid YAML: {what} (in the {construct} that begins at {where(context)})",
            name,
            problem.line + 1,
            problem.column + 1,
        )
    return Problem("", f"invalid YAML: {message}", name, context.line + 1, context.column + 1)


def _read_yaml(text: str, src: SpecSource, loader_class: type, *, fast: bool) -> bool:
    """Fill ``src`` from YAML ``text``; False when there is nothing more to check.

    ``fast`` (libyaml): any YAML problem leaves ``src`` untouched and returns False, for
    :class:`SpecLoader` to read the file again and word the problem.
    """
    name = src.name
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            if not fast:
                message = "the file holds no spec (only comments?)"
                src.problems.append(Problem("", message, name, 1, 1))
            return False
        walked = SpecSource(name, None)
        walked.data = _walk(node, loader, (), walked)
    except yaml.MarkedYAMLError as exc:
        if not fast:
            src.problems.append(yaml_problem(exc, name))
        return False
    except yaml.YAMLError as exc:
        if not fast:
            src.problems.append(Problem("", f"invalid YAML: {exc}", name, None, None))
        return False
    finally:
        loader.dispose()
    src.data, src.values, src.keys = walked.data, walked.values, walked.keys
    src.problems.extend(walked.problems)
    return True


def parse_text(text: str, name: str, *, is_json: bool | None = None) -> SpecSource:
    """Parse spec text; syntax problems are returned in ``problems`` (never raised)."""
    src = SpecSource(name=name, data=None)
    if is_json is None:
        is_json = name.endswith(".json")
    if is_json:
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            src.problems.append(
                Problem("", f"invalid JSON: {exc.msg}", name, exc.lineno, exc.colno)
            )
            return src
    if not text.strip():
        src.problems.append(
            Problem("", "the file is empty; a spec is a mapping of sections", name, 1, 1)
        )
        return src
    read = _FastSpecLoader is not None and _read_yaml(text, src, _FastSpecLoader, fast=True)
    if not read and not _read_yaml(text, src, SpecLoader, fast=False):
        return src
    if not isinstance(src.data, dict):
        kind = type(src.data).__name__
        src.problems.append(
            Problem("", f"the top level must be a mapping of sections, not a {kind}", name, 1, 1)
        )
    return src


def read_source(path: str | Path) -> SpecSource:
    """Read and parse a spec file (``.yaml``, ``.yml`` or ``.json``)."""
    p = Path(path)
    name = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SpecSource(name, None, problems=[Problem("", "no such file", name)])
    except IsADirectoryError:
        return SpecSource(
            name, None, problems=[Problem("", "is a directory, not a spec file", name)]
        )
    except UnicodeDecodeError as exc:
        return SpecSource(name, None, problems=[Problem("", f"not UTF-8 text: {exc.reason}", name)])
    return parse_text(text, name, is_json=p.suffix.lower() == ".json")
