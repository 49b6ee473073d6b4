"""The training loop: runs a finalised :class:`~vemkit.engine.program.Program`.

Per iteration: load a batch, then every phase due at this step, in order: sum its weighted
terms (under autocast for bf16/fp16), check the sum is finite (else skip the phase's step,
count it, and stop after ``train.max_bad_steps`` in a row), back-propagate into the phase's
parameters only, average gradients across processes, clip, and step the phase's optimizers;
then step every schedule once. Around that: ``metrics.jsonl`` every ``output.log_every``,
sample grids, evaluation, checkpoints. Evaluation and sample grids run under a forked RNG, so
they never change what training draws (a resumed run matches an uninterrupted one).
"""

from __future__ import annotations

import contextlib
import random
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vemkit.engine import checkpoint as ckpt
from vemkit.engine import distributed
from vemkit.engine.data import BatchStream, eval_batches, to_device
from vemkit.engine.logging import MetricsLog, ProgressBar, Window, save_grid
from vemkit.engine.program import Phase, Program
from vemkit.engine.state import Progress, State
from vemkit.errors import VemkitError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(setting: str, dist: distributed.Dist) -> torch.device:
    """``auto``: CUDA when present (``cuda:LOCAL_RANK`` under torchrun), else the CPU."""
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise VemkitError("train.device: cuda, but no CUDA device is available")
    return torch.device("cuda", dist.local_rank if dist.active else torch.cuda.current_device())


def _set_deterministic(mode: bool, warn_only: bool) -> None:
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        # The public setter imports torch._inductor (seconds) only to set a flag that matters
        # under torch.compile; when inductor is not loaded, set the kernel flag alone.
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


