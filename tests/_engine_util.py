"""Shared pieces of the engine tests: a private registry with every built-in plus a tiny test
arch and a fake metric, tiny image folders, and spec construction."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import Field
from safetensors.torch import load_file
from torch import nn

from vemkit.options import Options
from vemkit.registry import Registry
from vemkit.spec_model import spec_model


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One intra-op thread: on the shared 2-core machines two OpenMP threads contending with
    other processes make tiny convolutions ~100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyOptions(Options):
    """Conv-BN-ReLU-Conv-tanh: a generator small enough for many test iterations."""

    width: Annotated[int, Field(gt=0)] = 4
    """Hidden channels."""
    input_nc: Annotated[int, Field(gt=0)] = 3
    """Input channels."""
    output_nc: Annotated[int, Field(gt=0)] = 3
    """Output channels."""


class TinyNet(nn.Module):
    def __init__(self, width: int, input_nc: int, output_nc: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(input_nc, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, output_nc, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(x))


def build_tiny(options: TinyOptions, **_: Any) -> TinyNet:
    return TinyNet(options.width, options.input_nc, options.output_nc)


class FakeMetricOptions(Options):
    """Mean absolute error between generated images and their targets (test metric)."""


class FakeMAE:
    higher_is_better = {"mae": False}

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, fake: torch.Tensor, real: torch.Tensor | None = None, **_: Any) -> None:
        assert real is not None
        self.total += float((fake - real).abs().sum())
        self.count += fake.numel()

    def compute(self) -> dict[str, float]:
        return {"mae": self.total / max(self.count, 1)}


def make_registry() -> Registry:
    from vemkit_plugins import builtins

    reg = Registry()
    builtins.vemkit_register(reg)  # every built-in, as the entry point registers them
    reg.add("arch", "tiny", options=TinyOptions, factory=build_tiny)
    reg.add("metric", "fake_mae", options=FakeMetricOptions, factory=lambda o, **_: FakeMAE())
    return reg


def make_aligned(root: Path, n: int = 5, size: int = 16, split: str = "train") -> Path:
    """``n`` random A|B pairs of ``size`` px in ``root/split``."""
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(split) + n)
    for i in range(n):
        pixels = rng.integers(0, 256, (size, 2 * size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


def make_unaligned(
    root: Path, counts: tuple[int, int] = (3, 4), size: int = 32, seed: int = 7
) -> Path:
    """Random images in the CycleGAN layout: ``counts`` files in ``root/trainA`` and ``trainB``."""
    rng = np.random.default_rng(seed)
    for side, n in zip(("trainA", "trainB"), counts, strict=True):
        (root / side).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / side / f"{i}.png")
    return root


def base_config(data_root: Path, run_dir: Path, size: int = 16) -> dict[str, Any]:
    return {
        "name": "engine-test",
        "seed": 3,
        "data": {"train": {"type": "aligned", "root": str(data_root), "size": size}},
        "teacher": {"arch": {"type": "tiny", "width": 8}, "mode": "frozen"},
        "student": {"arch": {"type": "tiny", "width": 4}},
        "method": {"type": "kd"},
        "train": {"iterations": 4, "batch_size": 2},
        "eval": {"every": 0, "samples": 0},
        "output": {
            "dir": str(run_dir),
            "checkpoint_every": 0,
            "sample_every": 0,
            "log_every": 1,
        },
    }


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def make_spec(reg: Registry, config: dict[str, Any]) -> Any:
    return spec_model(reg).model_validate(config)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
