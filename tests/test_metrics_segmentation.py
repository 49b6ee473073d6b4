"""segmentation_miou with a tiny 1×1-conv segmenter against a hand-computed confusion matrix."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vemkit.errors import DataError, VemkitError
from vemkit.options import Options
from vemkit.registry import Registry
from vemkit_plugins import metrics
from vemkit_plugins.metrics.drn import DRNSeg
from vemkit_plugins.metrics.segmentation import confusion_matrix, mean_iou

R, G, B = (1.0, -1.0, -1.0), (-1.0, 1.0, -1.0), (-1.0, -1.0, 1.0)  # pure colours in [-1, 1]
IDENTITY = {"mean": [0, 0, 0], "std": [1, 1, 1]}  # the net then sees x = uint8 / 255


class ColourSegOptions(Options):
    """A 1×1 conv whose class c scores colour channel c (the test's segmenter)."""

    classes: int = 3
    """Number of output classes (>= 3; extra classes score 0)."""


def colour_seg(options: ColourSegOptions, **_) -> nn.Module:
    net = nn.Conv2d(3, options.classes, 1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
        for c in range(3):
            net.weight[c, c] = 1.0
    return net


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    metrics.register(r)
    r.add("arch", "colour_seg", options=ColourSegOptions, factory=colour_seg)
    return r


def _image(rows) -> torch.Tensor:
    return torch.tensor(rows).permute(2, 0, 1)  # H×W×3 -> 3×H×W


# Two 2×2 images. Predictions = the pure colour's class; 255 = ignored.
FAKE = torch.stack([_image([[R, G], [B, R]]), _image([[G, G], [B, B]])])
LABELS = torch.tensor([[[0, 1], [2, 1]], [[1, 255], [2, 0]]])
# hist[label, pred]: (0,0) (1,1) (2,2) (1,0) | (1,1) (2,2) (0,2)
#   label 0: [1, 0, 1]   label 1: [1, 2, 0]   label 2: [0, 0, 2]
# IoU = TP / (row + col - TP): 1/3, 2/3, 2/3 -> mIoU 5/9; pixel acc 5/7.
MIOU = 100 * 5 / 9
PIXEL_ACC = 100 * 5 / 7


def _build(reg, **extra):
    config = {"type": "segmentation_miou", "net": {"type": "colour_seg"}, "num_classes": 3}
    return reg.build("metric", {**config, **IDENTITY, **extra}, registry=reg)


def test_miou_from_hand_computed_confusion_matrix(reg):
    metric = _build(reg)
    metric.update(FAKE, None, segmentation=LABELS)
    assert torch.equal(metric.hist, torch.tensor([[1, 0, 1], [1, 2, 0], [0, 0, 2]]))
    scores = metric.compute()
    assert scores["miou"] == pytest.approx(MIOU, abs=1e-9)
    assert scores["pixel_acc"] == pytest.approx(PIXEL_ACC, abs=1e-9)
    assert metric.higher_is_better == {"miou": True, "pixel_acc": True}


def test_predictions_are_resized_to_the_label_size(reg):
    # Labels at twice the resolution (each label pixel repeated 2×2). Bilinear upsampling of the
    # scores keeps every output pixel's nearest input dominant (weight >= 9/16 > 7/16), so the
    # prediction is the nearest-neighbour upsampling and every count is multiplied by 4.
    big = LABELS.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    metric = _build(reg, batch_size=1)  # batching must not matter either
    metric.update(FAKE, None, segmentation=big[:, None])  # N×1×H×W labels are accepted
    assert torch.equal(metric.hist, 4 * torch.tensor([[1, 0, 1], [1, 2, 0], [0, 0, 2]]))
    assert metric.compute()["miou"] == pytest.approx(MIOU, abs=1e-9)


def test_absent_classes_are_skipped_and_reset(reg):
    # A 4th class that is neither predicted nor labelled has IoU 0/0 and is left out (nanmean).
    metric = _build(reg, num_classes=4, net={"type": "colour_seg", "classes": 4})
    metric.update(FAKE, None, segmentation=LABELS)
    assert metric.compute()["miou"] == pytest.approx(MIOU, abs=1e-9)
    metric.reset()
    metric.update(FAKE[:1], None, segmentation=LABELS[:1])
    # image 0 alone: label 0 [1,0,0], label 1 [1,1,0], label 2 [0,0,1] -> IoU 1/2, 1/2, 1
    assert metric.compute()["miou"] == pytest.approx(100 * 2 / 3, abs=1e-9)


def test_confusion_matrix_ignores_out_of_range_labels():
    hist = confusion_matrix(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 255, 7]), 2, 255)
    assert torch.equal(hist, torch.tensor([[1, 0], [0, 1]]))
    miou, acc = mean_iou(hist)
    assert (miou, acc) == (100.0, 100.0)
    assert math.isnan(mean_iou(torch.zeros(2, 2, dtype=torch.long))[0])


