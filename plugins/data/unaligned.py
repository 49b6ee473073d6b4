"""CycleGAN unaligned domains: ``root/<split>A`` and ``root/<split>B``.

As in CycleGAN, item i takes A image i mod |A| and a B image drawn independently (uniformly, from
a generator seeded by seed/epoch/index so that a resumed run sees the same draw), or B image
i mod |B| in serial mode (evaluation). Each side gets its own crop and flip. With ``pairs`` the
set yields held-out true pairs instead (same crop/flip for both), for paired metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vemkit.errors import DataError
from vemkit_plugins.data import transforms
from vemkit_plugins.data._io import (
    ImageDataset,
    check_built,
    context_args,
    is_image,
    open_image,
    require_dir,
    require_file,
    require_images,
    require_root,
)
from vemkit_plugins.data.options import UnalignedOptions

# Streams of the per-item generator: A's geometry, B's choice, B's geometry.
_A, _CHOICE, _B = 0, 1, 2


def read_pairs(path: Path, root: Path) -> list[tuple[Path, Path]]:
    """``A B`` lines (paths relative to ``root``; ``#`` comments and blank lines skipped)."""
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.split()
        if len(fields) != 2:
            raise DataError(
                f"unaligned: {path}:{number}: expected 'A_path B_path', got {line.strip()!r}"
            )
        a, b = (root / f for f in fields)
        for p in (a, b):
            if not p.is_file():
                raise DataError(f"unaligned: {path}:{number}: image {p} does not exist")
            if not is_image(p):
                raise DataError(f"unaligned: {path}:{number}: {p} is not an image file")
        pairs.append((a, b))
    if not pairs:
        raise DataError(f"unaligned: pairs file {path} lists no pairs")
    return pairs


class UnalignedDataset(ImageDataset):
    """Items ``{input: A, target: B, index}`` from two unpaired folders (or a pairs file)."""

    component = "unaligned"

    def __init__(self, options: UnalignedOptions, **context: Any) -> None:
        split_override, seed, augment = context_args(context)
        split = split_override or options.split
        super().__init__(options, split=split, seed=seed, augment=augment)
        self.root = require_root(options.root, self.component)
        self.serial = not split.startswith("train") if options.serial is None else options.serial
        self.pairs: list[tuple[Path, Path]] | None = None
        if options.pairs is not None:
            pairs_file = require_file(self.root / options.pairs, self.component, "pairs file")
            pairs = self.limit(read_pairs(pairs_file, self.root))
            if options.direction == "BtoA":
                pairs = [(b, a) for a, b in pairs]
            self.pairs = pairs
            self.paths_a = [a for a, _ in pairs]
            self.paths_b = [b for _, b in pairs]
            return
        folders = [
            require_dir(self.root / f"{split}{side}", self.component, f"domain {side}")
            for side in ("A", "B")
        ]
        self.paths_a, self.paths_b = (
            self.limit(require_images(f, self.component)) for f in folders
        )
        if options.direction == "BtoA":
            self.paths_a, self.paths_b = self.paths_b, self.paths_a

    def __len__(self) -> int:
        if self.pairs is not None or self.serial:
            return len(self.paths_a)
        return max(len(self.paths_a), len(self.paths_b))

    def b_index(self, index: int) -> int:
        """Which B image item ``index`` uses in the current epoch."""
        if self.pairs is not None or self.serial:
            return index % len(self.paths_b)
        g = self.generator(index, _CHOICE)
        return int(torch.randint(0, len(self.paths_b), (1,), generator=g))

    def __getitem__(self, index: int) -> dict[str, Any]:
        channels = self.options.channels
        a = open_image(self.paths_a[index % len(self.paths_a)], channels)
        b = open_image(self.paths_b[self.b_index(index)], channels)
        params_a = transforms.draw(self.geometry, self.generator(index, _A))
        # True pairs stay aligned; unpaired images are augmented independently (CycleGAN).
        params_b = (
            params_a
            if self.pairs is not None
            else transforms.draw(self.geometry, self.generator(index, _B))
        )
        return {
            "input": transforms.image_item(a, self.geometry, params_a),
            "target": transforms.image_item(b, self.geometry, params_b),
            "index": index,
        }

    def files(self) -> list[Path]:
        return [*self.paths_a, *self.paths_b]

    def describe(self) -> str:
        mode = "pairs" if self.pairs is not None else "serial" if self.serial else "random B"
        return (
            f"unaligned split={self.split} A={len(self.paths_a)} B={len(self.paths_b)} "
            f"({mode}) items={len(self)}"
        )


def build(options: UnalignedOptions, **context: Any) -> UnalignedDataset:
    """Context: ``split_override``, ``seed``, ``augment`` (bool)."""
    return UnalignedDataset(options, **context)


def check(options: UnalignedOptions, **context: Any) -> list[str]:
    """Problems with the data of ``options`` (an empty list when every file is usable)."""
    return check_built(build, options, **context)
