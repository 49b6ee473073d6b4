"""What a run reports: ``metrics.jsonl``, optional TensorBoard, a progress bar, sample grids.

``metrics.jsonl`` holds one JSON object per line: training lines ``{"step", "time",
"it_per_s", "samples_per_s", <term>: mean over the window, "lr/<group>", "skipped/<phase>",
...}`` every ``output.log_every`` iterations, and evaluation lines ``{"step", "eval/<metric>":
value}``. Only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vemkit.errors import VemkitError
from vemkit.fileio import atomic_path

METRICS = "metrics.jsonl"


def _scalar(value: Any) -> float:
    if isinstance(value, Tensor):
        return float(value.detach().float().mean())
    return float(value)


class Window:
    """Sums of scalars since the last flush; ``.item()`` is called only at flush time, so a
    GPU run does not synchronise every iteration for its logs."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.started = time.perf_counter()
        self.iterations = 0
        self.samples = 0

    def add(self, logs: dict[str, Any]) -> None:
        for k, v in logs.items():
            if isinstance(v, Tensor):
                v = v.detach().float()
                if v.numel() != 1:
                    v = v.mean()
            elif not isinstance(v, int | float):
                continue
            self.sums[k] = self.sums[k] + v if k in self.sums else v
            self.counts[k] = self.counts.get(k, 0) + 1

    def flush(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        out = {k: _scalar(v) / self.counts[k] for k, v in self.sums.items()}
        out["it_per_s"] = self.iterations / elapsed
        out["samples_per_s"] = self.samples / elapsed
        self.__init__()
        return out


def _json_safe(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


class MetricsLog:
    """Appends JSON lines to ``RUN_DIR/metrics.jsonl`` (and TensorBoard scalars)."""

    def __init__(self, run_dir: Path | None, *, tensorboard: bool = False) -> None:
        self.path = Path(run_dir) / METRICS if run_dir is not None else None
        self.started = time.time()
        self.tb = None
        if tensorboard and run_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise VemkitError(
                    "output.tensorboard: true needs the tensorboard package (pip install "
                    "tensorboard), or set it to false"
                ) from None
            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (a resumed run repeats those iterations)."""
        if self.path is None or not self.path.is_file():
            return
        from vemkit.engine.checkpoint import write_text_atomic

        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if int(json.loads(line).get("step", 0)) > step:
                    continue
            except (ValueError, AttributeError):
                continue  # a line cut by a kill
            kept.append(line)
        write_text_atomic(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, step: int, values: dict[str, float]) -> None:
        record = {"step": step, "time": round(time.time() - self.started, 3)}
        record.update({k: _json_safe(float(v)) for k, v in values.items()})
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class ProgressBar:
    """A tqdm bar with it/s and ETA; silent when disabled (tests, non-zero ranks)."""

    def __init__(self, total: int, initial: int, *, enabled: bool, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                unit="it",
                dynamic_ncols=True,
                file=sys.stderr,
                smoothing=0.1,
            )

    def update(self, postfix: dict[str, float] | None = None) -> None:
        if self.bar is None:
            return
        if postfix:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self.bar.update(1)

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def save_grid(path: Path, columns: Sequence[Tensor]) -> Path:
    """One row per sample, one column per tensor (input | teacher | student | target), images
    in [-1, 1]; gray columns are shown as RGB next to colour ones."""
    from torchvision.utils import save_image

    channels = max(c.shape[1] for c in columns)
    shown = []
    for c in columns:
        c = c.detach().float().cpu()
        if c.shape[1] == 1 and channels == 3:
            c = c.expand(-1, 3, -1, -1)
        shown.append(c)
    n = shown[0].shape[0]
    rows = torch.stack(shown, dim=1).reshape(n * len(shown), *shown[0].shape[1:])
    with atomic_path(path) as tmp:
        save_image(
            (rows + 1) / 2, str(tmp), format="png", nrow=len(shown), padding=2, value_range=(0, 1)
        )
    return path
