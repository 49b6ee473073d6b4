"""Engine tax and VEM's cost per iteration, measured side by side in one run.

Four training sides per resolution, run in this order and in reverse on every other repeat
(``_timing.alternating_order``), so that the sides compared always run back to back:

* ``engine_none`` / ``engine_vem``: ``vemkit.engine.run`` of a spec with ``method: kd``, an
  online U-Net teacher (trained by its L1 to the target, ``teacher_recon_weight`` 100), a U-Net
  student and ``mi: none`` / ``mi: vem`` (``conv_sn`` energy, Langevin K steps);
* ``hand_none`` / ``hand_vem``: a hand-written PyTorch loop doing the same computation: the same
  modules built through the registry in the same order from the same seed, the same losses,
  optimizers and schedules, the same batches (the same in-memory dataset through a plain
  ``DataLoader`` in the engine's epoch order) and the same Langevin noise; with VEM it calls the
  library directly (``VEM.energy_step``, ``VEM.student_term``).

Each side is a fresh build; ``warmup`` iterations run untimed, then ``iterations`` are timed
start to start (the engine's ``vemkit_iteration_start`` hook, taken after the batch is loaded;
the hand loop's clock at the same place), so that compile, module building and the first
iterations' allocations are excluded. Both sides' losses are compared, to show that they ran
the same computation.

Three more sides time the energy machinery on fixed tensors of the same shapes:
``energy_phase`` (one ``VEM.energy_step``: K Langevin steps, the energy update and its Adam
step), its floor ``energy_floor`` (K forward+backward passes of the energy at batch N with
respect to the sample, plus one at batch 2N with respect to the parameters: K+2 passes of N
samples) and ``student_pass`` (one forward+backward at 2N with respect to s: the floor of the
student term).

The process's glibc malloc is set to keep freed memory (``--malloc retain``, the default): with
glibc's defaults, tensors freed at the end of an iteration go back to the OS and are page-faulted
in again, tens of thousands of faults per iteration whose count depends on which side ran before
(measured: 33k to 77k per iteration at 64 px, on either side). Both sides run under the same
setting; the JSON records the setting and each side's faults per iteration.

Run: ``python -m benchmarks.engine_overhead [--resolutions 64] [--repeats 6]``. Prints Markdown
tables; writes JSON to ``benchmarks/results/engine_overhead.json``. Targets
(reference/performance.md): engine tax ≤ 1.03×, energy phase ≤ 1.1× its floor.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

if __package__ in (None, ""):  # run as a file: make the package `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch.utils.data import DataLoader, Dataset

from benchmarks import _timing
from vemkit.engine.hookspecs import hookimpl
from vemkit.options import Options
from vemkit.registry import Registry

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "engine_overhead.json"
ENGINE_TAX_TARGET = 1.03
"""reference/performance.md: the engine costs at most 3 % over a hand-written loop."""
ENERGY_FLOOR_TARGET = 1.1
"""reference/performance.md: the energy phase within 1.1× of its (K+2)-pass floor."""
LARGE = 256
"""Resolutions from here on use ``--large-iterations`` (an iteration takes seconds on a CPU)."""
TRAINING_SIDES = ("engine_none", "hand_none", "engine_vem", "hand_vem")
ENERGY_SIDES = ("energy_phase", "energy_floor", "student_pass")
MIS = ("none", "vem")


# -- the setting ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One resolution's configuration (the paper's pix2pix setting at 256 px)."""

    resolution: int
    """Image side in pixels (a power of two: the U-Net runs down to 1×1)."""
    batch_size: int = 4
    """Batch N (paper's pix2pix: 4)."""
    teacher_ngf: int = 64
    """Width of the online U-Net teacher (pix2pix: 64)."""
    student_ngf: int = 16
    """Width of the U-Net student (OMGD/VEM: 16)."""
    energy_width: int = 32
    """``conv_sn`` base width c (authors' pix2pix: 32)."""
    steps: int = 10
    """Langevin steps K."""
    iterations: int = 6
    """Timed iterations per side and repeat."""
    warmup: int = 1
    """Untimed iterations before them."""
    device: str = "cpu"
    """``cpu`` or ``cuda``."""
    seed: int = 0
    """The spec's seed (module initialisation); the Langevin noise is seeded with seed + 1."""

    @property
    def num_downs(self) -> int:
        """U-Net levels: down to a 1×1 innermost feature (8 at 256 px, as pix2pix)."""
        return int(math.log2(self.resolution))

    @property
    def energy_downsample(self) -> int:
        """The authors' pre-pool at 256 px; none below (reference/performance.md)."""
        return 1 if self.resolution >= 256 else 0

    @property
    def energy_blocks(self) -> int:
        """7 blocks (the authors') where the resolution allows, fewer below."""
        return min(7, self.num_downs - self.energy_downsample)

    def describe(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "unet_num_downs": self.num_downs,
            "energy_blocks": self.energy_blocks,
            "energy_downsample": self.energy_downsample,
        }


