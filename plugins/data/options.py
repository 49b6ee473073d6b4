"""Options of the built-in datasets and demo sets (torch-free, so ``vemkit validate`` starts fast).

Every dataset resizes to a square ``size`` as pix2pix/CycleGAN do (aspect ratio not kept), or,
with ``load_size``, resizes to ``load_size`` and crops ``size`` (the papers' training recipe:
``load_size: 286, size: 256, flip: true``). Random crops and flips are drawn from a generator
seeded by (seed, epoch, index), so an epoch's items are the same whatever the worker count or
the point a run resumes from. Items are dicts: ``input`` (conditional sets) and ``target``,
C x H x W float tensors in [-1, 1], ``index`` and optionally ``label`` / ``segmentation``.
"""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from vemkit.options import Options

PositiveInt = Annotated[int, Field(gt=0)]


class ImageOptions(Options):
    """Preprocessing shared by the image datasets."""

    root: Annotated[str, Field(min_length=1)]
    """Dataset root folder."""
    size: PositiveInt = 256
    """Side of the square images the dataset yields (paper: 256)."""
    load_size: PositiveInt | None = None
    """Resize to this side first, then crop ``size`` (paper training: 286); ``null``: resize
    straight to ``size``."""
    crop: Literal["random", "center"] = "random"
    """Where the ``size`` crop is taken from a ``load_size`` image when augmenting; sets that
    do not augment always crop the centre."""
    flip: bool = False
    """Random horizontal flip (probability 0.5) when augmenting. Sets augment on a split whose
    name starts with ``train`` (or no split), unless the engine says otherwise."""
    channels: Literal[1, 3] = 3
    """Colour channels of the tensors: 3 (RGB) or 1 (grayscale). Transparent images are
    composited on white."""
    max_items: PositiveInt | None = None
    """Use only the first N items of the split, in sorted file order (quick runs)."""

    @model_validator(mode="after")
    def _load_size_not_below_size(self) -> Self:
        if self.load_size is not None and self.load_size < self.size:
            raise ValueError(f"load_size ({self.load_size}) must be at least size ({self.size})")
        return self


class AlignedOptions(ImageOptions):
    """pix2pix paired images: ``root/<split>/*`` files holding A|B side by side (A left)."""

    split: Annotated[str, Field(min_length=1)] = "train"
    """Sub-folder of ``root`` with the images: train, val or test."""
    direction: Literal["AtoB", "BtoA"] = "AtoB"
    """AtoB: the left half is the input and the right half the target; BtoA swaps them."""
    labels: str | None = None
    """Optional JSON file (relative to ``root``) mapping ``"<split>/<file>"`` to a class index
    under the key ``files`` (the demo sets write ``labels.json``); items then carry ``label``."""


class UnalignedOptions(ImageOptions):
    """CycleGAN unpaired images: ``root/<split>A`` and ``root/<split>B``."""

    split: Annotated[str, Field(min_length=1)] = "train"
    """Split prefix: images are read from ``<split>A`` and ``<split>B`` (trainA/trainB, ...)."""
    direction: Literal["AtoB", "BtoA"] = "AtoB"
    """AtoB translates domain A into B; BtoA swaps the folders."""
    serial: bool | None = None
    """Pair A item i with B item i mod |B| instead of a random B; ``null``: serial except on
    the ``train`` split. Random B images are drawn from a generator seeded by (seed, epoch,
    index). Serial datasets have |A| items, random ones max(|A|, |B|) as in CycleGAN."""
    pairs: str | None = None
    """Optional file of held-out true pairs (relative to ``root``), one ``A_path B_path`` line
    each, paths relative to ``root``. When given, the dataset yields exactly these pairs, with
    the true counterpart as ``target`` (for PSNR/SSIM on an unpaired task)."""


class FolderOptions(ImageOptions):
    """A folder of images for unconditional GANs, searched recursively."""

    split: str | None = None
    """Optional sub-folder of ``root`` to read (e.g. ``train``); ``null`` reads ``root``."""
    labels: bool | None = None
    """Label each image by its top-level sub-folder (ImageFolder layout, classes in sorted
    order); ``null``: only when every image lies in a sub-folder."""
    center_crop: PositiveInt | None = None
    """Crop the centre square of this side before resizing (CelebA's aligned 178x218 faces:
    178); larger than the image is an error."""


class CityscapesOptions(ImageOptions):
    """Cityscapes label -> photo (pix2pix), from the official folders or GAN-Compression's
    prepared A|B files."""

    split: Annotated[str, Field(min_length=1)] = "train"
    """train or val (raw layout; GAN-Compression's prepared layout names val ``test``)."""
    layout: Literal["raw", "prepared"] = "raw"
    """raw: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
    ``gtFine/<split>/<city>/*_gtFine_{color,trainIds,labelIds}.png``; prepared: GAN-Compression's
    ``<split>/<i>.jpg`` with the photo left and the colour label right."""
    table: str | None = None
    """prepared layout: GAN-Compression's ``table.txt`` (``index trainIds_path photo_path`` per
    line, relative to ``cityscapes_root``) so that items carry their ``segmentation``."""
    cityscapes_root: str | None = None
    """Folder that ``table`` paths are relative to (holds ``gtFine/``); ``null``: ``root``."""
    segmentation: bool = True
    """Add the train-id map (19 classes, 255 = ignore) as ``segmentation``."""
    segmentation_size: Literal["image", "full"] = "image"
    """``image``: the map resized (nearest neighbour) and cropped like the images. ``full``: the
    map at its file's resolution (2048×1024 for the official data), which is the pix2pix /
    GAN-Compression / OMGD mIoU protocol (``segmentation_miou`` resizes the segmenter's logits
    to the map's size); only for sets read without crop or flip (evaluation sets, ``load_size``
    unset or equal to ``size``)."""


# -- demo sets ----------------------------------------------------------------------------


class Edges2ShoesFmnistOptions(Options):
    """Paired edges -> shoes from Fashion-MNIST (Debian dataset-fashion-mnist), 64 px."""

    size: Annotated[int, Field(ge=28)] = 64
    """Side of each half: the 28 px images are upsampled (bicubic) to this."""
    sigma: Annotated[float, Field(gt=0)] = 1.5
    """Gaussian width of the Canny edge detector, in pixels of the upsampled image."""
    classes: Annotated[list[Annotated[int, Field(ge=0, le=9)]], Field(min_length=1)] = [5, 7, 9]
    """Fashion-MNIST classes kept: 5 sandal, 7 sneaker, 9 ankle boot."""


class EmojiGoogle2TwitterOptions(Options):
    """Google -> Twitter emoji (npm emoji-datasource-*), 64 px, paired and unpaired forms."""

    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "16.0.0"
    """Pinned version of the npm packages emoji-datasource-google and -twitter."""
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    """Share of base codepoints held out for test (and val); skin-tone variants follow their
    base, chosen by a hash of the codepoint so the split is stable across versions."""


class Fmnist32Options(Options):
    """Unconditional Fashion-MNIST padded to 32x32, class sub-folders, train and test."""

    size: Annotated[int, Field(ge=28)] = 32
    """Side after zero padding (the 28 px image stays centred)."""
