"""The MI ablation (paper Table 4's protocol) on the offline demo tasks, over several seeds.

For every task, MI term and seed: train the ablation spec ``specs/ablations/<task>_omgd_<mi>.yaml``
through ``vemkit.run`` with the same budget for every MI term (``--iterations``, the spec's
batch), one after the other with one CPU thread each (``train.threads``), then evaluate the
student with ``vemkit.evaluate.evaluate_target`` on the first ``--fid-samples`` evaluation items:
FID (and KID) against the targets of those same items, PSNR and SSIM to them. The paired task
(``edges2shoes-fmnist``) scores against the true shoes; the unpaired one (``emoji``) against the
held-out true pairs of ``test_pairs.txt``. Only the MI term differs between the runs of a task.

Runs live in ``benchmarks/results/ablation/<task>/<mi>/seed<k>/``. A run whose ``eval.json``
belongs to the same resolved spec and the same metrics is skipped, so an interrupted ablation is
continued by running the same command again. Checkpoints are deleted once evaluated
(``--keep-checkpoints`` keeps them: several hundred MB per run).

Prints a Markdown table of mean ± sample std per (task, MI term) and writes
``benchmarks/results/ablation.json`` (machine, torch, threads, budget, wall time, load average,
every run's scores and the summary); ``vemkit report``'s tables go to ``ablation/report/``.
FID from a few hundred samples is strongly biased upwards (compare only runs scored with the
same N); KID is unbiased at small N.

Run from the repository root (the specs' data roots are relative):
``python -m benchmarks.ablation --iterations 200 --seeds 0 1 2``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the package `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _timing
from vemkit.commands._common import add_set_option

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUTPUT = RESULTS / "ablation.json"
DEFAULT_RUNS = RESULTS / "ablation"
MIS = ("none", "vid", "crd", "vem")
SCORES = (("fid", False), ("kid_mean", False), ("psnr", True), ("ssim", True))
"""The scores summarised, with their direction (higher is better)."""


@dataclass(frozen=True)
class Task:
    """One demo task of the ablation."""

    name: str
    spec: str
    """Spec path relative to the repository, ``{mi}`` standing for the MI term."""
    about: str

    def spec_path(self, mi: str) -> Path:
        return REPO / self.spec.format(mi=mi)


TASKS = {
    "edges2shoes-fmnist": Task(
        "edges2shoes-fmnist",
        "specs/ablations/edges2shoes_fmnist_omgd_{mi}.yaml",
        "paired: OMGD pix2pix (U-Net ngf 64 + U-Net-deepest ngf 16 → U-Net ngf 16), 64 px, "
        "batch 4; PSNR/SSIM to the true shoes",
    ),
    "emoji": Task(
        "emoji",
        "specs/ablations/emoji_omgd_{mi}.yaml",
        "unpaired: OMGD CycleGAN (Mobile ResNet ngf 64 → ngf 16), 64 px, batch 1; PSNR/SSIM "
        "on the held-out true pairs",
    ),
}


# -- one run ------------------------------------------------------------------------------------
def metric_configs(fid_samples: int) -> list[dict[str, Any]]:
    """The evaluation: FID/KID from ``fid_samples`` images, PSNR and SSIM on the same items."""
    return [{"type": "fid", "num_samples": fid_samples}, {"type": "psnr"}, {"type": "ssim"}]


def run_overrides(args: argparse.Namespace, mi: str, seed: int, run_dir: Path) -> list[str]:
    """The ``--set`` overrides of one run: seed, budget, threads, place; no evaluation while
    training (the benchmark evaluates once, after), a checkpoint only at the end."""
    overrides = [
        f"seed={seed}",
        f"train.iterations={args.iterations}",
        f"train.threads={args.threads}",
        f"train.device={args.device}",
        "eval.metrics=[]",
        "eval.best=null",
        "eval.every=0",
        f"output.dir={run_dir}",
        "output.checkpoint_every=0",
        "output.sample_every=0",
    ]
    if args.batch_size is not None:
        overrides.append(f"train.batch_size={args.batch_size}")
    overrides += args.overrides
    overrides += [o for name, o in args.mi_overrides if name == mi]
    return overrides


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _same_run(run_dir: Path, spec: Any) -> bool:
    """``run_dir`` holds a run of exactly this resolved spec (hash in ``run.json``)."""
    from vemkit.engine.run import RUN_INFO, spec_hash

    info = _json(run_dir / RUN_INFO)
    return info is not None and info.get("spec_hash") == spec_hash(spec)


def _finished_checkpoint(run_dir: Path, iterations: int) -> bool:
    from vemkit.engine import checkpoint as ckpt

    path, _ = ckpt.latest(run_dir)
    if path is None:
        return False
    done = _json(path / ckpt.COMPLETE) or {}
    return done.get("step") == iterations


def _same_evaluation(evaluation: dict[str, Any], metrics: list[dict[str, Any]], step: int) -> bool:
    """``eval.json`` scored the final checkpoint with these metrics (options as given)."""
    configs = evaluation.get("metric_configs")
    if evaluation.get("step") != step or not isinstance(configs, list):
        return False
    if len(configs) != len(metrics):
        return False
    return all(
        isinstance(c, dict) and all(c.get(k) == v for k, v in m.items())
        for c, m in zip(configs, metrics, strict=True)
    )


def _train_seconds(run_dir: Path) -> float | None:
    """Elapsed training time: the ``time`` of the last line of ``metrics.jsonl``."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for text in reversed(lines):
        try:
            value = json.loads(text).get("time")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, int | float):
            return float(value)
    return None