# -- an in-memory dataset for the engine --------------------------------------------------------
class MemoryPairsOptions(Options):
    """Random aligned pairs held in memory (benchmark only: no decoding cost on either side)."""

    size: Annotated[int, Field(gt=0)] = 64
    """Image side in pixels."""
    items: Annotated[int, Field(gt=0)] = 8
    """Number of pairs."""
    input_nc: Annotated[int, Field(gt=0)] = 3
    """Input channels."""
    output_nc: Annotated[int, Field(gt=0)] = 3
    """Target channels."""


class MemoryPairs(Dataset):
    """``{"input", "target", "index"}`` items in [-1, 1], drawn once from their own generator
    (the global RNG is untouched, so that module initialisation matches on both sides)."""

    def __init__(self, options: MemoryPairsOptions, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed + 12345)
        n, s = options.items, options.size
        self.inputs = torch.rand(n, options.input_nc, s, s, generator=g) * 2 - 1
        self.targets = torch.rand(n, options.output_nc, s, s, generator=g) * 2 - 1

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"input": self.inputs[index], "target": self.targets[index], "index": index}


def _build_memory(options: MemoryPairsOptions, *, seed: int = 0, **_: Any) -> MemoryPairs:
    return MemoryPairs(options, seed)


def make_registry() -> Registry:
    """A private registry: every built-in plus the ``memory`` dataset."""
    from vemkit_plugins.builtins import vemkit_register

    reg = Registry()
    vemkit_register(reg)
    reg.add("dataset", "memory", options=MemoryPairsOptions, factory=_build_memory)
    return reg


def spec_config(setting: Setting, mi: str, run_dir: Path) -> dict[str, Any]:
    """The spec both sides run: kd, online teacher, ``mi`` = ``none`` or ``vem``."""
    s = setting
    total = s.warmup + s.iterations + 1
    unet = {"type": "unet", "num_downs": s.num_downs}
    config: dict[str, Any] = {
        "name": f"bench-{mi}-{s.resolution}",
        "seed": s.seed,
        "data": {"train": {"type": "memory", "size": s.resolution, "items": s.batch_size * total}},
        "teacher": {"arch": {**unet, "ngf": s.teacher_ngf}, "mode": "online"},
        "student": {"arch": {**unet, "ngf": s.student_ngf}},
        "method": {"type": "kd"},
        "mi": {"type": "none"},
        "train": {"iterations": total, "batch_size": s.batch_size, "device": s.device},
        "eval": {"every": 0, "samples": 0},
        "output": {"dir": str(run_dir), "checkpoint_every": 0, "sample_every": 0},
    }
    if mi == "vem":
        config["mi"] = {
            "type": "vem",
            "energy": {
                "type": "conv_sn",
                "width": s.energy_width,
                "blocks": s.energy_blocks,
                "downsample": s.energy_downsample,
            },
            "sampler": {"type": "langevin", "steps": s.steps},
        }
    return config


