"""`vemkit export`: the student alone as ONNX / TorchScript / safetensors, verified on reload."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Annotated

import pytest
import torch
from pydantic import Field
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from vemkit import export as export_mod
from vemkit import registry as registry_module
from vemkit.commands import export as export_cmd
from vemkit.errors import VemkitError
from vemkit.export import (
    RUN_SPEC,
    RUN_STUDENT,
    default_output,
    export_module,
    load_student,
)
from vemkit.options import Options
from vemkit.registry import Registry

# torch 2.14 flags torch.jit.load as deprecated; the tests load TorchScript on purpose.
JIT_LOAD = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


class TinyGenOptions(Options):
    """A small encoder-decoder with BatchNorm, a transposed conv and tanh."""

    ngf: Annotated[int, Field(gt=0)] = 4
    """Base width."""


def _build(options: TinyGenOptions, **context: object) -> nn.Module:
    n = options.ngf
    return nn.Sequential(
        nn.Conv2d(3, n, 4, 2, 1),
        nn.BatchNorm2d(n),
        nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(n, 3, 4, 2, 1),
        nn.Tanh(),
    )


def _trained(ngf: int = 4, seed: int = 0) -> nn.Module:
    """A net whose BatchNorm has non-trivial running statistics, as a trained one has."""
    torch.manual_seed(seed)
    net = _build(TinyGenOptions(ngf=ngf))
    with torch.no_grad():
        net.train()(torch.randn(4, 3, 16, 16) * 2 + 0.5)
    return net.eval()


@pytest.fixture
def tiny_registry(monkeypatch):
    reg = Registry()
    reg.add("arch", "tiny_gen", options=TinyGenOptions, factory=_build)
    monkeypatch.setattr(registry_module, "_default", reg)
    return reg


def _save(net: nn.Module, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


# -- export_module: each format is reloaded and compared -------------------------------------
def test_onnx_export_runs_in_onnxruntime_with_dynamic_batch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = _trained()
    result = export_module(net, (3, 16, 16), "onnx", tmp_path / "g.onnx")
    assert result.path.is_file() and result.bytes == result.path.stat().st_size
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    assert result.verified_with.startswith("onnxruntime")
    # Independent check: a batch of 3 through onnxruntime equals PyTorch (batch is dynamic).
    x = torch.randn(3, 3, 16, 16)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(out), net(x), atol=1e-5)
    assert list(tmp_path.iterdir()) == [result.path]  # no temporary left behind


@JIT_LOAD
def test_torchscript_export_reloads(tmp_path):
    net = _trained()
    result = export_module(net, (3, 16, 16), "torchscript", tmp_path / "g.torchscript.pt")
    assert result.max_abs_diff == 0.0 and result.input_shape == (1, 3, 16, 16)
    loaded = torch.jit.load(str(result.path))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_safetensors_export_carries_weights_and_metadata(tmp_path):
    net = _trained()
    arch = {"type": "tiny_gen", "ngf": 4}
    result = export_module(
        net, (3, 16, 16), "safetensors", tmp_path / "g.safetensors", metadata={"vemkit.arch": arch}
    )
    assert result.max_abs_diff == 0.0
    with safe_open(str(result.path), framework="pt") as f:
        meta = f.metadata()
        assert json.loads(meta["vemkit.arch"]) == arch
        assert meta["vemkit.input_shape"] == "3x16x16"
        assert set(f.keys()) == set(net.state_dict())
        assert torch.equal(f.get_tensor("1.running_var"), net.state_dict()["1.running_var"])


def test_a_mismatching_export_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "_max_diff", lambda a, b: 0.5)
    target = tmp_path / "g.torchscript.pt"
    with pytest.raises(VemkitError, match=r"differs from PyTorch by 0\.5 .*nothing written"):
        export_module(_trained(), (3, 16, 16), "torchscript", target)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced_only_on_success(tmp_path, monkeypatch):
    target = tmp_path / "g.safetensors"
    target.write_bytes(b"previous")
    monkeypatch.setattr(export_mod, "_max_diff", lambda a, b: 1.0)
    with pytest.raises(VemkitError):
        export_module(_trained(), (3, 16, 16), "safetensors", target)
    assert target.read_bytes() == b"previous"


def test_unknown_format():
    with pytest.raises(VemkitError, match="onnx, torchscript, safetensors"):
        export_module(_trained(), (3, 16, 16), "tflite", "x.tflite")


# -- where the student comes from ------------------------------------------------------------
def test_load_student_from_weights_and_arch(tiny_registry, tmp_path):
    net = _trained(ngf=6)
    weights = _save(net, tmp_path / "student.safetensors")
    student = load_student(weights, arch={"type": "tiny_gen", "ngf": 6}, input_shape=(3, 8, 8))
    assert student.input_shape == (3, 8, 8) and student.weights == weights
    for k, v in net.state_dict().items():
        assert torch.equal(student.module.state_dict()[k], v), k
    assert not student.module.training


def test_load_student_reports_a_wrong_arch(tiny_registry, tmp_path):
    weights = _save(_trained(ngf=6), tmp_path / "student.safetensors")
    with pytest.raises(
        VemkitError,
        match=r"student\.safetensors: weights do not fit .*0\.weight "
        r"\(6, 3, 4, 4\) vs \(4, 3, 4, 4\)",
    ):
        load_student(weights, arch={"type": "tiny_gen", "ngf": 4})
    partial = tmp_path / "partial.safetensors"
    save_file({"0.weight": torch.zeros(4, 3, 4, 4), "extra": torch.zeros(1)}, str(partial))
    with pytest.raises(VemkitError, match=r"missing \d+ keys .*unexpected 1 keys \(extra\)"):
        load_student(partial, arch={"type": "tiny_gen", "ngf": 4})


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda p: p / "nothing", {}, "no such run directory or file"),
        (lambda p: p, {}, "not a run directory"),
        (lambda p: _touch(p / "w.pt"), {}, "expected a run directory or a .safetensors"),
        (lambda p: _touch(p / "w.safetensors"), {}, "needs the spec"),
        (lambda p: _touch(p / "w.safetensors"), {"arch": {"type": "tiny_gen"}}, "not a readable"),
    ],
)
def test_load_student_errors_name_the_path(tiny_registry, tmp_path, make, kwargs, message):
    source = make(tmp_path)
    with pytest.raises(VemkitError, match=message) as info:
        load_student(source, **kwargs)
    assert str(source) in str(info.value)


def _touch(path: Path) -> Path:
    path.write_bytes(b"not weights")
    return path


class _NS:
    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)


def test_run_directory_layout(tiny_registry, tmp_path, monkeypatch):
    # The engine writes RUN_DIR/spec.resolved.yaml and RUN_DIR/checkpoints/last/student.safetensors.
    run = tmp_path / "run"
    (run / RUN_SPEC).parent.mkdir(parents=True)
    (run / RUN_SPEC).write_text("resolved spec\n")
    net = _trained(ngf=5)
    _save(net, run / RUN_STUDENT)
    seen = {}

    def fake_load_spec(path, overrides=()):
        seen["args"] = (Path(path), list(overrides))
        arch = tiny_registry.options("arch", {"type": "tiny_gen", "ngf": 5})
        return _NS(student=_NS(arch=arch), data=_NS(train=_NS(size=32)))

    import vemkit.spec

    monkeypatch.setattr(vemkit.spec, "load_spec", fake_load_spec)
    student = load_student(run, overrides=["a=1"])
    assert seen["args"] == (run / RUN_SPEC, ["a=1"])
    assert student.input_shape == (3, 32, 32)  # data.train.size
    assert student.arch == {"type": "tiny_gen", "ngf": 5}
    assert default_output(run, "onnx") == run / "export" / "student.onnx"
    assert default_output(run / RUN_STUDENT, "torchscript") == (
        run / "checkpoints" / "last" / "export" / "student.torchscript.pt"
    )
    with pytest.raises(VemkitError, match=r"arch\.ngf: Input should be greater than 0"):
        load_student(run / RUN_STUDENT, arch={"type": "tiny_gen", "ngf": 0})
    with pytest.raises(VemkitError, match="carries its spec"):
        load_student(run, arch={"type": "tiny_gen"})


# -- the command -------------------------------------------------------------------------------
def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vemkit")
    sub = parser.add_subparsers(dest="command")
    export_cmd.add_parser(sub)
    return export_cmd.run(parser.parse_args(["export", *argv]))


@JIT_LOAD
def test_cli_exports_a_weights_file(tiny_registry, tmp_path, capsys):
    net = _trained()
    weights = _save(net, tmp_path / "student.safetensors")
    argv = [str(weights), "--arch", "{type: tiny_gen}", "--input", "3x8x8"]
    assert _run([*argv, "--format", "torchscript"]) == 0
    out = capsys.readouterr().out
    target = tmp_path / "export" / "student.torchscript.pt"
    assert out.startswith(f"wrote {target} (torchscript,") and "max |exported - PyTorch| = 0" in out
    with torch.no_grad():
        x = torch.randn(1, 3, 8, 8)
        assert torch.equal(torch.jit.load(str(target))(x), net(x))
    with pytest.raises(VemkitError, match="--set applies to a spec"):
        _run([*argv, "--format", "onnx", "--set", "a=1"])


@pytest.mark.skipif(
    not (Path(__file__).resolve().parents[1] / "plugins" / "archs" / "unet.py").exists(),
    reason="plugins/archs/unet.py missing",
)
def test_cli_exports_a_registered_unet_student_to_onnx(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    registry_module.reset()
    net = registry_module.build("arch", {"type": "unet", "ngf": 2})
    weights = _save(net, tmp_path / "student.safetensors")
    out_path = tmp_path / "u.onnx"
    argv = [str(weights), "--arch", "{type: unet, ngf: 2}", "--format", "onnx", "--out"]
    assert _run([*argv, str(out_path)]) == 0
    out = capsys.readouterr().out
    assert "input 1x3x256x256" in out and "onnxruntime" in out and out_path.is_file()
    registry_module.reset()
