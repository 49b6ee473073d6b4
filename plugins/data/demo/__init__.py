"""Offline demo sets, made from packages of the Debian and npm registries.

Each set is a registered ``demo`` component whose factory returns a :class:`DemoSet`; nothing is
downloaded until :meth:`DemoSet.get` runs (``vemkit data get NAME``). The sets are written in
the real layouts (pix2pix aligned, CycleGAN unaligned, image folders) so the ordinary dataset
components read them.
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from vemkit.options import Options
from vemkit_plugins.data.demo._common import (
    FORMAT,
    LICENSES,
    Echo,
    Source,
    build_atomically,
    write_text,
)


class DemoSet(ABC):
    """A recipe that turns registry packages into a dataset folder."""

    name: ClassVar[str]
    summary: ClassVar[str]
    #: Short licence lines printed after a build; the full texts go to LICENSES.txt.
    licences: ClassVar[tuple[str, ...]]
    #: Example dataset configs for a spec, relative to the set's root.
    usage: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Options) -> None:
        self.options = options

    def default_root(self) -> Path:
        return Path("data") / self.name

    @abstractmethod
    def fetch(self, work: Path, source_dir: Path | None) -> tuple[list[Source], Any]:
        """Download (or find in ``source_dir``) and unpack the packages into ``work``; return
        the sources and whatever :meth:`write` needs."""

    @abstractmethod
    def write(self, fetched: Any, out: Path, *, max_items: int | None, show_progress: bool) -> str:
        """Write the dataset into the empty folder ``out``; return the LICENSES.txt text."""

    def get(
        self,
        root: str | Path | None = None,
        *,
        force: bool = False,
        max_items: int | None = None,
        source: str | Path | None = None,
        progress: bool = True,
        echo: Echo = print,
    ) -> Path:
        """Build the set at ``root`` (default ``data/<name>``) unless a verified copy is there."""
        target = Path(root) if root is not None else self.default_root()
        request = {
            "name": self.name,
            "format": FORMAT,
            "options": self.options.model_dump(mode="json"),
            "max_items": max_items,
        }
        source_dir = Path(source).expanduser() if source is not None else None

        def make(out: Path) -> list[Source]:
            with tempfile.TemporaryDirectory(prefix=f"vemkit-{self.name}-") as work:
                sources, fetched = self.fetch(Path(work), source_dir)
                for s in sources:
                    echo(
                        f"source: {s.registry} {s.package} {s.version} (sha256 {s.sha256[:16]}...)"
                    )
                licences = self.write(fetched, out, max_items=max_items, show_progress=progress)
            write_text(out / LICENSES, licences)
            return sources

        path, built = build_atomically(target, request, make, force=force, echo=echo)
        if built:
            echo("licences (full texts in LICENSES.txt):")
            for line in self.licences:
                echo(f"  {line}")
        echo(f"{self.name}: {path}")
        for line in self.usage:
            echo(f"  use: {line.format(root=path)}")
        return path
