"""Cityscapes as pix2pix uses it: colour label map -> street photo, with train ids for mIoU.

Two layouts (``layout`` option):

* ``raw`` — the official download: ``leftImg8bit/<split>/<city>/<id>_leftImg8bit.png`` photos and
  ``gtFine/<split>/<city>/<id>_gtFine_*.png`` labels. The input is ``_gtFine_color.png`` (what
  pix2pix and GAN-Compression feed the generator); without it the train ids are painted with the
  official palette. The segmentation is ``_gtFine_trainIds.png`` (cityscapesScripts'
  createTrainIdLabelImgs), else ``_gtFine_labelIds.png`` mapped through the official table.
* ``prepared`` — GAN-Compression's ``prepare_cityscapes_dataset.py`` output: ``<split>/<i>.jpg``
  256x512 files with the **photo left and the colour label right** (so the label is read from
  the right half), val written as ``test``, and ``table.txt`` lines ``i gtFine/...trainIds.png
  leftImg8bit/...png`` relative to the Cityscapes root, used here for the segmentation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vemkit.errors import DataError, VemkitError
from vemkit_plugins.data import transforms
from vemkit_plugins.data._io import (
    ImageDataset,
    check_built,
    context_args,
    open_image,
    open_labels,
    require_dir,
    require_file,
    require_images,
    require_root,
)
from vemkit_plugins.data.aligned import split_pair
from vemkit_plugins.data.options import CityscapesOptions

IGNORE = 255
PHOTO = "_leftImg8bit.png"

# cityscapesScripts helpers/labels.py: label id -> train id (19 classes; others ignored).
LABEL_TO_TRAIN = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip

# Colours of the 19 train ids, same source (road, sidewalk, ..., bicycle); ignore is black.
TRAIN_COLORS = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map official label ids to train ids (255 for the classes not evaluated)."""
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for label_id, train_id in LABEL_TO_TRAIN.items():
        lut[label_id] = train_id
    return lut[label_ids]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """Paint a train-id map with the official palette (H x W x 3 uint8; ignore is black)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(TRAIN_COLORS)] = TRAIN_COLORS
    return palette[train_ids]


class CityscapesDataset(ImageDataset):
    """Items ``{input: colour labels, target: photo, index[, segmentation]}``."""

    component = "cityscapes"

    def __init__(self, options: CityscapesOptions, **context: Any) -> None:
        split_override, seed, augment = context_args(context)
        split = split_override or options.split
        super().__init__(options, split=split, seed=seed, augment=augment)
        self.root = require_root(options.root, self.component)
        # (photo or A|B file, colour label or None, train-id/label-id map or None)
        self.records: list[tuple[Path, Path | None, Path | None]]
        if options.layout == "raw":
            self.records = self.limit(self._raw_records(split))
        else:
            self.records = self.limit(self._prepared_records(split))
        g = self.geometry
        if (
            options.segmentation
            and options.segmentation_size == "full"
            and (g.flip or g.center_crop or (g.load_size not in (None, g.size)))
        ):
            raise VemkitError(
                "cityscapes: segmentation_size full keeps the label maps whole, so the images "
                "must not be cropped or flipped (set flip: false and leave load_size and "
                "center_crop unset), or use segmentation_size: image"
            )

    # -- listing ------------------------------------------------------------------------
    def _raw_records(self, split: str) -> list[tuple[Path, Path | None, Path | None]]:
        photos_dir = require_dir(self.root / "leftImg8bit" / split, self.component, "photo")
        labels_dir = require_dir(self.root / "gtFine" / split, self.component, "label")
        photos = [p for p in require_images(photos_dir, self.component) if p.name.endswith(PHOTO)]
        if not photos:
            raise DataError(f"cityscapes: no *_leftImg8bit.png files under {photos_dir}")
        records = []
        for photo in photos:
            rel = photo.parent.relative_to(photos_dir)
            stem = photo.name[: -len(PHOTO)]
            color = labels_dir / rel / f"{stem}_gtFine_color.png"
            ids = labels_dir / rel / f"{stem}_gtFine_trainIds.png"
            if not ids.is_file():
                ids = ids.with_name(f"{stem}_gtFine_labelIds.png")
            if not ids.is_file() and not color.is_file():
                raise DataError(
                    f"cityscapes: photo {photo} has no label: expected {color} or "
                    f"{ids.with_name(stem + '_gtFine_trainIds.png')}"
                )
            records.append(
                (photo, color if color.is_file() else None, ids if ids.is_file() else None)
            )
        # Labels without a photo mean the two trees are out of step (a partial unzip).
        photo_keys = {(p.parent.relative_to(photos_dir), p.name[: -len(PHOTO)]) for p in photos}
        orphans = sorted(
            p
            for p in labels_dir.rglob("*_gtFine_*.png")
            if (p.parent.relative_to(labels_dir), p.name.split("_gtFine_")[0]) not in photo_keys
        )
        if orphans:
            raise DataError(
                f"cityscapes: label {orphans[0]} has no photo under {photos_dir} "
                f"({len(orphans)} label file(s) without a photo)"
            )
        return records

    def _prepared_records(self, split: str) -> list[tuple[Path, Path | None, Path | None]]:
        folder = require_dir(self.root / split, self.component, f"split '{split}'")
        files = require_images(folder, self.component, recursive=False)
        table: dict[int, Path] = {}
        if self.options.table is not None:
            table = self._read_table()
        records: list[tuple[Path, Path | None, Path | None]] = []
        for path in files:
            ids = None
            if table:
                try:
                    ids = table[int(path.stem)]
                except (ValueError, KeyError):
                    raise DataError(
                        f"cityscapes: {path} has no entry in table {self.options.table} "
                        "(prepared files are named <index>.jpg)"
                    ) from None
            records.append((path, None, ids))
        return records

    def _read_table(self) -> dict[int, Path]:
        path = self.root / self.options.table  # type: ignore[operator]
        require_file(path, self.component, "table")
        base = Path(self.options.cityscapes_root or self.root).expanduser()
        table = {}
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                index, ids = int(fields[0]), base / fields[1]
            except (ValueError, IndexError):
                raise DataError(
                    f"cityscapes: {path}:{number}: expected 'index trainIds_path photo_path'"
                ) from None
            table[index] = ids
        return table

    # -- items ----------------------------------------------------------------------------
    def _train_ids(self, path: Path) -> Image.Image:
        ids = np.asarray(open_labels(path))
        if path.name.endswith("_labelIds.png"):
            ids = label_ids_to_train_ids(ids)
        return Image.fromarray(ids.astype(np.uint8), mode="L")

    def _load(self, index: int) -> tuple[Image.Image, Image.Image, Image.Image | None]:
        first, color, ids = self.records[index]
        channels = self.options.channels
        needed = self.options.segmentation or (self.options.layout == "raw" and color is None)
        train_ids = self._train_ids(ids) if ids is not None and needed else None
        if self.options.layout == "prepared":
            photo, label = split_pair(open_image(first, channels), first, self.component)
        else:
            photo = open_image(first, channels)
            if color is not None:
                label = open_image(color, channels)
            else:
                assert train_ids is not None
                painted = Image.fromarray(colorize(np.asarray(train_ids)), mode="RGB")
                label = painted if channels == 3 else painted.convert("L")
        full = self.options.segmentation_size == "full"
        if train_ids is not None and train_ids.size != photo.size and not full:
            # Full-resolution ids against a resized photo (prepared layout): bring them to the
            # photo's size so that crops and flips line up.
            train_ids = train_ids.resize(photo.size, Image.Resampling.NEAREST)
        return label, photo, train_ids

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        label, photo, train_ids = self._load(index)
        params = transforms.draw(self.geometry, self.generator(index))
        item: dict[str, Any] = {
            "input": transforms.image_item(label, self.geometry, params),
            "target": transforms.image_item(photo, self.geometry, params),
            "index": index,
        }
        if self.options.segmentation and train_ids is not None:
            if self.options.segmentation_size == "full":
                item["segmentation"] = transforms.labels_to_tensor(train_ids)
            else:
                item["segmentation"] = transforms.label_item(train_ids, self.geometry, params)
        return item

    def files(self) -> list[Path]:
        return [p for record in self.records for p in record if p is not None]

    def check_file(self, path: Path) -> None:
        if path.name.endswith(("_trainIds.png", "_labelIds.png")):
            open_labels(path)
        elif self.options.layout == "prepared" and path.parent == self.root / self.split:
            split_pair(open_image(path, self.options.channels), path, self.component)
        else:
            open_image(path, self.options.channels)


def build(options: CityscapesOptions, **context: Any) -> CityscapesDataset:
    """Context: ``split_override``, ``seed``, ``augment`` (bool)."""
    return CityscapesDataset(options, **context)


def check(options: CityscapesOptions, **context: Any) -> list[str]:
    """Problems with the data of ``options`` (an empty list when every file is usable)."""
    return check_built(build, options, **context)
