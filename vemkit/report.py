"""Run reports: paper-style tables, loss and metric curves, sample grids (``vemkit report``).

``write_report(["runs/a", "runs/b", ...])`` reads each run directory as the engine writes it
(``spec.resolved.yaml``, ``metrics.jsonl``, ``samples/step_*.png``) plus the ``eval.json`` and
``eval_samples.png`` of ``vemkit eval``, and writes ``report.md`` with its PNGs beside it and a
self-contained ``report.html`` (the same PNGs embedded as base64).

The table follows the papers (DESIGN.md §5, reference/paper.md §8): one row per method, MACs and
params of the generator with the compression ratio teacher/student (teacher ``1.0x``), then each
metric with its direction (↑ higher is better, ↓ lower). Runs are put in one table when they
share the teacher architecture, the evaluation data and the task; within a table, runs whose
specs are equal once the name, seed, output and evaluation settings are set aside are one row,
and its numbers are the mean ± sample standard deviation over those runs (an ablation over
``mi.type`` with three seeds each gives one row per MI term). Rows that would carry the same
label (``omgd + vem`` twice, e.g. for two ``mi.weight`` values) are told apart by what differs.

Only the files are read: no plugin, no network, no torch forward pass is needed to report.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import shutil
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vemkit.errors import VemkitError
from vemkit.fileio import atomic_path

SPEC_FILE = "spec.resolved.yaml"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
EVAL_SAMPLES = "eval_samples.png"

ROW_IGNORES = (
    ("vemkit",),
    ("name",),
    ("seed",),
    ("requires",),
    ("output",),
    ("eval",),
    ("train", "device"),
    ("train", "workers"),
)
"""Spec parts that do not make two runs different methods (seeds, places, hardware)."""

_NOT_CURVES = {"step", "time", "it_per_s", "samples_per_s"}
_NOT_CURVE_PREFIXES = ("lr/", "skipped", "grad_norm/", "eval/")
GRID_COLUMNS = ("input", "teacher", "student", "target")
OVERVIEW_ROWS = 4
"""Sample rows shown in the overview figure."""
MAX_PANELS = 16


# -- reading runs --------------------------------------------------------------------------------
@dataclass
class Run:
    """One run directory as the report sees it."""

    path: Path
    spec: dict[str, Any]
    spec_text: str
    log: list[dict[str, Any]]
    evaluation: dict[str, Any] | None
    samples: Path | None
    """The newest training sample grid (``samples/step_*.png``), if any."""
    label: str = ""
    """Display name (the folder name, made unique among the runs of a report)."""
    notes: list[str] = field(default_factory=list)
    recipe: Path | None = None
    """The recipe's folder when this run is a recipe (``path`` is then its last stage)."""

    @property
    def method(self) -> str:
        return method_label(self.spec)

    @property
    def seed(self) -> Any:
        return self.spec.get("seed")

    @property
    def eval_samples(self) -> Path | None:
        grid = (self.evaluation or {}).get("samples") or {}
        path = self.path / grid.get("file", EVAL_SAMPLES)
        return path if grid and path.is_file() else None

    def last_eval(self) -> tuple[int | None, dict[str, float]]:
        """The last ``eval/*`` line of ``metrics.jsonl``: (step, {metric: value})."""
        for line in reversed(self.log):
            scores = {k[5:]: v for k, v in line.items() if k.startswith("eval/")}
            if scores:
                return line.get("step"), scores
        return None, {}


def method_label(spec: dict[str, Any]) -> str:
    """``"kd + vem"``: the spec's method type and its MI term (omitted when ``none``)."""
    method = (spec.get("method") or {}).get("type", "?")
    mi = (spec.get("mi") or {}).get("type", "none")
    return str(method) if mi in (None, "none") else f"{method} + {mi}"


