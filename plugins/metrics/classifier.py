"""Semantic fidelity by classification: a small CNN trained on real images scores the fakes.

No segmentation or recognition network for the paper's datasets can be had offline, so the
semantic check of generated images is a classifier vemkit trains itself on the real images and
class labels of the dataset (e.g. the shoe classes of the Fashion-MNIST edges->shoes demo):
``classifier_acc`` is its accuracy on the generated images against the eval items' labels. It
is *not* mIoU or an Inception-based score and is reported under its own name.

Training is deterministic (seeded, CPU) and cached as safetensors under
``<cache>/classifier/``, keyed by a SHA-256 of the training images (uint8 at the classifier's
resolution), their labels and every option that shapes the result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.errors import DataError, VemkitError
from vemkit_plugins.metrics.base import Metric, check_images, resize_square, to_rgb, to_uint8
from vemkit_plugins.metrics.cache import atomic_write, cache_dir
from vemkit_plugins.metrics.options import ClassifierOptions

FORMAT = "vemkit-small-cnn-1"  # bump when the architecture or training recipe changes


class SmallCNN(nn.Module):
    """Three stages of (conv3×3, BN, ReLU, conv3×3 stride 2, BN, ReLU), global average pool,
    linear head. Input: N×3×S×S in [-1, 1]."""

    def __init__(self, num_classes: int, width: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for mult in (1, 2, 4):
            out = width * mult
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.Conv2d(out, out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


@dataclass
class LabelledImages:
    """uint8 N×3×S×S images at the classifier's resolution and their int64 labels."""

    images: Tensor
    labels: Tensor

    def digest(self) -> str:
        h = hashlib.sha256(f"{tuple(self.images.shape)};".encode())
        h.update(self.images.contiguous().numpy())
        h.update(self.labels.contiguous().numpy())
        return h.hexdigest()


def prepare(images: Tensor, size: int, metric: str = "classifier") -> Tensor:
    """[-1, 1] float N×C×H×W -> uint8 N×3×size×size (the classifier's input, quantised)."""
    images = to_rgb(check_images(images, "images", metric), metric)
    return to_uint8(resize_square(images.float(), size), "round").cpu()


def _as_input(images: Tensor, device: torch.device) -> Tensor:
    return images.to(device).float() / 127.5 - 1


def labels_of(value: Any, count: int, key: str, where: str) -> Tensor:
    """Integer labels from a tensor / list / int, checked against ``count`` images."""
    try:
        labels = torch.as_tensor(value).long().reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise DataError(f"{where}: '{key}' must hold integer class labels, got {value!r}") from None
    if len(labels) != count:
        raise DataError(f"{where}: {len(labels)} labels under '{key}' for {count} images")
    return labels


def collect(
    items: Iterable[Mapping[str, Any]], image_key: str, label_key: str, size: int
) -> LabelledImages:
    """Read a dataset's items (dicts with an image in [-1, 1] and an integer label)."""
    images: list[Tensor] = []
    labels: list[int] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or image_key not in item or label_key not in item:
            keys = sorted(item) if isinstance(item, Mapping) else type(item).__name__
            raise DataError(
                f"classifier training data: item {index} needs keys '{image_key}' and "
                f"'{label_key}' (has {keys}); set the metric's image_key / label_key"
            )
        image = item[image_key]
        if not isinstance(image, Tensor) or image.dim() != 3:
            raise DataError(f"classifier training data: item {index} '{image_key}' is not C×H×W")
        images.append(prepare(image[None], size)[0])
        labels.append(int(item[label_key]))
    if not images:
        raise DataError("classifier training data: the dataset is empty")
    return LabelledImages(torch.stack(images), torch.tensor(labels, dtype=torch.long))


def _items(dataset: Any) -> Iterable[Mapping[str, Any]]:
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        return (dataset[i] for i in range(len(dataset)))
    return iter(dataset)


def train(
    data: LabelledImages,
    num_classes: int,
    *,
    width: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device | str = "cpu",
) -> SmallCNN:
    """Train a :class:`SmallCNN` (Adam, cross-entropy), deterministically for a given seed."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG untouched
        torch.manual_seed(seed)
        model = SmallCNN(num_classes, width).to(device)
    order = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    n = len(data.labels)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=order)
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            logits = model(_as_input(data.images[idx], device))
            loss = F.cross_entropy(logits, data.labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    _recalibrate_batchnorm(model, data.images, batch_size, device)
    return model.eval().requires_grad_(False)


def _recalibrate_batchnorm(model: nn.Module, images: Tensor, batch_size: int, device) -> None:
    """Set BatchNorm's running statistics to exact averages over the training images.

    With short training (few hundred steps) the exponential running averages still remember
    their initial values, and the eval-mode classifier would score badly for that reason alone.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = plain mean over the batches
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            if len(images) - start >= 2:  # BatchNorm needs two samples
                model(_as_input(images[start : start + batch_size], device))
    for m in norms:
        m.momentum = 0.1


