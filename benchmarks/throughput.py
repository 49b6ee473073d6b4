"""Iterations per second of OMGD and OMGD+VEM at the paper's settings, side by side.

Two settings, each a pair of paper specs that differ only in the MI term:

* ``pix2pix``: ``specs/paper/edges2shoes_omgd.yaml`` vs ``edges2shoes_omgd_vem.yaml``: 256²,
  batch 4, two online teachers (U-Net ngf 64 + U-Net-deepest ngf 16) with their shared
  discriminator, U-Net student ngf 16, VEM's ``conv_sn`` energy c=32 (7 blocks, one pre-pool),
  Langevin K=10;
* ``cyclegan``: ``specs/paper/horse2zebra_omgd.yaml`` vs ``horse2zebra_omgd_vem.yaml``: 256²,
  batch 1, the online teacher pair of Mobile ResNets ngf 64 with D_A/D_B, Mobile ResNet student
  ngf 16, energy c=8.

The real datasets are not available offline, so each setting trains on synthetic images of the
right shape written to a temporary folder in the spec's layout (pix2pix: ``train/`` of A|B
pairs, 512×256; CycleGAN: ``trainA/`` and ``trainB/``, 256×256); the spec's own loader, resize,
crop and flip run as in a real run. Every run goes through ``vemkit.run`` with the spec as
written, except: the data root, no evaluation data or metrics, no checkpoints or sample grids,
the device and threads, OMGD's best-teacher schedule (off: each iteration is a teacher step plus
a student step), and the perceptual network of OMGD's style/feature losses
(``--perceptual``, default ``inception``: the offline substitute; the papers' VGG16 needs ImageNet
weights; ``random_vgg16`` costs exactly what VGG16 costs, its weights being irrelevant to time).

A third side, ``vem_fp32``, is the OMGD+VEM spec with every lower-precision speed-up switched
off (``FP32_EAGER``: the energy's and the perceptual network's passes in fp32, as the authors
compute them); the OMGD+VEM spec as written is what a user gets by default. ``omgd_fp32`` (on
request: ``--sides``) is OMGD with its option off (``FP32_OMGD``), and ``omgd_rest`` OMGD without
its perceptual terms (``NO_PERCEPTUAL``): what no precision option touches, so fp32 OMGD+VEM /
``omgd_rest`` bounds what any speed-up of the energy and perceptual networks could buy. The
table gives OMGD+VEM / OMGD (the cost of VEM) and fp32 OMGD+VEM / OMGD+VEM (what the defaults'
lower precision buys), and a second one the ratios of the extra sides. ``--losses N`` then
trains ``vem`` and ``vem_fp32`` N iterations each from the same seed and reports each logged
value's relative difference at the first iteration (identical weights, batch and noise: the
precision's own effect) and its largest over the N (with the drift of training). ``--clock
cpu`` times the process's CPU seconds instead of wall-clock seconds (steadier on a busy machine
with ``--threads 1``).

Each side is a fresh build; ``--warmup`` iterations run untimed, then ``--iterations`` are
timed start to start (the engine's ``vemkit_iteration_start`` hook, taken after the batch is
loaded), and the run is stopped at the start of the next one. The sides of a setting alternate
over ``--repeats`` (``_timing.alternating_order``, in the order of ``SIDES``); each ratio is
taken per repeat and summarised by its median.

``--size`` below 256 (tests, quick looks) scales the setting down: the data, the U-Nets' depth
(log2 of the size) and the energy's blocks (one fewer per halving); 256 is the paper setting.

Run: ``python -m benchmarks.throughput [--settings pix2pix cyclegan] [--iterations 3]``. Prints
a Markdown table; writes ``benchmarks/results/throughput.json``. Targets
(reference/performance.md, issue 16): OMGD+VEM ≤ 1.08× OMGD per iteration at pix2pix 256² (the
authors' code, same run: 1.22×), and the default OMGD+VEM step ≥ 1.2× faster than its fp32 path.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the package `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _timing
from vemkit.commands._common import add_set_option
from vemkit.engine.hookspecs import hookimpl

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "throughput.json"
PAPER_SIZE = 256
SIDES = ("omgd_rest", "omgd_fp32", "omgd", "vem", "vem_fp32")
"""In this order, so that the sides of each ratio always run back to back (alternating)."""
DEFAULT_SIDES = ("omgd", "vem", "vem_fp32")
VEM_TARGET = 1.08
"""reference/performance.md: OMGD+VEM ≤ 1.08× OMGD per iteration at pix2pix 256²."""
SPEEDUP_TARGET = 1.2
"""Issue 16: the default OMGD+VEM step ≥ 1.2× faster than the fp32 OMGD+VEM step."""
FP32_OMGD = ("method.perceptual_autocast=none",)
"""Overrides of the ``omgd_fp32`` side: OMGD's lower-precision option off."""
FP32_EAGER = (*FP32_OMGD, "mi.autocast=none")
"""Overrides of the ``vem_fp32`` side: every lower-precision option off."""
NO_PERCEPTUAL = ("method.style_weight=0", "method.feature_weight=0")
"""Overrides of the ``omgd_rest`` side: OMGD without its perceptual terms (a term of weight 0 is
not computed, so the perceptual network never runs): the part of the step that neither the
energy's nor the perceptual network's precision touches."""


