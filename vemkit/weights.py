"""Read and write network weights safely.

* ``.safetensors`` files are read and written with safetensors (no pickle at all);
* official ``.pth`` / ``.pt`` checkpoints (pix2pix, CycleGAN, OMGD, GAN-Compression) are read
  with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain
  containers, so a file a user was handed cannot run code.

A checkpoint may be the state dict itself (pix2pix / GAN-Compression ``*_net_G.pth``) or hold it
under ``"state_dict"`` or ``"model"``; a ``module.`` prefix left by (Distributed)DataParallel is
removed. Keys that the official loaders also ignore are dropped quietly: running statistics of
InstanceNorm layers that do not track them (written by PyTorch < 0.4 era code), and a missing
BatchNorm ``num_batches_tracked`` counter (PyTorch fills it in). Anything else that does not fit
raises a :class:`~vemkit.errors.VemkitError` naming the file, the first missing and unexpected
keys and the shape differences.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vemkit.errors import VemkitError
from vemkit.fileio import atomic_path

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
NESTING_KEYS = ("state_dict", "model")
"""Keys under which training checkpoints keep the weights, tried in this order."""
SHOW = 5
"""How many keys of each kind a mismatch message lists."""

_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did besides loading (all empty for a perfect fit)."""

    path: Path
    missing: list[str] = field(default_factory=list)
    """Keys of the module that the file lacks (left as they were; only with ``strict=False``)."""
    unexpected: list[str] = field(default_factory=list)
    """Keys of the file that the module lacks (ignored; only with ``strict=False``)."""
    ignored: list[str] = field(default_factory=list)
    """Keys dropped by the compatibility rules (stale InstanceNorm statistics)."""
    stripped_prefix: str | None = None
    """The DataParallel-style prefix removed from every key, if any."""


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, on the CPU, as a flat ``{key: tensor}`` dict."""
    path = Path(path)
    if not path.is_file():
        raise VemkitError(f"{path}: no such weights file")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:  # safetensors raises its own error types
            raise VemkitError(f"{path}: not a readable safetensors file ({exc})") from None
    if suffix in PICKLE_SUFFIXES:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise VemkitError(
                f"{path}: cannot be read as a weights-only PyTorch checkpoint "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "only tensors and plain containers are accepted"
            ) from None
        return _find_state_dict(obj, path)
    raise VemkitError(
        f"{path}: unknown weights format {suffix or '(no suffix)'!r}; expected one of "
        f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)}"
    )


def _find_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    # Descend through {"state_dict": {...}} / {"model": {...}} wrappers (at most a few levels).
    for _ in range(3):
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in NESTING_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise VemkitError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors or not obj:
        keys = ", ".join(str(k) for k in list(obj)[:10]) or "none"
        raise VemkitError(
            f"{path}: no state dict found (top-level keys: {keys}); expected a dict of tensors, "
            f"possibly under one of {', '.join(repr(k) for k in NESTING_KEYS)}"
        )
    return {str(k): v for k, v in obj.items()}


def _strip_prefix(
    state: dict[str, torch.Tensor], expected: Iterable[str], prefixes: Iterable[str]
) -> tuple[dict[str, torch.Tensor], str | None]:
    expected = list(expected)
    for prefix in prefixes:
        # Only when every key carries it and the module itself does not (a real submodule may be
        # called "module").
        if (
            prefix
            and all(k.startswith(prefix) for k in state)
            and not (expected and all(k.startswith(prefix) for k in expected))
        ):
            return {k[len(prefix) :]: v for k, v in state.items()}, prefix
    return state, None


def _tolerated(module: nn.Module, missing: set[str], unexpected: set[str]) -> tuple[set, set]:
    """(missing keys torch fills in itself, unexpected keys the official loaders drop)."""
    modules = dict(module.named_modules())
    ok_missing, drop = set(), set()
    for key in missing:
        owner, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked" and isinstance(
            modules.get(owner), nn.modules.batchnorm._BatchNorm
        ):
            ok_missing.add(key)  # BatchNorm's loader defaults the counter to 0
    for key in unexpected:
        owner, _, leaf = key.rpartition(".")
        mod = modules.get(owner)
        if (
            leaf in _NORM_STATS
            and isinstance(mod, nn.modules.instancenorm._InstanceNorm)
            and not mod.track_running_stats
        ):
            drop.add(key)
    return ok_missing, drop


def _mismatch_message(
    path: Path,
    module: nn.Module,
    missing: list[str],
    unexpected: list[str],
    shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
) -> str:
    def listed(keys: list[str]) -> str:
        more = f", ... ({len(keys) - SHOW} more)" if len(keys) > SHOW else ""
        return ", ".join(keys[:SHOW]) + more

    lines = [f"{path}: the weights do not fit the {type(module).__name__}"]
    if missing:
        lines.append(f"  {len(missing)} missing key(s): {listed(missing)}")
    if unexpected:
        lines.append(f"  {len(unexpected)} unexpected key(s): {listed(unexpected)}")
    if shapes:
        shown = [f"{k} (file {list(a)}, model {list(b)})" for k, a, b in shapes]
        lines.append(f"  {len(shapes)} shape difference(s): {listed(shown)}")
    return "\n".join(lines)


def load_weights(
    module: nn.Module,
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    prefix_strip: Iterable[str] = ("module.",),
) -> LoadReport:
    """Load the weights in ``path`` into ``module`` (in place) and report what was adapted.

    ``strict=False`` leaves keys missing from the file at their current values and ignores
    keys the module lacks; shape differences are errors either way. On any error nothing is
    loaded.
    """
    path = Path(path)
    state = read_state_dict(path)
    target = module.state_dict()
    state, stripped = _strip_prefix(state, target, prefix_strip)

    missing = set(target) - set(state)
    unexpected = set(state) - set(target)
    ok_missing, ignored = _tolerated(module, missing, unexpected)
    missing -= ok_missing
    unexpected -= ignored
    for key in ignored:
        del state[key]
    shapes = [
        (k, tuple(state[k].shape), tuple(target[k].shape))
        for k in sorted(set(state) & set(target))
        if state[k].shape != target[k].shape
    ]
    if shapes or (strict and (missing or unexpected)):
        raise VemkitError(
            _mismatch_message(path, module, sorted(missing), sorted(unexpected), shapes)
        )
    for key in unexpected:
        del state[key]
    module.load_state_dict(state, strict=False)
    return LoadReport(path, sorted(missing), sorted(unexpected), sorted(ignored), stripped)


def save_weights(
    module_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a module's state dict (or a state dict) to ``path`` as safetensors, atomically.

    The file is written beside the target under a temporary name and renamed into place, so a
    reader never sees half a file. ``metadata`` values that are not strings are stored as
    JSON. Tensors that share memory (tied weights) are stored as separate copies. Returns the
    path written.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        raise VemkitError(f"{path}: weights are saved as .safetensors")
    state = (
        module_or_state_dict.state_dict()
        if isinstance(module_or_state_dict, nn.Module)
        else module_or_state_dict
    )
    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise VemkitError(f"{path}: state dict entry {key!r} is not a tensor")
        tensor = value.detach().to("cpu").contiguous()
        storage = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        if storage in seen or tensor.data_ptr() != storage[0]:
            tensor = tensor.clone()  # safetensors refuses shared or offset storage
        seen.add((tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes()))
        tensors[str(key)] = tensor
    meta = None
    if metadata is not None:
        meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata stored in a ``.safetensors`` file by :func:`save_weights`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise VemkitError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise VemkitError(f"{path}: not a readable safetensors file ({exc})") from None
