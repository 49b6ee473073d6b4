"""Demo sets from Fashion-MNIST (Debian ``dataset-fashion-mnist``, Zalando's IDX files, MIT).

* ``edges2shoes-fmnist`` — the edges2shoes analogue: shoes (sandal, sneaker, ankle boot) of the
  official split, upsampled 28 -> 64 (bicubic), inverted to dark-on-white RGB, with Canny edges
  (black on white) as input: A|B 64x128 PNGs in ``train/``, ``test/`` and ``val/`` (= test), and
  ``labels.json`` (class per file) for a classifier-based semantic score.
* ``fmnist32`` — unconditional: all 70k images zero-padded to 32x32, gray PNGs in
  ``train/<k>_<class>/`` and ``test/<k>_<class>/`` (ImageFolder layout).

File names are the image's index in the official IDX file, so every item can be traced back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vemkit.errors import DataError
from vemkit_plugins.data.demo import DemoSet
from vemkit_plugins.data.demo._common import (
    Source,
    apt_download,
    deb_extract,
    progress,
    save_png,
    source_of,
    write_text,
)
from vemkit_plugins.data.demo.idx import parse_idx
from vemkit_plugins.data.options import (
    Edges2ShoesFmnistOptions,
    Fmnist32Options,
)

PACKAGE = "dataset-fashion-mnist"
DATA_DIR = Path("usr/share/datasets/fashion-mnist")
COPYRIGHT = Path("usr/share/doc/dataset-fashion-mnist/copyright")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# Zalando's class names, in label order.
CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
LICENCE_LINES = (
    "Fashion-MNIST: Copyright 2017 Zalando SE, MIT (Expat) licence; Debian package "
    f"{PACKAGE} by Mo Zhou, same licence.",
)


def load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 28 x 28 uint8, labels N) of the official ``split`` from the IDX files."""
    images_file, labels_file = (folder / name for name in FILES[split])
    for path in (images_file, labels_file):
        if not path.is_file():
            raise DataError(f"{PACKAGE}: {path} is missing from the package")
    images = parse_idx(images_file.read_bytes(), str(images_file))
    labels = parse_idx(labels_file.read_bytes(), str(labels_file))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{PACKAGE}: {images_file} {images.shape} and {labels_file} {labels.shape} do not "
            "describe the same images"
        )
    return images.astype(np.uint8), labels.astype(np.int64)


def upsample(image: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of a uint8 gray image to ``size`` x ``size`` (PIL, clipped to 0..255)."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def shoe_pair(image: np.ndarray, size: int = 64, sigma: float = 1.5) -> np.ndarray:
    """One edges|photo pair (size x 2*size x 3 uint8) from a 28 x 28 Fashion-MNIST image.

    The photo is the upsampled image inverted (dark shoe on white, like edges2shoes); the
    sketch is scikit-image's Canny at ``sigma`` drawn black on white.
    """
    from skimage.feature import canny

    up = upsample(image, size)
    photo = 255 - up
    edges = canny(up.astype(np.float64) / 255.0, sigma=sigma)
    sketch = np.where(edges, 0, 255).astype(np.uint8)
    pair = np.concatenate([sketch, photo], axis=1)
    return np.repeat(pair[:, :, None], 3, axis=2)


def pad(image: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a gray image to ``size`` x ``size``, centred (28 -> 32 adds 2 pixels a side)."""
    h, w = image.shape
    top, left = (size - h) // 2, (size - w) // 2
    out = np.zeros((size, size), dtype=image.dtype)
    out[top : top + h, left : left + w] = image
    return out


def class_folder(label: int) -> str:
    """``5_sandal``, ``0_t-shirt-top``: sorts in label order, safe as a folder name."""
    return f"{label}_{CLASSES[label].replace('/', '-').replace(' ', '-')}"


class FashionMnistSet(DemoSet):
    """Shared download: the Debian package, unpacked with dpkg."""

    def fetch(self, work: Path, source_dir: Path | None) -> tuple[list[Source], Any]:
        deb = apt_download(PACKAGE, work, source_dir)
        unpacked = work / "unpacked"
        unpacked.mkdir()
        version = deb_extract(deb, unpacked)
        return [source_of("debian", PACKAGE, version, deb)], unpacked

    def licence_text(self, unpacked: Path) -> str:
        copyright_file = unpacked / COPYRIGHT
        text = copyright_file.read_text() if copyright_file.is_file() else ""
        return (
            f"{self.name} is derived from Fashion-MNIST "
            "(https://github.com/zalandoresearch/fashion-mnist).\n"
            + "\n".join(LICENCE_LINES)
            + f"\n\n--- {COPYRIGHT} from the Debian package ---\n{text}"
        )


class Edges2ShoesFmnist(FashionMnistSet):
    name = "edges2shoes-fmnist"
    summary = "paired edges -> shoes, 64 px A|B (Fashion-MNIST shoes, Debian), ~21k pairs"
    licences = LICENCE_LINES
    usage = (
        "{{type: aligned, root: {root}, split: train, size: 64, flip: true}}",
        "{{type: aligned, root: {root}, split: val, size: 64, labels: labels.json}}",
    )
    options: Edges2ShoesFmnistOptions

    def write(self, fetched: Any, out: Path, *, max_items: int | None, show_progress: bool) -> str:
        opts = self.options
        classes = list(opts.classes)
        table: dict[str, int] = {}
        for split in ("train", "test"):
            images, labels = load_split(fetched / DATA_DIR, split)
            keep = np.flatnonzero(np.isin(labels, classes))[:max_items]
            rows = progress(keep, len(keep), f"{self.name} {split}", show_progress)
            for i in rows:
                pair = shoe_pair(images[i], opts.size, opts.sigma)
                name = f"{i:05d}.png"
                for folder in (split, "val") if split == "test" else (split,):
                    save_png(pair, out / folder / name)
                    table[f"{folder}/{name}"] = classes.index(int(labels[i]))
        labels_json = {
            "classes": [
                {"index": k, "name": CLASSES[c], "fashion_mnist_label": c}
                for k, c in enumerate(classes)
            ],
            "files": dict(sorted(table.items())),
        }
        write_text(out / "labels.json", json.dumps(labels_json, indent=1) + "\n")
        return self.licence_text(fetched)


class Fmnist32(FashionMnistSet):
    name = "fmnist32"
    summary = "unconditional Fashion-MNIST, 32 px gray, class sub-folders (Debian), 70k images"
    licences = LICENCE_LINES
    usage = ("{{type: folder, root: {root}, split: train, size: 32, channels: 1}}",)
    options: Fmnist32Options

    def write(self, fetched: Any, out: Path, *, max_items: int | None, show_progress: bool) -> str:
        for split in ("train", "test"):
            images, labels = load_split(fetched / DATA_DIR, split)
            count = len(images) if max_items is None else min(max_items, len(images))
            rows = progress(range(count), count, f"{self.name} {split}", show_progress)
            for i in rows:
                path = out / split / class_folder(int(labels[i])) / f"{i:05d}.png"
                save_png(pad(images[i], self.options.size), path)
        return self.licence_text(fetched)


def edges2shoes_fmnist(options: Edges2ShoesFmnistOptions, **context: Any) -> Edges2ShoesFmnist:
    return Edges2ShoesFmnist(options)


def fmnist32(options: Fmnist32Options, **context: Any) -> Fmnist32:
    return Fmnist32(options)
