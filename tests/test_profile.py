"""Params / MACs / latency counting and `vemkit profile`."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Annotated

import pytest
import torch
from pydantic import Field
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vemkit import registry as registry_module
from vemkit.commands import profile as profile_cmd
from vemkit.errors import VemkitError
from vemkit.options import Options
from vemkit.profile import (
    ProfileRow,
    count_macs,
    count_params,
    format_macs,
    format_params,
    format_table,
    measure_latency,
    output_shapes,
    profile_module,
    spec_input_shape,
    table_data,
    with_ratio,
)
from vemkit.registry import Registry

REPO = Path(__file__).resolve().parents[1]


# -- golden counts on hand-computable layers -------------------------------------------------
def test_conv2d_macs_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    x = torch.zeros(1, 3, 16, 16)
    # output 8x16x16 positions, each 3 input channels x 3x3 kernel; bias free in both
    expected = 8 * 16 * 16 * 3 * 3 * 3
    assert count_macs(conv, x) == expected == 55296
    assert count_macs(conv, x, "exact") == expected


def test_grouped_conv_counts_input_channels_per_group():
    depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    grouped = nn.Conv2d(8, 16, 1, groups=4)
    x = torch.zeros(1, 8, 10, 10)
    assert count_macs(depthwise, x) == 8 * 10 * 10 * 1 * 9
    assert count_macs(grouped, x) == 16 * 10 * 10 * 2 * 1
    assert count_macs(grouped, x, "exact") == 16 * 10 * 10 * 2


def test_conv_transpose_paper_is_output_based():
    convt = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
    x = torch.zeros(1, 8, 8, 8)
    exact = 8 * 8 * 8 * 4 * 4 * 4  # every input position scatters C_out x k^2 products
    paper = 4 * 16 * 16 * 8 * 4 * 4  # torchprofile: prod(output) x C_in x k^2
    assert count_macs(convt, x, "exact") == exact == 32768
    assert count_macs(convt, x, "paper") == paper == 4 * exact  # stride^2 = 4


def test_linear_and_attention_matmuls():
    lin = nn.Linear(10, 5)
    assert count_macs(lin, torch.zeros(1, 10)) == 50
    assert count_macs(lin, torch.zeros(1, 7, 10), "exact") == 7 * 50

    class Attention(nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            return torch.bmm(q, k.transpose(1, 2))  # (1, 6, 4) x (1, 4, 9)

    attn = Attention()
    for convention in ("paper", "exact"):
        assert count_macs(attn, (torch.zeros(1, 6, 4), torch.zeros(1, 9, 4)), convention) == 216


def test_parametrised_and_hook_spectral_norm_layers_are_counted():
    x = torch.zeros(1, 3, 8, 8)
    expected = 8 * 8 * 8 * 3 * 9
    new = nn.utils.parametrizations.spectral_norm(nn.Conv2d(3, 8, 3, padding=1))
    old = nn.utils.spectral_norm(nn.Conv2d(3, 8, 3, padding=1))
    assert count_macs(new, x) == expected
    assert count_macs(old, x) == expected
    # The old hook stores the computed weight as a plain attribute: counting on the meta
    # device must not leave a meta tensor behind.
    assert old.weight.device.type == "cpu"
    assert old(torch.randn(1, 3, 8, 8)).isfinite().all()


def test_count_falls_back_to_real_tensors_for_data_dependent_code():
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scale = float(x.abs().max().item()) + 1.0  # .item() cannot run on meta
            return self.conv(x) * scale

    assert count_macs(DataDependent(), torch.zeros(1, 2, 5, 5)) == 4 * 25 * 2


def test_exact_equals_flop_counter_on_a_real_forward():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 4, 2, 1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.ConvTranspose2d(8, 3, 4, 2, 1),
        nn.Flatten(),
        nn.Linear(3 * 16 * 16, 10),
    ).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    assert count_macs(net, x, "exact") == counter.get_total_flops() // 2
    # paper differs only by the transposed conv: stride^2 x its true 8x8x8x3x16 MACs
    assert count_macs(net, x, "paper") - count_macs(net, x, "exact") == 3 * 8 * 8 * 8 * 3 * 16


def test_counting_keeps_train_flags_and_weights():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5)).train()
    net[2].eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    count_macs(net, torch.zeros(1, 3, 8, 8))
    assert net.training and net[1].training and not net[2].training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # BN running stats untouched


def test_unknown_convention_and_bad_inputs():
    with pytest.raises(ValueError, match="paper, exact"):
        count_macs(nn.Linear(2, 2), torch.zeros(1, 2), "thop")
    with pytest.raises(TypeError):
        count_macs(nn.Linear(2, 2), "not a tensor")


def test_count_params_counts_shared_weights_once():
    lin = nn.Linear(4, 3)
    tied = nn.Sequential(lin, nn.ReLU(), lin)
    assert count_params(tied) == 4 * 3 + 3


def test_output_shapes_on_meta():
    net = nn.Sequential(nn.Conv2d(3, 5, 4, 2, 1), nn.ReLU())
    assert output_shapes(net, torch.zeros(1, 3, 32, 32)) == [(1, 5, 16, 16)]


# -- formatting as the papers print it -------------------------------------------------------
def test_formatting_matches_the_paper_tables():
    # VEM paper Table 1: "18.60G (1.0x)" original, "1.22G (15.3x)" / "3.40M (16.0x)" OMGD*
    assert format_macs(18.60e9) == "18.60G"
    assert with_ratio(format_macs(1_218_707_456), 18.60e9, 1_218_707_456) == "1.22G (15.3x)"
    assert with_ratio(format_params(3_404_451), 54.40e6, 3_404_451) == "3.40M (16.0x)"
    # Table 2: mobile ResNet ngf16, 137,347 params printed as 0.14M
    assert format_params(137_347) == "0.14M"
    assert format_macs(527_430_000) == "527.43M"
    assert format_macs(950) == "950"


# -- latency -----------------------------------------------------------------------------------
def test_measure_latency_reports_median_and_p90():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    result = measure_latency(net, torch.zeros(1, 3, 16, 16), runs=5, warmup=1)
    assert result["runs"] == 5 and result["compiled"] is False and result["note"] is None
    assert 0 < result["median_s"] <= result["p90_s"]
    with pytest.raises(ValueError):
        measure_latency(net, torch.zeros(1, 3, 16, 16), runs=0)


def test_compile_failure_falls_back_with_a_note(monkeypatch):
    def broken_compile(module, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", broken_compile)
    result = measure_latency(nn.ReLU(), torch.zeros(1, 4), runs=2, warmup=0, compiled=True)
    assert result["compiled"] is False and result["median_s"] is None
    assert result["note"] == "torch.compile unavailable: RuntimeError: no C++ compiler found"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None, reason="torch.compile on CPU needs a C compiler")
def test_compiled_latency_with_inductor():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    x = torch.randn(1, 3, 16, 16)
    result = measure_latency(net, x, runs=3, warmup=1, compiled=True)
    assert result["compiled"] is True and result["note"] is None and result["median_s"] > 0
    torch._dynamo.reset()


# -- rows and tables ---------------------------------------------------------------------------
def _conv_net(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 1))


def test_profile_rows_and_table_ratios():
    teacher = profile_module("teacher", _conv_net(16), (3, 8, 8), latency_runs=2, arch="conv")
    student = profile_module("student", _conv_net(4), (3, 8, 8), latency_runs=2, arch="conv")
    energy = ProfileRow("mi.energy", 10, 100, 100, [(1, 3, 8, 8)] * 2, generator=False)
    assert teacher.params == 3 * 16 * 9 + 16 + 16 * 3 + 3
    assert teacher.macs == 16 * 64 * 27 + 3 * 64 * 16  # conv 3->16 k3, conv 16->3 k1
    assert student.macs_paper == student.macs_exact == 4 * 64 * 27 + 3 * 64 * 4
    data = table_data([teacher, student, energy])
    assert data[0]["macs_ratio"] == 1.0
    assert data[1]["macs_ratio"] == pytest.approx(teacher.macs / student.macs)  # 4.0
    assert data[1]["params_ratio"] == pytest.approx(teacher.params / student.params)
    assert data[1]["speedup"] > 0
    assert "macs_ratio" not in data[2]  # no ratio for a non-generator
    text = format_table([teacher, student, energy])
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["module", "arch", "MACs", "(paper)"]
    assert "(1.0x)" in lines[2] and "(4.0x)" in lines[3]
    assert lines[4].startswith("mi.energy") and "(" not in lines[4].split()[2]
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule aligned


# -- the paper's architectures (baselines.md §0; offline_assets.md §5) -----------------------
ARCH_FILES = ("unet.py", "resnet.py", "mobile_resnet.py")
_missing = [f for f in ARCH_FILES if not (REPO / "plugins" / "archs" / f).exists()]


@pytest.mark.skipif(bool(_missing), reason=f"plugins/archs/{', '.join(_missing)} missing")
@pytest.mark.parametrize(
    ("config", "params", "paper", "exact"),
    [
        # torchprofile 18.143G (we skip its eval-BN term, 0.003G); exact = FlopCounterMode 6.048G
        ({"type": "unet", "ngf": 64}, 54_413_955, 18.14e9, 6.05e9),
        ({"type": "unet", "ngf": 16}, 3_404_451, 1.219e9, None),  # OMGD student
        ({"type": "resnet", "ngf": 64}, 11_378_179, 56.80e9, 49.55e9),  # CycleGAN original
        ({"type": "mobile_resnet", "ngf": 16}, 137_347, 1.408e9, None),  # OMGD student
    ],
)
def test_paper_architectures(config, params, paper, exact):
    from vemkit_plugins import archs

    reg = Registry()
    archs.register(reg)
    net = reg.build("arch", config)
    x = torch.zeros(1, 3, 256, 256)
    assert count_params(net) == params
    tol = 0.01e9 if paper >= 10e9 else 0.001e9
    assert count_macs(net, x, "paper") == pytest.approx(paper, abs=tol)
    if exact is not None:
        assert count_macs(net, x, "exact") == pytest.approx(exact, abs=0.01e9)


# -- the command -------------------------------------------------------------------------------
class TinyNetOptions(Options):
    """A two-conv test network."""

    width: Annotated[int, Field(gt=0)] = 4
    """Hidden channels."""
    input_nc: Annotated[int, Field(gt=0)] = 3
    """Input channels."""


def _build_tiny(options: TinyNetOptions, **context: object) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(options.input_nc, options.width, 3, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(options.width, 3, 4, 2, 1),
    )


def _tiny_macs(width: int, size: int, convention: str, c: int = 3) -> int:
    conv = width * size * size * c * 9
    convt = width * size * size * 3 * 16  # input-based
    return conv + (4 * convt if convention == "paper" else convt)


@pytest.fixture
def tiny_registry(monkeypatch):
    reg = Registry()
    reg.add("arch", "tiny", options=TinyNetOptions, factory=_build_tiny)
    reg.add("arch", "tiny_d", options=TinyNetOptions, factory=_build_tiny)
    monkeypatch.setattr(registry_module, "_default", reg)
    return reg


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vemkit")
    sub = parser.add_subparsers(dest="command")
    profile_cmd.add_parser(sub)
    args = parser.parse_args(["profile", *argv])
    return profile_cmd.run(args)


def test_cli_arch_json(tiny_registry, capsys):
    argv = ["--arch", "{type: tiny, width: 6}", "--input", "3x8x8", "--json", "--latency-runs", "2"]
    assert _run([*argv, "--macs-convention", "exact"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (row,) = payload["rows"]
    assert row["name"] == "tiny" and row["input_shapes"] == [[1, 3, 8, 8]]
    assert row["macs_paper"] == _tiny_macs(6, 8, "paper")
    assert row["macs"] == row["macs_exact"] == _tiny_macs(6, 8, "exact")
    assert row["latency"]["runs"] == 2 and payload["convention"] == "exact"


def test_cli_arch_table_without_latency(tiny_registry, capsys):
    assert _run(["--arch", "{type: tiny}", "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert "latency" not in out
    assert format_macs(_tiny_macs(4, 256, "paper")) in out and "3x256x256" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arch", "{type: tiny}", "--input", "3by8"], "--input: expected a shape"),
        (["--arch", "[1, 2]"], "--arch: expected {type"),
        (["--arch", "{type: tinny}"], "did you mean 'tiny'"),
        (["--arch", "{type: tiny, width: 0}"], "--arch.width: Input should be greater than 0"),
        (["--arch", "{type: tiny}", "spec.yaml"], "one of them"),
        ([], "one of them"),
        (["--arch", "{type: tiny}", "--set", "a=1"], "--set applies to a SPEC"),
    ],
)
def test_cli_errors_name_the_argument(tiny_registry, argv, message):
    if "spec.yaml" in argv:
        argv = ["spec.yaml", *[a for a in argv if a != "spec.yaml"]]
    with pytest.raises(VemkitError, match=message.replace("[", r"\[").replace("{", r"\{")):
        _run(argv)


class _NS:
    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)


class _Method(Options):
    """A method with a discriminator field, as a method plugin declares it."""

    discriminator: object = None
    """The discriminator's arch options."""


