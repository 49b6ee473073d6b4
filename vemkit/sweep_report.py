"""The report of a sweep: paired statistics against the reference arm, per-arm scores, curves.

For every metric and every arm other than the reference (``--baseline``, by default the arm
that sets ``mi.type=none``), the cells of that arm are paired with the reference cells that
differ only in the reference's axis and have the same seed: same seed, same weights at start
and same data order, so the per-seed difference removes what the seeds share. Over the ``n``
seeds with both scores, the report gives the mean difference ``d̄``, its sample standard
deviation ``s`` and the two-sided Student-t interval ``d̄ ± t(1 − α/2, n − 1) · s / √n``
(95 % by default), and whether that interval excludes zero. With ``n < 2`` there is no interval.

Written to ``OUT/report/``: ``report.md`` (PNGs beside it), a self-contained ``report.html``,
and ``OUT/sweep.json`` with every cell's scores and every statistic.
"""

from __future__ import annotations

import base64
import functools
import html
import math
import os
import platform
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vemkit.sweep import RESULTS_FILE, Cell, Sweep, planned_iterations

REPORT_DIR = "report"
CONFIDENCE = 0.95
SCORE_DIGITS = 4
"""Decimals of a score below 100 in the scores table (one decimal from 100 up)."""


# -- statistics -----------------------------------------------------------------------------------
@dataclass
class Paired:
    """The paired difference (arm − reference) of one metric over the seeds both have."""

    n: int
    seeds: list[int]
    differences: list[float]
    mean: float
    sd: float
    """Sample standard deviation of the differences (n − 1 in the denominator)."""
    low: float
    high: float
    """The ``confidence`` t-interval of the mean difference (NaN when n < 2)."""
    confidence: float
    excludes_zero: bool