@contextlib.contextmanager
def deterministic(enabled: bool, device: torch.device) -> Iterator[None]:
    """Deterministic kernels while training (restored after: the setting is process-wide)."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    if enabled:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few CUDA backward kernels (reflection padding) have no deterministic
        # version; failing the run for them would make the option useless for GANs.
        _set_deterministic(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its kernels
    try:
        yield
    finally:
        if enabled:
            _set_deterministic(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]
        torch.backends.cudnn.deterministic = before[3]


def rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


class Trainer:
    """Runs the iterations of a program and writes what a run writes (rank 0 only)."""

    def __init__(
        self,
        program: Program,
        *,
        run_dir: Path | None,
        dist: distributed.Dist,
        train_set: Any,
        eval_set: Any = None,
        metrics: list[Any] | None = None,
        spec_yaml: str = "",
        info: dict[str, Any] | None = None,
        progress_bar: bool = True,
        stop_at: int | None = None,
    ) -> None:
        self.program = program
        self.spec = program.spec
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.dist = dist
        self.device = program.device
        self.train_set = train_set
        self.eval_set = eval_set
        self.metrics = metrics or []
        self.spec_yaml = spec_yaml
        self.info = info or {}
        self.stop_at = stop_at
        self.progress = Progress()
        self.resumed = False
        self.last_checkpoint: Path | None = None
        self.last_eval: dict[str, float] = {}
        self.writes = dist.main and self.run_dir is not None
        precision = self.spec.train.precision
        self.autocast_dtype = _DTYPES.get(precision)
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None
        self.log = MetricsLog(
            self.run_dir if self.writes else None, tensorboard=self.spec.output.tensorboard
        )
        self.bar_enabled = progress_bar and dist.main
        self.bar: ProgressBar | None = None
        self.hook = program.plugins.hook
        program.scorer = self.score_images
        program.say = self._say

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        components: dict[str, Any] = {}
        for part in self.hook.vemkit_state_dict(program=self.program):
            if part:
                clash = set(part) & set(components)
                if clash:
                    raise VemkitError(f"two run components save the state key(s) {sorted(clash)}")
                components.update(part)
        return {
            "progress": self.progress.to_json(),
            "optimizers": {
                n: g.optimizer.state_dict()
                for n, g in self.program.groups.items()
                if g.optimizer is not None
            },
            "schedulers": {
                n: g.scheduler.state_dict()
                for n, g in self.program.groups.items()
                if g.scheduler is not None
            },
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_state(self.device),
            "components": components,
        }

    def restore(self, checkpoint: ckpt.Checkpoint) -> None:
        """Continue from ``checkpoint``: weights, optimizers, schedules, scaler, RNG, data
        position, counters and the components' own state."""
        program = self.program
        saved, ours = set(checkpoint.modules), set(program.modules)
        if saved != ours:
            raise VemkitError(
                f"{checkpoint.path}: holds modules {sorted(saved)} but this run has {sorted(ours)}"
            )
        for name, sd in checkpoint.modules.items():
            try:
                program.module(name).load_state_dict(sd)
            except RuntimeError as exc:
                raise VemkitError(f"{checkpoint.path}: module '{name}': {exc}") from None
        state = checkpoint.state
        for name, g in program.groups.items():
            if g.optimizer is not None:
                g.optimizer.load_state_dict(state["optimizers"][name])
            if g.scheduler is not None:
                g.scheduler.load_state_dict(state["schedulers"][name])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress.from_json(state["progress"])
        set_rng_state(state["rng"], self.device)
        self.hook.vemkit_load_state_dict(program=program, state=state.get("components", {}))
        self.resumed = True
        self.last_checkpoint = checkpoint.path

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0), keep the newest ``output.keep``."""
        if not self.writes:
            return None
        assert self.run_dir is not None
        step = self.progress.step
        modules = {n: e.module.state_dict() for n, e in self.program.modules.items()}
        path = ckpt.save(
            self.run_dir,
            step,
            modules=modules,
            state=self.state_dict(),
            info={**self.info, "step": step},
            spec_yaml=self.spec_yaml,
        )
        root = self.run_dir / ckpt.CHECKPOINTS
        if self.progress.best_step == step:
            ckpt.point(root, "best", path.name)
        protect = {ckpt.step_name(self.progress.best_step)} if self.progress.best_step else set()
        ckpt.prune(self.run_dir, self.spec.output.keep, protect)
        self.last_checkpoint = path
        return path

    # -- one phase --------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def run_phase(self, phase: Phase, state: State, logs: dict[str, Any]) -> bool:
        """One update of ``phase``; False when it was skipped for a non-finite loss."""
        values: dict[str, Tensor] = {}
        total: Tensor | None = None
        with self._autocast():
            for term in phase.terms:
                if term.weight == 0:
                    continue
                out = term.fn(state)
                value, diag = out if isinstance(out, tuple) else (out, None)
                if not isinstance(value, Tensor) or value.numel() != 1:
                    shape = tuple(value.shape) if isinstance(value, Tensor) else type(value)
                    raise VemkitError(
                        f"loss term '{term.name}' (from {term.source}) must return a scalar "
                        f"tensor, got {shape}"
                    )
                value = value.reshape(())
                values[term.name] = value
                if diag:
                    for k, v in diag.items():
                        logs[f"{term.name}/{k}"] = v
                weighted = value if term.weight == 1.0 else value * term.weight
                total = weighted if total is None else total + weighted
        if total is None:
            return True
        finite = distributed.all_true(self.dist, bool(torch.isfinite(total)), self.device)
        if not finite:
            bad = [n for n, v in values.items() if not bool(torch.isfinite(v))]
            self._bad_step(phase, bad or ["(their weighted sum)"], "loss", logs)
            return False
        groups = [self.program.groups[g] for g in phase.groups]
        for g in groups:
            if g.optimizer is not None:
                g.optimizer.zero_grad(set_to_none=True)
        if not total.requires_grad:
            raise VemkitError(
                f"phase '{phase.name}': no term depends on the parameters it updates "
                f"({', '.join(phase.groups)}); terms: {', '.join(values)}"
            )
        loss = self.scaler.scale(total) if self.scaler is not None else total
        loss.backward(inputs=phase.params, retain_graph=phase.retain_graph)
        distributed.average_gradients(self.dist, phase.params)
        for g in groups:
            if g.grad_clip is None or not g.params:
                continue
            if self.scaler is not None:
                self.scaler.unscale_(g.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(g.params, g.grad_clip)
            if self.scaler is None and not bool(torch.isfinite(norm)):
                for h in groups:
                    h.optimizer.zero_grad(set_to_none=True)
                self._bad_step(phase, [f"gradient of group '{g.name}'"], "gradient", logs)
                return False
            logs[f"grad_norm/{g.name}"] = norm.detach()
        for g in groups:
            if g.optimizer is None:
                continue
            if self.scaler is not None:
                self.scaler.step(g.optimizer)
            else:
                g.optimizer.step()
        for name, v in values.items():
            logs[name] = v.detach()
        logs[f"loss/{phase.name}"] = total.detach()
        self.progress.bad_in_a_row[phase.name] = 0
        return True

    def _bad_step(self, phase: Phase, culprits: list[str], what: str, logs: dict[str, Any]) -> None:
        p = self.progress
        n = p.bad_in_a_row.get(phase.name, 0) + 1
        p.bad_in_a_row[phase.name] = n
        p.bad_total[phase.name] = p.bad_total.get(phase.name, 0) + 1
        logs[f"skipped/{phase.name}"] = 1.0
        names = ", ".join(f"'{c}'" if not c.startswith(("(", "gradient")) else c for c in culprits)
        message = (
            f"step {p.step + 1}: phase '{phase.name}': non-finite {what} in {names}; step "
            f"skipped ({n} in a row)"
        )
        self._say(message)
        limit = self.spec.train.max_bad_steps
        if n >= limit:
            last = self.last_checkpoint or "none written yet"
            raise VemkitError(
                f"phase '{phase.name}' had a non-finite {what} {n} iterations in a row "
                f"(train.max_bad_steps = {limit}); culprit: {names}. Training stopped at step "
                f"{p.step}; the last good checkpoint is {last}. Lower the learning rate, set "
                "train.grad_clip, or check the data."
            )

    def _say(self, message: str) -> None:
        if not self.dist.main:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, file=sys.stderr, flush=True)

    # -- evaluation and samples -------------------------------------------------------------
    @contextlib.contextmanager
    def _side_computation(self) -> Iterator[None]:
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad(), self.program.eval_mode():
            torch.manual_seed(self.spec.seed)  # the same noise inputs at every evaluation
            yield

    def evaluate(self) -> dict[str, float]:
        """Scores of the spec's metrics on the eval set plus the components' own."""
        step = self.progress.step
        results: dict[str, float] = {}
        with self._side_computation():
            if self.metrics and self.eval_set is not None:
                results.update(self._metric_scores(self.program.evaluates, self.metrics, "target"))
            for extra in self.hook.vemkit_evaluate(
                program=self.program, step=step, run_dir=str(self.run_dir) if self.run_dir else None
            ):
                if extra:
                    results.update({k: float(v) for k, v in extra.items()})
        self.last_eval = results
        return results

    def _metric_scores(
        self, fake: str, metrics: Sequence[Any], real: str | None
    ) -> dict[str, float]:
        # The batch's other fields (labels, segmentation maps) describe the target domain's
        # images: they go to the metrics only when the fakes are judged against the targets.
        for m in metrics:
            m.reset()
        for batch in eval_batches(self.eval_set, self.spec.train.batch_size, device=self.device):
            state = State(self.program, batch, self.progress.step, training=False)
            # A batch field as it is (none: the metric's own reference, e.g. a dataset
            # without targets), else a named tensor of the program (``omgd.fake_A``).
            if real is None or real in batch or real in ("input", "target"):
                reference = batch.get(real) if real is not None else None
            else:
                reference = state[real]
            extras = {}
            if real == "target":
                extras = {k: v for k, v in batch.items() if k not in ("input", "target")}
            for m in metrics:
                m.update(state[fake], reference, **extras)
        results: dict[str, float] = {}
        for m in metrics:
            results.update({k: float(v) for k, v in m.compute().items()})
        return results

    def score_images(
        self, fake: str, metrics: Sequence[Any], real: str | None = "target"
    ) -> dict[str, float]:
        """:meth:`Program.score`: ``metrics`` of the tensor ``fake`` over the eval set."""
        if self.eval_set is None:
            raise VemkitError(
                f"data.eval: scoring '{fake}' during training needs an evaluation set"
            )
        results: dict[str, float] = {}
        if self.dist.main:
            with self._side_computation():
                results = self._metric_scores(fake, metrics, real)
        return distributed.broadcast_json(self.dist, results, self.device)

    def _better(self, results: dict[str, float]) -> bool:
        key = self.spec.eval.best
        if key is None:
            return False
        if key not in results:
            raise VemkitError(
                f"eval.best: no evaluation score named '{key}' (scores: "
                f"{', '.join(sorted(results)) or 'none; add eval.metrics'})"
            )
        higher = False
        for m in self.metrics:
            table = getattr(m, "higher_is_better", {}) or {}
            if key in table:
                higher = bool(table[key])
        value = results[key]
        best = self.progress.best
        if best is None or (value > best if higher else value < best):
            self.progress.best, self.progress.best_step = value, self.progress.step
            return True
        return False

    def sample_grid(self) -> Path | None:
        if not self.writes or self.spec.eval.samples == 0:
            return None
        source = self.eval_set if self.eval_set is not None else self.train_set
        n = min(self.spec.eval.samples, len(source))
        items = [source[i] for i in range(n)]
        batch = to_device(torch.utils.data.default_collate(items), self.device)
        with self._side_computation():
            state = State(self.program, batch, self.progress.step, training=False)
            out = state["student.out"]
            columns = []
            x = state["input"]
            if x.dim() == 4 and x.shape[-2:] == out.shape[-2:] and x.shape[1] in (1, 3):
                columns.append(x)
            columns += [state["teacher.out"], out]
            y = batch.get("target")
            # unconditional data: the target is an unrelated real image, not a ground truth
            paired = self.spec.task != "unconditional"
            if paired and isinstance(y, Tensor) and y.shape[-2:] == out.shape[-2:]:
                columns.append(y)
        assert self.run_dir is not None
        return save_grid(
            self.run_dir / "samples" / f"{ckpt.step_name(self.progress.step)}.png", columns
        )

    # -- the loop ---------------------------------------------------------------------------
    def _due(self, every: int, step: int) -> bool:
        return every > 0 and step % every == 0

    def train(self) -> str:
        """Run until ``train.iterations`` (or ``stop_at``); returns the status."""
        program, spec, p = self.program, self.spec, self.progress
        total = spec.train.iterations
        stream = BatchStream(
            self.train_set,
            spec.train.batch_size,
            seed=spec.seed,
            workers=spec.train.workers,
            epoch=p.epoch,
            index=p.index,
            rank=self.dist.rank,
            world=self.dist.world,
            device=self.device,
        )
        if self.writes and self.resumed:
            self.log.truncate_after(p.step)
        self.bar = ProgressBar(total, p.step, enabled=self.bar_enabled, desc=spec.name)
        window = Window()
        status = "failed"
        run_dir = str(self.run_dir) if self.run_dir else None
        try:
            if not self.resumed:
                self._run_stages(stream)
            with warnings.catch_warnings():
                # Schedules step every iteration, even when the NaN guard skipped the step.
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler")
                while p.step < total:
                    batch = stream.next()
                    n = _batch_size(batch)
                    state = State(program, batch, p.step)
                    logs: dict[str, Any] = {}
                    with program.activate(state):
                        self.hook.vemkit_iteration_start(program=program, state=state, step=p.step)
                        for phase in program.phases:
                            if program.runs(phase, p.step):
                                self.run_phase(phase, state, logs)
                    for g in program.groups.values():
                        if g.scheduler is not None:
                            g.scheduler.step()
                        if g.optimizer is not None:
                            logs[f"lr/{g.name}"] = g.optimizer.param_groups[0]["lr"]
                    if self.scaler is not None:
                        self.scaler.update()
                    p.step += 1
                    p.epoch, p.index = stream.epoch, stream.index
                    p.samples += n * self.dist.world
                    self.hook.vemkit_iteration_end(
                        program=program, state=state, step=p.step, logs=logs
                    )
                    del state
                    window.add(logs)
                    window.iterations += 1
                    window.samples += n * self.dist.world
                    self._after_iteration(window, total)
                    if self.stop_at is not None and p.step >= self.stop_at and p.step < total:
                        if self.last_checkpoint is None or not str(self.last_checkpoint).endswith(
                            ckpt.step_name(p.step)
                        ):
                            self.save()
                        status = "stopped"
                        break
                else:
                    status = "finished"
        except KeyboardInterrupt:
            status = "stopped"
            raise
        finally:
            stream.close()
            self.bar.close()
            self.log.close()
            self.hook.vemkit_run_end(program=program, status=status, run_dir=run_dir)
        return status

    def _after_iteration(self, window: Window, total: int) -> None:
        p, out, spec = self.progress, self.spec.output, self.spec
        step = p.step
        last = step == total
        postfix = None
        if self._due(out.log_every, step) or last:
            values = window.flush()
            for name, count in p.bad_total.items():
                values[f"skipped_total/{name}"] = count
            if self.writes:
                self.log.write(step, values)
            postfix = {k: v for k, v in values.items() if k.startswith("loss/")}
        if self._due(out.sample_every, step):
            self.sample_grid()
        improved = False
        evaluate = self.metrics or self.program.plugins.hook.vemkit_evaluate.get_hookimpls()
        if evaluate and (self._due(spec.eval.every, step) or last):
            if self.dist.main:
                results = self.evaluate()
                improved = self._better(results)
                if self.writes:
                    self.log.write(step, {f"eval/{k}": v for k, v in results.items()})
                self._say(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in results.items()))
            distributed.barrier(self.dist)
        if self._due(out.checkpoint_every, step) or last or improved:
            self.save()
            distributed.barrier(self.dist)
        if self.bar is not None:
            self.bar.update(postfix)

    def _run_stages(self, stream: BatchStream) -> None:
        for stage in self.program.stages:
            if stage.name in self.progress.stages_done:
                continue
            context = {
                "run_dir": self.run_dir,
                "device": self.device,
                "data": stream,
                "dist": self.dist,
            }
            stage.fn(self.program, context)
            self.progress.stages_done.append(stage.name)


def _batch_size(batch: dict[str, Any]) -> int:
    for v in batch.values():
        if isinstance(v, Tensor) and v.dim() > 0:
            return int(v.shape[0])
    return 1
