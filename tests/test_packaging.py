"""The package installs next to a user's own torch: install requirements are ranges, never
exact pins; the exact development pair lives in constraints.txt (used by `make install`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _install_requirements() -> list[Requirement]:
    project = _pyproject()["project"]
    texts = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        texts += extra
    return [Requirement(t) for t in texts]


def _exact_pins(requirements: list[Requirement]) -> list[str]:
    return [str(r) for r in requirements if any(s.operator in ("==", "===") for s in r.specifier)]


def _constraints() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = Version(version.strip())
    return pins


def test_pyproject_declares_ranges_not_pins():
    requirements = _install_requirements()
    assert _exact_pins(requirements) == []
    by_name = {r.name.lower(): r for r in requirements}
    for name in ("torch", "torchvision"):
        # A lower bound (the oldest pair checked), so pip keeps any newer torch in place.
        assert any(s.operator == ">=" for s in by_name[name].specifier), by_name[name]


def test_constraints_pin_the_development_pair_inside_the_range():
    pins = _constraints()
    by_name = {r.name.lower(): r for r in _install_requirements()}
    assert set(pins) >= {"torch", "torchvision"}
    for name, version in pins.items():
        assert version in by_name[name].specifier, (name, version, by_name[name].specifier)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"pip install .*-c constraints\.txt", makefile), "make install ignores it"


@pytest.mark.slow
def test_built_wheel_metadata_has_no_exact_pins(tmp_path):
    # Build from a copy so the checkout gets no build/ folder.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for part in ("vemkit", "plugins"):
        shutil.copytree(ROOT / part, src / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, src / part)
    out = tmp_path / "dist"
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("vemkit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
        names = archive.namelist()
    requires = [
        Requirement(line.split(":", 1)[1])
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    assert {r.name for r in requires} >= {"torch", "torchvision", "pydantic", "pluggy"}
    assert _exact_pins(requires) == []
    torch = next(r for r in requires if r.name == "torch")
    assert Version("2.13.0") in torch.specifier and Version("2.14.1") in torch.specifier
    # The built-in plugins come with it: the entry point and their packages.
    assert "builtins = vemkit_plugins.builtins" in points
    assert "vemkit_plugins/builtins.py" in names
    assert "vemkit_plugins/data/demo/__init__.py" in names
