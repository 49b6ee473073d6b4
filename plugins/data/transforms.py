"""The papers' preprocessing, deterministic per item.

pix2pix/CycleGAN resize with PIL bicubic to a square ``load_size``, take a random ``size`` crop
and flip half of the images, then scale to [-1, 1] (``ToTensor`` + ``Normalize(0.5, 0.5)``).
The same PIL operations are used here so the pixels match theirs. Random parameters come from
a generator seeded by (seed, epoch, index, stream), not from a global RNG, so that an item is
the same in every worker and after a resume; one draw is shared by the two halves of a pair.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from vemkit_plugins.data.options import ImageOptions


@dataclass(frozen=True)
class Geometry:
    """What to do to every image of a dataset."""

    size: int
    load_size: int | None = None
    crop: Literal["random", "center"] = "random"
    flip: bool = False
    center_crop: int | None = None

    @classmethod
    def from_options(cls, options: ImageOptions, *, augment: bool) -> Geometry:
        """The geometry of ``options``; without ``augment``, centre crop and no flip."""
        return cls(
            size=options.size,
            load_size=options.load_size,
            crop=options.crop if augment else "center",
            flip=options.flip and augment,
            center_crop=getattr(options, "center_crop", None),
        )

    @property
    def resized(self) -> int:
        return self.load_size or self.size


@dataclass(frozen=True)
class Params:
    """The random choices for one item: crop corner and flip."""

    x: int = 0
    y: int = 0
    flip: bool = False


def item_generator(seed: int, epoch: int, index: int, stream: int = 0) -> torch.Generator:
    """A generator that depends only on its arguments (hashed, so nearby seeds decorrelate)."""
    key = struct.pack("<4q", int(seed), int(epoch), int(index), int(stream))
    value = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    return torch.Generator().manual_seed(value & (2**63 - 1))


def draw(geometry: Geometry, generator: torch.Generator) -> Params:
    """Crop corner and flip for one item (pix2pix's ``get_params``: crop first, then flip)."""
    margin = geometry.resized - geometry.size
    if margin > 0 and geometry.crop == "random":
        x = int(torch.randint(0, margin + 1, (1,), generator=generator))
        y = int(torch.randint(0, margin + 1, (1,), generator=generator))
    else:
        x = y = margin // 2
    flip = bool(torch.rand((), generator=generator) < 0.5) if geometry.flip else False
    return Params(x, y, flip)


def apply(
    image: Image.Image,
    geometry: Geometry,
    params: Params,
    *,
    resample: Image.Resampling = Image.Resampling.BICUBIC,
) -> Image.Image:
    """Centre pre-crop, square resize, crop and flip of one PIL image."""
    if geometry.center_crop is not None:
        w, h = image.size
        c = geometry.center_crop
        left, top = (w - c) // 2, (h - c) // 2
        image = image.crop((left, top, left + c, top + c))
    side = geometry.resized
    if image.size != (side, side):
        image = image.resize((side, side), resample)
    if side != geometry.size:
        s = geometry.size
        image = image.crop((params.x, params.y, params.x + s, params.y + s))
    if params.flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def to_tensor(image: Image.Image) -> torch.Tensor:
    """uint8 PIL image (L or RGB) -> float C x H x W in [-1, 1] (x / 127.5 - 1)."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).float()
    return tensor.div_(127.5).sub_(1.0)


def labels_to_tensor(image: Image.Image) -> torch.Tensor:
    """A label map (PIL L or I) -> int64 H x W."""
    return torch.from_numpy(np.asarray(image).astype(np.int64))


def image_item(image: Image.Image, geometry: Geometry, params: Params) -> torch.Tensor:
    """``apply`` then ``to_tensor``: one image as the datasets yield it."""
    return to_tensor(apply(image, geometry, params))


def label_item(image: Image.Image, geometry: Geometry, params: Params) -> torch.Tensor:
    """The same geometry applied to a label map with nearest-neighbour resampling."""
    return labels_to_tensor(apply(image, geometry, params, resample=Image.Resampling.NEAREST))
