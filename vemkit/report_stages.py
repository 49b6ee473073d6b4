"""The report's section on a recipe's stages: each training stage's curves, and for each
prune or search step the channels per layer before and after and the MACs/params of the result.

Kept apart from :mod:`vemkit.report` (which reads one folder per run): a recipe's run folder
holds a folder per stage (:mod:`vemkit.engine.recipe`), and this module reads those.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_LAYER_ROWS = 60
MAX_CANDIDATE_ROWS = 10


@dataclass
class StageView:
    """One stage of a recipe as the report shows it."""

    name: str
    kind: str
    status: str
    folder: Path
    log: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def read_stages(run_dir: Path) -> list[StageView]:
    """The stages of a recipe's run folder (``[]`` for a one-loop run)."""
    from vemkit.engine.recipe import SUMMARY, TABLES, is_recipe_dir, stage_dirs
    from vemkit.report import METRICS_FILE, _read_log

    if not is_recipe_dir(run_dir):
        return []
    views = []
    for entry, folder in stage_dirs(run_dir):
        view = StageView(entry["name"], entry["kind"], entry.get("status", "?"), folder)
        if (folder / METRICS_FILE).is_file():
            view.log = _read_log(folder / METRICS_FILE, [])
        if (folder / SUMMARY).is_file():
            view.summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
        if (folder / TABLES).is_dir():
            for path in sorted((folder / TABLES).glob("*.json")):
                view.tables[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        views.append(view)
    return views


def _count(value: Any) -> str:
    if not isinstance(value, int | float):
        return "–"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:g}"


def change_rows(summary: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    """(size rows, layer rows) of a step's ``before``/``after`` summary."""
    before, after = summary.get("before") or {}, summary.get("after") or {}
    sizes = []
    for key in ("macs", "params"):
        if key in before or key in after:
            a, b = before.get(key), after.get(key)
            ratio = f"{a / b:.2f}×" if isinstance(a, int | float) and b else "–"
            sizes.append([key.upper() if key == "macs" else key, _count(a), _count(b), ratio])
    layers = []
    cb, ca = before.get("channels") or {}, after.get("channels") or {}
    for name in list(cb) + [n for n in ca if n not in cb]:
        layers.append([name, str(cb.get(name, "–")), str(ca.get(name, "–"))])
    return sizes, layers


def plot_stage_curves(stage: StageView, path: Path) -> Path | None:
    """The ``loss/*`` curves of one training stage."""
    keys = sorted({k for line in stage.log for k in line if k.startswith("loss/")})
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.0), dpi=100)
    for key in keys:
        xs = [line["step"] for line in stage.log if key in line]
        ys = [line[key] for line in stage.log if key in line]
        ax.plot(xs, ys, marker="o" if len(xs) < 3 else None, label=key.removeprefix("loss/"))
    ax.set_xlabel(f"iteration of stage '{stage.name}'")
    ax.set_ylabel("loss")
    ax.set_title(f"stage '{stage.name}'")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    from vemkit.report import markdown_table

    return [markdown_table(header, rows), ""]


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    from vemkit.report import _html_table as table

    return table(header, rows)


def _candidates(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header: list[str] = []
    for row in rows[:MAX_CANDIDATE_ROWS]:
        header += [k for k in row if k not in header]
    cells = [
        [_count(r.get(k)) if k in ("macs", "params") else _cell(r.get(k)) for k in header]
        for r in rows[:MAX_CANDIDATE_ROWS]
    ]
    return header, cells


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "–" if value is None else str(value)


def stage_sections(label: str, run_dir: Path, out: Path, image: Any) -> tuple[list[str], list[str]]:
    """(Markdown lines, HTML fragments) of a recipe's stages; ``image(path)`` gives an image's
    HTML ``src`` and the Markdown uses paths relative to ``out``."""
    from vemkit.report import _slug

    stages = read_stages(run_dir)
    if not stages:
        return [], []
    e = html.escape
    md = [f"### {label}: stages", ""]
    body = [f"<h3>{e(label)}: stages</h3>"]
    md += _md_table(
        ["#", "stage", "kind", "status"],
        [[str(i), s.name, s.kind, s.status] for i, s in enumerate(stages, 1)],
    )
    body.append(
        _html_table(
            ["#", "stage", "kind", "status"],
            [[str(i), s.name, s.kind, s.status] for i, s in enumerate(stages, 1)],
        )
    )
    for i, stage in enumerate(stages, 1):
        title = f"{i}. {stage.name} ({stage.kind})"
        md += [f"#### {title}", ""]
        body.append(f"<h4>{e(title)}</h4>")
        if stage.kind == "train":
            figure = plot_stage_curves(stage, out / f"stage_{_slug(label)}_{i:02d}.png")
            if figure is not None:
                md += [f"![{stage.name}]({figure.name})", ""]
                body.append(f'<img alt="{e(stage.name)}" src="{image(figure)}">')
            scores = (stage.summary.get("eval") or {}) if stage.summary else {}
            if scores:
                text = ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
                md += [f"Last evaluation: {text}", ""]
                body.append(f"<p>Last evaluation: {e(text)}</p>")
            continue
        sizes, layers = change_rows(stage.summary)
        if sizes:
            header = ["", "before", "after", "reduction"]
            md += _md_table(header, sizes)
            body.append(_html_table(header, sizes))
        if layers:
            header = ["layer (channel group)", "channels before", "channels after"]
            shown = layers[:MAX_LAYER_ROWS]
            md += _md_table(header, shown)
            body.append(_html_table(header, shown))
            if len(layers) > len(shown):
                more = f"{len(layers) - len(shown)} more layers in {stage.folder}/summary.json"
                md += [more, ""]
                body.append(f"<p>{e(more)}</p>")
        others = {
            k: v for k, v in stage.summary.items() if k not in ("before", "after", "eval", "step")
        }
        for key, value in others.items():
            md += [f"- {key}: {_cell(value)}"]
            body.append(f"<p>{e(key)}: {e(_cell(value))}</p>")
        if others:
            md.append("")
        for name, rows in stage.tables.items():
            if not rows:
                continue
            header, cells = _candidates(rows)
            md += [f"Table `{name}` (first {len(cells)} of {len(rows)} rows):", ""]
            md += _md_table(header, cells)
            body += [f"<p>Table {e(name)} (first {len(cells)} of {len(rows)} rows)</p>"]
            body.append(_html_table(header, cells))
    return md, body