def make_spec(reg: Registry, config: dict[str, Any]) -> Any:
    from vemkit.spec_model import spec_model

    return spec_model(reg).model_validate(config)


# -- the engine side --------------------------------------------------------------------------
class _Done(Exception):
    """Raised by the clock at the start of the iteration after the last timed one."""


class _Clock:
    """Run plugin: seeds the noise at the first iteration, stamps the start of every timed
    iteration and stops the run at the start of the one after the last (it is not run)."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.first = setting.warmup
        self.last = setting.warmup + setting.iterations
        self.stamps: list[float] = []
        self.faults: list[int | None] = []
        self.losses: list[dict[str, torch.Tensor]] = []

    @hookimpl
    def vemkit_iteration_start(self, program: Any, state: Any, step: int) -> None:
        if step == 0:
            torch.manual_seed(self.setting.seed + 1)  # the same Langevin noise on both sides
        if step >= self.first:
            _timing.sync(self.setting.device)
            self.stamps.append(_timing.now())
            self.faults.append(_timing.minor_faults())
        if step == self.last:
            raise _Done

    @hookimpl
    def vemkit_iteration_end(self, program: Any, state: Any, step: int, logs: Any) -> None:
        # Kept as tensors: converting here would synchronise a GPU every iteration.
        self.losses.append(
            {k[5:]: logs[k] for k in ("loss/teacher", "loss/energy", "loss/student") if k in logs}
        )


@dataclass
class SideRun:
    """What one call of a training side measured."""

    seconds: list[float]
    """Seconds of each timed iteration (start to start)."""
    losses: list[dict[str, float]]
    """Every iteration's phase losses (``teacher``, ``energy``, ``student``)."""
    faults: list[float]
    """Minor page faults of each timed iteration (empty where the OS does not count them)."""


def run_engine(reg: Registry, setting: Setting, mi: str, workdir: Path) -> SideRun:
    """One engine run of the benchmark's spec, stopped after the last timed iteration."""
    from vemkit.engine import run

    spec = make_spec(reg, spec_config(setting, mi, workdir / f"run-{mi}"))
    clock = _Clock(setting)
    try:
        run(spec, callbacks=[clock], registry=reg, progress=False, overwrite=True)
    except _Done:
        pass
    else:
        raise RuntimeError("the engine finished before the benchmark's last time stamp")
    return SideRun(
        _intervals(clock.stamps), [_floats(d) for d in clock.losses], _intervals(clock.faults)
    )


def _intervals(stamps: Sequence[Any]) -> list[Any]:
    if any(x is None for x in stamps):
        return []
    return [b - a for a, b in itertools.pairwise(stamps)]


def _floats(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in losses.items()}