def _read_log(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        notes.append(f"{path.parent.name}: no {METRICS_FILE}")
        return []
    lines = []
    bad = 0
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            bad += 1  # a line cut by a kill
            continue
        if isinstance(line, dict) and "step" in line:
            lines.append(line)
    if bad:
        notes.append(f"{path}: skipped {bad} unreadable line(s)")
    return lines


def _newest_sample(run_dir: Path) -> Path | None:
    folder = run_dir / "samples"
    if not folder.is_dir():
        return None
    grids = sorted(folder.glob("step_*.png"))
    return grids[-1] if grids else None


def load_run(path: str | Path) -> Run:
    """Read a run directory; a folder without ``spec.resolved.yaml`` is an error."""
    import yaml

    from vemkit.engine.recipe import final_stage_dir, is_recipe_dir
    from vemkit.evaluate import read_eval

    path = Path(path)
    recipe = path if is_recipe_dir(path) else None
    if recipe is not None:
        path = final_stage_dir(recipe)  # its curves, evaluation and samples are the result's
    spec_path = path / SPEC_FILE
    if not spec_path.is_file():
        raise VemkitError(
            f"{path}: not a run directory (no {SPEC_FILE}); give folders written by `vemkit run`"
        )
    text = spec_path.read_text(encoding="utf-8")
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise VemkitError(f"{spec_path}: not valid YAML ({exc})") from None
    if not isinstance(spec, dict):
        raise VemkitError(f"{spec_path}: not a spec (a mapping was expected)")
    notes: list[str] = []
    log = _read_log(path / METRICS_FILE, notes)
    evaluation = read_eval(path / EVAL_FILE) if (path / EVAL_FILE).is_file() else None
    if evaluation is None:
        notes.append(
            f"{path.name}: no {EVAL_FILE}; the table shows the last evaluation of training and "
            f"no MACs/params (run `vemkit eval {path}`)"
        )
    else:
        notes += [f"{path.name}: {n}" for n in evaluation.get("notes", [])]
    label = (recipe or path).name
    run = Run(path, spec, text, log, evaluation, _newest_sample(path), label, notes)
    run.recipe = recipe
    return run


def _unique_labels(runs: Sequence[Run]) -> None:
    names = [r.path.name for r in runs]
    for run in runs:
        if names.count(run.path.name) > 1:
            run.label = str(run.path)


# -- tables --------------------------------------------------------------------------------------
@dataclass
class Row:
    """One table row: a teacher, or a method over one or more runs."""

    label: str
    role: str
    """``teacher`` or ``student``."""
    entries: list[dict[str, Any]]
    """The ``eval.json`` entries (``{"params", "macs", "metrics": {...}}``) it aggregates."""
    runs: list[str] = field(default_factory=list)

    def size(self, key: str) -> float | None:
        values = [e[key] for e in self.entries if isinstance(e.get(key), int | float)]
        return statistics.fmean(values) if values else None

    def values(self, metric: str) -> list[float]:
        out = []
        for e in self.entries:
            value = (e.get("metrics") or {}).get(metric)
            if isinstance(value, int | float):
                out.append(float(value))
        return out


@dataclass
class Table:
    """A paper-style table: an optional teacher row, then the methods."""

    title: str
    teacher: Row | None
    rows: list[Row]
    keys: list[str]
    higher: dict[str, bool]

    @property
    def all_rows(self) -> list[Row]:
        return ([self.teacher] if self.teacher else []) + self.rows


def _drop(spec: dict[str, Any], paths: Iterable[tuple[str, ...]]) -> dict[str, Any]:
    out = json.loads(json.dumps(spec))
    for path in paths:
        node = out
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _block_key(spec: dict[str, Any]) -> str:
    data = spec.get("data") or {}
    return json.dumps(
        [spec.get("task"), (spec.get("teacher") or {}).get("arch"), data.get("eval") or data],
        sort_keys=True,
    )


def _block_title(spec: dict[str, Any]) -> str:
    data = spec.get("data") or {}
    ds = data.get("eval") or data.get("train") or {}
    where = ""
    if ds.get("root"):
        where = " " + Path(str(ds["root"])).name + (f"/{ds['split']}" if ds.get("split") else "")
    arch = ((spec.get("teacher") or {}).get("arch") or {}).get("type", "?")
    return f"{spec.get('task', '?')}: {ds.get('type', '?')}{where}, teacher {arch}"


def _student_entry(run: Run) -> dict[str, Any]:
    if run.evaluation is not None:
        return run.evaluation.get("student") or {}
    _, scores = run.last_eval()
    return {"metrics": scores}


def _merge_keys(entries: Iterable[dict[str, Any]], keys: list[str]) -> None:
    for e in entries:
        for k in e.get("metrics") or {}:
            if k not in keys:
                keys.append(k)


def build_tables(runs: Sequence[Run]) -> list[Table]:
    """Group runs into tables (same task, teacher arch, eval data) and rows (same recipe)."""
    blocks: dict[str, list[Run]] = {}
    for run in runs:
        blocks.setdefault(_block_key(run.spec), []).append(run)
    tables = []
    for members in blocks.values():
        groups: dict[str, list[Run]] = {}
        for run in members:
            key = json.dumps(_drop(run.spec, ROW_IGNORES), sort_keys=True)
            groups.setdefault(key, []).append(run)
        labels = _row_labels(list(groups.values()))
        rows = [
            Row(label, "student", [_student_entry(r) for r in group], [r.label for r in group])
            for label, group in zip(labels, groups.values(), strict=True)
        ]
        evaluated = [r for r in members if r.evaluation and r.evaluation.get("teacher")]
        teacher = None
        if evaluated:
            arch = evaluated[0].evaluation["teacher"].get("arch", "?")  # type: ignore[index]
            teacher = Row(
                f"teacher ({arch})",
                "teacher",
                [r.evaluation["teacher"] for r in evaluated],  # type: ignore[index]
                [r.label for r in evaluated],
            )
        higher: dict[str, bool] = {}
        for r in members:
            higher.update((r.evaluation or {}).get("higher_is_better") or {})
        keys: list[str] = []
        for row in ([teacher] if teacher else []) + rows:
            _merge_keys(row.entries, keys)
        tables.append(Table(_block_title(members[0].spec), teacher, rows, keys, higher))
    return tables


def _row_labels(groups: list[list[Run]]) -> list[str]:
    """The method label of each group, told apart by the spec values that differ."""
    labels = [g[0].method for g in groups]
    out = list(labels)
    for label in set(labels):
        same = [i for i, other in enumerate(labels) if other == label]
        if len(same) < 2:
            continue
        flat = [_flatten(_drop(groups[i][0].spec, ROW_IGNORES)) for i in same]
        paths = sorted({p for f in flat for p in f})
        differing = [p for p in paths if len({json.dumps(f.get(p)) for f in flat}) > 1]
        for i, f in zip(same, flat, strict=True):
            shown = ", ".join(f"{p}={_short(f.get(p))}" for p in differing[:3])
            more = ", ..." if len(differing) > 3 else ""
            out[i] = f"{label} ({shown}{more})"
    return out


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:21] + "..."


