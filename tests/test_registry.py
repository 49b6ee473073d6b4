"""The plugin registry: entry points, isolation, duplicates, explicit loading, build()."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import vemkit
from tests.conftest import BASE_SPEC
from vemkit import registry
from vemkit.cli import main
from vemkit.errors import PluginError, VemkitError
from vemkit.options import Options
from vemkit.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


class _Opts(Options):
    """Test options."""

    width: int = 3
    """A width."""


class _WithType(Options):
    """Options that wrongly declare the tag."""

    type: str = "x"


def test_builtins_register_through_the_entry_point(fresh_registry):
    reg = registry.default()
    builtins = reg.plugins["builtins"]
    assert builtins.ok, builtins.error
    assert builtins.distribution == "vemkit"
    for kind in (
        "arch",
        "method",
        "mi",
        "energy",
        "sampler",
        "dataset",
        "metric",
        "optimizer",
        "scheduler",
    ):
        assert reg.names(kind), f"no built-in {kind} registered"
        assert all(c.plugin == "builtins" for c in reg.components(kind))


def test_duplicate_name_is_an_error_naming_both_plugins():
    reg = Registry()
    reg._current_plugin = "first"
    reg.add("arch", "thing", options=_Opts, factory=lambda o: o)
    reg._current_plugin = "second"
    with pytest.raises(
        PluginError, match="registered twice: by plugin 'first' and by plugin 'second'"
    ):
        reg.add("arch", "thing", options=_Opts, factory=lambda o: o)


def test_options_must_not_declare_type():
    class WithType(Options):
        type: str = "x"

    with pytest.raises(PluginError, match="declare a 'type' field"):
        Registry().add("arch", "x", options=WithType, factory=lambda o: o)


def test_build_validates_and_calls_factory():
    reg = Registry()
    reg.add("arch", "thing", options=_Opts, factory=lambda o, scale=1: o.width * scale)
    assert reg.build("arch", {"type": "thing", "width": 4}, scale=10) == 40
    with pytest.raises(VemkitError, match="unknown arch 'thng'; did you mean 'thing'"):
        reg.build("arch", {"type": "thng"})
    with pytest.raises(Exception, match="width"):
        reg.build("arch", {"type": "thing", "width": "wide"})


def test_lazy_factory_string_is_imported_on_build():
    reg = Registry()
    reg.add("arch", "joined", options=_Opts, factory="os.path:join")
    comp = reg.get("arch", "joined")
    assert comp.resolve_factory().__name__ == "join"


def test_options_given_as_a_path_are_imported_on_first_use():
    reg = Registry()
    reg.add("arch", "thing", options="tests.test_registry:_Opts", factory=lambda o: o)
    comp = reg.get("arch", "thing")
    assert "options" not in vars(comp)  # registering resolved nothing
    assert comp.options is _Opts
    assert comp.summary == "Test options."
    assert reg.build("arch", {"type": "thing", "width": 5}).width == 5


def test_options_path_problems_name_the_plugin():
    reg = Registry()
    reg._current_plugin = "mine"
    with pytest.raises(PluginError, match="mine: options of arch 'a' given as a path must read"):
        reg.add("arch", "a", options="tests.test_registry", factory=lambda o: o)
    reg.add("arch", "missing", options="tests.test_registry:NoSuch", factory=lambda o: o)
    reg.add("arch", "typed", options="tests.test_registry:_WithType", factory=lambda o: o)
    with pytest.raises(
        PluginError,
        match=r"^mine: options of arch 'missing' \(tests.test_registry:NoSuch\) cannot be "
        "imported: AttributeError",
    ):
        reg.get("arch", "missing").options  # noqa: B018
    with pytest.raises(PluginError, match=r"^mine: options of arch 'typed' declare a 'type'"):
        reg.get("arch", "typed").options  # noqa: B018


def test_validate_and_plugins_import_only_what_a_spec_names():
    # Start-up (benchmarks/startup.py): options modules load when a spec names a component,
    # torch never. Run in a fresh interpreter: this one has imported everything.
    code = """
