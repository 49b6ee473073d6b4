"""Attribute docstrings become field descriptions; the parse of a file is cached beside its
bytecode and redone when the file changes."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from vemkit import options
from vemkit.options import _attribute_docs, _docs_cache_path

SOURCE = '''
from vemkit.options import Options


class Knobs(Options):
    """Knobs."""

    width: int = 3
    """How wide."""

    class Inner(Options):
        """Nested."""

        depth: int = 1
        """How deep."""
'''


def test_field_docstrings_become_descriptions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "knobs_module.py"
    path.write_text(SOURCE, encoding="utf-8")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    spec = importlib.util.spec_from_file_location("knobs_module", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "knobs_module", module)
    spec.loader.exec_module(module)
    assert module.Knobs.model_fields["width"].description == "How wide."
    assert module.Knobs.Inner.model_fields["depth"].description == "How deep."


def test_parse_is_cached_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "knobs.py"
    path.write_text(SOURCE, encoding="utf-8")
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    expected = {"Knobs": {"width": "How wide."}, "Knobs.Inner": {"depth": "How deep."}}
    assert _attribute_docs(str(path)) == expected
    cache = Path(_docs_cache_path(str(path)))
    assert cache.parent.name == "__pycache__" and cache.exists()

    parses: list[str] = []
    real_parse = options._parse_attribute_docs
    monkeypatch.setattr(
        options, "_parse_attribute_docs", lambda p: parses.append(p) or real_parse(p)
    )
    assert _attribute_docs(str(path)) == expected
    assert parses == []  # read from the cache

    path.write_text(SOURCE.replace("How wide.", "How broad."), encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a new stamp even within the file system's time resolution
    assert _attribute_docs(str(path))["Knobs"] == {"width": "How broad."}
    assert parses == [str(path)]


def test_no_cache_is_written_under_dont_write_bytecode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "knobs.py"
    path.write_text(SOURCE, encoding="utf-8")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert _attribute_docs(str(path))["Knobs"] == {"width": "How wide."}
    assert not Path(_docs_cache_path(str(path))).exists()
