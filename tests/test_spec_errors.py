"""Every malformed spec gets one clear line per problem: FILE:LINE:COL dotted.path: message.

Each case marks the expected position with ⟦ in the spec text; the test removes the marker,
runs ``vemkit validate`` and checks the exact location, path, message and exit code 2.
"""

from __future__ import annotations

import pytest

from tests.conftest import BASE_SPEC, locate
from vemkit.cli import main


def replace(old: str, new: str) -> str:
    assert old in BASE_SPEC, old
    return BASE_SPEC.replace(old, new, 1)


# (case id, spec text with ⟦ at the expected position, overrides, dotted path, message part)
CASES = [
    (
        "wrong-type-int",
        replace("iterations: 10", "iterations: ⟦ten"),
        [],
        "train.iterations",
        "valid integer",
    ),
    ("unknown-top-key", BASE_SPEC + "⟦trian: {}\n", [], "trian", "did you mean 'train'?"),
    (
        "unknown-key-depth2",
        replace("iterations: 10", "⟦iteratons: 10"),
        [],
        "train.iteratons",
        "did you mean 'iterations'?",
    ),
    (
        "unknown-key-in-component",
        replace("{type: unet, ngf: 16}", "{type: unet, ⟦ngff: 16}"),
        [],
        "student.arch.ngff",
        "did you mean 'ngf'?",
    ),
    (
        "unknown-key-nested-component",
        replace(
            "method: {type: kd}", "method: {type: kd, discriminator: {type: patchgan, ⟦ndff: 8}}"
        ),
        [],
        "method.discriminator.ndff",
        "did you mean 'ndf'?",
    ),
    (
        "unknown-arch",
        replace("{type: unet, ngf: 16}", "{type: ⟦unte, ngf: 16}"),
        [],
        "student.arch.type",
        "unknown arch 'unte'; did you mean 'unet'?",
    ),
    (
        "unknown-method",
        replace("method: {type: kd}", "method: {type: ⟦kdd}"),
        [],
        "method.type",
        "unknown method 'kdd'; did you mean 'kd'?",
    ),
    (
        "unknown-optimizer",
        replace("batch_size: 2}", "batch_size: 2, optimizer: {type: ⟦adm}}"),
        [],
        "train.optimizer.type",
        "did you mean 'adam'?",
    ),
    (
        "bad-enum",
        replace("mode: online", "mode: ⟦onlin"),
        [],
        "teacher.mode",
        "Input should be 'online' or 'frozen'",
    ),
    (
        "bad-enum-precision",
        replace("batch_size: 2}", "batch_size: 2, precision: ⟦fp64}"),
        [],
        "train.precision",
        "'fp32', 'bf16' or 'fp16'",
    ),
    (
        "out-of-range-batch",
        replace("batch_size: 2", "batch_size: ⟦0"),
        [],
        "train.batch_size",
        "greater than 0",
    ),
    (
        "out-of-range-seed",
        replace("seed: 0", "seed: ⟦-1"),
        [],
        "seed",
        "greater than or equal to 0",
    ),
    (
        "out-of-range-beta",
        replace("batch_size: 2}", "batch_size: 2, optimizer: {type: adam, betas: [0.5, ⟦1.5]}}"),
        [],
        "train.optimizer.betas.1",
        "less than 1",
    ),
    (
        "bad-name-pattern",
        replace("name: tiny", "name: ⟦'bad name!'"),
        [],
        "name",
        "should match pattern",
    ),
    (
        "missing-type",
        replace("{type: unet, ngf: 16}", "⟦{ngf: 16}"),
        [],
        "student.arch",
        "missing 'type'",
    ),
    (
        "missing-section",
        replace("teacher:\n  arch: {type: unet, ngf: 64}\n  mode: online\n", "").replace(
            "vemkit: 1", "⟦vemkit: 1"
        ),
        [],
        "teacher",
        "missing required key 'teacher'",
    ),
    (
        "missing-required-option",
        replace(
            "  train: {type: aligned, root: data/e2s, split: train}",
            "  ⟦train: {type: aligned, split: train}",
        ),
        [],
        "data.train.root",
        "missing required key 'root'",
    ),
    ("list-expected", BASE_SPEC + "eval: {metrics: ⟦fid}\n", [], "eval.metrics", "valid list"),
    (
        "section-not-mapping",
        replace("train: {iterations: 10, batch_size: 2}", "train: ⟦[10, 2]"),
        [],
        "train",
        "valid dictionary",
    ),
    (
        "unsupported-version",
        replace("vemkit: 1", "vemkit: ⟦2"),
        [],
        "vemkit",
        "unsupported spec version 2",
    ),
    (
        "bad-requires",
        BASE_SPEC + "requires: [⟦'not a requirement !!']\n",
        [],
        "requires.0",
        "not a requirement",
    ),
    (
        "missing-required-plugin",
        BASE_SPEC + "requires: [⟦vemkit-no-such-plugin>=1.0]\n",
        [],
        "requires.0",
        "required plugin 'vemkit-no-such-plugin' is not installed",
    ),
    ("duplicate-key", replace("seed: 0", "seed: 0\n⟦seed: 1"), [], "seed", "duplicate key 'seed'"),
    (
        "yaml-syntax",
        replace("name: tiny", "name: tiny⟦: bad"),
        [],
        "",
        "invalid YAML: mapping values are not allowed here",
    ),
    (
        # The bracket left open is the place to fix, not the end of the file where PyYAML
        # notices it; the failure point is named too.
        "yaml-unclosed-flow-mapping-at-end",
        replace("train: {iterations", "train: ⟦{iterations").replace(
            "batch_size: 2}", "batch_size: 2"
        ),
        [],
        "",
        "the flow mapping opened here ('{') is not closed",
    ),
    (
        "yaml-unclosed-flow-sequence-mid-file",
        replace(
            "mi: {type: none}", "mi: {type: none}\neval:\n  metrics: ⟦[{type: psnr}, {type: ssim}\n"
        ),
        [],
        "",
        "parsing failed at ",
    ),
    (
        "yaml-unclosed-quote",
        replace("name: tiny", 'name: ⟦"tiny'),
        [],
        "",
        "the quoted string opened here is not closed",
    ),
    (
        "yaml-tab",
        replace("  arch: {type: unet, ngf: 16}", "⟦\tarch: {type: unet, ngf: 16}"),
        [],
        "",
        "invalid YAML",
    ),
]

