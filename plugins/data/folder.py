"""A folder of images for unconditional GANs (CelebA, FFHQ, Fashion-MNIST as PNGs).

Images are found recursively. In the ImageFolder layout (``root/<class>/...``) each image is
labelled by its top-level sub-folder, classes numbered in sorted order as torchvision does.
Items carry ``target`` (the real image), ``index`` and, when labelled, ``label``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vemkit.errors import DataError
from vemkit_plugins.data import transforms
from vemkit_plugins.data._io import (
    ImageDataset,
    check_built,
    context_args,
    open_image,
    require_dir,
    require_images,
    require_root,
)
from vemkit_plugins.data.options import FolderOptions


def class_labels(
    folder: Path, paths: list[Path], wanted: bool | None
) -> tuple[list[str], list[int]] | None:
    """Class names and per-image labels from top-level sub-folders, or None if unlabelled."""
    if wanted is False:
        return None
    loose = [p for p in paths if p.parent == folder]
    if loose:
        if wanted:
            raise DataError(
                f"folder: labels need every image in a class sub-folder of {folder}, but "
                f"{loose[0]} lies directly in it"
            )
        return None
    tops = [p.relative_to(folder).parts[0] for p in paths]
    classes = sorted(set(tops))
    number = {name: i for i, name in enumerate(classes)}
    return classes, [number[t] for t in tops]


class FolderDataset(ImageDataset):
    """Items ``{target, index[, label]}``."""

    component = "folder"

    def __init__(self, options: FolderOptions, **context: Any) -> None:
        split_override, seed, augment = context_args(context)
        split = split_override or options.split
        super().__init__(options, split=split, seed=seed, augment=augment)
        self.root = require_root(options.root, self.component)
        self.folder = (
            require_dir(self.root / split, self.component, f"split '{split}'")
            if split
            else self.root
        )
        paths = require_images(self.folder, self.component)
        labelled = class_labels(self.folder, paths, options.labels)
        self.paths = self.limit(paths)
        self.classes: list[str] | None = None
        self.labels: list[int] | None = None
        if labelled is not None:
            self.classes = labelled[0]
            self.labels = self.limit(labelled[1])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        image = open_image(path, self.options.channels)
        self._check_crop(image.size, path)
        params = transforms.draw(self.geometry, self.generator(index))
        item: dict[str, Any] = {
            "target": transforms.image_item(image, self.geometry, params),
            "index": index,
        }
        if self.labels is not None:
            item["label"] = self.labels[index]
        return item

    def _check_crop(self, size: tuple[int, int], path: Path) -> None:
        crop = self.options.center_crop
        if crop is not None and min(size) < crop:
            raise DataError(
                f"folder: {path} is {size[0]}x{size[1]}, smaller than center_crop {crop}"
            )

    def files(self) -> list[Path]:
        return self.paths

    def check_file(self, path: Path) -> None:
        self._check_crop(open_image(path, self.options.channels).size, path)

    def describe(self) -> str:
        classes = f" classes={len(self.classes)}" if self.classes else ""
        return f"folder {self.folder} items={len(self)}{classes}"


def build(options: FolderOptions, **context: Any) -> FolderDataset:
    """Context: ``split_override``, ``seed``, ``augment`` (bool)."""
    return FolderDataset(options, **context)


def check(options: FolderOptions, **context: Any) -> list[str]:
    """Problems with the data of ``options`` (an empty list when every file is usable)."""
    return check_built(build, options, **context)
