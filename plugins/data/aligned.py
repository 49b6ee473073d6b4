"""pix2pix aligned pairs: ``root/<split>/*`` images holding A|B side by side (A left).

The layout of edges2shoes, facades, maps and Cityscapes as pix2pix ships them (and GAN-Compression
reuses). Both halves get the same crop and flip so the pair stays aligned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from vemkit.errors import DataError
from vemkit_plugins.data import transforms
from vemkit_plugins.data._io import (
    ImageDataset,
    check_built,
    context_args,
    open_image,
    require_dir,
    require_file,
    require_images,
    require_root,
)
from vemkit_plugins.data.options import AlignedOptions


def split_pair(
    image: Image.Image, path: Path, component: str = "aligned"
) -> tuple[Image.Image, Image.Image]:
    """The left and right halves of an A|B image; an odd width is an error naming ``path``."""
    w, h = image.size
    if w % 2:
        raise DataError(
            f"{component}: {path} is {w}x{h}; an A|B image needs an even width (two halves side "
            "by side)"
        )
    half = w // 2
    return image.crop((0, 0, half, h)), image.crop((half, 0, w, h))


class AlignedDataset(ImageDataset):
    """Items ``{input, target, index[, label]}`` from A|B files."""

    component = "aligned"

    def __init__(self, options: AlignedOptions, **context: Any) -> None:
        split_override, seed, augment = context_args(context)
        split = split_override or options.split
        super().__init__(options, split=split, seed=seed, augment=augment)
        self.root = require_root(options.root, self.component)
        self.folder = require_dir(self.root / split, self.component, f"split '{split}'")
        self.paths = self.limit(require_images(self.folder, self.component))
        self.labels = self._read_labels(options.labels) if options.labels else None

    def _read_labels(self, name: str) -> list[int]:
        path = require_file(self.root / name, self.component, "labels file")
        try:
            table = json.loads(path.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"aligned: labels file {path} is not JSON with a 'files' map ({exc})"
            ) from None
        labels = []
        for p in self.paths:
            key = p.relative_to(self.root).as_posix()
            if key not in table:
                raise DataError(f"aligned: labels file {path} has no entry for {key}")
            labels.append(int(table[key]))
        return labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        a, b = split_pair(open_image(path, self.options.channels), path)
        if self.options.direction == "BtoA":
            a, b = b, a
        params = transforms.draw(self.geometry, self.generator(index))
        item: dict[str, Any] = {
            "input": transforms.image_item(a, self.geometry, params),
            "target": transforms.image_item(b, self.geometry, params),
            "index": index,
        }
        if self.labels is not None:
            item["label"] = self.labels[index]
        return item

    def files(self) -> list[Path]:
        return self.paths

    def check_file(self, path: Path) -> None:
        split_pair(open_image(path, self.options.channels), path)


def build(options: AlignedOptions, **context: Any) -> AlignedDataset:
    """Context: ``split_override`` (read another split), ``seed``, ``augment`` (bool)."""
    return AlignedDataset(options, **context)


def check(options: AlignedOptions, **context: Any) -> list[str]:
    """Problems with the data of ``options`` (an empty list when every file is usable)."""
    return check_built(build, options, **context)