OVERRIDE_CASES = [
    ("override-wrong-type", ["train.iterations=abc"], "train.iterations", "valid integer"),
    (
        "override-unknown-key",
        ["train.iteratons=5"],
        "train.iteratons",
        "did you mean 'iterations'?",
    ),
    ("override-through-scalar", ["name.first=x"], "name.first", "'name' holds a str"),
    ("override-no-equals", ["train.iterations"], "train.iterations", "dotted.path=value"),
    ("override-bad-index", ["data.train.root.3=x"], "data.train.root.3", "holds a str"),
    (
        "override-absent-list",
        ["eval.metrics.3.type=fid"],
        "eval.metrics.3.type",
        "'eval.metrics' is not set, so it has no item 3",
    ),
    ("override-bad-yaml", ["mi.weight=[1,"], "mi.weight", "not valid YAML"),
    (
        # The key the override would create does not exist: named by --set, not FILE:1:1 or the
        # place of its parent section in the file.
        "override-unknown-section",
        ["trian.iterations=5"],
        "trian.iterations",
        "unknown key 'trian'; did you mean 'train'?",
    ),
    (
        "override-unknown-nested-key",
        ["mi.typo.x=3"],
        "mi.typo.x",
        "unknown key 'typo'; did you mean 'type'?",
    ),
    ("override-bad-value", ["student.arch.ngf=0"], "student.arch.ngf", "greater than 0"),
    ("override-bad-literal", ["train.precision=fp8"], "train.precision", "'fp32'"),
    ("override-version", ["vemkit=2"], "vemkit", "unsupported spec version 2"),
    (
        "override-unknown-component",
        ["student.arch.type=unte"],
        "student.arch.type",
        "did you mean 'unet'?",
    ),
]