import json, sys
from vemkit import registry
from vemkit.cli import main
assert main(["plugins"]) == 0
reg = registry.default()
listed = [c.name for k in reg.kinds() for c in reg.components(k) if "options" in vars(c)]
assert main(["validate", "specs/quickstart.yaml"]) == 0
resolved = {}
for kind in reg.kinds():
    resolved[kind] = sorted(c.name for c in reg.components(kind) if "options" in vars(c))
modules = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "vemkit", "vemkit_plugins"))
print(json.dumps({"listed": listed, "resolved": resolved, "modules": modules}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found["listed"] == []  # `vemkit plugins` lists names without importing options
    assert found["resolved"]["arch"] == ["omgd_patchgan", "unet", "unet_deepest"]
    assert found["resolved"]["method"] == ["omgd"]
    assert found["resolved"]["dataset"] == ["aligned"]
    assert found["resolved"]["demo"] == []
    assert found["resolved"]["loss"] == []  # no loss named, none by default
    assert found["resolved"]["scheduler"] == ["constant", "linear_decay"]  # named; default
    modules = found["modules"]
    assert "torch" not in modules
    assert "vemkit_plugins.methods.options" in modules
    assert "vemkit_plugins.methods.recipe_options" not in modules  # no recipe named
    assert "vemkit_plugins.archs.options" in modules  # unet, omgd_patchgan
    assert "vemkit_plugins.archs.resnet_options" not in modules
    assert "vemkit_plugins.archs.uncond_options" not in modules
    assert "vemkit.stages" not in modules


def test_public_build_uses_the_process_registry(fresh_registry):
    net = vemkit.registry.build("arch", {"type": "unet", "ngf": 4, "num_downs": 5})
    assert sum(p.numel() for p in net.parameters()) > 0


def test_third_party_plugin_is_discovered_and_validates(third_party, write_spec, capsys):
    reg = registry.default()
    assert reg.get("loss", "scaled_l1").plugin == "vemkit_scaled_l1"
    assert reg.plugins["vemkit_scaled_l1"].version == "0.3.0"
    broken = reg.plugins["vemkit_broken"]
    assert not broken.ok and "needs a library" in broken.error
    # the broken plugin is isolated: built-ins still work
    assert "unet" in reg.names("arch")

    spec = write_spec(BASE_SPEC + "losses: [{type: scaled_l1, factor: 3.0}]\n")
    assert main(["validate", str(spec)]) == 0
    bad = write_spec(BASE_SPEC + "losses: [{type: scaled_l1, factor: -1}]\n", name="bad.yaml")
    assert main(["validate", str(bad)]) == 2
    assert "losses.0.factor: Input should be greater than 0" in capsys.readouterr().err


def test_plugins_command_lists_components_and_failures(third_party, capsys):
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["vemkit_scaled_l1"]["components"] == ["loss:scaled_l1"]
    assert by_name["vemkit_broken"]["ok"] is False
    assert any(c["name"] == "scaled_l1" for c in data["components"]["loss"])
    assert main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert "vemkit_broken" in text and "FAILED: ImportError" in text


def test_autoload_off_with_explicit_plugins(third_party, monkeypatch):
    monkeypatch.setenv("VEMKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("VEMKIT_PLUGINS", "builtins")
    registry.reset()
    reg = registry.default()
    assert set(reg.plugins) == {"builtins"}
    assert "scaled_l1" not in reg.names("loss")
    registry.set_explicit_plugins(["vemkit_scaled_l1"])
    try:
        assert "scaled_l1" in registry.default().names("loss")
    finally:
        registry.set_explicit_plugins([])


def test_cli_p_flag_loads_a_module_path(third_party, monkeypatch, capsys):
    monkeypatch.setenv("VEMKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry.reset()
    try:
        assert main(["-p", "builtins", "-p", "vemkit_scaled_l1", "plugins", "--json"]) == 0
    finally:
        registry.set_explicit_plugins([])
    names = {p["name"] for p in json.loads(capsys.readouterr().out)["plugins"]}
    assert names == {"builtins", "vemkit_scaled_l1"}


def test_subprocess_exit_code_and_no_traceback(third_party, write_spec):
    spec = write_spec(BASE_SPEC.replace("batch_size: 2", "batch_size: 0"))
    proc = subprocess.run(
        [sys.executable, "-m", "vemkit", "validate", str(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "train.batch_size: Input should be greater than 0" in proc.stderr
    assert "Traceback" not in proc.stderr