def predict(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """Predicted classes of uint8 classifier inputs."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            out.append(model(_as_input(images[start : start + batch_size], device)).argmax(1))
    return torch.cat(out).cpu() if out else torch.empty(0, dtype=torch.long)


def save_classifier(model: SmallCNN, path: Path, meta: Mapping[str, Any]) -> None:
    """Weights as safetensors with the architecture in the header metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, **{k: json.dumps(v) for k, v in meta.items()}}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=header))


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> SmallCNN:
    """A classifier written by :func:`save_classifier`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    if not path.is_file():
        raise VemkitError(f"{path}: classifier file not found (metric option classifier_path)")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:
        raise VemkitError(f"{path}: not a safetensors classifier ({exc})") from None
    if header.get("format") != FORMAT:
        raise VemkitError(
            f"{path}: written for classifier format {header.get('format')!r}, this vemkit reads "
            f"{FORMAT!r}; retrain it (drop classifier_path)"
        )
    model = SmallCNN(json.loads(header["num_classes"]), json.loads(header["width"]))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval().requires_grad_(False)


class ClassifierAccuracy(Metric):
    """``classifier_acc``: accuracy of the trained classifier on the generated images."""

    name = "classifier"
    higher_is_better = {"classifier_acc": True, "classifier_acc_real": True}

    def __init__(
        self,
        options: ClassifierOptions,
        *,
        registry: Any = None,
        train_dataset: Any = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.options = options
        self.registry = registry
        self.train_dataset = train_dataset
        self.device = torch.device(device or "cpu")
        self.model: SmallCNN | None = None
        self.model_path: Path | None = None
        self.trainings = 0  # how often a classifier was trained (tests, logs)
        self.reset()

    def reset(self) -> None:
        self._fakes: list[Tensor] = []
        self._reals: list[Tensor] = []
        self._labels: list[Tensor] = []

    def update(self, fake: Tensor, real: Tensor | None = None, **batch: Any) -> None:
        key = self.options.label_key
        if key not in batch:
            raise DataError(
                f"metric 'classifier': the eval batch has no '{key}' (keys: {sorted(batch)}); "
                "it needs a dataset with class labels, or set label_key"
            )
        fake = prepare(fake, self.options.image_size)
        self._labels.append(labels_of(batch[key], len(fake), key, "metric 'classifier'"))
        self._fakes.append(fake)
        if real is not None:
            self._reals.append(prepare(real, self.options.image_size))

    def compute(self) -> dict[str, float]:
        if not self._fakes:
            raise VemkitError("metric 'classifier': no generated images were evaluated")
        labels = torch.cat(self._labels)
        model = self.classifier()
        out = {"classifier_acc": _accuracy(predict(model, torch.cat(self._fakes)), labels)}
        if self._reals and len(self._reals) == len(self._fakes):
            out["classifier_acc_real"] = _accuracy(predict(model, torch.cat(self._reals)), labels)
        return out

    # -- the classifier --------------------------------------------------------------------------
    def classifier(self) -> SmallCNN:
        """The classifier: loaded, found in the cache, or trained now (once)."""
        if self.model is not None:
            return self.model
        o = self.options
        if o.classifier_path is not None:
            self.model = load_classifier(o.classifier_path, self.device)
            return self.model
        data = self._training_data()
        num_classes = o.num_classes or int(data.labels.max()) + 1
        if int(data.labels.min()) < 0 or int(data.labels.max()) >= num_classes:
            raise DataError(
                f"classifier training labels span {int(data.labels.min())}.."
                f"{int(data.labels.max())}, outside 0..{num_classes - 1} (num_classes)"
            )
        recipe = {
            "num_classes": num_classes,
            "width": o.width,
            "image_size": o.image_size,
            "epochs": o.epochs,
            "batch_size": o.batch_size,
            "lr": o.lr,
            "seed": o.seed,
        }
        key = hashlib.sha256(
            f"{FORMAT};{json.dumps(recipe, sort_keys=True)};{data.digest()}".encode()
        ).hexdigest()[:24]
        path = cache_dir("classifier", o.cache_dir) / f"classifier-{key}.safetensors"
        if path.is_file():
            self.model = load_classifier(path, self.device)
        else:
            self.trainings += 1
            model = train(
                data,
                num_classes,
                width=o.width,
                epochs=o.epochs,
                batch_size=o.batch_size,
                lr=o.lr,
                seed=o.seed,
                device=self.device,
            )
            acc = _accuracy(predict(model, data.images), data.labels)
            save_classifier(
                model, path, {**recipe, "train_accuracy": acc, "count": len(data.labels)}
            )
            self.model = model
        self.model_path = path
        return self.model

    def _training_data(self) -> LabelledImages:
        o = self.options
        dataset = self.train_dataset
        if o.train_data is not None:
            registry = self.registry
            if registry is None:
                from vemkit import registry as registry_module

                registry = registry_module.default()
            dataset = registry.build("dataset", o.train_data, augment=False)
        if dataset is not None:
            return collect(_items(dataset), o.image_key, o.label_key, o.image_size)
        if not self._reals or len(self._reals) != len(self._fakes):
            raise VemkitError(
                "metric 'classifier' has nothing to train on: give train_data (a labelled "
                "dataset), a classifier_path, or evaluate on data with real targets"
            )
        return LabelledImages(torch.cat(self._reals), torch.cat(self._labels))


def _accuracy(pred: Tensor, labels: Tensor) -> float:
    return float((pred == labels).double().mean()) if len(labels) else float("nan")


def build(options: ClassifierOptions, **context: Any) -> ClassifierAccuracy:
    """Factory of the ``classifier`` metric; context: ``registry`` (to build ``train_data``),
    ``train_dataset`` (the run's training set, used when ``train_data`` is null), ``device``."""
    return ClassifierAccuracy(
        options,
        registry=context.get("registry"),
        train_dataset=context.get("train_dataset"),
        device=context.get("device"),
    )