@pytest.mark.parametrize(
    ("text", "overrides", "path", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_spec_is_located(write_spec, capsys, text, overrides, path, message):
    clean, line, column = locate(text)
    spec = write_spec(clean)
    assert main(["validate", str(spec), *[f"--set={o}" for o in overrides]]) == 2
    err = capsys.readouterr().err
    expected = f"{spec}:{line}:{column} {path}:" if path else f"{spec}:{line}:{column}:"
    lines = err.strip().splitlines()
    assert any(ln.startswith(expected) for ln in lines), (expected, err)
    assert message in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("overrides", "path", "message"),
    [c[1:] for c in OVERRIDE_CASES],
    ids=[c[0] for c in OVERRIDE_CASES],
)
def test_bad_override_is_named(write_spec, capsys, overrides, path, message):
    spec = write_spec(BASE_SPEC)
    assert main(["validate", str(spec), *[f"--set={o}" for o in overrides]]) == 2
    err = capsys.readouterr().err
    assert f"--set {path}:" in err, err
    assert message in err, err


def test_unclosed_flow_names_opening_then_failure(write_spec, capsys):
    text = BASE_SPEC.replace("train: {iterations: 10, batch_size: 2}", "train: {iterations: 10")
    spec = write_spec(text + "eval: {every: 0}\n")
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    # FILE:LINE:COL of the '{' first (line 14, column 8), then the place parsing failed.
    assert err.startswith(f"{spec}:14:8: invalid YAML: the flow mapping opened here"), err
    assert f"parsing failed at {spec}:15:5: expected ',' or '}}'" in err, err


def test_block_error_names_where_its_construct_began(write_spec, capsys):
    spec = write_spec("vemkit: 1\nseed:\n  - 1\n - 2\n")
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    # The failure point is what to look at here; the mapping's start (line 1) is named after it.
    assert err.startswith(f"{spec}:4:2: invalid YAML: expected <block end>"), err
    assert f"(in the block mapping that begins at {spec}:1:1)" in err, err


def test_override_changing_type_names_itself_at_file_keys(write_spec, capsys):
    spec = write_spec(
        BASE_SPEC.replace("method: {type: kd}", "method: {type: kd, recon_weight: 1}")
    )
    assert main(["validate", str(spec), "--set", "method.type=omgd"]) == 2
    err = capsys.readouterr().err
    # The key is in the file (valid for kd); the override made it unknown, and says so.
    assert f"{spec}:12:20 method.recon_weight: unknown key 'recon_weight'" in err, err
    assert "(with --set method.type)" in err, err


def test_every_override_problem_is_named_by_set(write_spec, capsys):
    spec = write_spec(BASE_SPEC)
    overrides = ["trian.x=1", "train.iteratons=5", "student.arch.ngf=-1", "seed=abc", "foo=1"]
    assert main(["validate", str(spec), *[f"--set={o}" for o in overrides]]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == len(overrides), lines
    assert all(line.startswith("--set ") for line in lines), lines
    assert str(spec) not in "\n".join(lines)


def test_empty_file(write_spec, capsys):
    spec = write_spec("")
    assert main(["validate", str(spec)]) == 2
    assert f"{spec}:1:1: the file is empty" in capsys.readouterr().err


def test_comments_only_file(write_spec, capsys):
    spec = write_spec("# nothing here\n")
    assert main(["validate", str(spec)]) == 2
    assert "holds no spec" in capsys.readouterr().err


def test_top_level_must_be_mapping(write_spec, capsys):
    spec = write_spec("- a\n- b\n")
    assert main(["validate", str(spec)]) == 2
    assert f"{spec}:1:1: the top level must be a mapping of sections, not a list" in (
        capsys.readouterr().err
    )


def test_invalid_json_has_its_own_position(write_spec, capsys):
    spec = write_spec('{\n  "name": ,\n}\n', name="spec.json")
    assert main(["validate", str(spec)]) == 2
    assert f"{spec}:2:11: invalid JSON: Expecting value" in capsys.readouterr().err


def test_json_spec_problems_are_located(write_spec, capsys):
    text = (
        '{"name": "tiny", "data": {"train": {"type": "aligned", "root": "d", "split": "train"}},\n'
        ' "teacher": {"arch": {"type": "unet"}}, "student": {"arch": {"type": "unet", '
        '⟦"ngff": 1}},\n "method": {"type": "kd"}}\n'
    )
    clean, line, column = locate(text)
    spec = write_spec(clean, name="spec.json")
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:{line}:{column} student.arch.ngff: unknown key 'ngff'" in err


def test_all_problems_at_once_sorted_by_position(write_spec, capsys):
    text = replace("seed: 0", "seed: -1").replace("batch_size: 2", "batch_size: 0")
    text = text.replace("{type: unet, ngf: 16}", "{type: unet, ngff: 16}")
    spec = write_spec(text)
    assert main(["validate", str(spec)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [ln.split(" ")[1] for ln in lines] == [
        "seed:",
        "student.arch.ngff:",
        "train.batch_size:",
    ]


def test_missing_file(capsys, tmp_path):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such file" in capsys.readouterr().err


def test_valid_spec_passes(write_spec, capsys):
    spec = write_spec(BASE_SPEC)
    assert main(["validate", str(spec)]) == 0
    assert capsys.readouterr().out.strip() == f"{spec}: ok"


def test_unknown_name_mentions_failed_plugin(third_party, write_spec, capsys):
    spec = write_spec(replace("{type: unet, ngf: 16}", "{type: from_broken_plugin}"))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "plugins that failed to load: vemkit_broken (ImportError: this plugin needs" in err


def test_required_plugin_that_failed_is_named(third_party, write_spec, capsys):
    spec = write_spec(BASE_SPEC + "requires: [vemkit-broken]\n")
    assert main(["validate", str(spec)]) == 2
    assert "required plugin 'vemkit-broken' failed to load: ImportError" in (
        capsys.readouterr().err
    )


def test_required_plugin_version_is_checked(third_party, write_spec, capsys):
    spec = write_spec(BASE_SPEC + "requires: ['vemkit-scaled-l1>=0.4']\n")
    assert main(["validate", str(spec)]) == 2
    assert "required plugin 'vemkit-scaled-l1>=0.4' but 0.3.0 is installed" in (
        capsys.readouterr().err
    )
    ok = write_spec(BASE_SPEC + "requires: ['vemkit-scaled-l1>=0.3']\n", name="ok.yaml")
    assert main(["validate", str(ok)]) == 0


def test_debug_shows_traceback_for_errors(write_spec):
    spec = write_spec(BASE_SPEC)
    with pytest.raises(Exception, match="missing required key"):
        main(["--debug", "plan", str(spec), "--set", "data.train={type: aligned}"])


def test_exponents_without_a_dot_or_a_sign_are_numbers_in_files_and_overrides():
    # YAML 1.1 (PyYAML) would read these as strings; a budget written 2.6e9 must be a number.
    from vemkit.spec_source import load_yaml, parse_text

    assert parse_text("budget: 2.6e9\nlr: 1e-4\nname: e9\n", "s.yaml").data == {
        "budget": 2.6e9,
        "lr": 1e-4,
        "name": "e9",
    }
    assert load_yaml("3e9") == 3e9 and load_yaml("[1e3, 7]") == [1000.0, 7]


EDGE_TEXTS = [
    "a: 1\nb: [1, 2, {c: d}]\ne: {f: 'g', h: \"i\"}\n",
    "budget: 2.6e9\nlr: 1e-4\nname: e9\nflag: yes\nnothing: ~\n",
    "name: café ü\nlist:\n  - x\n  -   y: 1\n      z: 2\n",
    "a: 1\na: 2\n",  # a duplicate key: a problem of the walk, not of the parser
    "text: |\n  two\n  lines\nnext: >\n  folded\n  text\n",
]


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_libyaml_and_pure_python_read_a_spec_alike(text, monkeypatch):
    # Valid files are composed by libyaml (start-up); positions, data and walk problems must be
    # those of the pure-Python loader, which reads every file libyaml rejects.
    from vemkit import spec_source

    if spec_source._FastSpecLoader is None:
        pytest.skip("PyYAML without libyaml")
    fast = spec_source.parse_text(text, "s.yaml")
    monkeypatch.setattr(spec_source, "_FastSpecLoader", None)
    slow = spec_source.parse_text(text, "s.yaml")
    assert (fast.data, fast.values, fast.keys) == (slow.data, slow.values, slow.keys)
    assert [str(p) for p in fast.problems] == [str(p) for p in slow.problems]


def test_every_shipped_spec_reads_alike_with_libyaml(monkeypatch):
    from pathlib import Path

    from vemkit import spec_source

    if spec_source._FastSpecLoader is None:
        pytest.skip("PyYAML without libyaml")
    specs = sorted((Path(__file__).resolve().parents[1] / "specs").rglob("*.yaml"))
    assert specs
    for path in specs:
        text = path.read_text(encoding="utf-8")
        fast = spec_source.parse_text(text, path.name)
        with monkeypatch.context() as m:
            m.setattr(spec_source, "_FastSpecLoader", None)
            slow = spec_source.parse_text(text, path.name)
        assert (fast.data, fast.values, fast.keys) == (slow.data, slow.values, slow.keys), path