@dataclass(frozen=True)
class Setting:
    """One paper setting: the two specs, the layout of their data, the reference figures."""

    name: str
    specs: dict[str, str]
    """Spec path (relative to the repository) per side."""
    layout: str
    """``aligned`` (A|B pairs in ``train/``) or ``unaligned`` (``trainA/``, ``trainB/``)."""
    about: str
    reference: dict[str, Any]
    """The public code's figures on the reference CPU (reference/performance.md)."""
    target: float | None = None


SETTINGS = {
    "pix2pix": Setting(
        "pix2pix",
        {
            "omgd": "specs/paper/edges2shoes_omgd.yaml",
            "vem": "specs/paper/edges2shoes_omgd_vem.yaml",
        },
        "aligned",
        "pix2pix edges2shoes: U-Net ngf 64 + U-Net-deepest ngf 16 → U-Net ngf 16, shared D",
        {
            "omgd_s_per_iter": 18.56,
            "vem_s_per_iter": 22.60,
            "ratio": 1.22,
            "what": "public OMGD code / VEM authors' code, 2-core EPYC, 2 threads, VGG16 with "
            "random weights, one run alternating with vemkit's sides (2026-12-06)",
        },
        VEM_TARGET,
    ),
    "cyclegan": Setting(
        "cyclegan",
        {
            "omgd": "specs/paper/horse2zebra_omgd.yaml",
            "vem": "specs/paper/horse2zebra_omgd_vem.yaml",
        },
        "unaligned",
        "CycleGAN horse2zebra: Mobile ResNet ngf 64 pair (G_A, G_B, D_A, D_B) → ngf 16",
        {
            "student_step": {"omgd_s": 0.565, "vem_s": 0.683, "ratio": 1.21},
            "teacher_iteration": {"omgd_s": 4.65, "vem_s": 5.13, "ratio": 1.10},
            "what": "public OMGD code / VEM authors' code, 2-core EPYC, 2 threads; a teacher "
            "iteration there is 1 teacher step + 4 student steps",
        },
    ),
}