# -- numbers -------------------------------------------------------------------------------------
def _decimals(rows: Sequence[Row], key: str) -> int:
    means = [abs(statistics.fmean(v)) for r in rows if (v := r.values(key))]
    finite = [m for m in means if math.isfinite(m)]
    return 2 if not finite or max(finite) >= 1 else 4


def format_values(values: Sequence[float], decimals: int = 2) -> str:
    """``[10, 12, 14] -> "12.00 ± 2.00"`` (mean ± sample std); one value alone; ``-`` none."""
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {statistics.stdev(values):.{decimals}f}"


def _best(table: Table, key: str) -> int | None:
    """Index (in ``table.rows``) of the best student row for ``key``, when it is meaningful."""
    if key not in table.higher or len(table.rows) < 2:
        return None
    means = [(statistics.fmean(v), i) for i, r in enumerate(table.rows) if (v := r.values(key))]
    means = [(m, i) for m, i in means if math.isfinite(m)]
    if len(means) < 2:
        return None
    return (max(means) if table.higher[key] else min(means))[1]


def _arrow(table: Table, key: str) -> str:
    if key not in table.higher:
        return key
    return f"{key} {'↑' if table.higher[key] else '↓'}"


def table_cells(table: Table) -> tuple[list[str], list[list[str]], list[set[int]]]:
    """Header, rows of text cells, and per row the column indices to emphasise (best)."""
    from vemkit.profile import format_macs, format_params, with_ratio

    header = ["method", "runs", "MACs", "params", *[_arrow(table, k) for k in table.keys]]
    ref_macs = table.teacher.size("macs") if table.teacher else None
    ref_params = table.teacher.size("params") if table.teacher else None
    decimals = {k: _decimals(table.all_rows, k) for k in table.keys}
    best = {k: _best(table, k) for k in table.keys}
    lines, bold = [], []
    offset = 1 if table.teacher else 0
    for n, row in enumerate(table.all_rows):
        cells = [row.label, str(len(row.entries))]
        for key, fmt, ref in (
            ("macs", format_macs, ref_macs),
            ("params", format_params, ref_params),
        ):
            value = row.size(key)
            if value is None:
                cells.append("-")
            elif ref:
                cells.append(with_ratio(fmt(value), ref, value))
            else:
                cells.append(fmt(value))
        cells += [format_values(row.values(k), decimals[k]) for k in table.keys]
        index = n - offset if n >= offset else None
        bold.append(
            {4 + j for j, k in enumerate(table.keys) if index is not None and best[k] == index}
        )
        lines.append(cells)
    return header, lines, bold


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], bold=None) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""

    def cell(text: str, strong: bool) -> str:
        text = text.replace("|", "\\|")
        return f"**{text}**" if strong and text != "-" else text

    bold = bold or [set() for _ in rows]
    lines = ["| " + " | ".join(cell(h, False) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for cells, strong in zip(rows, bold, strict=True):
        lines.append("| " + " | ".join(cell(c, i in strong) for i, c in enumerate(cells)) + " |")
    return "\n".join(lines)


def eval_table(data: dict[str, Any]) -> str:
    """The paper-style table of one ``eval.json`` (what ``vemkit eval`` prints)."""
    label = method_label({"method": {"type": data.get("method")}, "mi": {"type": data.get("mi")}})
    teacher = data.get("teacher")
    table = Table(
        str(data.get("spec", "")),
        Row(f"teacher ({teacher.get('arch', '?')})", "teacher", [teacher]) if teacher else None,
        [Row(label, "student", [data["student"]])],
        [],
        dict(data.get("higher_is_better") or {}),
    )
    _merge_keys([e.entries[0] for e in table.all_rows], table.keys)
    header, rows, _ = table_cells(table)
    return markdown_table(header, rows)


def runs_table(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    """One line per run: its method, seed, checkpoint step and student scores."""
    keys: list[str] = []
    _merge_keys((_student_entry(r) for r in runs), keys)
    header = ["run", "method", "seed", "step", "items", *keys]
    rows = []
    for run in runs:
        ev = run.evaluation
        step = ev.get("step") if ev else run.last_eval()[0]
        scores = _student_entry(run).get("metrics") or {}
        rows.append(
            [
                run.label,
                run.method,
                str(run.seed),
                "-" if step is None else str(step),
                str(ev.get("items", "-")) if ev else "-",
                *[_number(scores.get(k)) for k in keys],
            ]
        )
    return header, rows


def _number(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"


# -- figures -------------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Any:
    # A bare Figure with its own Agg canvas: no pyplot, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path


def curve_keys(runs: Sequence[Run], kind: str) -> list[str]:
    """Keys to plot: ``train`` (``loss/<phase>`` first, then the loss terms) or ``eval``."""
    seen: list[str] = []
    for run in runs:
        for line in run.log:
            for k, v in line.items():
                if k in seen or not isinstance(v, int | float) or isinstance(v, bool):
                    continue
                is_eval = k.startswith("eval/")
                is_train = k not in _NOT_CURVES and not k.startswith(_NOT_CURVE_PREFIXES)
                if is_eval if kind == "eval" else is_train:
                    seen.append(k)
    if kind == "train":
        seen = [k for k in seen if k.startswith("loss/")] + [
            k for k in seen if not k.startswith("loss/")
        ]
    return seen


def _series(run: Run, key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for line in run.log:
        value = line.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            xs.append(float(line["step"]))
            ys.append(float(value))
    return xs, ys


@dataclass(frozen=True)
class RunStyle:
    """How one run is drawn in every panel of a report (the same in all of them)."""

    label: str
    color: Any
    linestyle: str


_LINESTYLES = ("-", "--", ":", "-.")


def run_styles(runs: Sequence[Run]) -> list[RunStyle]:
    """One colour and line style per run, fixed across panels: a run missing from one panel
    must not shift the colours of the others. Up to 10 runs get tab10's colours, up to 20
    tab20's; beyond that the colours repeat with another line style."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(runs) <= 10 else "tab20"].colors
    return [
        RunStyle(
            run.label or f"run {i + 1}",
            palette[i % len(palette)],
            _LINESTYLES[(i // len(palette)) % len(_LINESTYLES)],
        )
        for i, run in enumerate(runs)
    ]


def _plot_panel(ax: Any, runs: Sequence[Run], key: str, styles: Sequence[RunStyle]) -> None:
    """One curve panel; readable for one evaluation point, many runs and unequal lengths.

    * Every run has at most one value (an evaluation at the end only): a line plot would be a
      lone dot on an axis of meaningless scale, so each run is a labelled bar with its value
      written on it, and the step in the title.
    * Runs of different lengths share the x axis; each curve's last point is marked so a run
      that stopped early is seen to stop, and a run with a single value among longer curves is
      a visible marker, not an invisible one-point line.
    * Values spanning more than two decades (a loss that starts far above where it settles)
      are drawn on a log axis; runs without the key are named in the panel.
    """
    series = [(run, style, *_series(run, key)) for run, style in zip(runs, styles, strict=True)]
    present = [(run, style, xs, ys) for run, style, xs, ys in series if xs]
    missing = [style.label for _, style, xs, _ in series if not xs]
    ax.set_title(key, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if present and all(len(xs) == 1 for _, _, xs, _ in present):
        _bars(ax, key, present)
    else:
        longest = max((len(xs) for _, _, xs, _ in present), default=0)
        for _, style, xs, ys in present:
            ax.plot(
                xs,
                ys,
                color=style.color,
                linestyle=style.linestyle,
                linewidth=1.2,
                marker="." if len(xs) < 30 else None,
                label=style.label,
            )
            if len(xs) < longest or len(xs) == 1:  # where a shorter run ends
                ax.plot(xs[-1:], ys[-1:], "o", color=style.color, markersize=4)
        ax.set_xlabel("step", fontsize=8)
        values = [y for _, _, _, ys in present for y in ys]
        if values and min(values) > 0 and max(values) / min(values) > 100:
            ax.set_yscale("log")
        else:
            # Plain tick labels: an offset ("+1.07e1") hides what the numbers are at a glance.
            ax.ticklabel_format(axis="y", useOffset=False)
    if missing and len(runs) > 1:
        names = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        ax.text(
            0.99,
            0.98,
            f"not logged by {names}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=6,
            color="0.4",
        )


def _bars(
    ax: Any, key: str, present: Sequence[tuple[Run, RunStyle, list[float], list[float]]]
) -> None:
    labels = [style.label for _, style, _, _ in present]
    values = [ys[0] for _, _, _, ys in present]
    steps = sorted({int(xs[0]) for _, _, xs, _ in present})
    positions = list(range(len(present)))
    bars = ax.bar(positions, values, color=[style.color for _, style, _, _ in present], width=0.6)
    decimals = 3 if max(abs(v) for v in values) < 10 else 2
    ax.bar_label(bars, labels=[f"{v:.{decimals}f}" for v in values], fontsize=7, padding=2)
    ax.set_xticks(positions)
    ax.set_xticklabels(
        labels,
        fontsize=7,
        rotation=30 if len(labels) > 3 else 0,
        ha="right" if len(labels) > 3 else "center",
    )
    ax.margins(y=0.15)
    at = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}–{steps[-1]}"
    ax.set_title(f"{key} ({at})", fontsize=9)


def _legend(fig: Any, runs: Sequence[Run], styles: Sequence[RunStyle], keys: Sequence[str]) -> None:
    """One legend for the whole figure, below the panels: with many runs a legend inside a
    panel covers its curves, and with per-panel legends colours would have to be matched up."""
    from matplotlib.lines import Line2D

    if len(runs) < 2:
        return
    drawn = [
        s for run, s in zip(runs, styles, strict=True) if any(_series(run, k)[0] for k in keys)
    ]
    handles = [Line2D([], [], color=s.color, linestyle=s.linestyle, linewidth=2) for s in drawn]
    if handles:
        fig.legend(
            handles,
            [s.label for s in drawn],
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=min(4, len(handles)),
            fontsize=8,
            frameon=False,
        )


def curves_figure(runs: Sequence[Run], kind: str = "train") -> Any | None:
    """The figure of :func:`plot_curves` (a matplotlib Figure), or None without curves."""
    keys = curve_keys(runs, kind)[:MAX_PANELS]
    if not keys:
        return None
    cols = min(4, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = _figure(3.4 * cols, 2.6 * rows)
    styles = run_styles(runs)
    for i, key in enumerate(keys):
        _plot_panel(fig.add_subplot(rows, cols, i + 1), runs, key, styles)
    fig.tight_layout()
    _legend(fig, runs, styles, keys)
    return fig


def plot_curves(runs: Sequence[Run], path: Path, kind: str = "train") -> Path | None:
    """A panel per curve (every run drawn in each, one legend below); None without curves."""
    fig = curves_figure(runs, kind)
    return None if fig is None else _save_figure(fig, path)


def grid_columns(run: Run, image: Path, width: int) -> list[str]:
    """Column names of a sample grid: from ``eval.json`` for the eval grid, else from the
    spec's task and image size as the engine draws them."""
    if image == run.eval_samples:
        return list((run.evaluation or {}).get("samples", {}).get("columns") or [])
    if run.spec.get("task") == "unconditional":
        return ["teacher", "student"]
    data = run.spec.get("data") or {}
    size = (data.get("eval") or {}).get("size") or (data.get("train") or {}).get("size") or 256
    n = round((width - 2) / (int(size) + 2))
    return {4: list(GRID_COLUMNS), 3: ["teacher", "student", "target"]}.get(
        n, ["teacher", "student"] if n == 2 else []
    )


def _read_png(path: Path) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _grid_for(run: Run) -> tuple[Path | None, str]:
    if run.eval_samples is not None:
        step = (run.evaluation or {}).get("step")
        return run.eval_samples, f"eval, checkpoint step {step}" if step is not None else "eval"
    if run.samples is not None:
        return run.samples, f"training, {run.samples.stem.replace('_', ' ')}"
    return None, ""


OVERVIEW_GRIDS = 4
"""Runs whose sample grids the overview figure shows side by side."""


def _overview_grid(run: Run, grid_path: Path) -> tuple[Any, list[str]]:
    image = _read_png(grid_path)
    names = grid_columns(run, grid_path, image.shape[1])
    if names:
        side = (image.shape[1] - 2) // len(names) - 2
        image = image[: 2 + OVERVIEW_ROWS * (side + 2)]
    return image, names


def plot_overview(runs: Sequence[Run], path: Path, title: str = "") -> Path | None:
    """The report's main figure: the phase losses and eval curves on top, below them the
    sample grids (up to four rows, columns named) of the first runs, side by side, each
    titled with its run."""
    train = [k for k in curve_keys(runs, "train") if k.startswith("loss/")][:3]
    if not train:
        train = curve_keys(runs, "train")[:3]
    panels = train + curve_keys(runs, "eval")[:2]
    grids = [(run, *_grid_for(run)) for run in runs]
    grids = [(run, p, caption) for run, p, caption in grids if p is not None][:OVERVIEW_GRIDS]
    if not panels and not grids:
        return None
    cols = max(len(panels), len(grids), 1)
    height = (2.8 if panels else 0) + (5.0 if grids else 0)
    fig = _figure(max(3.2 * cols, 4.5 * len(grids), 8.0), height)
    rows = 2 if panels and grids else 1
    spec = fig.add_gridspec(rows, 1, height_ratios=[2.8, 5.0] if rows == 2 else None)
    styles = run_styles(runs)
    if panels:
        top = spec[0].subgridspec(1, len(panels))
        for i, key in enumerate(panels):
            _plot_panel(fig.add_subplot(top[0, i]), runs, key, styles)
    if grids:
        bottom = spec[-1].subgridspec(1, len(grids))
        for i, (run, grid_path, caption) in enumerate(grids):
            image, names = _overview_grid(run, grid_path)
            ax = fig.add_subplot(bottom[0, i])
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if names:
                step = image.shape[1] / len(names)
                ax.set_xticks([step * (j + 0.5) for j in range(len(names))])
                ax.set_xticklabels(names, fontsize=8)
                ax.xaxis.set_ticks_position("top")
            label = f"{run.label}: " if len(grids) > 1 and run.label else ""
            ax.set_xlabel(f"{label}samples, {caption}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _legend(fig, runs, styles, panels)
    return _save_figure(fig, path)


# -- writing -------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


def _beside(src: Path, out: Path, name: str) -> Path:
    """``src`` itself when it lies under ``out`` (a one-run report in its run directory), else
    a copy named ``name`` in ``out``: the Markdown's relative links then always work."""
    try:
        src.resolve().relative_to(out.resolve())
    except ValueError:
        dst = out / name
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        return dst
    return src


def _relative(path: Path, out: Path) -> str:
    return path.resolve().relative_to(out.resolve()).as_posix()


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em}
th,td{border:1px solid #ccc;padding:.3em .7em;text-align:right}
th:first-child,td:first-child{text-align:left}
tr.teacher td{background:#f4f4f4}
th{background:#eaeef3}
img{max-width:100%}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:85%}
.note{color:#555;font-size:90%}
summary{cursor:pointer;margin:.3em 0}
"""


def _html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], bold=None, teacher_first=False
) -> str:
    bold = bold or [set() for _ in rows]
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for n, (cells, strong) in enumerate(zip(rows, bold, strict=True)):
        cls = ' class="teacher"' if teacher_first and n == 0 else ""
        tds = "".join(
            f"<td><b>{html.escape(c)}</b></td>" if i in strong else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(cells)
        )
        out.append(f"<tr{cls}>{tds}</tr>")
    out.append("</table>")
    return "\n".join(out)


TABLE_NOTE = (
    "MACs and params of the generator at batch 1 and the spec's input size, {convention} "
    "convention{convention_note}; ratios are teacher/student as the papers print them. Metrics "
    "are mean ± sample standard deviation over the runs of a row; the best student value of a "
    "metric is in bold."
)


def _stages(runs: Sequence[Run], out: Path) -> tuple[list[str], list[str]]:
    from vemkit.report_stages import stage_sections

    md: list[str] = []
    body: list[str] = []
    for run in runs:
        if run.recipe is None:
            continue
        m, b = stage_sections(run.label, run.recipe, out, _data_uri)
        md += m
        body += b
    if md:
        md = ["## Stages", "", *md]
        body = ["<h2>Stages</h2>", *body]
    return md, body


def write_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path | None = None,
    title: str | None = None,
) -> dict[str, Path]:
    """Write ``report.html`` and ``report.md`` (with its PNGs) for ``run_dirs``.

    ``out_dir`` defaults to the run directory for one run, else ``report/`` beside the runs.
    Returns the paths written by name (``html``, ``md``, ``overview``, ...).
    """
    from vemkit import __version__
    from vemkit.engine.checkpoint import write_text_atomic

    if not run_dirs:
        raise VemkitError("report: give at least one run directory")
    runs = [load_run(p) for p in run_dirs]
    _unique_labels(runs)
    if out_dir is None:
        if len(runs) == 1:
            out_dir = runs[0].recipe or runs[0].path
        else:
            folders = [str((r.recipe or r.path).resolve().parent) for r in runs]
            parent = os.path.commonpath(folders)
            out_dir = Path(parent) / "report"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if title is None:
        title = (
            f"vemkit report: {runs[0].spec.get('name', runs[0].label)}"
            if len(runs) == 1
            else f"vemkit report: {len(runs)} runs"
        )

    written: dict[str, Path] = {}
    figures = [
        ("overview", plot_overview(runs, out / "report_overview.png", title)),
        ("curves", plot_curves(runs, out / "report_curves.png", "train")),
        ("eval_curves", plot_curves(runs, out / "report_eval_curves.png", "eval")),
    ]
    for name, figure in figures:
        if figure is not None:
            written[name] = figure
    grids: list[tuple[Run, Path, str]] = []
    for run in runs:
        for source, prefix, caption in (
            (run.eval_samples, "eval_samples", "evaluation"),
            (run.samples, "samples", "training"),
        ):
            if source is None:
                continue
            dst = _beside(source, out, f"{prefix}_{_slug(run.label)}.png")
            names = grid_columns(run, source, _read_png(source).shape[1])
            step = (
                (run.evaluation or {}).get("step")
                if prefix == "eval_samples"
                else int(source.stem.split("_")[-1])
            )
            cap = f"{run.label}: {caption}" + (f", step {step}" if step is not None else "")
            cap += f" ({' | '.join(names)})" if names else ""
            grids.append((run, dst, cap))
            written[f"{prefix}:{run.label}"] = dst

    tables = build_tables(runs)
    conventions = {(r.evaluation or {}).get("macs_convention") for r in runs} - {None}
    convention = ", ".join(sorted(conventions)) or "paper"
    note = TABLE_NOTE.format(
        convention=convention,
        convention_note=" (torchprofile's rule: transposed convolutions counted at their output "
        "resolution)"
        if convention == "paper"
        else "",
    )
    run_header, run_rows = runs_table(runs)
    notes = [n for r in runs for n in r.notes]
    created = time.strftime("%Y-%m-%d %H:%M:%S")

    # Markdown, PNGs beside it.
    md = [f"# {title}", "", f"_vemkit {__version__}, {created}; {len(runs)} run(s)._", ""]
    if "overview" in written:
        md += [f"![overview]({written['overview'].name})", ""]
    md += ["## Results", ""]
    for table in tables:
        header, rows, bold = table_cells(table)
        md += [f"### {table.title}", "", markdown_table(header, rows, bold), ""]
    md += [note, "", "## Runs", "", markdown_table(run_header, run_rows), ""]
    stage_md, stage_html = _stages(runs, out)
    md += stage_md
    for name, heading in (("curves", "Training curves"), ("eval_curves", "Evaluation curves")):
        if name in written:
            md += [f"## {heading}", "", f"![{name}]({written[name].name})", ""]
    if grids:
        md += ["## Samples", ""]
        for _, dst, cap in grids:
            md += [f"{cap}", "", f"![{cap}]({_relative(dst, out)})", ""]
    md += ["## Specs", ""]
    for run in runs:
        md += [f"### {run.label}", "", "```yaml", run.spec_text.rstrip(), "```", ""]
    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    written["md"] = out / "report.md"
    write_text_atomic(written["md"], "\n".join(md))

    # HTML, every image embedded.
    e = html.escape
    body = [
        f"<h1>{e(title)}</h1>",
        f'<p class="note">vemkit {e(__version__)}, {e(created)}; {len(runs)} run(s).</p>',
    ]
    if "overview" in written:
        body.append(f'<img alt="overview" src="{_data_uri(written["overview"])}">')
    body.append("<h2>Results</h2>")
    for table in tables:
        header, rows, bold = table_cells(table)
        body += [
            f"<h3>{e(table.title)}</h3>",
            _html_table(header, rows, bold, teacher_first=table.teacher is not None),
        ]
    body += [f'<p class="note">{e(note)}</p>', "<h2>Runs</h2>", _html_table(run_header, run_rows)]
    body += stage_html
    for name, heading in (("curves", "Training curves"), ("eval_curves", "Evaluation curves")):
        if name in written:
            body += [f"<h2>{heading}</h2>", f'<img alt="{name}" src="{_data_uri(written[name])}">']
    if grids:
        body.append("<h2>Samples</h2>")
        for _, dst, cap in grids:
            body += [
                f'<figure><img alt="{e(cap)}" src="{_data_uri(dst)}">'
                f"<figcaption>{e(cap)}</figcaption></figure>"
            ]
    body.append("<h2>Specs</h2>")
    for run in runs:
        body.append(
            f"<details><summary>{e(run.label)}: {SPEC_FILE}</summary>"
            f"<pre>{e(run.spec_text)}</pre></details>"
        )
    if notes:
        body += ["<h2>Notes</h2>", "<ul>", *[f"<li>{e(n)}</li>" for n in notes], "</ul>"]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    written["html"] = out / "report.html"
    write_text_atomic(written["html"], page)
    return written
