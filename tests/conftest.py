"""Shared fixtures: spec files written from text, a third-party plugin made on the fly."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from vemkit import registry

# Tests never use a GPU and run with few threads on the shared 2-core machines.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.pop("VEMKIT_PLUGINS", None)
os.environ.pop("VEMKIT_DISABLE_PLUGIN_AUTOLOAD", None)
# Tiny convolutions on 2 shared cores run up to 100x slower with 2 threads than with 1.
torch.set_num_threads(1)

MARK = "⟦"

BASE_SPEC = """\
vemkit: 1
name: tiny
seed: 0
task: paired
data:
  train: {type: aligned, root: data/e2s, split: train}
teacher:
  arch: {type: unet, ngf: 64}
  mode: online
student:
  arch: {type: unet, ngf: 16}
method: {type: kd}
mi: {type: none}
train: {iterations: 10, batch_size: 2}
"""


def locate(text: str) -> tuple[str, int, int]:
    """Remove the marker ⟦ from ``text``; return the text and the marker's line and column."""
    index = text.index(MARK)
    before = text[:index]
    line = before.count("\n") + 1
    column = index - (before.rfind("\n") + 1) + 1
    return text.replace(MARK, "", 1), line, column


@pytest.fixture
def write_spec(tmp_path: Path):
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    """Reload the process-wide registry before and after the test."""
    registry.reset()
    yield
    registry.reset()


THIRD_PARTY_PLUGIN = '''
"""A third-party vemkit plugin made by the tests (no network, a temporary path)."""
from typing import Annotated
from pydantic import Field
import vemkit
from vemkit.options import Options


class ScaledL1Options(Options):
    """L1 distance scaled by a factor."""

    factor: Annotated[float, Field(gt=0)] = 2.0
    """Multiplies the L1 distance."""


def build(options, **context):
    return options.factor


@vemkit.hookimpl
def vemkit_register(registry):
    registry.add("loss", "scaled_l1", options=ScaledL1Options, factory=build)
'''

BROKEN_PLUGIN = """
import vemkit
raise ImportError("this plugin needs a library that is not installed")
"""


def make_distribution(root: Path, dist: str, version: str, module: str, source: str) -> None:
    """Write an importable module plus a dist-info with a ``vemkit`` entry point."""
    (root / f"{module}.py").write_text(source, encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[vemkit]\n{module} = {module}\n", encoding="utf-8")


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two installed third-party plugins: one that works, one that fails to import."""
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "vemkit-scaled-l1", "0.3.0", "vemkit_scaled_l1", THIRD_PARTY_PLUGIN)
    make_distribution(site, "vemkit-broken", "1.0.0", "vemkit_broken", BROKEN_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), *sys.path]))
    registry.reset()
    yield site
    for mod in ("vemkit_scaled_l1", "vemkit_broken"):
        sys.modules.pop(mod, None)
    registry.reset()
