"""Analytic MACs of width configurations against vemkit.profile's counter, and thop_legacy."""

from __future__ import annotations

import random

import pytest
import torch

from tests.test_compress_channels import Attention, CatSkip, Chain, meta_build
from vemkit.cli import main
from vemkit.profile import count_macs
from vemkit_plugins.compress.channels import analyze
from vemkit_plugins.compress.macs import WidthMacs, width_macs
from vemkit_plugins.compress.slicing import apply_widths, meta_copy

CONVENTIONS = ("paper", "exact", "thop_legacy")

PAPER_NETS = [
    ({"type": "unet", "ngf": 64}, (3, 256, 256)),
    ({"type": "mobile_resnet", "ngf": 16}, (3, 256, 256)),
    ({"type": "sub_mobile_resnet", "config": "16_16_32_16_32_32_16_16"}, (3, 256, 256)),
    ({"type": "resnet", "ngf": 64}, (3, 256, 256)),
    ({"type": "sagan_generator", "ngf": 64}, (128,)),
]


@pytest.mark.parametrize(("config", "shape"), PAPER_NETS)
def test_full_widths_equal_the_profile_counter(config, shape):
    model = meta_build(config)
    graph = analyze(model, shape)
    x = torch.zeros(1, *shape)
    for convention in CONVENTIONS:
        assert WidthMacs(graph, convention)() == count_macs(model, x, convention), convention


def test_known_figures():
    # baselines.md §0: U-Net ngf 64 18.14G (paper) / 6.05G (exact); SAGAN 23,449,600 and
    # 15,624,192 in GCC's old-thop count (the true cost is ≈200M).
    unet = width_macs(meta_build({"type": "unet", "ngf": 64}), (3, 256, 256))
    assert unet() == 18_140_364_800
    for ngf, legacy in ((64, 23_449_600), (48, 15_624_192)):
        sagan = meta_build({"type": "sagan_generator", "ngf": ngf})
        assert width_macs(sagan, (128,), "thop_legacy")() == legacy
        assert count_macs(sagan, torch.zeros(1, 128), "thop_legacy") == legacy


@pytest.mark.parametrize(
    ("config", "shape"), [*PAPER_NETS[1:], ({"type": "unet", "ngf": 8}, (3, 256, 256))]
)
def test_sliced_network_equals_the_formula(config, shape):
    model = meta_build(config)
    graph = analyze(model, shape)
    rng = random.Random(0)
    widths = {s.name: rng.randint(1, s.size) for s in graph.prunable()}
    sliced = apply_widths(meta_copy(model), widths, graph=graph)
    x = torch.zeros(1, *shape)
    for convention in CONVENTIONS:
        assert WidthMacs(graph, convention)(widths) == count_macs(sliced, x, convention)


@pytest.mark.parametrize("cls", [Chain, CatSkip, Attention])
def test_tiny_nets_by_hand_and_by_counter(cls):
    model = cls()
    graph = analyze(model, (3, 8, 8))
    macs = WidthMacs(graph, "paper")
    if cls is Chain:
        # 64 positions: c1 3·9·w1, c2 w1·9·w2, out w2·1·3.
        assert macs({"c1": 5, "c2": 4}) == 64 * (3 * 9 * 5 + 5 * 9 * 4 + 4 * 3)
    widths = {s.name: max(1, s.size - 3) for s in graph.prunable()}
    sliced = apply_widths(meta_copy(model), widths, graph=graph)
    for convention in CONVENTIONS:
        expected = count_macs(sliced, torch.zeros(1, 3, 8, 8), convention)
        assert WidthMacs(graph, convention)(widths) == expected


def test_unknown_convention():
    graph = analyze(Chain(), (3, 8, 8))
    with pytest.raises(ValueError, match="unknown MAC convention 'torchprofile'"):
        WidthMacs(graph, "torchprofile")


def test_profile_cli_accepts_thop_legacy(capsys):
    code = main(
        [
            "profile",
            "--arch",
            "{type: sagan_generator, ngf: 48}",
            "--input",
            "128",
            "--no-latency",
            "--macs-convention",
            "thop_legacy",
            "--json",
        ]
    )
    assert code in (0, None)
    out = capsys.readouterr().out
    assert '"macs": 15624192' in out and '"convention": "thop_legacy"' in out


def test_unprunable_spaces_stay_full():
    macs = WidthMacs(analyze(Chain(), (3, 8, 8)), "paper")
    assert macs({"out": 1}) == macs() == 64 * (3 * 9 * 8 + 8 * 9 * 6 + 6 * 3)
