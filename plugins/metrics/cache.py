"""The metrics' on-disk cache: converted weights, real statistics, trained classifiers.

Everything is written atomically (a temporary file in the same folder, then ``os.replace``), so
an interrupted run leaves either the old file or the new one, never half of one. Names carry a
content hash of what they were computed from, so a stale entry is never read for new inputs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from vemkit.errors import VemkitError
from vemkit.fileio import atomic_path


def cache_root(override: str | os.PathLike[str] | None = None) -> Path:
    """``override``, else ``$VEMKIT_CACHE``, else ``~/.cache/vemkit``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("VEMKIT_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "vemkit"


def cache_dir(sub: str, override: str | os.PathLike[str] | None = None) -> Path:
    """The folder ``sub`` of the cache root, created on demand."""
    path = cache_root(override) / sub
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VemkitError(
            f"cannot create the cache folder {path}: {exc.strerror}; set $VEMKIT_CACHE or the "
            "metric's cache_dir to a writable folder"
        ) from None
    return path


def atomic_write(target: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``target``."""
    with atomic_path(target) as tmp:
        write(tmp)
    return target


def file_digest(path: Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