def run_one(
    task: Task,
    mi: str,
    seed: int,
    args: argparse.Namespace,
    *,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Train (unless done) and evaluate (unless done) one run; its record for the JSON."""
    import vemkit
    from vemkit.evaluate import EVAL_FILE, evaluate_target
    from vemkit.spec import load_spec

    run_dir = (args.runs / task.name / mi / f"seed{seed}").resolve()
    spec = load_spec(task.spec_path(mi), run_overrides(args, mi, seed, run_dir))
    metrics = metric_configs(args.fid_samples)
    record: dict[str, Any] = {"task": task.name, "mi": mi, "seed": seed, "run_dir": _shown(run_dir)}
    evaluation = _json(run_dir / EVAL_FILE)
    same = _same_run(run_dir, spec)
    if same and evaluation is not None and _same_evaluation(evaluation, metrics, args.iterations):
        record["reused"] = True
    else:
        record["reused"] = False
        if not (same and _finished_checkpoint(run_dir, args.iterations)):
            started = _timing.now()
            vemkit.run(spec, run_dir=run_dir, overwrite=True, progress=False)
            record["train_wall_seconds"] = _timing.now() - started
        evaluation, _ = evaluate_target(
            run_dir,
            checkpoint="last",
            metrics=metrics,
            max_items=args.fid_samples,
            batch_size=args.eval_batch_size,
            device=args.device,
            teacher=False,
        )
        if not args.keep_checkpoints:
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    scores = evaluation["student"]["metrics"]
    record.update(
        {
            "iterations": evaluation.get("step"),
            "batch_size": spec.train.batch_size,
            "eval_items": evaluation.get("items"),
            "train_seconds": _train_seconds(run_dir),
            "eval_seconds": evaluation.get("seconds"),
            "metrics": {k: scores.get(k) for k, _ in SCORES if k in scores},
        }
    )
    shown = ", ".join(f"{k} {v:.4g}" for k, v in record["metrics"].items())
    log(
        f"{task.name} mi={mi} seed={seed}: "
        + ("reused, " if record["reused"] else "")
        + f"{_seconds(record['train_seconds'])} training, "
        f"{_seconds(record['eval_seconds'])} evaluation; {shown}"
    )
    return record


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when below it (shorter JSON and labels)."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _seconds(value: Any) -> str:
    return f"{value:.0f} s" if isinstance(value, int | float) else "? s"


# -- summary ------------------------------------------------------------------------------------
def _stats(values: list[float]) -> dict[str, Any]:
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not finite:
        return {"mean": math.nan, "std": math.nan, "n": 0, "values": values}
    std = statistics.stdev(finite) if len(finite) > 1 else math.nan
    return {"mean": statistics.fmean(finite), "std": std, "n": len(finite), "values": values}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± sample std of every score per (task, MI term), with the change against ``none``
    (difference of the means) where the ablation ran ``none``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["task"], r["mi"]), []).append(r)
    out = []
    for (task, mi), members in groups.items():
        scores = {
            key: _stats([m["metrics"][key] for m in members if key in m["metrics"]])
            for key, _ in SCORES
            if any(key in m["metrics"] for m in members)
        }
        train = [m["train_seconds"] for m in members if m.get("train_seconds") is not None]
        out.append(
            {
                "task": task,
                "mi": mi,
                "seeds": [m["seed"] for m in members],
                "metrics": scores,
                "train_seconds_mean": statistics.fmean(train) if train else None,
            }
        )
    for row in out:
        base = next((b for b in out if b["task"] == row["task"] and b["mi"] == "none"), None)
        if base is not None:
            row["delta_vs_none"] = {
                k: v["mean"] - base["metrics"][k]["mean"]
                for k, v in row["metrics"].items()
                if k in base["metrics"]
            }
    return out


def _cell(stats: dict[str, Any], decimals: int) -> str:
    from vemkit.report import format_values

    finite = [v for v in stats["values"] if isinstance(v, int | float) and math.isfinite(v)]
    return format_values(finite, decimals)


def tables(summary: list[dict[str, Any]]) -> str:
    """One Markdown table per task; the best mean of each score in bold."""
    decimals = {"fid": 1, "kid_mean": 4, "psnr": 2, "ssim": 4}
    heads = {"fid": "FID ↓", "kid_mean": "KID ↓", "psnr": "PSNR ↑", "ssim": "SSIM ↑"}
    blocks = []
    for task in dict.fromkeys(r["task"] for r in summary):
        rows = [r for r in summary if r["task"] == task]
        keys = [k for k, _ in SCORES if any(k in r["metrics"] for r in rows)]
        best: dict[str, str] = {}
        for key, higher in SCORES:
            means = [(r["metrics"][key]["mean"], r["mi"]) for r in rows if key in r["metrics"]]
            means = [(m, mi) for m, mi in means if math.isfinite(m)]
            if len(means) > 1:
                best[key] = (max(means) if higher else min(means))[1]
        body = []
        for r in rows:
            cells = [r["mi"], str(len(r["seeds"]))]
            for key in keys:
                text = _cell(r["metrics"][key], decimals[key]) if key in r["metrics"] else "-"
                cells.append(f"**{text}**" if best.get(key) == r["mi"] else text)
            delta = (r.get("delta_vs_none") or {}).get("fid")
            cells.append("" if delta is None or r["mi"] == "none" else f"{delta:+.1f}")
            t = r["train_seconds_mean"]
            cells.append(f"{t:.0f}" if t is not None else "-")
            body.append(cells)
        header = ["mi", "seeds", *(heads[k] for k in keys), "ΔFID vs none", "train s/run"]
        about = TASKS[task].about if task in TASKS else ""
        blocks.append(f"**{task}** ({about})\n\n" + _timing.markdown_table(header, body))
    return "\n\n".join(blocks)


# -- command line -------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.ablation",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="example: python -m benchmarks.ablation --tasks edges2shoes-fmnist --iterations 200 "
        "--seeds 0 1 2 --fid-samples 256",
    )
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--mi", nargs="+", choices=list(MIS), default=list(MIS), help="MI terms")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--iterations", type=int, default=200, help="training iterations of every run (200)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="default: the spec's")
    p.add_argument(
        "--fid-samples",
        type=int,
        default=256,
        help="evaluation items (FID/KID samples, PSNR/SSIM items) per run, the same for all (256)",
    )
    p.add_argument("--eval-batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (1)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    add_set_option(p, help="spec override for every run (repeatable)")
    p.add_argument(
        "--mi-set",
        dest="mi_overrides",
        nargs=2,
        action="append",
        default=[],
        metavar=("MI", "PATH=VALUE"),
        help="spec override for the runs of one MI term, e.g. --mi-set vem mi.weight=0.2",
    )
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="folder of the run directories")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    p.add_argument(
        "--keep-checkpoints", action="store_true", help="keep each run's checkpoints after eval"
    )
    p.add_argument("--no-report", action="store_true", help="skip the `vemkit report` tables")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    for name in ("iterations", "fid_samples", "eval_batch_size", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    for mi, _ in args.mi_overrides:
        if mi not in MIS:
            p.error(f"--mi-set: unknown MI term {mi!r} (one of {', '.join(MIS)})")
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)  # the evaluation runs in this process too

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    load_before = _timing.load_average()
    started = _timing.now()
    plan = [(TASKS[t], mi, seed) for t in args.tasks for mi in args.mi for seed in args.seeds]
    runs = []
    for i, (task, mi, seed) in enumerate(plan):
        log(f"[{i + 1}/{len(plan)}] {task.name} mi={mi} seed={seed}")
        runs.append(run_one(task, mi, seed, args, log=log))
    wall = _timing.now() - started
    summary = summarise(runs)

    report_path = None
    if not args.no_report:
        from vemkit.errors import VemkitError
        from vemkit.report import write_report

        try:
            written = write_report(
                [r["run_dir"] for r in runs], args.runs / "report", title="vemkit MI ablation"
            )
            report_path = str(written.get("md"))
        except VemkitError as exc:
            log(f"warning: no report ({exc})")

    result = {
        "benchmark": "ablation",
        "machine": _timing.machine_info(args.device),
        "load_before": load_before,
        "load_after": _timing.load_average(),
        "wall_seconds": wall,
        "run_seconds_total": sum(
            (r.get("train_seconds") or 0.0) + (r.get("eval_seconds") or 0.0) for r in runs
        ),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "budget": {
            "iterations": args.iterations,
            "batch_size": {t: _batch(runs, t) for t in args.tasks},
            "seeds": args.seeds,
            "threads": args.threads,
            "fid_samples": args.fid_samples,
            "overrides": args.overrides,
            "mi_overrides": [list(x) for x in args.mi_overrides],
        },
        "tasks": {t: {"spec": TASKS[t].spec, "about": TASKS[t].about} for t in args.tasks},
        "metrics": metric_configs(args.fid_samples),
        "runs": runs,
        "summary": summary,
        "report": report_path,
    }
    _timing.write_json_atomic(args.output, result)
    m = result["machine"]
    total = result["run_seconds_total"] / 60
    print(
        f"MI ablation: {args.iterations} iterations per run, seeds {args.seeds}, "
        f"{args.fid_samples} evaluation items; {m['cpu']} ({m['cores']} cores), {args.threads} "
        f"thread(s), torch {m['torch']}, device {m['device']}; wall {wall / 60:.1f} min (every "
        f"run's training + evaluation, reused ones included: {total:.1f} min); load average "
        f"{load_before} before, {result['load_after']} after\n"
    )
    print(tables(summary))
    print(f"\nJSON: {args.output}" + (f"; report: {report_path}" if report_path else ""))
    return 0


def _batch(runs: list[dict[str, Any]], task: str) -> int | None:
    return next((r["batch_size"] for r in runs if r["task"] == task), None)


if __name__ == "__main__":
    sys.exit(main())
