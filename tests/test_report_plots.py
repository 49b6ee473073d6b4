"""Report curves stay readable for one evaluation point, many runs, and runs of different
lengths or with different loss terms; each case is rendered to a PNG and its axes checked."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from matplotlib.colors import to_rgb
from PIL import Image

from vemkit.report import curves_figure, load_run, plot_curves, plot_overview, run_styles

SPEC = {
    "vemkit": 1,
    "name": "r",
    "task": "paired",
    "method": {"type": "omgd"},
    "mi": {"type": "none"},
}


def make_run(root: Path, name: str, lines: list[dict]) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "spec.resolved.yaml").write_text(yaml.safe_dump({**SPEC, "name": name}))
    with open(run / "metrics.jsonl", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    return run


def train_lines(steps: int, scale: float = 1.0, terms: tuple[str, ...] = ("omgd.ssim",)):
    return [
        {"step": s, "loss/student": scale * 1e4 / s**2, **{t: scale / s for t in terms}}
        for s in range(10, steps + 1, 10)
    ]


def rendered(fig, path: Path) -> Image.Image:
    fig.savefig(path, format="png", bbox_inches="tight")
    img = Image.open(path)
    assert img.format == "PNG" and img.size[0] > 200 and img.size[1] > 150
    return img


def panel(fig, title_start: str):
    return next(ax for ax in fig.axes if ax.get_title().startswith(title_start))


def test_one_evaluation_point_per_run_is_a_labelled_bar(tmp_path):
    runs = [
        load_run(make_run(tmp_path, name, [*train_lines(200), {"step": 200, "eval/psnr": psnr}]))
        for name, psnr in (("omgd-vem", 18.62), ("omgd", 17.95))
    ]
    fig = curves_figure(runs, "eval")
    ax = panel(fig, "eval/psnr")
    assert ax.get_title() == "eval/psnr (step 200)"
    # One bar per run, at its value, named by the run, with the value written on it.
    heights = [round(p.get_height(), 2) for p in ax.patches]
    assert heights == [18.62, 17.95]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["omgd-vem", "omgd"]
    assert {t.get_text() for t in ax.texts} >= {"18.62", "17.95"}
    assert ax.get_ylim()[0] <= 0 < 18.62 < ax.get_ylim()[1]
    rendered(fig, tmp_path / "one.png")
    # The overview draws the same panel the same way.
    assert plot_overview(runs, tmp_path / "overview.png") is not None


def test_many_runs_keep_distinct_colours_and_one_legend(tmp_path):
    runs = [
        load_run(make_run(tmp_path, f"seed{i:02d}", train_lines(100, scale=1 + i / 10)))
        for i in range(12)
    ]
    styles = run_styles(runs)
    drawn = {(to_rgb(s.color), s.linestyle) for s in styles}
    assert len(drawn) == 12  # no two runs look the same
    fig = curves_figure(runs, "train")
    ax = panel(fig, "loss/student")
    lines = [ln for ln in ax.get_lines() if ln.get_label() in {s.label for s in styles}]
    assert len(lines) == 12
    # One legend for the figure (below the panels), none covering a panel.
    assert len(fig.legends) == 1 and all(a.get_legend() is None for a in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [s.label for s in styles]
    rendered(fig, tmp_path / "many.png")


def test_runs_of_different_lengths_and_terms(tmp_path):
    long = make_run(tmp_path, "long", train_lines(600, terms=("omgd.ssim", "vem.mi")))
    short = make_run(tmp_path, "short", train_lines(200))
    lone = make_run(tmp_path, "lone", [{"step": 50, "loss/student": 3.0, "omgd.ssim": 0.02}])
    runs = [load_run(p) for p in (long, short, lone)]
    fig = curves_figure(runs, "train")
    ax = panel(fig, "loss/student")
    assert ax.get_xlim()[1] >= 600  # the longest run sets the axis
    # 1e4/10² .. 1e4/600² spans > two decades: a log axis keeps the late values readable.
    assert ax.get_yscale() == "log"
    colours = {s.label: to_rgb(s.color) for s in run_styles(runs)}
    ends = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    # The short run's end and the lone point are marked, in their runs' colours.
    assert {to_rgb(ln.get_color()) for ln in ends} == {colours["short"], colours["lone"]}
    assert any(list(ln.get_xdata()) == [200.0] for ln in ends)
    # A term only one run logs: the same colour as elsewhere, and the others are named.
    mi = panel(fig, "vem.mi")
    (mi_line,) = [ln for ln in mi.get_lines() if ln.get_marker() != "o"]
    assert to_rgb(mi_line.get_color()) == colours["long"]
    assert any("not logged by short, lone" in t.get_text() for t in mi.texts)
    path = plot_curves(runs, tmp_path / "lengths.png")
    with Image.open(path) as img:
        assert img.size[0] > 600