# -- the hand-written side --------------------------------------------------------------------
def _seed(seed: int) -> None:
    # What the engine's compile does before it builds anything (Python, NumPy, torch).
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_hand(reg: Registry, setting: Setting, mi: str) -> SideRun:
    """The hand-written loop of the same spec (what :func:`run_engine` runs)."""
    from vemkit.engine.data import epoch_order

    spec = make_spec(reg, spec_config(setting, mi, Path(tempfile.gettempdir())))
    device = torch.device(setting.device)
    total = spec.train.iterations
    dataset = reg.build("dataset", spec.data.train, seed=spec.seed)
    _seed(spec.seed)
    teacher = reg.build("arch", spec.teacher.arch).to(device).train()
    student = reg.build("arch", spec.student.arch).to(device).train()
    vem = reg.build("mi", spec.mi, spec=spec, build=reg.build) if mi == "vem" else None

    def optimizer(config: Any, params: list[torch.nn.Parameter]) -> Any:
        opt = reg.build("optimizer", config, params=params)
        return opt, reg.build("scheduler", spec.train.scheduler, optimizer=opt, total_steps=total)

    opt_t, sched_t = optimizer(spec.train.optimizer, list(teacher.parameters()))
    opt_s, sched_s = optimizer(spec.train.optimizer, list(student.parameters()))
    schedulers = [sched_t, sched_s]
    if vem is not None:
        vem = vem.to(device).train()
        opt_e = reg.build("optimizer", spec.mi.optimizer, params=list(vem.parameters()))
        schedulers.append(
            reg.build("scheduler", {"type": "constant"}, optimizer=opt_e, total_steps=total)
        )
    recon = spec.method.teacher_recon_weight
    # The engine's order of samples (a seeded permutation), so that both see the same batches.
    order = epoch_order(len(dataset), seed=spec.seed, epoch=0)
    loader = DataLoader(
        dataset,
        batch_size=setting.batch_size,
        sampler=order,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(spec.seed),
    )
    stamps: list[float] = []
    faults: list[int | None] = []
    losses: list[dict[str, torch.Tensor]] = []
    last = setting.warmup + setting.iterations
    for i, batch in enumerate(loader):
        x = batch["input"].to(device, non_blocking=True)
        y = batch["target"].to(device, non_blocking=True)
        if i == 0:
            torch.manual_seed(setting.seed + 1)
        if i >= setting.warmup:
            _timing.sync(device)
            stamps.append(_timing.now())
            faults.append(_timing.minor_faults())
        if i == last:
            break
        # teacher: pix2pix's L1 to the target (kd with an online teacher, no GAN)
        t = teacher(x)
        loss_t = F.l1_loss(t, y) * recon
        opt_t.zero_grad(set_to_none=True)
        loss_t.backward()
        opt_t.step()
        s = student(x)
        t_neg = None
        if vem is not None:
            # energy: K Langevin steps from s, then one update (the VEM library, as documented)
            t_neg, diag = vem.energy_step(y, s.detach(), opt_e, teacher=t.detach())
        # student: KD's L1 to the teacher output, plus the MI term
        loss_s = F.l1_loss(s, t.detach())
        if vem is not None:
            loss_s = loss_s + vem.student_term(y, s, t_neg)
        opt_s.zero_grad(set_to_none=True)
        loss_s.backward()
        opt_s.step()
        for sched in schedulers:
            sched.step()
        step = {"teacher": loss_t.detach(), "student": loss_s.detach()}
        if vem is not None:
            step["energy"] = diag["loss"]
        losses.append(step)
    if len(stamps) != setting.iterations + 1:
        raise RuntimeError("the hand loop ran out of batches before its last time stamp")
    return SideRun(_intervals(stamps), [_floats(d) for d in losses], _intervals(faults))


