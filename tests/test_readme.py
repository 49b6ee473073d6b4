"""Every command and Python example in the README runs (README drift is a test failure)."""

from __future__ import annotations

import re
import shlex
import sys
import types
from pathlib import Path

import pytest

from vemkit.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


SH_COMMANDS = [
    line.strip()
    for block in _blocks("sh")
    for line in block.splitlines()
    if line.strip().startswith("vemkit ")
]
MAKE_TARGETS = [
    shlex.split(line)[1]
    for block in _blocks("sh")
    for line in block.splitlines()
    if line.strip().startswith("make ")
]


def test_readme_has_commands():
    assert len(SH_COMMANDS) >= 5
    assert {"test", "demo"} <= set(MAKE_TARGETS)


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in MAKE_TARGETS:
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), target


def _tiny_aligned(root: Path) -> Path:
    import numpy as np
    from PIL import Image

    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for i in range(2):
            pair = np.full((16, 32, 3), 60 * i, np.uint8)
            Image.fromarray(pair).save(root / split / f"{i}.png")
    return root


@pytest.mark.parametrize("command", SH_COMMANDS)
def test_readme_command_runs(command, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(ROOT)
    argv = shlex.split(command.split("#")[0])[1:]
    if argv[0] == "data" and "specs/quickstart.yaml" in argv:
        # commands that read the demo data run on a tiny tree in the same layout (CI has none)
        root = _tiny_aligned(tmp_path / "e2s")
        argv += [f"--set=data.train.root={root}", f"--set=data.eval.root={root}"]
    assert main(argv) == 0, capsys.readouterr().err


def test_every_table_command_parses():
    # The command table names every command; each must exist with the flags shown.
    parser = build_parser()
    for name in (
        "validate",
        "plan",
        "run",
        "profile",
        "eval",
        "report",
        "sweep",
        "data",
        "export",
        "schema",
        "plugins",
    ):
        assert f"`vemkit {name}" in README, name
        with pytest.raises(SystemExit) as info:
            parser.parse_args([name, "--help"])
        assert info.value.code == 0


def test_python_examples_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    blocks = [b for b in _blocks("python") if "my_plugin" not in b]
    assert blocks
    for i, block in enumerate(blocks):
        # Each block runs as the module file a user would paste it into (pydantic resolves a
        # model's field types through its module).
        module = types.ModuleType(f"readme_example_{i}")
        monkeypatch.setitem(sys.modules, module.__name__, module)
        exec(compile(block, "README.md", "exec"), module.__dict__)
