"""Loading, overriding and validating specs.

``load_spec(path, overrides)`` returns a validated Spec or raises :class:`SpecError` carrying
every problem of the file at once, each located as ``FILE:LINE:COL dotted.path: message`` (or
``--set dotted.path: message`` for an override).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ValidationError

from vemkit import registry as registry_module
from vemkit.errors import Problem, SpecError
from vemkit.spec_model import spec_model, type_names
from vemkit.spec_sections import SPEC_VERSION, SpecBase
from vemkit.spec_source import (
    PathTuple,
    SpecSource,
    dotted,
    load_yaml,
    parse_text,
    read_source,
)

if typing.TYPE_CHECKING:
    from vemkit.registry import Registry

Spec = SpecBase  # the static type; the runtime model is spec_model() (a subclass)


# -- overrides ------------------------------------------------------------------------------
def _split_path(text: str) -> PathTuple:
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


def apply_overrides(
    data: dict[str, Any], overrides: Iterable[str]
) -> tuple[list[Problem], list[str]]:
    """Apply ``dotted.path=value`` overrides to raw spec data in place.

    Values are YAML-typed (``3``, ``0.5``, ``true``, ``[1, 2]``, ``{type: fid}``). Missing mapping
    keys are created (validation then rejects keys that do not exist in the model, like any
    unknown key); list indices must exist.
    """
    problems: list[Problem] = []
    applied: list[str] = []
    for item in overrides:
        if "=" not in item:
            problems.append(Problem(item, "an override is written dotted.path=value", "--set"))
            continue
        raw_path, _, raw_value = item.partition("=")
        raw_path = raw_path.strip()
        if not raw_path or any(not p for p in raw_path.split(".")):
            problems.append(Problem(raw_path, "empty path segment", "--set"))
            continue
        try:
            value = load_yaml(raw_value) if raw_value.strip() else ""
        except yaml.YAMLError as exc:
            problems.append(Problem(raw_path, f"value is not valid YAML: {exc}", "--set"))
            continue
        path = _split_path(raw_path)
        node: Any = data
        for i, part in enumerate(path[:-1]):
            here = dotted(path[: i + 1])
            if isinstance(node, dict):
                key = str(part)
                if not isinstance(node.get(key), dict | list):
                    if key in node and node[key] is not None:
                        problems.append(
                            Problem(
                                raw_path,
                                f"'{here}' holds a {type(node[key]).__name__}, "
                                "not a mapping or list",
                                "--set",
                            )
                        )
                        node = None
                        break
                    if isinstance(path[i + 1], int):
                        problems.append(
                            Problem(
                                raw_path,
                                f"'{here}' is not set, so it has no item {path[i + 1]}",
                                "--set",
                            )
                        )
                        node = None
                        break
                    node[key] = {}
                node = node[key]
            elif isinstance(node, list):
                if not isinstance(part, int) or part >= len(node):
                    problems.append(
                        Problem(
                            raw_path,
                            f"'{here}' is not an index of the list (it has {len(node)} items)",
                            "--set",
                        )
                    )
                    node = None
                    break
                node = node[part]
            else:  # pragma: no cover - guarded above
                node = None
                break
        if node is None:
            continue
        last = path[-1]
        if isinstance(node, list):
            if not isinstance(last, int) or last >= len(node):
                problems.append(
                    Problem(
                        raw_path, f"not an index of the list (it has {len(node)} items)", "--set"
                    )
                )
                continue
            node[last] = value
        else:
            node[str(last)] = value
        applied.append(raw_path)
    return problems, applied


# -- mapping pydantic errors to places ------------------------------------------------------
def _raw_path(data: Any, loc: Sequence[str | int]) -> PathTuple:
    """Drop union tags and validator labels from a pydantic ``loc`` by walking the raw data."""
    out: list[str | int] = []
    node = data
    for part in loc:
        is_label = isinstance(part, str) and (
            "[" in part or part.startswith("function-") or node_type(node) == part
        )
        if isinstance(node, dict) and is_label and part not in node:
            continue
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
            continue
        out.append(part)
        node = node.get(part) if isinstance(node, dict) else None
    return tuple(out)


def node_type(node: Any) -> Any:
    return node.get("type") if isinstance(node, dict) else None


def _members(annotation: Any) -> list[type[BaseModel]]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType, list):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def model_at(model: type[BaseModel], data: Any, path: PathTuple) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``path`` (chosen by ``type`` tags)."""
    current: type[BaseModel] | None = model
    node = data
    for part in path:
        if current is None:
            return None
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        field = current.model_fields.get(part)
        if field is None:
            return None
        node = node.get(part) if isinstance(node, dict) else None
        candidates = _members(field.annotation)
        tag = node.get("type") if isinstance(node, dict) else None
        current = None
        for cand in candidates:
            type_field = cand.model_fields.get("type")
            literal = typing.get_args(type_field.annotation) if type_field else ()
            if not literal or tag in literal:
                current = cand
                break
    return current