def test_default_normalisation_is_cityscapes(reg):
    metric = reg.build(
        "metric", {"type": "segmentation_miou", "net": {"type": "colour_seg"}, "num_classes": 3},
        registry=reg,
    )  # fmt: skip
    assert metric.options.mean[0] == pytest.approx(0.29010095242892997)
    assert metric.options.std[2] == pytest.approx(0.18447508988480435)


def test_weights_are_loaded_safely(reg, tmp_path):
    from safetensors.torch import save_file

    trained = colour_seg(ColourSegOptions())
    as_pth = tmp_path / "seg.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in trained.state_dict().items()}}, as_pth)
    as_st = tmp_path / "seg.safetensors"
    save_file(dict(trained.state_dict()), str(as_st))

    class Blank(nn.Conv2d):
        def __init__(self):
            super().__init__(3, 3, 1)
            nn.init.zeros_(self.weight)

    for path in (as_pth, as_st):
        metric = reg.build(
            "metric", {"type": "segmentation_miou", "weights": str(path), "num_classes": 3,
                       **IDENTITY},
            model=Blank(),
        )  # fmt: skip
        metric.update(FAKE, None, segmentation=LABELS)
        assert metric.compute()["miou"] == pytest.approx(MIOU, abs=1e-9)

    with pytest.raises(VemkitError, match="missing"):
        reg.build(
            "metric", {"type": "segmentation_miou", "weights": str(as_st), "num_classes": 3},
            model=nn.Sequential(nn.Conv2d(3, 3, 1)),
        )  # fmt: skip


def test_clear_errors(reg):
    with pytest.raises(VemkitError, match="DRN-D-105 Cityscapes weights"):
        reg.build("metric", {"type": "segmentation_miou"})
    metric = _build(reg)
    with pytest.raises(DataError, match="no 'segmentation'"):
        metric.update(FAKE, None, label=LABELS)
    with pytest.raises(DataError, match="N×H×W"):
        metric.update(FAKE, None, segmentation=LABELS[0])
    wrong = _build(reg, num_classes=5)  # the net still returns 3 channels
    with pytest.raises(VemkitError, match="expected N×5×H×W"):
        wrong.update(FAKE, None, segmentation=LABELS)


def test_drn_d_105_structure():
    net = DRNSeg(19).eval()
    keys = list(net.state_dict())
    # The authors' segmentation wrapper's names: base.<0..8>, seg, up.
    assert keys[0] == "base.0.0.weight" and keys[-3:] == ["seg.weight", "seg.bias", "up.weight"]
    assert {k.split(".")[1] for k in keys if k.startswith("base.")} == {str(i) for i in range(9)}
    assert len([k for k in keys if k.endswith("conv2.weight")]) == 3 + 4 + 23 + 3  # bottlenecks
    with torch.no_grad():
        log_probs, logits = net(torch.rand(1, 3, 32, 48))
        assert log_probs.shape == (1, 19, 32, 48) and logits.shape == (1, 19, 4, 6)
        assert torch.allclose(log_probs.exp().sum(1), torch.ones(1, 32, 48), atol=1e-5)
        # The frozen upsampler is bilinear: a constant map stays constant away from the border.
        up = net.up(torch.ones(1, 19, 6, 6))
    assert not net.up.weight.requires_grad
    assert torch.allclose(up[..., 8:-8, 8:-8], torch.ones_like(up[..., 8:-8, 8:-8]))