# -- the energy machinery against its floor ---------------------------------------------------
def energy_sides(
    reg: Registry, setting: Setting, faults: dict[str, list[list[float]]]
) -> dict[str, Callable[[], list[float]]]:
    """``energy_phase``, ``energy_floor`` and ``student_pass`` on fixed tensors (see the module
    docstring); each call runs one untimed pass, then ``iterations`` timed ones (their page
    faults are appended to ``faults[name]``)."""
    from vemkit_plugins.samplers.langevin import frozen

    spec = make_spec(reg, spec_config(setting, "vem", Path(tempfile.gettempdir())))
    device = torch.device(setting.device)
    _seed(spec.seed)
    vem = reg.build("mi", spec.mi, spec=spec, build=reg.build).to(device).train()
    energy = vem.energy
    opt = reg.build("optimizer", spec.mi.optimizer, params=list(vem.parameters()))
    n, r = setting.batch_size, setting.resolution
    g = torch.Generator().manual_seed(spec.seed + 7)
    t_pos, s, teacher = ((torch.rand(n, 3, r, r, generator=g) * 2 - 1).to(device) for _ in range(3))
    t_neg = (s + 0.05 * torch.randn(s.shape, generator=g).to(device)).clamp(-1, 1)
    steps = setting.steps

    def energy_phase() -> None:
        vem.energy_step(t_pos, s, opt, teacher=teacher)

    def energy_floor() -> None:
        with frozen(energy):
            for _ in range(steps):  # the Langevin steps: gradients w.r.t. the sample only
                x = s.clone().requires_grad_(True)
                torch.autograd.grad(energy(x, s).sum(), x)
        for p in energy.parameters():  # the update: positives and negatives in one batch
            p.grad = None
        energy(torch.cat([t_pos, t_neg]), torch.cat([s, s])).sum().backward()

    def student_pass() -> None:
        x = s.clone().requires_grad_(True)
        with frozen(energy):
            torch.autograd.grad(energy(torch.cat([t_pos, t_neg]), torch.cat([x, x])).sum(), x)

    def timed(name: str, fn: Callable[[], None]) -> Callable[[], list[float]]:
        def side() -> list[float]:
            fn()  # warm-up
            seconds, counts = [], []
            for _ in range(setting.iterations):
                _timing.sync(device)
                start, before = _timing.now(), _timing.minor_faults()
                fn()
                _timing.sync(device)
                seconds.append(_timing.now() - start)
                after = _timing.minor_faults()
                if before is not None and after is not None:
                    counts.append(after - before)
            faults.setdefault(name, []).append(counts)
            return seconds

        return side

    return {
        "energy_phase": timed("energy_phase", energy_phase),
        "energy_floor": timed("energy_floor", energy_floor),
        "student_pass": timed("student_pass", student_pass),
    }


# -- one resolution ---------------------------------------------------------------------------
def _max_rel_diff(a: list[dict[str, float]], b: list[dict[str, float]]) -> float:
    """Largest relative difference of the losses both sides logged, iteration by iteration."""
    worst = 0.0
    if len(a) != len(b):
        return math.inf
    for x, y in zip(a, b, strict=True):
        if x.keys() != y.keys():
            return math.inf
        for k in x:
            scale = max(abs(x[k]), abs(y[k]), 1e-12)
            worst = max(worst, abs(x[k] - y[k]) / scale)
    return worst


def _median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _paired_difference(a: list[list[float]], b: list[list[float]]) -> float:
    diffs = [statistics.median(x) - statistics.median(y) for x, y in zip(a, b, strict=True)]
    return statistics.median(diffs) if diffs else math.nan


def measure(
    reg: Registry, setting: Setting, repeats: int, *, log: Callable[[str], None]
) -> dict[str, Any]:
    """Every side of one setting, alternated over ``repeats``; the summary as plain data."""
    losses: dict[str, list[list[dict[str, float]]]] = {}
    faults: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="vemkit-bench-") as tmp:
        workdir = Path(tmp)

        def training(side: str) -> Callable[[], list[float]]:
            who, mi = side.split("_")

            def call() -> list[float]:
                if who == "engine":
                    got = run_engine(reg, setting, mi, workdir)
                else:
                    got = run_hand(reg, setting, mi)
                losses.setdefault(side, []).append(got.losses)
                faults.setdefault(side, []).append(got.faults)
                return got.seconds

            return call

        sides = {name: training(name) for name in TRAINING_SIDES}
        sides.update(energy_sides(reg, setting, faults))

        def report(r: int, name: str, seconds: list[float]) -> None:
            value = statistics.median(seconds) if seconds else math.nan
            log(f"[{setting.resolution} px] repeat {r + 1}/{repeats} {name}: {value:.4f} s/iter")

        load_before = _timing.load_average()
        samples = _timing.run_alternating(sides, repeats, on_side=report)
        load_after = _timing.load_average()

    seconds = {name: _timing.summary(runs) for name, runs in samples.items()}
    floor_total = [
        [a + b for a, b in zip(x, y, strict=True)]
        for x, y in zip(samples["energy_floor"], samples["student_pass"], strict=True)
    ]
    added = _paired_difference(samples["engine_vem"], samples["engine_none"])
    floor = statistics.median(v for r in floor_total for v in r)
    pairs = {mi: list(zip(losses[f"engine_{mi}"], losses[f"hand_{mi}"], strict=True)) for mi in MIS}
    same = {mi: max(_max_rel_diff(e, h) for e, h in pairs[mi]) for mi in MIS}
    first = {mi: max(_max_rel_diff(e[:1], h[:1]) for e, h in pairs[mi]) for mi in MIS}
    return {
        "setting": setting.describe(),
        "repeats": repeats,
        "load_before": load_before,
        "load_after": load_after,
        "seconds_per_iteration": seconds,
        "engine_tax": {
            "none": _timing.paired_ratio(samples["engine_none"], samples["hand_none"]),
            "vem": _timing.paired_ratio(samples["engine_vem"], samples["hand_vem"]),
        },
        "vem_cost": {
            "engine_ratio": _timing.paired_ratio(samples["engine_vem"], samples["engine_none"]),
            "hand_ratio": _timing.paired_ratio(samples["hand_vem"], samples["hand_none"]),
            "added_seconds": added,
            "floor_seconds": floor,
            "added_vs_floor": added / floor if floor > 0 else math.nan,
        },
        "energy_phase_vs_floor": _timing.paired_ratio(
            samples["energy_phase"], samples["energy_floor"]
        ),
        "loss_max_rel_diff": same,
        "loss_first_rel_diff": first,
        "minor_faults_per_iteration": {
            name: _median_or_none([v for r in runs for v in r]) for name, runs in faults.items()
        },
        "samples": samples,
    }


