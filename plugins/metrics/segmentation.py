"""Segmentation mIoU of generated photos (Cityscapes label->photo protocol).

Protocol of pix2pix / GAN-Compression / OMGD, which the VEM paper reports: each generated photo
is quantised to uint8, scaled to [0, 1], normalised with DRN's Cityscapes mean/std, segmented by
DRN-D-105; the network's output is resized (bilinear) to the label map's size, the argmax is
compared with the train-id labels (255 ignored) in one confusion matrix over the whole set, and
mIoU = mean over classes of TP / (TP + FP + FN), classes absent from both predictions and labels
skipped (``nanmean``), in percent. The reference resizes each channel with PIL's bilinear filter;
``torch.nn.functional.interpolate`` (bilinear, ``align_corners=False``) is used here — the same
sampling grid for upscaling, so predictions may differ only at near-ties.

The network: the built-in DRN-D-105 (:mod:`vemkit_plugins.metrics.drn`) with user-supplied
weights (none can be downloaded offline), any registered ``arch`` (``net: {type: ...}``), or a
ready ``nn.Module`` passed by a caller as ``model=``. Weights are read safely: safetensors, or a
``.pth`` through ``torch.load(weights_only=True)``. TorchScript files are not accepted: loading
one runs code from the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.errors import DataError, VemkitError
from vemkit_plugins.metrics.base import Metric, check_images, to_rgb, to_uint8
from vemkit_plugins.metrics.options import SegmentationOptions


def load_weights(path: str | Path) -> dict[str, Tensor]:
    """A state dict from safetensors or an official ``.pth`` (``weights_only=True``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise VemkitError(f"{path}: segmentation weights not found (metric option weights)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VemkitError(f"{path}: cannot read segmentation weights ({exc})") from None
    for wrapper in ("state_dict", "model"):  # common checkpoint envelopes
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise VemkitError(f"{path}: expected a state dict")
    # Checkpoints saved from nn.DataParallel carry a 'module.' prefix.
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}


def confusion_matrix(pred: Tensor, label: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """``hist[label, pred]`` counts over pixels whose label is a valid class (int64, K×K)."""
    label = label.reshape(-1).long()
    pred = pred.reshape(-1).long()
    valid = (label >= 0) & (label < num_classes) & (label != ignore_index)
    index = label[valid] * num_classes + pred[valid]
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def mean_iou(hist: Tensor) -> tuple[float, float]:
    """(mIoU, pixel accuracy), both in percent, from a confusion matrix."""
    hist = hist.double()
    tp = hist.diag()
    union = hist.sum(0) + hist.sum(1) - tp
    iou = tp / union  # 0/0 = nan for classes in neither predictions nor labels
    miou = float(iou[~iou.isnan()].mean()) * 100 if (~iou.isnan()).any() else float("nan")
    total = float(hist.sum())
    return miou, (float(tp.sum()) / total * 100 if total else float("nan"))


class SegmentationMIoU(Metric):
    """``miou`` and ``pixel_acc`` of a segmentation net on generated photos."""

    name = "segmentation_miou"
    higher_is_better = {"miou": True, "pixel_acc": True}

    def __init__(
        self, options: SegmentationOptions, net: nn.Module, device: torch.device | str | None
    ) -> None:
        self.options = options
        self.device = torch.device(device) if device is not None else None
        self.net = net.eval().requires_grad_(False)
        self._mean = torch.tensor(options.mean).view(1, 3, 1, 1)
        self._std = torch.tensor(options.std).view(1, 3, 1, 1)
        self.reset()

    def reset(self) -> None:
        k = self.options.num_classes
        self.hist = torch.zeros(k, k, dtype=torch.long)

    def update(self, fake: Tensor, real: Tensor | None = None, **batch: Any) -> None:
        o = self.options
        if o.label_key not in batch:
            raise DataError(
                f"metric 'segmentation_miou': the eval batch has no '{o.label_key}' label maps "
                f"(keys: {sorted(batch)}); set label_key"
            )
        fake = to_rgb(check_images(fake, "fake", self.name), self.name)
        labels = torch.as_tensor(batch[o.label_key])
        if labels.dim() == 4 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.dim() != 3 or len(labels) != len(fake):
            raise DataError(
                f"metric 'segmentation_miou': '{o.label_key}' must be N×H×W label maps for "
                f"{len(fake)} images, got shape {tuple(labels.shape)}"
            )
        device = self.device or fake.device
        self.net.to(device)
        for start in range(0, len(fake), o.batch_size):
            images = to_uint8(fake[start : start + o.batch_size], o.quantize)
            x = (images.to(device).float() / 255 - self._mean.to(device)) / self._std.to(device)
            with torch.no_grad():
                out = self.net(x)
            scores = out[0] if isinstance(out, (tuple, list)) else out
            if scores.dim() != 4 or scores.shape[1] != o.num_classes:
                raise VemkitError(
                    f"metric 'segmentation_miou': the net returned {tuple(scores.shape)}, "
                    f"expected N×{o.num_classes}×H×W class scores"
                )
            target = labels[start : start + o.batch_size]
            if scores.shape[-2:] != target.shape[-2:]:
                scores = F.interpolate(
                    scores, size=target.shape[-2:], mode="bilinear", align_corners=False
                )
            pred = scores.argmax(dim=1).cpu()
            self.hist += confusion_matrix(pred, target.cpu(), o.num_classes, o.ignore_index)

    def compute(self) -> dict[str, float]:
        if int(self.hist.sum()) == 0:
            raise VemkitError("metric 'segmentation_miou': no labelled pixels were evaluated")
        miou, acc = mean_iou(self.hist)
        return {"miou": miou, "pixel_acc": acc}


def build(options: SegmentationOptions, **context: Any) -> SegmentationMIoU:
    """Factory of ``segmentation_miou``; context: ``model`` (a ready nn.Module), ``registry``
    (to build ``net``), ``device``. ``weights``, when given, are loaded into whichever net."""
    net = context.get("model")
    if net is None and options.net is not None:
        registry = context.get("registry")
        if registry is None:
            from vemkit import registry as registry_module

            registry = registry_module.default()
        net = registry.build("arch", options.net)
    elif net is None:
        if options.weights is None:
            raise VemkitError(
                "metric 'segmentation_miou' needs the DRN-D-105 Cityscapes weights "
                "(weights: PATH to drn-d-105_ms_cityscapes.pth); they cannot be downloaded "
                "offline. Without them use the 'classifier' metric as the semantic score"
            )
        from vemkit_plugins.metrics.drn import DRNSeg

        net = DRNSeg(options.num_classes)
    if options.weights is not None:
        state = load_weights(options.weights)
        try:
            result = net.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise VemkitError(f"{options.weights}: {exc}") from None
        if result.missing_keys or result.unexpected_keys:
            raise VemkitError(
                f"{options.weights}: does not fit the segmentation net: missing "
                f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
            )
    return SegmentationMIoU(options, net, context.get("device"))
