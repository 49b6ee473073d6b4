"""Checkpoints: everything needed to continue a run exactly, and nothing that unpickles.

Layout of a run directory::

    RUN_DIR/spec.resolved.yaml            the resolved spec (``vemkit run --resume`` reads it)
    RUN_DIR/run.json                      spec hash, versions, plugins
    RUN_DIR/checkpoints/step_0002000/
        student.safetensors               one file per module of the program (teacher,
        teacher.safetensors               discriminators, the MI term's energy net and sampler
        ...                               buffers, adapters)
        state.safetensors                 every other tensor: optimizer moments, RNG states, ...
        state.json                        the rest: step, data position, schedules, RNG, the
                                          components' state, spec hash, versions
        spec.resolved.yaml
        COMPLETE                          written last: the SHA-256 of every file above
    RUN_DIR/checkpoints/last -> step_0002000    (a symlink, replaced atomically)
    RUN_DIR/checkpoints/best -> step_...        (with ``eval.best``)

A checkpoint is written into a temporary folder, every file fsync'ed, then renamed into place;
``last`` is swapped after. A folder without a ``COMPLETE`` whose hashes match its files is
never loaded: a run killed while writing resumes from the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vemkit import fileio
from vemkit.errors import VemkitError

CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"
STATE_JSON = "state.json"
STATE_TENSORS = "state.safetensors"
SPEC_FILE = "spec.resolved.yaml"
FORMAT = 1


def step_name(step: int) -> str:
    return f"step_{step:07d}"


# -- JSON + safetensors encoding of nested state ------------------------------------------------
def encode(value: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    """``value`` as JSON data; tensors are moved into ``tensors`` under their ``path``.

    Dicts with non-string keys (optimizer states are keyed by int) and tuples are tagged so
    that :func:`decode` gives back exactly what was encoded.
    """
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().to("cpu")
        return {"__tensor__": path}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode(v, tensors, f"{path}.{k}") for k, v in value.items()}
        items = []
        for k, v in value.items():
            if not isinstance(k, str | int | float | bool) and k is not None:
                raise VemkitError(
                    f"cannot checkpoint a dict key of type {type(k).__name__} at {path}"
                )
            items.append([k, encode(v, tensors, f"{path}.{k}")])
        return {"__items__": items}
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    raise VemkitError(
        f"cannot checkpoint a {type(value).__name__} at {path} (allowed: tensors, numbers, "
        "strings, bools, None, lists, tuples, dicts)"
    )


def decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"])
        if "__tuple__" in value:
            return tuple(decode(v, tensors) for v in value["__tuple__"])
        if "__items__" in value:
            return {k: decode(v, tensors) for k, v in value["__items__"]}
        if "__dtype__" in value:
            return getattr(torch, value["__dtype__"])
        return {k: decode(v, tensors) for k, v in value.items()}
    return value


# -- files --------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


write_text_atomic = fileio.write_text_atomic


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, what: str) -> None:
    from safetensors.torch import save_file

    # A private contiguous copy of each tensor: safetensors refuses shared or offset storage
    # (tied weights, views), and the copy is what a checkpoint costs anyway.
    plain = {key: t.detach().to("cpu").contiguous().clone() for key, t in tensors.items()}
    try:
        save_file(plain, str(path), metadata={"vemkit": what})
    except Exception as exc:
        raise VemkitError(f"cannot write {path}: {exc}") from None


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(str(path), device="cpu"))


# -- saving -------------------------------------------------------------------------------------
def save(
    run_dir: Path,
    step: int,
    *,
    modules: dict[str, dict[str, torch.Tensor]],
    state: dict[str, Any],
    info: dict[str, Any],
    spec_yaml: str,
) -> Path:
    """Write the checkpoint of ``step`` atomically and point ``last`` at it.

    ``modules``: state dicts by module name; ``state``: nested training state (encoded to
    ``state.json`` + ``state.safetensors``); ``info``: JSON metadata (spec hash, versions).
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    tmp = root / f".tmp-{step_name(step)}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files: list[str] = []
        for name, sd in modules.items():
            fname = f"{name}.safetensors"
            _save_tensors(sd, tmp / fname, f"module {name}")
            files.append(fname)
        tensors: dict[str, torch.Tensor] = {}
        payload = {
            "format": FORMAT,
            "step": step,
            "info": info,
            "state": encode(state, tensors, "state"),
        }
        _save_tensors(tensors, tmp / STATE_TENSORS, "training state")
        (tmp / STATE_JSON).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        (tmp / SPEC_FILE).write_text(spec_yaml, encoding="utf-8")
        files += [STATE_TENSORS, STATE_JSON, SPEC_FILE]
        for fname in files:
            fileio.fsync_file(tmp / fname)
        complete = {"step": step, "files": {f: sha256(tmp / f) for f in files}}
        with open(tmp / COMPLETE, "w", encoding="utf-8") as f:
            f.write(json.dumps(complete, indent=1) + "\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if final.exists() or final.is_symlink():
            # Rewriting a step (a resumed run stopping at the same step): swap, then drop.
            trash = root / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            os.rename(final, trash)
            os.rename(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    point(root, "last", final.name)
    return final


def point(root: Path, name: str, target: str) -> None:
    """Make ``root/name`` refer to ``root/target`` atomically (a relative symlink; a copy of
    the folder where symlinks are not allowed)."""
    link = root / name
    tmp = root / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        os.symlink(target, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        if tmp.is_symlink():
            tmp.unlink()
        shutil.copytree(root / target, tmp)
        old = root / f".{name}.old-{uuid.uuid4().hex[:6]}"
        if link.exists():
            os.rename(link, old)
        os.rename(tmp, link)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(root)


def prune(run_dir: Path, keep: int, protect: set[str] = frozenset()) -> list[str]:
    """Delete all but the newest ``keep`` complete checkpoints (and stale temporaries),
    sparing ``protect`` and whatever ``last``/``best`` point at. Returns the removed names."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    pointed = {os.readlink(root / n) for n in ("last", "best") if (root / n).is_symlink()}
    steps = sorted(p.name for p in root.iterdir() if p.name.startswith("step_") and p.is_dir())
    removed = []
    for name in steps[:-keep] if keep > 0 else steps:
        if name in protect or name in pointed:
            continue
        shutil.rmtree(root / name, ignore_errors=True)
        removed.append(name)
    for p in root.iterdir():
        if p.name.startswith((".tmp-", ".old-")) and str(os.getpid()) not in p.name:
            shutil.rmtree(p, ignore_errors=True)
    return removed


# -- loading ------------------------------------------------------------------------------------
def verify(path: Path) -> str | None:
    """Why the checkpoint folder ``path`` is not valid, or None when every file matches its
    hash in ``COMPLETE``."""
    marker = path / COMPLETE
    if not marker.is_file():
        return f"{path}: incomplete checkpoint (no {COMPLETE} marker; the write was interrupted)"
    try:
        complete = json.loads(marker.read_text(encoding="utf-8"))
        files = complete["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{path}: unreadable {COMPLETE} marker ({exc})"
    for fname in (STATE_JSON, STATE_TENSORS):
        if fname not in files:
            return f"{path}: {COMPLETE} does not list {fname}"
    for fname, digest in files.items():
        f = path / fname
        if not f.is_file():
            return f"{path}: {fname} is missing"
        if sha256(f) != digest:
            return f"{path}: {fname} does not match its hash in {COMPLETE} (corrupt or modified)"
    return None


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    path: Path
    step: int
    modules: dict[str, dict[str, torch.Tensor]]
    state: dict[str, Any]
    info: dict[str, Any]


def load(path: Path) -> Checkpoint:
    """Load a verified checkpoint folder; an invalid one is a :class:`VemkitError`."""
    path = Path(path)
    problem = verify(path)
    if problem:
        raise VemkitError(problem)
    files = json.loads((path / COMPLETE).read_text(encoding="utf-8"))["files"]
    payload = json.loads((path / STATE_JSON).read_text(encoding="utf-8"))
    if payload.get("format") != FORMAT:
        raise VemkitError(f"{path}: checkpoint format {payload.get('format')} is not {FORMAT}")
    tensors = _load_tensors(path / STATE_TENSORS)
    modules = {
        f.removesuffix(".safetensors"): _load_tensors(path / f)
        for f in files
        if f.endswith(".safetensors") and f != STATE_TENSORS
    }
    return Checkpoint(
        path, int(payload["step"]), modules, decode(payload["state"], tensors), payload["info"]
    )


def latest(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest valid checkpoint of a run (``last`` first, else the newest valid step
    folder) and the problems of the invalid ones skipped on the way."""
    root = Path(run_dir) / CHECKPOINTS
    skipped: list[str] = []
    if not root.is_dir():
        return None, skipped
    candidates: list[Path] = []
    last = root / "last"
    if last.exists():
        candidates.append(last.resolve() if last.is_symlink() else last)
    steps = sorted(
        (p for p in root.iterdir() if p.name.startswith("step_") and p.is_dir()),
        key=lambda p: p.name,
        reverse=True,
    )
    candidates += [p for p in steps if p not in candidates]
    best: tuple[int, Path] | None = None
    for path in candidates:
        problem = verify(path)
        if problem:
            skipped.append(problem)
            continue
        step = json.loads((path / COMPLETE).read_text(encoding="utf-8"))["step"]
        if best is None or step > best[0]:
            best = (step, path)
    return (best[1] if best else None), skipped
