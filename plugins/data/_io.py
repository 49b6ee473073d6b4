"""Shared file handling for the datasets: listing, decoding, validation, the base class.

Every problem with the data becomes one :class:`DataError` naming the file or folder. Building a
dataset checks only what listing folders can show (missing root or split, empty split, counts);
decoding problems surface when an item is read, or all at once from :meth:`ImageDataset.check`
(``vemkit data check``), which decodes every file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image

from vemkit.errors import DataError
from vemkit_plugins.data.options import ImageOptions
from vemkit_plugins.data.transforms import Geometry, item_generator

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder``, sorted by their path relative to it (pix2pix's order)."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    images = [p for p in found if p.is_file() and is_image(p)]
    return sorted(images, key=lambda p: p.relative_to(folder).as_posix())


def _listing(folder: Path) -> str:
    try:
        names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        return ""
    if not names:
        return " (it is empty)"
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f" (it holds: {shown})"


def require_root(root: str | Path, component: str) -> Path:
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"{component}: dataset root {path} does not exist")
    if not path.is_dir():
        raise DataError(f"{component}: dataset root {path} is not a folder")
    return path


def require_dir(path: Path, component: str, what: str) -> Path:
    """``path`` if it is a folder; else a DataError that lists what its parent holds."""
    if not path.is_dir():
        raise DataError(f"{component}: {what} folder {path} does not exist{_listing(path.parent)}")
    return path


def require_images(folder: Path, component: str, *, recursive: bool = True) -> list[Path]:
    images = list_images(folder, recursive=recursive)
    if not images:
        raise DataError(
            f"{component}: no images in {folder} (looked for "
            f"{', '.join(IMAGE_EXTENSIONS)}){_listing(folder)}"
        )
    return images


def require_file(path: Path, component: str, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{component}: {what} {path} does not exist")
    return path


def _decode(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}") from None


def open_image(path: Path, channels: int = 3) -> Image.Image:
    """Decode ``path`` as RGB (3) or L (1); transparent pixels are composited on white."""
    image = _decode(path)
    transparent = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if transparent:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("RGB" if channels == 3 else "L")


def open_labels(path: Path) -> Image.Image:
    """Decode a label map (8-bit gray or palette indices) without changing its values."""
    image = _decode(path)
    if image.mode not in ("L", "P", "I", "I;16"):
        raise DataError(f"label map {path} has mode {image.mode}; expected a single-channel PNG")
    return image  # palette images keep their indices, which are the labels


def default_augment(split: str | None) -> bool:
    """Sets augment (random crop/flip) on training splits unless told otherwise."""
    return split is None or split.startswith("train")


class ImageDataset(torch.utils.data.Dataset):
    """Base of the built-in datasets: seed/epoch bookkeeping and the deep check.

    Subclasses set ``component``, list their files in ``__init__`` and implement
    ``__len__``/``__getitem__``; ``check_file`` adds per-file checks beyond decoding.
    """

    component: ClassVar[str] = "dataset"

    def __init__(
        self,
        options: ImageOptions,
        *,
        split: str | None,
        seed: int = 0,
        augment: bool | None = None,
    ) -> None:
        self.options = options
        self.split = split
        self.seed = int(seed)
        self.epoch = 0
        self.augment = default_augment(split) if augment is None else bool(augment)
        self.geometry = Geometry.from_options(options, augment=self.augment)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops/flips/B draws the items use."""
        self.epoch = int(epoch)

    def generator(self, index: int, stream: int = 0) -> torch.Generator:
        return item_generator(self.seed, self.epoch, index, stream)

    def limit(self, items: list[Any]) -> list[Any]:
        n = self.options.max_items
        return items if n is None else items[:n]

    # -- checking ---------------------------------------------------------------------------
    def files(self) -> Iterable[Path]:
        """Every file the dataset reads (for the deep check)."""
        return ()

    def check_file(self, path: Path) -> None:
        """Raise DataError if ``path`` is unusable; the default decodes it."""
        open_image(path, self.options.channels)

    def check(self, *, progress: bool = False) -> list[str]:
        """Decode every file; one message per bad file (an empty list when all are good)."""
        files = list(dict.fromkeys(self.files()))
        problems: list[str] = []
        for path in _progress(files, progress, f"checking {self.component}"):
            try:
                self.check_file(path)
            except DataError as exc:
                problems.append(str(exc))
        return problems

    def describe(self) -> str:
        return f"{self.component} split={self.split} items={len(self)}"  # type: ignore[arg-type]


def _progress(items: list[Path], enabled: bool, desc: str) -> Iterator[Path]:
    if not enabled:
        return iter(items)
    from tqdm import tqdm

    return iter(tqdm(items, desc=desc, unit="file", leave=False))


def context_args(context: dict[str, Any]) -> tuple[str | None, int, bool | None]:
    """``(split_override, seed, augment)`` from a factory's context."""
    return context.get("split_override"), int(context.get("seed", 0)), context.get("augment")


def check_built(build: Any, options: Any, **context: Any) -> list[str]:
    """``build`` the dataset and decode every file; DataErrors become the list of problems."""
    try:
        dataset = build(options, **context)
    except DataError as exc:
        return [str(exc)]
    return dataset.check()
