"""Shared helpers of the benchmarks: the machine, side-by-side timing, statistics, output.

How to measure on shared, noisy machines (reference/performance.md): compare only ratios
measured side by side in one run, alternate the sides (the order reverses every repeat, so that
a load change does not always hit the same side), take several repeats, and report the load
average before and after. A ratio is computed per repeat from the sides measured next to each
other, then summarised by its median over the repeats (with the spread), which is robust to a
burst of load during one repeat.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "Samples",
    "alternating_order",
    "load_average",
    "machine_info",
    "markdown_table",
    "minor_faults",
    "paired_ratio",
    "retain_freed_memory",
    "run_alternating",
    "summary",
    "sync",
    "write_json_atomic",
]

Samples = dict[str, list[list[float]]]
"""Seconds per iteration by side: one list per repeat, one value per timed iteration."""


# -- the machine ------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else :func:`platform.processor`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What a timing depends on: CPU, cores, threads, torch, the GPU if one is used, the date."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": _usable_cores(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


# -- the allocator ----------------------------------------------------------------------------
_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_MAX = -4


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the OS.

    By default glibc serves large blocks with ``mmap`` and trims the heap top, so tensors freed at
    the end of an iteration are handed back and the next iteration's are page-faulted in again
    (tens of thousands of minor faults per iteration at 64 px): a cost that depends on the heap's
    history (which side ran before), not on the code measured. With ``mmap`` off and no trimming
    every block comes from a heap that only grows, and an iteration reuses what the last one
    freed. Process-wide; returns False where the C library is not glibc (nothing changed).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    trim = libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    mmap = libc.mallopt(_M_MMAP_MAX, 0)
    return bool(trim and mmap)


def minor_faults() -> int | None:
    """Minor page faults of this process so far (fresh memory touched); None off Unix."""
    try:
        import resource
    except ImportError:
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


# -- timing -----------------------------------------------------------------------------------
def sync(device: Any) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def alternating_order(names: Sequence[str], repeat: int) -> list[str]:
    """The order of the sides in repeat ``repeat``: as given on even repeats, reversed on odd
    ones (A B C, C B A, A B C, ...). Sides compared with each other are listed next to each
    other, so that they always run back to back, each one first in every other repeat."""
    return list(names) if repeat % 2 == 0 else list(names)[::-1]


def run_alternating(
    sides: Mapping[str, Callable[[], list[float]]],
    repeats: int,
    *,
    on_side: Callable[[int, str, list[float]], None] | None = None,
) -> Samples:
    """Call every side once per repeat in :func:`alternating_order`; each call returns the
    seconds of its timed iterations. ``on_side(repeat, name, seconds)`` reports progress."""
    names = list(sides)
    out: Samples = {name: [] for name in names}
    for r in range(repeats):
        for name in alternating_order(names, r):
            seconds = list(sides[name]())
            out[name].append(seconds)
            if on_side is not None:
                on_side(r, name, seconds)
    return out


# -- statistics -------------------------------------------------------------------------------
def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(repeats: Iterable[Sequence[float]]) -> dict[str, Any]:
    """Median, quartiles, min and count of every timed iteration of every repeat, plus the
    median of each repeat (what :func:`paired_ratio` pairs)."""
    per_repeat = [statistics.median(r) for r in repeats if len(r)]
    values = [v for r in repeats for v in r]
    if not values:
        return {"median": math.nan, "q1": math.nan, "q3": math.nan, "min": math.nan, "n": 0}
    return {
        "median": statistics.median(values),
        "q1": _quantile(values, 0.25),
        "q3": _quantile(values, 0.75),
        "min": min(values),
        "n": len(values),
        "per_repeat": per_repeat,
    }


def paired_ratio(a: Iterable[Sequence[float]], b: Iterable[Sequence[float]]) -> dict[str, Any]:
    """``a / b`` per repeat (median of a repeat's iterations over the other side's in the same
    repeat), summarised by the median over repeats, with the smallest and largest."""
    ratios = [
        statistics.median(x) / statistics.median(y)
        for x, y in zip(a, b, strict=True)
        if len(x) and len(y) and statistics.median(y) > 0
    ]
    if not ratios:
        return {"ratio": math.nan, "min": math.nan, "max": math.nan, "per_repeat": []}
    return {
        "ratio": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "per_repeat": ratios,
    }


# -- output -----------------------------------------------------------------------------------
def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table (cells formatted with ``str``)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    # JSON has no NaN/Infinity: write them as strings, the way metrics.jsonl does.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically (vemkit's one writer), creating
    its folder."""
    from vemkit.fileio import write_text_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, json.dumps(_json_safe(data), indent=1) + "\n")


def now() -> float:
    """The clock every benchmark uses (monotonic, high resolution)."""
    return time.perf_counter()


def add_output_args(parser: Any, default_output: Path) -> None:
    """The options every benchmark shares: the allocator setting, the JSON file, quiet mode."""
    parser.add_argument(
        "--malloc",
        choices=["retain", "default"],
        default="retain",
        help="retain: glibc keeps freed memory for reuse, so that page faults that depend on the "
        "heap's history do not blur the comparison (default); default: leave malloc as it is",
    )
    parser.add_argument("--output", type=Path, default=default_output, help="JSON file to write")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
