"""The classifier-accuracy metric on a tiny synthetic 2-class set (bright vs dark images)."""

from __future__ import annotations

import pytest
import torch

from vemkit.errors import DataError, VemkitError
from vemkit.options import Options
from vemkit.registry import Registry
from vemkit_plugins import metrics
from vemkit_plugins.metrics import classifier as clf

SMALL = {"image_size": 16, "width": 8, "epochs": 6, "batch_size": 16}


def _set(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images 3×20×20 in [-1, 1]: label 1 bright (mean +0.5), label 0 dark (mean -0.5)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = 0.3 * torch.randn(n, 3, 20, 20, generator=g) + (labels.float() - 0.5).view(-1, 1, 1, 1)
    return images.clamp(-1, 1), labels


def _items(n: int, seed: int) -> list[dict]:
    images, labels = _set(n, seed)
    return [{"target": img, "label": int(lab)} for img, lab in zip(images, labels, strict=True)]


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    metrics.register(r)
    return r


def test_accuracy_high_on_real_low_on_label_shuffled_fakes(reg, tmp_path):
    metric = reg.build(
        "metric", {"type": "classifier", "cache_dir": str(tmp_path), **SMALL},
        train_dataset=_items(64, seed=0),
    )  # fmt: skip
    images, labels = _set(16, seed=1)  # held-out eval set
    # "Fakes" that look like the other class: the classifier must disagree with the labels.
    metric.update(images.flip(0), images, label=labels)
    scores = metric.compute()
    assert scores["classifier_acc_real"] == 1.0
    assert scores["classifier_acc"] == 0.0  # flip(0) on alternating labels swaps every class
    assert metric.trainings == 1

    metric.reset()
    metric.update(images, None, label=labels.tolist())  # labels may come as a list
    assert metric.compute() == {"classifier_acc": 1.0}


def test_trained_classifier_is_cached_by_data_and_options(reg, tmp_path):
    config = {"type": "classifier", "cache_dir": str(tmp_path), **SMALL}
    images, labels = _set(8, seed=1)
    first = reg.build("metric", config, train_dataset=_items(32, seed=0))
    first.update(images, None, label=labels)
    first.compute()
    assert first.trainings == 1 and first.model_path is not None
    assert first.model_path.suffix == ".safetensors"

    same = reg.build("metric", config, train_dataset=_items(32, seed=0))
    same.update(images, None, label=labels)
    assert same.compute() == first.compute()
    assert same.trainings == 0 and same.model_path == first.model_path  # loaded, not retrained

    other_data = reg.build("metric", config, train_dataset=_items(32, seed=5))
    other_data.update(images, None, label=labels)
    other_data.compute()
    assert other_data.trainings == 1 and other_data.model_path != first.model_path

    other_opts = reg.build("metric", {**config, "epochs": 2}, train_dataset=_items(32, seed=0))
    other_opts.update(images, None, label=labels)
    other_opts.compute()
    assert other_opts.trainings == 1

    # A pre-trained file given explicitly.
    given = reg.build("metric", {"type": "classifier", "classifier_path": str(first.model_path)})
    given.update(images, None, label=labels)
    assert given.compute() == first.compute()


def test_train_data_from_a_registered_dataset(tmp_path):
    class TinyOptions(Options):
        """A synthetic labelled dataset."""

        n: int = 32
        """Number of items."""

    r = Registry()
    metrics.register(r)
    r.add("dataset", "tiny", options=TinyOptions, factory=lambda o, **_: _items(o.n, seed=0))
    metric = r.build(
        "metric",
        {"type": "classifier", "train_data": {"type": "tiny", "n": 32}, "cache_dir": str(tmp_path),
         **SMALL},
        registry=r,
    )  # fmt: skip
    images, labels = _set(8, seed=2)
    metric.update(images, None, label=labels)
    assert metric.compute()["classifier_acc"] == 1.0


def test_falls_back_to_the_eval_reals(reg, tmp_path):
    metric = reg.build("metric", {"type": "classifier", "cache_dir": str(tmp_path), **SMALL})
    images, labels = _set(32, seed=3)
    metric.update(images, images, label=labels)
    assert metric.compute()["classifier_acc_real"] == 1.0  # a training accuracy here


def test_clear_errors(reg, tmp_path):
    metric = reg.build("metric", {"type": "classifier", "cache_dir": str(tmp_path), **SMALL})
    images, labels = _set(4, seed=0)
    with pytest.raises(DataError, match="no 'label'"):
        metric.update(images, None, other=labels)
    with pytest.raises(DataError, match="3 labels"):
        metric.update(images, None, label=labels[:3])
    metric.update(images, None, label=labels)
    with pytest.raises(VemkitError, match="nothing to train on"):
        metric.compute()
    bad = reg.build(
        "metric", {"type": "classifier", "cache_dir": str(tmp_path), **SMALL},
        train_dataset=[{"image": images[0], "label": 0}],
    )  # fmt: skip
    bad.update(images, None, label=labels)
    with pytest.raises(DataError, match="image_key"):
        bad.compute()
    with pytest.raises(VemkitError, match="not found"):
        clf.load_classifier(tmp_path / "missing.safetensors")


def test_training_is_deterministic_and_leaves_the_global_rng_alone():
    images, labels = _set(16, seed=0)
    data = clf.LabelledImages(clf.prepare(images, 16), labels)
    torch.manual_seed(123)
    a = clf.train(data, 2, width=4, epochs=1, batch_size=8, lr=1e-3, seed=7)
    after = torch.rand(1)
    torch.manual_seed(123)
    b = clf.train(data, 2, width=4, epochs=1, batch_size=8, lr=1e-3, seed=7)
    assert torch.equal(torch.rand(1), after)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