# -- output -----------------------------------------------------------------------------------
def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}g}"


def _ratio_cell(r: dict[str, Any]) -> str:
    return f"{r['ratio']:.3f} ({r['min']:.3f}–{r['max']:.3f})"


def tables(results: list[dict[str, Any]]) -> str:
    """The Markdown tables of a run (engine tax, then VEM's cost)."""
    tax_rows, vem_rows = [], []
    for res in results:
        s, sec = res["setting"], res["seconds_per_iteration"]
        name = (
            f"{s['resolution']} px, b{s['batch_size']}, U-Net {s['teacher_ngf']}→{s['student_ngf']}"
        )
        for mi in ("none", "vem"):
            tax = res["engine_tax"][mi]
            tax_rows.append(
                [
                    name,
                    mi,
                    _fmt(sec[f"hand_{mi}"]["median"]),
                    _fmt(sec[f"engine_{mi}"]["median"]),
                    _ratio_cell(tax),
                    "yes" if tax["ratio"] <= ENGINE_TAX_TARGET else "no",
                ]
            )
        cost = res["vem_cost"]
        phase = res["energy_phase_vs_floor"]
        vem_rows.append(
            [
                f"{name}, conv_sn c{s['energy_width']}/{s['energy_blocks']} blocks/"
                f"ds {s['energy_downsample']}, K={s['steps']}",
                _ratio_cell(cost["engine_ratio"]),
                _fmt(cost["added_seconds"]),
                _fmt(sec["energy_phase"]["median"]),
                _fmt(sec["energy_floor"]["median"]),
                _ratio_cell(phase),
                "yes" if phase["ratio"] <= ENERGY_FLOOR_TARGET else "no",
                _fmt(cost["floor_seconds"]),
                _fmt(cost["added_vs_floor"]),
            ]
        )
    tax = _timing.markdown_table(
        [
            "setting",
            "mi",
            "hand s/iter",
            "vemkit s/iter",
            "engine tax (min–max)",
            f"≤ {ENGINE_TAX_TARGET}×",
        ],
        tax_rows,
    )
    vem = _timing.markdown_table(
        [
            "setting",
            "VEM/none (vemkit)",
            "VEM added s/iter",
            "energy phase s",
            "floor s (K+2 passes)",
            "phase/floor (min–max)",
            f"≤ {ENERGY_FLOOR_TARGET}×",
            "floor + student pass s",
            "added/floor",
        ],
        vem_rows,
    )
    return f"Engine tax (vemkit / hand-written loop, same computation):\n\n{tax}\n\n" + (
        f"VEM's cost per iteration:\n\n{vem}\n"
    )