def _problem_for(
    error: dict[str, Any], data: Any, model: type[BaseModel], src: SpecSource
) -> Problem:
    path = _raw_path(data, error["loc"])
    kind = error["type"]
    msg = error["msg"]
    if kind == "extra_forbidden":
        unknown = str(path[-1])
        parent = model_at(model, data, path[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        msg = f"unknown key '{unknown}'"
        import difflib  # here: only an error message needs it (start-up)

        close = difflib.get_close_matches(unknown, allowed, n=1, cutoff=0.6)
        if close:
            msg += f"; did you mean '{close[0]}'?"
        if allowed:
            msg += f" (allowed: {', '.join(allowed)})"
        return src.problem(path, msg, key=True)
    if kind == "missing":
        return src.problem(path, f"missing required key '{path[-1]}'", key=True)
    if kind in ("unknown_component", "missing_type"):
        target = (*path, "type") if kind == "unknown_component" else path
        return src.problem(target, msg)
    if kind == "value_error" and msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind.endswith("_type") and "input" in error and not isinstance(error["input"], dict | list):
        msg += f" (got {error['input']!r})"
    return src.problem(path, msg)


# -- requires -------------------------------------------------------------------------------
def check_requires(data: dict[str, Any], reg: Registry, src: SpecSource) -> list[Problem]:
    requires = data.get("requires") or []
    if not isinstance(requires, list) or not requires:
        return []  # a wrong type is the model's to report
    # packaging costs ~20 ms of start-up: only specs that name requirements pay it.
    from packaging.requirements import InvalidRequirement, Requirement

    problems: list[Problem] = []
    for i, text in enumerate(requires):
        path: PathTuple = ("requires", i)
        if not isinstance(text, str):
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            problems.append(src.problem(path, f"not a requirement like 'my-plugin>=0.2': {exc}"))
            continue
        wanted = req.name.lower().replace("_", "-")
        plugins = [
            p
            for p in reg.plugins.values()
            if p.name.lower().replace("_", "-") == wanted
            or (p.distribution or "").lower().replace("_", "-") == wanted
        ]
        failed = [p for p in plugins if not p.ok]
        if failed:
            problems.append(
                src.problem(path, f"required plugin '{req.name}' failed to load: {failed[0].error}")
            )
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            version = next((p.version for p in plugins if p.version), None)
            if version is None and not plugins:
                problems.append(
                    src.problem(
                        path,
                        f"required plugin '{req.name}' is not installed "
                        f"(pip install '{text}'), or not loaded (-p {req.name})",
                    )
                )
                continue
        if req.specifier and version is not None and version not in req.specifier:
            problems.append(
                src.problem(
                    path, f"required plugin '{req.name}{req.specifier}' but {version} is installed"
                )
            )
    return problems


# -- the public functions ---------------------------------------------------------------------
def validate_source(
    src: SpecSource,
    overrides: Iterable[str] = (),
    reg: Registry | None = None,
    *,
    check_only: bool = False,
) -> tuple[BaseModel | None, list[Problem]]:
    """Validate parsed spec data; returns the Spec (or None) and every problem found.

    ``check_only``: the caller needs the problems only; a valid spec may then come back as an
    instance of a smaller model (its unions restricted to the components it names), which is
    faster to build but not equal to the full model's instance.
    """
    if src.problems:
        return None, list(src.problems)
    data = src.data
    problems, applied = apply_overrides(data, overrides)
    if problems:
        return None, problems
    reg = reg or registry_module.default()

    version = data.get("vemkit", SPEC_VERSION)
    if version != SPEC_VERSION:
        problem = src.problem(
            ("vemkit",),
            f"unsupported spec version {version!r}; this vemkit reads `vemkit: {SPEC_VERSION}`",
        )
        return None, [_attribute_override(problem, applied, src)]
    problems = check_requires(data, reg, src)
    if problems:
        return None, [_attribute_override(p, applied, src) for p in problems]

    if check_only:
        # Fast path for `vemkit validate` (start-up): a model whose unions hold only the
        # components the spec names. What it accepts, the full model accepts; anything it
        # rejects is validated again by the full model, which words every message.
        try:
            return spec_model(reg, only=type_names(data)).model_validate(data), []
        except ValidationError:
            pass
    model = spec_model(reg)
    try:
        spec = model.model_validate(data)
    except ValidationError as exc:
        problems = [_problem_for(e, data, model, src) for e in exc.errors()]
        problems = [_attribute_override(p, applied, src) for p in problems]
        return None, sorted(_unique(problems), key=Problem.sort_key)
    return spec, []


def _attribute_override(problem: Problem, applied: list[str], src: SpecSource) -> Problem:
    """Report a problem an override caused as ``--set dotted.path: ...``, never at a file place.

    A problem is the override's when it lies at or under an overridden path, or at a key the
    override created on its way down (``--set mi.typo.x=1`` creates ``mi.typo``, which is not in
    the file: reported as ``--set mi.typo.x``). A problem at a key that *is* in the file keeps
    its file place and names the override when the override may have caused it: a model-level
    check above the overridden path, or a key of the file that a ``--set ....type=`` override
    made unknown to the new component.
    """
    if problem.source == "--set":
        return problem
    where = _split_path(problem.path) if problem.path else ()
    for path in applied:
        if problem.path == path or problem.path.startswith(path + "."):
            return Problem(problem.path, problem.message, "--set")
    for path in applied:
        if problem.path and path.startswith(problem.path + "."):
            if where not in src.keys and where not in src.values:
                return Problem(path, problem.message, "--set")
            return _with_override(problem, path)
        parent, _, last = path.rpartition(".")
        if last == "type" and (not parent or problem.path.startswith(parent + ".")):
            return _with_override(problem, path)
        if not problem.path:
            return _with_override(problem, path)
    return problem


def _with_override(problem: Problem, path: str) -> Problem:
    message = f"{problem.message} (with --set {path})"
    return Problem(problem.path, message, problem.source, problem.line, problem.column)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def validate(path: str | Path, overrides: Iterable[str] = ()) -> list[Problem]:
    """Every problem of the spec file at ``path`` (an empty list when it is valid)."""
    return validate_source(read_source(path), overrides, check_only=True)[1]


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> SpecBase:
    """Read, override and validate a spec file; raises :class:`SpecError` listing every problem."""
    spec, problems = validate_source(read_source(path), overrides)
    if problems:
        raise SpecError(problems)
    return spec  # type: ignore[return-value]


def load_spec_text(text: str, name: str = "<text>", overrides: Iterable[str] = ()) -> SpecBase:
    """Like :func:`load_spec` for spec text (YAML or JSON)."""
    spec, problems = validate_source(parse_text(text, name), overrides)
    if problems:
        raise SpecError(problems)
    return spec  # type: ignore[return-value]