def test_spec_modules_finds_discriminators_and_sizes(tiny_registry):
    # A validated spec stands in as plain attributes: the lookups only read them.
    opts = tiny_registry.options
    spec = _NS(
        task="paired",
        data=_NS(train=_NS(size=16)),
        teacher=_NS(arch=opts("arch", {"type": "tiny", "width": 8})),
        student=_NS(arch=opts("arch", {"type": "tiny", "width": 2})),
        method=_Method(),
        mi=_NS(energy=None),
    )
    assert spec_input_shape(spec) == (3, 16, 16)
    items, notes = profile_cmd.spec_modules(spec)
    assert [i["name"] for i in items] == ["teacher", "student"] and notes == []

    spec.method = _Method(discriminator=opts("arch", {"type": "tiny_d", "input_nc": 6}))
    items, _ = profile_cmd.spec_modules(spec)
    d = items[-1]
    # the student upsamples 16 -> 32; a pix2pix D sees concat(input, output) at that size
    assert d["name"] == "method.discriminator" and d["shape"] == (6, 32, 32)
    assert d["generator"] is False
    spec.data = _NS(train=_NS())  # no size: the papers' 256
    assert spec_input_shape(spec) == (3, 256, 256)


def _spec_ready(*extra: tuple[str, str]) -> str | None:
    registry_module.reset()
    reg = registry_module.default()
    need = [("arch", "unet"), ("dataset", "aligned"), ("method", "kd"), ("mi", "none"), *extra]
    missing = [f"{k} '{n}'" for k, n in need if n not in reg.names(k)]
    registry_module.reset()
    return f"not registered yet: {', '.join(missing)}" if missing else None