# -- command line ----------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.engine_overhead",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="example: python -m benchmarks.engine_overhead --resolutions 64 --repeats 6",
    )
    p.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    p.add_argument("--repeats", type=int, default=4, help="alternating rounds (default 4)")
    p.add_argument(
        "--iterations", type=int, default=6, help=f"timed iterations below {LARGE} px (6)"
    )
    p.add_argument(
        "--large-iterations",
        type=int,
        default=2,
        help=f"timed iterations at {LARGE} px and above (2: slow on a CPU)",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per side (1)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--teacher-ngf", type=int, default=64)
    p.add_argument("--student-ngf", type=int, default=16)
    p.add_argument("--energy-width", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="Langevin steps K (10)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    _timing.add_output_args(p, DEFAULT_OUTPUT)
    args = p.parse_args(argv)
    for name in ("repeats", "iterations", "large_iterations", "batch_size", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be at least 0")
    for r in args.resolutions:
        if r < 32 or r & (r - 1):
            p.error(f"--resolutions: {r} is not a power of two ≥ 32 (the U-Net needs one)")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        # What the engine does for a non-deterministic CUDA run (fixed shapes): both sides alike.
        torch.backends.cudnn.benchmark = True
    allocator = "default"
    if args.malloc == "retain" and _timing.retain_freed_memory():
        allocator = "glibc, freed memory retained (M_TRIM_THRESHOLD 2 GiB, M_MMAP_MAX 0)"

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    reg = make_registry()
    load_before = _timing.load_average()
    results = []
    for r in args.resolutions:
        setting = Setting(
            resolution=r,
            batch_size=args.batch_size,
            teacher_ngf=args.teacher_ngf,
            student_ngf=args.student_ngf,
            energy_width=args.energy_width,
            steps=args.steps,
            iterations=args.large_iterations if r >= LARGE else args.iterations,
            warmup=args.warmup,
            device=args.device,
            seed=args.seed,
        )
        results.append(measure(reg, setting, args.repeats, log=log))
    report = {
        "benchmark": "engine_overhead",
        "machine": {**_timing.machine_info(args.device), "allocator": allocator},
        "load_before": load_before,
        "load_after": _timing.load_average(),
        "targets": {"engine_tax": ENGINE_TAX_TARGET, "energy_phase_vs_floor": ENERGY_FLOOR_TARGET},
        "results": results,
    }
    _timing.write_json_atomic(args.output, report)
    m = report["machine"]
    print(
        f"{m['cpu']} ({m['cores']} cores, {m['threads']} threads), torch {m['torch']}, "
        f"device {m['device']}{', ' + m['gpu'] if 'gpu' in m else ''}; load average "
        f"{report['load_before']} before, {report['load_after']} after; {m['date']}\n"
    )
    print(tables(results))
    # A CPU runs the same kernels in the same order on both sides: equal to the last bit, every
    # iteration. cuDNN picks kernels per run (benchmark mode) and some use atomics: the first
    # iteration agrees closely, later ones drift apart (Langevin at η 100 amplifies any change).
    cpu = args.device == "cpu"
    key, tolerance = ("loss_max_rel_diff", 1e-4) if cpu else ("loss_first_rel_diff", 1e-2)
    which = "every iteration" if cpu else "the first iteration"
    for res in results:
        for mi, diff in res[key].items():
            if not diff <= tolerance:
                print(
                    f"warning: {res['setting']['resolution']} px, mi {mi}: the engine's and the "
                    f"hand loop's losses differ in {which} (max relative difference {diff:.3g})"
                )
            elif diff > 0:
                print(
                    f"note: {res['setting']['resolution']} px, mi {mi}: losses of {which} agree "
                    f"to a relative {diff:.2g} (non-deterministic kernels)"
                )
    print(f"JSON: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