def t_half_width(stderr: float, dof: int, confidence: float = CONFIDENCE) -> float:
    """Half-width of the two-sided ``confidence`` Student-t interval of an estimate with this
    standard error and these degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, dof)) * stderr


def paired_difference(
    arm: Mapping[int, float], reference: Mapping[int, float], confidence: float = CONFIDENCE
) -> Paired:
    """Per-seed differences ``arm[s] − reference[s]`` over the seeds with finite scores in both,
    their mean and the two-sided t-interval of the mean."""
    seeds = sorted(
        s for s in arm if s in reference and math.isfinite(arm[s]) and math.isfinite(reference[s])
    )
    diffs = [float(arm[s]) - float(reference[s]) for s in seeds]
    n = len(diffs)
    if n == 0:
        return Paired(0, [], [], math.nan, math.nan, math.nan, math.nan, confidence, False)
    mean = statistics.fmean(diffs)
    if n < 2:
        return Paired(1, seeds, diffs, mean, math.nan, math.nan, math.nan, confidence, False)
    sd = statistics.stdev(diffs)
    half = t_half_width(sd / math.sqrt(n), n - 1, confidence)
    low, high = mean - half, mean + half
    return Paired(n, seeds, diffs, mean, sd, low, high, confidence, low > 0 or high < 0)


def verdict(stat: Paired, higher_is_better: bool | None) -> str:
    """``better`` / ``worse`` than the reference when the interval excludes zero."""
    if stat.n < 2:
        return "n < 2: no interval"
    if not stat.excludes_zero:
        return "no difference shown"
    if higher_is_better is None:
        return "higher" if stat.mean > 0 else "lower"
    return "better" if (stat.mean > 0) == higher_is_better else "worse"


# -- gathering ------------------------------------------------------------------------------------
@dataclass
class Config:
    """The cells of one arm combination (one row of the tables), over the seeds."""

    name: str
    arms: list[str]
    scores: dict[str, dict[int, float]] = field(default_factory=dict)
    """metric → seed → student score."""
    cells: list[Cell] = field(default_factory=list)
    _logs: tuple[list[Any], list[dict[int, dict[str, Any]]]] | None = field(
        default=None, repr=False, compare=False
    )

    def logs(self) -> tuple[list[Any], list[dict[int, dict[str, Any]]]]:
        """The runs of the cells that exist and their logs by step, read once for the curves
        and the convergence table."""
        if self._logs is None:
            from vemkit.report import load_run

            runs = [load_run(cell.run_dir) for cell in self.cells if cell.run_dir.is_dir()]
            self._logs = (runs, [_by_step(r) for r in runs])
        return self._logs

    @functools.cached_property
    def train_seconds(self) -> dict[int, float]:
        """seed → how long that cell trained (:func:`training_seconds`), for the cells that
        logged times; read once for the tables and ``sweep.json``."""
        runs, _ = self.logs()
        by_dir = {r.recipe or r.path: r for r in runs}
        seconds = {}
        for cell in self.cells:
            run = by_dir.get(cell.run_dir)
            took = training_seconds(run.log) if run is not None else None
            if took is not None:
                seconds[cell.seed] = took
        return seconds


def training_seconds(log: Sequence[Mapping[str, Any]]) -> float | None:
    """How long a run trained: the ``time`` of its last training line, summed over the
    processes that wrote the log (a resumed run's clock starts again at 0, so each drop of
    ``time`` closes one process's share; the steps a stopped process lost are not counted).
    The evaluation after training is not in it. None when no line has a time."""
    total, last = 0.0, None
    for line in log:
        now = line.get("time")
        if not isinstance(now, int | float) or isinstance(now, bool):
            continue
        if last is not None and now < last:
            total += last
        last = float(now)
    return None if last is None else total + last


def gather(
    sweep: Sweep, evaluations: Mapping[int, dict[str, Any]]
) -> tuple[list[Config], dict[str, bool], list[int]]:
    """Group the cells by arm combination; the metrics' directions; the item counts."""
    configs: dict[str, Config] = {}
    higher: dict[str, bool] = {}
    items: list[int] = []
    for cell in sweep.cells:
        config = configs.setdefault(cell.config, Config(cell.config, [a.name for a in cell.arms]))
        config.cells.append(cell)
        data = evaluations[cell.index]
        higher.update({k: bool(v) for k, v in (data.get("higher_is_better") or {}).items()})
        if isinstance(data.get("items"), int) and data["items"] not in items:
            items.append(data["items"])
        for key, value in (data.get("student", {}).get("metrics") or {}).items():
            if isinstance(value, int | float):
                config.scores.setdefault(key, {})[cell.seed] = float(value)
    return list(configs.values()), higher, items


def reference_of(sweep: Sweep, config: Config) -> str | None:
    """The name of the reference combination paired with ``config`` (None for itself or when
    the sweep has no reference)."""
    if sweep.baseline is None or sweep.baseline_axis is None:
        return None
    arms = list(config.arms)
    if arms[sweep.baseline_axis] == sweep.baseline.name:
        return None
    arms[sweep.baseline_axis] = sweep.baseline.name
    return "+".join(arms)


def metric_keys(configs: Sequence[Config]) -> list[str]:
    """Every metric the configs were scored on, in the order they first appear."""
    keys: list[str] = []
    for c in configs:
        keys += [k for k in c.scores if k not in keys]
    return keys


def is_score(key: str) -> bool:
    """Whether a metric key is a score to compare: ``kid_std`` and the like are the spread of
    an estimate (the statistics and the convergence table skip them)."""
    return not key.endswith("_std")


def statistics_table(
    sweep: Sweep, configs: Sequence[Config], higher: Mapping[str, bool]
) -> list[dict[str, Any]]:
    """One record per (metric, arm combination other than the reference)."""
    by_name = {c.name: c for c in configs}
    rows = []
    for key in [k for k in metric_keys(configs) if is_score(k)]:
        for config in configs:
            ref_name = reference_of(sweep, config)
            if ref_name is None or ref_name not in by_name:
                continue
            ref = by_name[ref_name]
            if key not in config.scores or key not in ref.scores:
                continue
            stat = paired_difference(config.scores[key], ref.scores[key])
            rows.append(
                {
                    "metric": key,
                    "config": config.name,
                    "reference": ref_name,
                    "higher_is_better": higher.get(key),
                    "arm_mean": _mean(config.scores[key]),
                    "reference_mean": _mean(ref.scores[key]),
                    **asdict(stat),
                    "verdict": verdict(stat, higher.get(key)),
                }
            )
    return rows


def _mean(values: Mapping[int, float]) -> float:
    finite = [v for v in values.values() if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


# -- convergence ----------------------------------------------------------------------------------
TAIL = 0.2
"""The last part of training (a fraction of the evaluated steps) whose change says whether a
curve has flattened."""
FLAT = 0.1
"""A curve counts as flattened when its last part moved it by at most this fraction of its
range (max − min over the run), or when that move is not told apart from the evaluation noise
(its ``CONFIDENCE`` interval includes 0)."""
TREND = 0.5
"""The part of the curve (a fraction of the evaluated steps, at least 3 points) whose
least-squares line estimates the last part's change."""


def _line_change(
    xs: Sequence[float], ys: Sequence[float], length: float
) -> tuple[float, float, float]:
    """The change over ``length`` steps of the least-squares line through ``(xs, ys)`` (3 points
    or more) and its ``CONFIDENCE`` t-interval (the slope's standard error, n − 2 dof)."""
    from scipy import stats

    line = stats.linregress(xs, ys)
    half = t_half_width(float(line.stderr), len(xs) - 2) * length
    change = float(line.slope) * length
    return change, change - half, change + half


def convergence_rows(configs: Sequence[Config]) -> list[dict[str, Any]]:
    """Per arm and evaluation metric logged during training: how much the last ``TAIL`` of the
    evaluated steps moved the mean curve over the seeds, as a fraction of the curve's range,
    with its ``CONFIDENCE`` interval, and whether the curve has flattened: the move is at most
    ``FLAT`` of the range, or its interval includes 0.

    The change is the slope of the least-squares line through the last ``TREND`` of the mean
    curve times the last part's length in steps, not the difference of its last two points:
    an evaluation from few samples is noisy, and a difference of two noisy points would call a
    curve that has stopped moving unfinished by chance (its range is noise too). Needs 3 points
    or more; a curve that never changed (a logged constant) is no learning curve and has no
    row. The interval is the t-interval of the line's slope (its standard error from the
    residuals, n − 2 degrees of freedom) times the same length: a curve that has stopped
    learning early has a range made of noise, and a share of it says nothing unless the move
    stands out of that noise. Each row keeps the mean curve it judged (``steps``, ``mean``),
    so that ``sweep.json`` alone can be judged again by another rule.

    A second reading, which does not decide ``flattened``: the line through the last part
    alone (``tail_alone_*``, when it has 3 points or more). On a curve that bends flat under a
    decaying learning rate the line through the last half still carries the earlier slope and
    overstates the last part's change; the line through the last part alone does not, at the
    cost of a wider interval."""
    from vemkit.report import curve_keys

    rows = []
    for config in configs:
        runs, logs = config.logs()
        if not runs:
            continue
        for key in [k for k in curve_keys(runs, "eval") if is_score(k)]:
            xs, mean, _, _ = _band(logs, key)
            spread = max(mean) - min(mean) if mean else 0.0
            if len(xs) < 3 or spread == 0:
                continue
            span = xs[-1] - xs[0]
            trend_from = min(
                len(xs) - 3, min(i for i, x in enumerate(xs) if x >= xs[-1] - TREND * span)
            )
            length = TAIL * span
            tail, low, high = _line_change(xs[trend_from:], mean[trend_from:], length)
            share = abs(tail) / spread
            shown = low > 0 or high < 0
            tail_from = min(i for i, x in enumerate(xs) if x >= xs[-1] - length)
            alone = (
                _line_change(xs[tail_from:], mean[tail_from:], length)
                if len(xs) - tail_from >= 3
                else (math.nan, math.nan, math.nan)
            )
            rows.append(
                {
                    "config": config.name,
                    "metric": key,
                    "seeds": len(logs),
                    "first_step": int(xs[0]),
                    "last_step": int(xs[-1]),
                    "trend_from_step": int(xs[trend_from]),
                    "first": mean[0],
                    "last": mean[-1],
                    "tail_change": tail,
                    "tail_change_low": low,
                    "tail_change_high": high,
                    "range": spread,
                    "tail_share": share,
                    "change_shown": shown,
                    "flattened": share <= FLAT or not shown,
                    "tail_from_step": int(xs[tail_from]),
                    "tail_alone_change": alone[0],
                    "tail_alone_low": alone[1],
                    "tail_alone_high": alone[2],
                    "tail_alone_share": abs(alone[0]) / spread,
                    "steps": [int(step) for step in xs],
                    "mean": mean,
                }
            )
    return rows


def convergence_cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["arm", "metric", "steps", "first", "last", "last-part change",
              f"{round(CONFIDENCE * 100)} % interval", "of range", "flattened",
              "line through the last part alone"]  # fmt: skip
    body = [
        [
            r["config"],
            r["metric"],
            f"{r['first_step']}–{r['last_step']} (trend from {r['trend_from_step']})",
            _num(r["first"]),
            _num(r["last"]),
            _signed(r["tail_change"]),
            f"[{_signed(r['tail_change_low'])}, {_signed(r['tail_change_high'])}]",
            f"{100 * r['tail_share']:.1f} %",
            "yes" if r["flattened"] else "no",
            _tail_alone(r),
        ]
        for r in rows
    ]
    return header, body


def _tail_alone(row: Mapping[str, Any]) -> str:
    change = row.get("tail_alone_change", math.nan)
    if not math.isfinite(change):
        return "—"
    return (
        f"{_signed(change)} [{_signed(row['tail_alone_low'])}, "
        f"{_signed(row['tail_alone_high'])}], {100 * row['tail_alone_share']:.1f} %"
    )


# -- rendering ------------------------------------------------------------------------------------
def _num(value: Any, digits: int = 4) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.3f}"
    return f"{value:.{digits}g}"


def _signed(value: Any) -> str:
    text = _num(value)
    return text if text == "-" or text.startswith("-") or text == "0" else "+" + text


def stats_cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    pct = f"{round(CONFIDENCE * 100)} % interval"
    header = [
        "metric",
        "arm",
        "vs",
        "n",
        "reference",
        "arm mean",
        "Δ mean",
        pct,
        "excludes 0",
        "verdict",
    ]
    body = []
    for r in rows:
        arrow = {True: " ↑", False: " ↓"}.get(r["higher_is_better"], "")
        interval = f"[{_signed(r['low'])}, {_signed(r['high'])}]" if r["n"] >= 2 else "-"
        body.append(
            [
                r["metric"] + arrow,
                r["config"],
                r["reference"],
                str(r["n"]),
                _num(r["reference_mean"]),
                _num(r["arm_mean"]),
                _signed(r["mean"]),
                interval,
                "yes" if r["excludes_zero"] else "no",
                r["verdict"],
            ]
        )
    return header, body


def compact_cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The paired differences at a glance: a row per arm, a column per metric, each cell
    ``Δ mean [interval]``, in bold where the interval excludes 0 (a difference the seeds show),
    followed by the verdict (better/worse)."""
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    configs = list(dict.fromkeys(r["config"] for r in rows))
    by = {(r["config"], r["metric"]): r for r in rows}
    direction = {r["metric"]: r["higher_is_better"] for r in rows}
    header = ["arm", *(m + {True: " ↑", False: " ↓"}.get(direction[m], "") for m in metrics)]
    body = []
    for config in configs:
        line = [config]
        for m in metrics:
            r = by.get((config, m))
            if r is None:
                line.append("-")
                continue
            text = _signed(r["mean"])
            if r["n"] >= 2:
                text += f" [{_signed(r['low'])}, {_signed(r['high'])}]"
            if r["excludes_zero"]:
                text = f"**{text}** ({r['verdict']})"
            line.append(text)
        body.append(line)
    return header, body


def scores_cells(configs: Sequence[Config]) -> tuple[list[str], list[list[str]]]:
    from vemkit.report import format_values

    # A spread that rounds to 0 in every cell says nothing: KID from as many samples as its
    # subsets hold has every subset the whole set, and a std of float rounding (~1e-7) that the
    # table would print as "0.0000 ± 0.0000".
    shown = 0.5 * 10**-SCORE_DIGITS
    metrics = [
        k
        for k in metric_keys(configs)
        if is_score(k)
        or any(abs(v) >= shown for c in configs for v in (c.scores.get(k) or {}).values())
    ]
    timed = any(c.train_seconds for c in configs)
    header = ["arm", "seeds", *metrics, *(["training (min)"] if timed else [])]
    body = []
    for c in configs:
        cells = [c.name, ",".join(str(x.seed) for x in c.cells)]
        for key in metrics:
            values = [v for v in (c.scores.get(key) or {}).values() if math.isfinite(v)]
            digits = 1 if values and max(abs(v) for v in values) >= 100 else SCORE_DIGITS
            cells.append(format_values(values, digits) if values else "-")
        if timed:
            cells.append(_minutes_range(c.train_seconds.values()))
        body.append(cells)
    return header, body


def _minutes_range(seconds: Iterable[float]) -> str:
    """``low–high`` minutes (one value when they agree to a tenth), ``-`` for none."""
    shown = sorted({f"{s / 60:.1f}" for s in seconds}, key=float)
    if not shown:
        return "-"
    return shown[0] if len(shown) == 1 else f"{shown[0]}–{shown[-1]}"


def cell_cells(sweep: Sweep, configs: Sequence[Config]) -> tuple[list[str], list[list[str]]]:
    """One row per cell: its index, name, training time and run directory."""
    took = {c.name: c.train_seconds for c in configs}
    body = []
    for cell in sweep.cells:
        seconds = took.get(cell.config, {}).get(cell.seed)
        minutes = _minutes_range([] if seconds is None else [seconds])
        body.append([str(cell.index), cell.name, minutes, str(cell.run_dir)])
    return ["#", "cell", "training (min)", "run directory"], body


def _by_step(run: Any) -> dict[int, dict[str, Any]]:
    """A run's ``metrics.jsonl`` by step (training and evaluation of a step are two lines)."""
    steps: dict[int, dict[str, Any]] = {}
    for line in run.log:
        if isinstance(line.get("step"), int):
            steps.setdefault(line["step"], {}).update(line)
    return steps


def _band(logs: Sequence[dict[int, dict[str, Any]]], key: str) -> tuple[list[float], ...]:
    """Steps where every seed logged ``key``; the mean, min and max over the seeds there."""

    def finite(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    common = sorted(set.intersection(*({s for s, d in log.items() if finite(d.get(key))}
                                       for log in logs)))  # fmt: skip
    values = [[float(log[s][key]) for log in logs] for s in common]
    return (
        [float(s) for s in common],
        [statistics.fmean(v) for v in values],
        [min(v) for v in values],
        [max(v) for v in values],
    )


def plot_arm_curves(configs: Sequence[Config], out: Path) -> dict[str, Path]:
    """Training and evaluation curves: a panel per logged quantity (the keys
    :func:`vemkit.report.curve_keys` picks), in it one line per arm, the mean over its seeds,
    with the seeds' range shaded. An arm keeps its colour in every panel, also where another
    arm did not log that quantity (``mi.energy/*`` under ``mi.type=none``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from vemkit.fileio import atomic_path
    from vemkit.report import MAX_PANELS, curve_keys

    arms = []
    for c in configs:
        runs, logs = c.logs()
        if runs:
            arms.append((c.name, runs, logs))
    all_runs = [r for _, runs, _ in arms for r in runs]
    colours = [f"C{i % 10}" for i in range(len(arms))]
    written = {}
    for kind in ("train", "eval"):
        keys = curve_keys(all_runs, kind)[:MAX_PANELS]
        if not keys:
            continue
        cols = min(4, len(keys))
        rows = math.ceil(len(keys) / cols)
        fig = Figure(figsize=(3.4 * cols, 2.6 * rows + 0.4), dpi=100)
        FigureCanvasAgg(fig)
        for n, key in enumerate(keys):
            ax = fig.add_subplot(rows, cols, n + 1)
            for (name, _, logs), colour in zip(arms, colours, strict=True):
                xs, mean, low, high = _band(logs, key)
                if not xs:
                    continue
                ax.plot(xs, mean, color=colour, linewidth=1.2, label=name,
                        marker="." if len(xs) < 30 else None)  # fmt: skip
                if len(logs) > 1:
                    ax.fill_between(xs, low, high, color=colour, alpha=0.18, linewidth=0)
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            ax.ticklabel_format(axis="y", useOffset=False)
        handles = [
            fig.axes[0].plot([], [], color=colour, label=name)[0]
            for (name, _, _), colour in zip(arms, colours, strict=True)
        ]
        fig.legend(handles=handles, loc="upper center", ncol=min(6, len(arms)), fontsize=8,
                   frameon=False)  # fmt: skip
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (2.6 * rows + 0.4)))
        path = out / f"curves_{kind}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
        written[kind] = path
    return written


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} usable cores"


def write_report(
    sweep: Sweep,
    evaluations: Mapping[int, dict[str, Any]],
    *,
    title: str | None = None,
    command: str | None = None,
    jobs: int = 1,
    seconds: float | None = None,
) -> dict[str, Path]:
    """Write ``OUT/sweep.json`` and ``OUT/report/report.{md,html}``; returns the paths."""
    import json

    from vemkit import __version__
    from vemkit.fileio import write_text_atomic
    from vemkit.report import CSS, markdown_table

    configs, higher, items = gather(sweep, evaluations)
    rows = statistics_table(sweep, configs, higher)
    converged = convergence_rows(configs)
    out = sweep.out / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    figures = plot_arm_curves(configs, out)
    title = title or f"vemkit sweep: {Path(sweep.spec_path).name}"
    first = evaluations[sweep.cells[0].index]
    device = first.get("device", "?")
    created = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    item_text = ", ".join(str(i) for i in items) or "?"
    iterations = sorted({planned_iterations(c.spec) for c in sweep.cells})
    facts = [
        f"spec `{sweep.spec_path}`; {len(sweep.cells)} cells = "
        + " × ".join(f"{len(a.arms)} ({a.name})" for a in sweep.axes)
        + f" × {len(sweep.seeds)} seeds ({', '.join(map(str, sweep.seeds))})",
        f"{', '.join(map(str, iterations))} iterations per cell; evaluation of the last "
        f"checkpoint on {item_text} item(s) of data.eval per cell (FID/KID from that many "
        "samples: compare only equal counts), student only",
        f"reference arm: `{sweep.baseline.name}`" if sweep.baseline else "no reference arm",
        f"{jobs} process(es) at a time, {sweep.threads or 'default'} thread(s) each; "
        f"{_machine()}; evaluated on {device}; vemkit {__version__}, torch "
        f"{first.get('torch', '?')}; {created}"
        + (f"; wall {seconds / 60:.1f} min this invocation" if seconds is not None else ""),
    ]
    if sweep.shared is not None:
        facts.append(
            f"every cell takes the stages up to '{sweep.shared_stage}' from "
            f"`{sweep.shared.run_dir}` (trained once, seed {sweep.shared.seed}) and trains only "
            "the stages after it: the seeds and arms vary those alone"
        )
    if command:
        facts.append(f"command: `{command}`")
    about = (
        f"Paired differences arm − reference over the seeds (same seed: same initial weights "
        f"and data order), mean and two-sided {round(CONFIDENCE * 100)} % Student-t interval "
        "(mean ± t·s/√n); an interval that excludes 0 is a difference these seeds show, in the "
        "direction of the verdict (↑: higher is better, ↓: lower is better)."
    )
    s_head, s_body = stats_cells(rows)
    a_head, a_body = scores_cells(configs)
    c_head, c_body = convergence_cells(converged)
    k_head, k_body = compact_cells(rows)
    cell_head, cell_body = cell_cells(sweep, configs)
    flat_about = (
        f"The mean evaluation curve of each arm over its seeds: how much the last "
        f"{round(TAIL * 100)} % of the evaluated steps moved it, as a share of the curve's range "
        f"(max − min). The change is the slope of the least-squares line through the last "
        f"{round(TREND * 100)} % of the curve (3 points at least) times the last part's "
        "length, which a noisy evaluation point moves less than a difference of the last two "
        f"would; its {round(CONFIDENCE * 100)} % interval comes from the line's standard error. "
        f"A curve has flattened when the change is at most {round(FLAT * 100)} % of the range "
        "or its interval includes 0 (a move not told apart from the evaluation noise: a curve "
        "that stopped learning early has a range of noise). The last column is a second "
        "reading that does not decide: the line through the last part's points alone (from "
        "3 points), which a curve bending flat under a decaying learning rate does not "
        "overstate as the longer line may. A curve with no row never "
        "changed. A schedule that decays the learning rate to 0 flattens every curve by its "
        "end: read it with the curves below."
    )

    md = [f"# {title}", ""] + [f"- {f}" for f in facts] + [""]
    md += ["## Paired differences to the reference", ""]
    if rows:
        md += [markdown_table(k_head, k_body), "", "Every statistic:", ""]
    md += [
        markdown_table(s_head, s_body) if rows else "No reference arm: no paired statistics.",
        "",
        about,
        "",
    ]
    md += [
        "## Scores per arm (mean ± sample std over seeds)",
        "",
        markdown_table(a_head, a_body),
        "",
    ]
    if converged:
        md += ["## Have the curves flattened?", "", markdown_table(c_head, c_body), "",
               flat_about, ""]  # fmt: skip
    for kind, heading in (("train", "Training curves"), ("eval", "Evaluation curves")):
        if kind in figures:
            md += [
                f"## {heading} (per arm: mean over seeds, their range shaded)",
                "",
                f"![{kind}]({figures[kind].name})",
                "",
            ]
    cells_about = (
        "Each line of `commands.txt` trains and evaluates one cell. Its training time runs "
        "from the start to the last logged training step, summed over the processes that "
        "resumed it; the evaluation after training is not in it."
    )
    md += ["## Cells", "", cells_about, ""]
    md += [
        markdown_table(cell_head, cell_body),
        "",
    ]
    paths = {"md": write_text_atomic(out / "report.md", "\n".join(md))}

    e = html.escape

    def table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in header)
        lines = ["<table>", f"<tr>{head}</tr>"]
        lines += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in body]
        return "\n".join([*lines, "</table>"])

    body = [f"<h1>{e(title)}</h1>", "<ul>"] + [f"<li>{e(f)}</li>" for f in facts] + ["</ul>"]
    body += [
        "<h2>Paired differences to the reference</h2>",
        table(k_head, [[c.replace("**", "") for c in r] for r in k_body]) if rows else "",
        table(s_head, s_body) if rows else "<p>No reference arm.</p>",
        f'<p class="note">{e(about)}</p>',
        "<h2>Scores per arm (mean ± sample std over seeds)</h2>",
        table(a_head, a_body),
    ]
    if converged:
        body += [
            "<h2>Have the curves flattened?</h2>",
            table(c_head, c_body),
            f'<p class="note">{e(flat_about)}</p>',
        ]
    for kind, heading in (("train", "Training curves"), ("eval", "Evaluation curves")):
        if kind in figures:
            body += [
                f"<h2>{heading} (per arm: mean over seeds, their range shaded)</h2>",
                f'<img alt="{kind}" src="{_data_uri(figures[kind])}">',
            ]
    body += [
        "<h2>Cells</h2>",
        f'<p class="note">{e(cells_about)}</p>',
        table(cell_head, cell_body),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    paths["html"] = write_text_atomic(out / "report.html", page)
    paths.update({f"curves_{k}": v for k, v in figures.items()})

    result = {
        "format": 1,
        "title": title,
        "facts": facts,
        "plan": sweep.to_json(),
        "items": items,
        "higher_is_better": higher,
        "statistics": rows,
        "convergence": converged,
        "configs": [
            {
                "name": c.name,
                "arms": c.arms,
                "scores": {k: {str(s): v for s, v in d.items()} for k, d in c.scores.items()},
                "train_seconds": {str(s): v for s, v in c.train_seconds.items()},
            }
            for c in configs
        ],
        "report": {k: str(v) for k, v in paths.items()},
    }
    text = json.dumps(_finite(result), indent=1, default=_jsonable, allow_nan=False)
    paths["json"] = write_text_atomic(sweep.out / RESULTS_FILE, text + "\n")
    return paths


def _jsonable(value: Any) -> Any:
    return str(value)


def _finite(value: Any) -> Any:
    """NaN and infinities as null (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def paired_summary_lines(sweep: Sweep, evaluations: Mapping[int, dict[str, Any]]) -> list[str]:
    """The report's two tables as Markdown lines (what the command prints)."""
    from vemkit.report import markdown_table

    configs, higher, _ = gather(sweep, evaluations)
    rows = statistics_table(sweep, configs, higher)
    a_head, a_body = scores_cells(configs)
    lines = ["Scores per arm (mean ± std over seeds):", "", markdown_table(a_head, a_body), ""]
    if rows:
        s_head, s_body = stats_cells(rows)
        k_head, k_body = compact_cells(rows)
        lines += [
            f"Paired differences to {sweep.baseline.name if sweep.baseline else '?'} "
            f"(per seed, mean, {round(CONFIDENCE * 100)} % t-interval; bold: the interval "
            "excludes 0):",
            "",
            markdown_table(k_head, k_body),
            "",
            "Every statistic:",
            "",
            markdown_table(s_head, s_body),
            "",
        ]
    converged = convergence_rows(configs)
    if converged:
        still = [f"{r['config']} {r['metric']}" for r in converged if not r["flattened"]]
        lines += [
            f"Evaluation curves flattened (the trend of the last {round(TREND * 100)} % of the "
            f"steps moves the mean curve by ≤ {round(FLAT * 100)} % of its range over the last "
            f"{round(TAIL * 100)} %, or by a change whose {round(CONFIDENCE * 100)} % interval "
            f"includes 0): {len(converged) - len(still)} of {len(converged)}"
            + (f"; still moving: {', '.join(still)}" if still else ""),
            "",
        ]
    return lines