def test_cli_spec_path(write_spec, capsys):
    reason = _spec_ready()
    if reason:
        pytest.skip(reason)
    path = write_spec(
        """\
        vemkit: 1
        name: prof
        data:
          train: {type: aligned, root: data/e2s, split: train, size: 256}
        teacher:
          arch: {type: unet, ngf: 16}
        student:
          arch: {type: unet, ngf: 8}
        method: {type: kd}
        """
    )
    assert _run([str(path), "--json", "--no-latency", "--set", "student.arch.ngf=4"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["name"] for r in rows[:2]] == ["teacher", "student"]
    assert rows[0]["macs_paper"] == pytest.approx(1.219e9, abs=0.001e9)
    # ngf 16 -> 4 scales inner convs by (16/4)^2 = 16 and the 3-channel end layers by 4
    assert 10 < rows[1]["macs_ratio"] < 16


def test_cli_spec_path_profiles_discriminator_and_energy(write_spec, capsys):
    reason = _spec_ready(("mi", "vem"), ("energy", "conv_sn"), ("arch", "patchgan"))
    if reason:
        pytest.skip(reason)
    path = write_spec(
        """\
        vemkit: 1
        name: prof
        data:
          train: {type: aligned, root: data/e2s, split: train}
        teacher:
          arch: {type: unet, ngf: 16}
        student:
          arch: {type: unet, ngf: 16}
        method: {type: kd, gan_weight: 1.0, discriminator: {type: patchgan, input_nc: 6}}
        mi: {type: vem, energy: {type: conv_sn, width: 8}}
        """
    )
    assert _run([str(path), "--json", "--no-latency"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["student"]["macs_ratio"] == 1.0
    d = rows["method.discriminator"]
    assert d["input_shapes"] == [[1, 6, 256, 256]] and "macs_ratio" not in d
    energy = rows["mi.energy"]
    assert energy["input_shapes"] == [[1, 3, 256, 256], [1, 3, 256, 256]]  # one (t, s) pair
    # offline_assets.md §5: VEM energy net c=8 has 107,473 params and costs 0.128G per pair in
    # the authors' layout (126.7M exact); vemkit folds each block's pool into its convolutions
    # and runs 77,771,312 MACs (tests/test_mi_speed.py checks the fold against that layout)
    assert energy["params"] == 107_473
    assert energy["macs_exact"] == pytest.approx(77.77e6, rel=0.015)
