"""The metric kind as a whole: registration, torch-free options, documented fields, protocol."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from vemkit.registry import Registry
from vemkit_plugins import metrics

NAMES = ["classifier", "fid", "l1", "psnr", "segmentation_miou", "ssim"]


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    metrics.register(r)
    return r


def test_all_metrics_are_registered(reg):
    assert reg.names("metric") == NAMES


def test_options_import_without_torch():
    code = (
        "import sys, vemkit_plugins.metrics, vemkit_plugins.metrics.options; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_option_is_documented(reg):
    for comp in reg.components("metric"):
        assert comp.options.__doc__, comp.name
        for field_name, field in comp.options.model_fields.items():
            assert field.description, f"{comp.name}.{field_name} has no docstring"


def test_defaults_follow_the_paper_protocol(reg):
    fid = reg.options("metric", {"type": "fid"})
    assert fid.quantize == "floor"  # tensor2im
    assert fid.kid_subsets == 100 and fid.kid_seed == 2020  # torch-fidelity's defaults
    seg = reg.options("metric", {"type": "segmentation_miou"})
    assert (seg.num_classes, seg.ignore_index) == (19, 255)
    ssim = reg.options("metric", {"type": "ssim"})
    assert (ssim.window_size, ssim.sigma) == (11, 1.5)


def test_unknown_option_is_an_error(reg):
    with pytest.raises(Exception, match="kid_subset"):
        reg.options("metric", {"type": "fid", "kid_subset": 10})


@pytest.mark.parametrize("name", ["psnr", "ssim", "l1"])
def test_protocol_keys_match_directions(reg, name):
    metric = reg.build("metric", {"type": name})
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    metric.update(x, x.flip(0))
    scores = metric.compute()
    assert set(scores) == set(metric.higher_is_better)
    metric.reset()
    metric.update(x, x)
    assert metric.compute() != scores