# -- synthetic data ----------------------------------------------------------------------------
def _smooth_image(rng: Any, width: int, height: int) -> Any:
    """An RGB image of smooth random colour fields (like a photo's low frequencies)."""
    import numpy as np
    from PIL import Image

    coarse = rng.integers(0, 256, size=(max(2, height // 32), max(2, width // 32), 3))
    return Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BILINEAR)


def write_data(root: Path, layout: str, size: int, items: int, seed: int = 0) -> Path:
    """``items`` synthetic training images at the original datasets' sizes for ``size``
    (pix2pix: A|B files 2·size × size; CycleGAN: size × size in trainA and trainB)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folders = ["train"] if layout == "aligned" else ["trainA", "trainB"]
    for folder in folders:
        out = root / folder
        out.mkdir(parents=True, exist_ok=True)
        for i in range(items):
            width = 2 * size if layout == "aligned" else size
            _smooth_image(rng, width, size).save(out / f"{i:05d}.png")
    return root


# -- the specs ---------------------------------------------------------------------------------
def scale_overrides(spec: Any, size: int) -> list[str]:
    """Overrides that move a 256² paper spec to ``size`` (a power of two, ≥ 32): the crop and
    load sizes (286/256 kept), every U-Net's depth (down to 1×1) and the energy's blocks (one
    fewer per halving, the pre-pool kept). Nothing at 256."""
    if size == PAPER_SIZE:
        return []
    halvings = int(math.log2(PAPER_SIZE)) - int(math.log2(size))
    out = [f"data.train.size={size}", f"data.train.load_size={size + size // 8}"]
    depth = int(math.log2(size))
    for path, arch in (
        ("teacher.arch", spec.teacher.arch),
        ("student.arch", spec.student.arch),
        ("method.deep_teacher", getattr(spec.method, "deep_teacher", None)),
    ):
        if arch is not None and getattr(arch, "num_downs", None) is not None:
            out.append(f"{path}.num_downs={depth}")
    energy = getattr(spec.mi, "energy", None)
    if energy is not None and getattr(energy, "blocks", None) is not None:
        out.append(f"mi.energy.blocks={max(0, energy.blocks - halvings)}")
    return out


def side_overrides(
    args: argparse.Namespace, data_root: Path, run_dir: Path, total: int
) -> list[str]:
    """What every run changes in the paper spec (see the module docstring)."""
    out = [
        f"data.train.root={data_root}",
        "data.eval=null",
        "eval.metrics=[]",
        "eval.best=null",
        "eval.every=0",
        f"train.iterations={total}",
        f"train.device={args.device_now}",
        f"method.perceptual={args.perceptual}",
        # Every timed iteration then holds one teacher-pair step and one student step; the
        # CycleGAN specs' best-teacher schedule only regroups the same steps into blocks.
        "method.best_teacher=null",
        f"output.dir={run_dir}",
        "output.checkpoint_every=0",
        "output.sample_every=0",
    ]
    if args.threads is not None:
        out.append(f"train.threads={args.threads}")
    return out


def load_side(
    setting: Setting,
    side: str,
    args: argparse.Namespace,
    data_root: Path,
    run_dir: Path,
    total: int | None = None,
) -> Any:
    """The spec one side runs, with every override applied."""
    from vemkit.spec import load_spec

    path = REPO / setting.specs["vem" if side.startswith("vem") else "omgd"]
    if total is None:
        total = args.warmup + args.iterations + 1  # never reached: no final checkpoint/eval
    base = side_overrides(args, data_root, run_dir, total) + list(args.overrides)
    if side.startswith("vem"):
        base += list(args.vem_overrides)
    if side == "vem_fp32":
        base += list(FP32_EAGER)
    if side == "omgd_fp32":
        base += list(FP32_OMGD)
    if side == "omgd_rest":
        base += list(NO_PERCEPTUAL)
    spec = load_spec(path, base)
    scaled = scale_overrides(spec, args.size)
    return load_spec(path, base + scaled) if scaled else spec


# -- one side ----------------------------------------------------------------------------------
class _Done(Exception):
    """Raised by the clock at the start of the iteration after the last timed one."""


CLOCKS: dict[str, Callable[[], float]] = {"wall": _timing.now, "cpu": time.process_time}
"""``--clock``: wall-clock seconds, or the CPU seconds of this process (all its threads)."""


class _Clock:
    """Run plugin: a time stamp at the start of every timed iteration; stops the run at the
    start of the iteration after the last (which is not run)."""

    def __init__(
        self, warmup: int, iterations: int, device: str, clock: Callable[[], float] = _timing.now
    ) -> None:
        self.first, self.last, self.device = warmup, warmup + iterations, device
        self.clock = clock
        self.stamps: list[float] = []

    @hookimpl
    def vemkit_iteration_start(self, program: Any, state: Any, step: int) -> None:
        if step >= self.first:
            _timing.sync(self.device)
            self.stamps.append(self.clock())
        if step == self.last:
            raise _Done


def run_side(spec: Any, args: argparse.Namespace, run_dir: Path) -> list[float]:
    """Seconds of each timed iteration of one fresh engine run of ``spec``."""
    import vemkit

    clock = _Clock(args.warmup, args.iterations, args.device_now, CLOCKS[args.clock])
    try:
        vemkit.run(spec, run_dir=run_dir, callbacks=[clock], progress=False, overwrite=True)
    except _Done:
        pass
    else:
        raise RuntimeError("the engine finished before the benchmark's last time stamp")
    finally:
        gc.collect()
    return [b - a for a, b in itertools.pairwise(clock.stamps)]


def describe(spec: Any) -> dict[str, Any]:
    """What a side trained: resolution, batch, architectures, the MI term."""

    def arch(config: Any) -> dict[str, Any] | None:
        return None if config is None else config.model_dump(mode="json")

    method = spec.method
    mi = spec.mi.model_dump(mode="json")
    return {
        "spec": spec.name,
        "resolution": spec.data.train.size,
        "batch_size": spec.train.batch_size,
        "teacher": arch(spec.teacher.arch),
        "deep_teacher": arch(getattr(method, "deep_teacher", None)),
        "student": arch(spec.student.arch),
        "perceptual": getattr(method, "perceptual", None),
        "perceptual_autocast": getattr(method, "perceptual_autocast", None),
        "mi": {k: mi[k] for k in ("type", "weight", "energy", "sampler", "autocast") if k in mi},
    }


class _Losses:
    """Run plugin: every iteration's logged losses (``loss/...`` and each term's value)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    @hookimpl
    def vemkit_iteration_end(self, program: Any, state: Any, step: int, logs: dict) -> None:
        row = {}
        for key, value in logs.items():
            if key.startswith("lr/"):
                continue
            value = float(value.detach().float()) if hasattr(value, "detach") else value
            if isinstance(value, int | float) and math.isfinite(value):
                row[key] = float(value)
        self.rows.append(row)


def is_loss(key: str) -> bool:
    """A logged value that is a loss (a phase's ``loss/<phase>`` or a term's value), not a
    term's diagnostic (``<term>/<name>``, e.g. ``mi.energy/energy_neg``)."""
    return key.startswith("loss/") or "/" not in key


def _rel(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


def loss_agreement(
    setting: Setting, args: argparse.Namespace, data_root: Path, work: Path
) -> dict[str, Any]:
    """``vem`` and ``vem_fp32`` trained ``args.losses`` iterations each from the same seed: per
    logged value, the relative difference |a − b| / max(|a|, |b|) at the first iteration and its
    largest over all of them."""
    import vemkit

    rows = {}
    for side in ("vem", "vem_fp32"):
        spec = load_side(setting, side, args, data_root, work / f"losses-{side}", args.losses)
        recorder = _Losses()
        vemkit.run(
            spec, run_dir=work / f"losses-{side}", callbacks=[recorder], progress=False,
            overwrite=True,
        )  # fmt: skip
        rows[side] = recorder.rows
    keys = sorted(set(rows["vem"][0]) & set(rows["vem_fp32"][0]))
    per_key = {}
    for key in keys:
        diffs = [
            _rel(a[key], b[key])
            for a, b in zip(rows["vem"], rows["vem_fp32"], strict=True)
            if key in a and key in b
        ]
        per_key[key] = {"first": diffs[0], "max": max(diffs), "loss": is_loss(key)}
    worst = max((k for k in per_key if is_loss(k)), key=lambda k: per_key[k]["max"], default=None)
    return {
        "iterations": args.losses,
        "relative_difference": per_key,
        "losses_max": {"term": worst, "value": per_key[worst]["max"] if worst else math.nan},
        "values": rows,
    }


def measure(setting: Setting, args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    """The sides of one setting on one device, alternated over ``args.repeats``."""
    sides = [s for s in SIDES if s in args.sides]
    with tempfile.TemporaryDirectory(prefix=f"vemkit-throughput-{setting.name}-") as tmp:
        work = Path(tmp)
        # Enough distinct items that no batch repeats within a side's iterations.
        batch = load_side(setting, "omgd", args, work / "data", work / "probe").train.batch_size
        items = batch * max(args.warmup + args.iterations + 1, args.losses)
        write_data(work / "data", setting.layout, args.size, items, seed=args.seed)
        specs = {side: load_side(setting, side, args, work / "data", work / side) for side in sides}

        def call(side: str) -> Callable[[], list[float]]:
            return lambda: run_side(specs[side], args, work / side)

        def report(r: int, side: str, seconds: list[float]) -> None:
            value = statistics.median(seconds) if seconds else math.nan
            log(
                f"[{setting.name}, {args.device_now}] repeat {r + 1}/{args.repeats} {side}: "
                f"{value:.3f} s/iter"
            )

        load_before = _timing.load_average()
        samples = _timing.run_alternating({s: call(s) for s in sides}, args.repeats, on_side=report)
        load_after = _timing.load_average()
        losses = None
        if args.losses and setting.name in args.loss_settings:
            log(f"[{setting.name}, {args.device_now}] losses: vem and vem_fp32, {args.losses} it.")
            losses = loss_agreement(setting, args, work / "data", work)
    seconds = {side: _timing.summary(runs) for side, runs in samples.items()}

    def ratio(a: str, b: str) -> dict[str, Any] | None:
        if a not in samples or b not in samples:
            return None
        return _timing.paired_ratio(samples[a], samples[b])

    diffs = [
        statistics.median(v) - statistics.median(o)
        for v, o in zip(samples.get("vem", []), samples.get("omgd", []), strict=False)
    ]
    return {
        "setting": setting.name,
        "about": setting.about,
        "device": args.device_now,
        "specs": setting.specs,
        "fp32_overrides": {"omgd_fp32": list(FP32_OMGD), "vem_fp32": list(FP32_EAGER)},
        "rest_overrides": list(NO_PERCEPTUAL),
        "sides": {side: describe(spec) for side, spec in specs.items()},
        "warmup": args.warmup,
        "iterations": args.iterations,
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": load_after,
        "seconds_per_iteration": seconds,
        "iterations_per_second": {
            side: (1.0 / s["median"] if s["median"] > 0 else math.nan)
            for side, s in seconds.items()
        },
        "vem_over_omgd": ratio("vem", "omgd"),
        "fp32_over_vem": ratio("vem_fp32", "vem"),
        "fp32_vem_over_omgd": ratio("vem_fp32", "omgd_fp32"),
        "fp32_over_omgd": ratio("omgd_fp32", "omgd"),
        "fp32_vem_over_rest": ratio("vem_fp32", "omgd_rest"),
        "vem_added_seconds": statistics.median(diffs) if diffs else math.nan,
        "target": setting.target,
        "speedup_target": SPEEDUP_TARGET if setting.target is not None else None,
        "reference": setting.reference,
        "losses": losses,
        "samples": samples,
    }


# -- output ------------------------------------------------------------------------------------
def _rate(seconds: float) -> float:
    return 1.0 / seconds if seconds > 0 else math.nan


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if not isinstance(x, int | float) or not math.isfinite(x) else f"{x:.{digits}g}"


def _ratio_cell(ratio: dict[str, Any] | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio['ratio']:.3f} ({ratio['min']:.3f}–{ratio['max']:.3f})"


def _meets(ratio: dict[str, Any] | None, target: float | None, at_most: bool) -> str:
    if ratio is None or target is None:
        return "-"
    ok = ratio["ratio"] <= target if at_most else ratio["ratio"] >= target
    return "yes" if ok else "no"


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown table of a run."""
    rows = []
    for res in results:
        sec = res["seconds_per_iteration"]
        first = next(iter(res["sides"].values()))
        ref = res["reference"]
        authors = ref.get("ratio") or ref.get("teacher_iteration", {}).get("ratio")

        def cell(side: str, sec: dict[str, Any] = sec) -> str:
            return _fmt(sec[side]["median"]) if side in sec else "-"

        rows.append(
            [
                res["setting"],
                res["device"],
                f"{first['resolution']}²",
                first["batch_size"],
                cell("omgd"),
                cell("vem"),
                cell("vem_fp32"),
                _ratio_cell(res["vem_over_omgd"]),
                _fmt(res["vem_added_seconds"]),
                _meets(res["vem_over_omgd"], res["target"], at_most=True),
                _ratio_cell(res.get("fp32_over_vem")),
                _meets(res.get("fp32_over_vem"), res.get("speedup_target"), at_most=False),
                f"{authors:.2f}" if authors else "-",
            ]
        )
    return _timing.markdown_table(
        [
            "setting",
            "device",
            "size",
            "batch",
            "OMGD s/iter",
            "OMGD+VEM s/iter",
            "fp32 OMGD+VEM s/iter",
            "VEM/OMGD (min–max)",
            "VEM adds s/iter",
            f"≤ {VEM_TARGET}× (pix2pix)",
            "fp32/default (min–max)",
            f"≥ {SPEEDUP_TARGET}× (pix2pix)",
            "authors' VEM/OMGD",
        ],
        rows,
    )


def fp32_table(results: list[dict[str, Any]]) -> str:
    """With the ``omgd_fp32`` side: both methods with the lower-precision options off."""
    rows = []
    for res in results:
        sec = res["seconds_per_iteration"]
        if "omgd_fp32" not in sec and "omgd_rest" not in sec:
            continue

        def cell(side: str, sec: dict[str, Any] = sec) -> str:
            return _fmt(sec[side]["median"]) if side in sec else "-"

        rows.append(
            [
                res["setting"],
                res["device"],
                cell("omgd_fp32"),
                cell("vem_fp32"),
                _ratio_cell(res.get("fp32_vem_over_omgd")),
                _ratio_cell(res.get("fp32_over_omgd")),
                cell("omgd_rest"),
                _ratio_cell(res.get("fp32_vem_over_rest")),
            ]
        )
    if not rows:
        return ""
    return _timing.markdown_table(
        [
            "setting",
            "device",
            "fp32 OMGD s/iter",
            "fp32 OMGD+VEM s/iter",
            "fp32 VEM/OMGD (min–max)",
            "fp32 OMGD / OMGD (min–max)",
            "OMGD w/o perceptual s/iter",
            "fp32 OMGD+VEM / it (min–max)",
        ],
        rows,
    )


def loss_table(results: list[dict[str, Any]]) -> str:
    """Per logged loss, the relative difference of the default and the fp32 OMGD+VEM runs."""
    rows = []
    for res in results:
        losses = res.get("losses")
        if not losses:
            continue
        for key, d in losses["relative_difference"].items():
            kind = "loss" if d["loss"] else "diagnostic"
            rows.append([res["setting"], losses["iterations"], key, kind, f"{d['first']:.2e}",
                         f"{d['max']:.2e}"])  # fmt: skip
    if not rows:
        return ""
    return _timing.markdown_table(
        ["setting", "iterations", "value", "kind", "rel. diff. 1st iteration", "rel. diff. max"],
        rows,
    )


# -- command line ------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    import torch

    p = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="example: python -m benchmarks.throughput --settings pix2pix --iterations 3",
    )
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--iterations", type=int, default=3, help="timed iterations per side (3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per side (1)")
    p.add_argument("--repeats", type=int, default=2, help="alternating rounds (2)")
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: the CPU, then CUDA when present",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--perceptual",
        choices=["inception", "random_vgg16", "vgg16"],
        default="inception",
        help="OMGD's perceptual network (inception: offline default; random_vgg16 costs what "
        "the papers' VGG16 costs; vgg16 needs the ImageNet weights)",
    )
    p.add_argument(
        "--size", type=int, default=PAPER_SIZE, help="image side (256: the paper's setting)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic images")
    add_set_option(p, help="spec override for both sides (repeatable)")
    p.add_argument(
        "--vem-set",
        dest="vem_overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="spec override for the OMGD+VEM side only (repeatable)",
    )
    p.add_argument(
        "--sides",
        nargs="+",
        choices=list(SIDES),
        default=list(DEFAULT_SIDES),
        help="sides to time (default: omgd vem vem_fp32): omgd, vem (OMGD and OMGD+VEM as "
        "specified), vem_fp32 (OMGD+VEM with the lower-precision options off), omgd_fp32 "
        "(OMGD with them off), omgd_rest (OMGD without its perceptual terms: what no precision "
        "option touches)",
    )
    p.add_argument(
        "--losses",
        type=int,
        default=0,
        metavar="N",
        help="also train vem and vem_fp32 N iterations each from the same seed and report "
        "each loss's relative difference (0: skip)",
    )
    p.add_argument(
        "--loss-settings",
        nargs="+",
        choices=list(SETTINGS),
        default=["pix2pix"],
        help="settings whose losses --losses compares (pix2pix)",
    )
    p.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="wall: seconds per iteration (default); cpu: CPU seconds of this process per "
        "iteration, all threads summed, which other processes on the cores inflate much less "
        "(with --threads 1, for comparing sides on a busy machine)",
    )
    _timing.add_output_args(p, DEFAULT_OUTPUT)
    args = p.parse_args(argv)
    if args.losses < 0:
        p.error("--losses must be at least 0")
    for name in ("iterations", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be at least 0")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    if args.size < 32 or args.size > PAPER_SIZE or args.size & (args.size - 1):
        p.error(f"--size: {args.size} is not a power of two between 32 and {PAPER_SIZE}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    args.devices = (
        ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
        if args.device == "auto"
        else [args.device]
    )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    allocator = "default"
    if args.malloc == "retain" and _timing.retain_freed_memory():
        allocator = "glibc, freed memory retained (M_TRIM_THRESHOLD 2 GiB, M_MMAP_MAX 0)"

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    load_before = _timing.load_average()
    results = []
    for device in args.devices:
        args.device_now = device
        for name in args.settings:
            results.append(measure(SETTINGS[name], args, log))
    machine = _timing.machine_info("cuda" if "cuda" in args.devices else "cpu")
    report = {
        "benchmark": "throughput",
        "machine": {**machine, "devices": args.devices, "allocator": allocator},
        "load_before": load_before,
        "load_after": _timing.load_average(),
        "perceptual": args.perceptual,
        "clock": args.clock,
        "size": args.size,
        "overrides": {"both": args.overrides, "vem": args.vem_overrides},
        "targets": {
            "pix2pix_vem_over_omgd": VEM_TARGET,
            "pix2pix_fp32_over_vem": SPEEDUP_TARGET,
        },
        "results": results,
    }
    _timing.write_json_atomic(args.output, report)
    m = report["machine"]
    print(
        f"{m['cpu']} ({m['cores']} cores, {m['threads']} threads), torch {m['torch']}, "
        f"devices {', '.join(args.devices)}{', ' + m['gpu'] if 'gpu' in m else ''}; perceptual "
        f"network {args.perceptual}; {args.clock} clock; load average "
        f"{report['load_before']} before, {report['load_after']} after; {m['date']}\n"
    )
    print(table(results))
    fp32 = fp32_table(results)
    if fp32:
        print("\nThe fp32 sides; OMGD without its perceptual terms (untouched by any option):\n")
        print(fp32)
    losses = loss_table(results)
    if losses:
        print("\nLosses of the default and the fp32 OMGD+VEM runs, same seed:\n")
        print(losses)
    print(
        f"\nTargets at pix2pix 256²: OMGD+VEM ≤ {VEM_TARGET}× OMGD per iteration (the authors' "
        f"code, same run: 1.22×; their CycleGAN: 1.21× per student step, 1.10× per teacher "
        f"iteration), and the default OMGD+VEM step ≥ {SPEEDUP_TARGET}× faster than the fp32 one "
        f"({', '.join(FP32_EAGER)})."
    )
    print(f"JSON: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
