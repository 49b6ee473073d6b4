"""Evaluate a run's (or a spec's) teacher and student on the spec's evaluation set.

What ``vemkit eval`` does, usable from Python::

    from vemkit.evaluate import evaluate_target
    result = evaluate_target("runs/quickstart", checkpoint="best")   # writes eval.json

Weights come from a run directory's checkpoint (``last`` by default, ``best``, or a checkpoint
folder), or, for a spec file, from ``teacher.checkpoint`` / ``student.init``. Each network
generates on ``data.eval`` in order (eval mode, ``no_grad``, the run's device) and every metric
of ``eval.metrics`` (or the ones asked for) is fed ``update(fake=generated, real=target,
**other batch keys)``; one metric object serves both networks, reset in between, so expensive
state (Inception features of the real set, a trained classifier) is computed once.
Unconditional generators (an integer ``z_dim``) get latents from a generator seeded by the
spec's seed: teacher and student see the same ``z``, and a second evaluation the same again.

Besides the scores, ``eval.json`` carries params and MACs of both generators at the spec's input
size, batch 1, in the papers' convention (torchprofile's rule, see :mod:`vemkit.profile`) and the
exact count, with the teacher/student ratios, and optionally their latency.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vemkit.errors import DataError, SpecError, VemkitError

EVAL_FILE = "eval.json"
SAMPLES_FILE = "eval_samples.png"
SPEC_FILE = "spec.resolved.yaml"
FORMAT = 1
MACS_CONVENTION = "paper"
ROLES = ("teacher", "student")


@dataclass
class Source:
    """What to evaluate: a validated spec and where the weights come from."""

    spec: Any
    run_dir: Path | None = None
    """The run directory, when evaluating a run."""
    checkpoint: Path | None = None
    """The checkpoint folder whose weights are evaluated (runs only)."""
    step: int | None = None
    """Training step of that checkpoint."""
    weights: dict[str, str | None] = field(default_factory=dict)
    """Weights file per role (``None``: the network keeps its random initialisation)."""
    notes: list[str] = field(default_factory=list)


# -- where the weights come from -------------------------------------------------------------
def is_run_dir(path: str | Path) -> bool:
    """A folder written by ``vemkit run`` (it holds the resolved spec)."""
    path = Path(path)
    return path.is_dir() and (path / SPEC_FILE).is_file()


def read_run_spec(run_dir: Path, overrides: Sequence[str] = (), registry: Any = None) -> Any:
    """The resolved spec of a run directory, with ``--set`` overrides applied."""
    from vemkit.spec import validate_source
    from vemkit.spec_source import read_source

    spec, problems = validate_source(read_source(run_dir / SPEC_FILE), overrides, reg=registry)
    if problems:
        raise SpecError(problems)
    return spec


def find_checkpoint(run_dir: Path, which: str | None = None) -> Path:
    """The checkpoint folder of ``run_dir`` named by ``which``: ``last`` (default; the newest
    valid one), ``best``, a step folder name (``step_0002000``) or a path."""
    from vemkit.engine import checkpoint as ckpt

    root = run_dir / ckpt.CHECKPOINTS
    which = which or "last"
    if which == "last":
        path, skipped = ckpt.latest(run_dir)
        if path is None:
            why = f" ({'; '.join(skipped)})" if skipped else ""
            raise VemkitError(
                f"{run_dir}: no complete checkpoint in {root}{why}. Train it first "
                f"(`vemkit run --resume {run_dir}` continues a stopped run), or evaluate the spec "
                "file instead (weights from teacher.checkpoint / student.init)"
            )
        return path
    if which == "best":
        path = root / "best"
        if not path.exists():
            raise VemkitError(
                f"{run_dir}: no 'best' checkpoint (the run's spec sets no eval.best, or no "
                "evaluation ran yet); use --checkpoint last"
            )
        path = path.resolve()
    else:
        path = Path(which)
        if not path.exists() and (root / which).exists():
            path = root / which
        if not path.is_dir():
            raise VemkitError(
                f"--checkpoint {which}: no such checkpoint folder (give last, best, a step "
                f"folder of {root} or a path to one)"
            )
    problem = ckpt.verify(path)
    if problem:
        raise VemkitError(problem)
    return path


def _checkpoint_step(path: Path) -> int | None:
    try:
        return int(json.loads((path / "COMPLETE").read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resolve(
    target: str | Path,
    *,
    overrides: Sequence[str] = (),
    checkpoint: str | None = None,
    registry: Any = None,
) -> Source:
    """A spec file or run directory -> :class:`Source` (spec validated, weights located). The
    folder of a recipe opens as its last stage that holds weights (a pruned or searched student
    is rebuilt from the architecture that stage recorded)."""
    from vemkit.engine.recipe import final_stage_dir, is_recipe_dir

    target = Path(target)
    if is_recipe_dir(target):
        target = final_stage_dir(target)
    if is_run_dir(target):
        spec = read_run_spec(target, overrides, registry)
        path = find_checkpoint(target, checkpoint)
        source = Source(spec, run_dir=target, checkpoint=path, step=_checkpoint_step(path))
        for role in ROLES:
            f = path / f"{role}.safetensors"
            if f.is_file():
                source.weights[role] = str(f)
            elif role == "student":
                raise VemkitError(f"{path}: holds no student.safetensors")
            else:
                fallback = spec.teacher.checkpoint
                source.weights[role] = fallback
                source.notes.append(
                    f"{path} holds no teacher weights; the teacher is "
                    + (f"loaded from teacher.checkpoint {fallback}" if fallback else "random")
                )
        return source
    if target.is_dir():
        raise VemkitError(
            f"{target}: not a run directory (no {SPEC_FILE}); give a run directory written by "
            "`vemkit run` or a spec file"
        )
    if checkpoint is not None:
        raise VemkitError("--checkpoint applies to a run directory, not to a spec file")
    from vemkit.spec import load_spec

    spec = load_spec(target, overrides)
    source = Source(spec)
    for role, path, where in (
        ("teacher", spec.teacher.checkpoint, "teacher.checkpoint"),
        ("student", spec.student.init, "student.init"),
    ):
        source.weights[role] = path
        if path is None:
            source.notes.append(f"{where} is null: the {role} is evaluated at its random init")
    return source


# -- metrics -----------------------------------------------------------------------------------
def parse_metrics(text: str) -> list[dict[str, Any]]:
    """``--metrics``: ``psnr,ssim`` or YAML (``[{type: fid, num_samples: 500}, psnr]``)."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise VemkitError(f"--metrics: not valid YAML: {exc}") from None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise VemkitError(f"--metrics: expected names (psnr,ssim) or a YAML list, got {text!r}")
    out = []
    for item in value:
        if isinstance(item, str):
            item = {"type": item}
        if not isinstance(item, dict) or "type" not in item:
            raise VemkitError(f"--metrics: each metric is a name or {{type: ...}}, got {item!r}")
        out.append(item)
    return out


def _metric_configs(spec: Any, metrics: Sequence[Any] | None, reg: Any) -> list[Any]:
    if metrics is None:
        return list(spec.eval.metrics)
    from pydantic import ValidationError

    out = []
    for i, config in enumerate(metrics):
        try:
            out.append(reg.options("metric", config))
        except ValidationError as exc:
            lines = [
                f"--metrics.{i}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors()
            ]
            raise VemkitError("\n".join(lines)) from None
        except VemkitError as exc:
            raise VemkitError(f"--metrics.{i}: {exc}") from None
    return out


def _config_dict(config: Any) -> dict[str, Any]:
    dump = getattr(config, "model_dump", None)
    return dump(mode="json") if dump is not None else dict(config)


# -- generation --------------------------------------------------------------------------------
def _first_tensor(out: Any) -> Any:
    # Generators that also return latents (StyleGAN2) give the image first.
    while isinstance(out, tuple | list) and out:
        out = out[0]
    return out


def _pick_device(setting: str) -> Any:
    import torch

    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise VemkitError(f"device {setting}: no CUDA device is available")
    return torch.device("cuda", torch.cuda.current_device())


def _batches(
    module: Any,
    dataset: Any,
    *,
    n: int,
    batch_size: int,
    device: Any,
    seed: int,
    role: str,
    progress: bool,
) -> Iterator[tuple[dict[str, Any], Any, Any]]:
    """``(batch, generator input, generated images)`` over the first ``n`` eval items."""
    import torch
    from tqdm import tqdm

    from vemkit.engine.data import eval_batches

    z_dim = getattr(module, "z_dim", None)
    # One latent stream per network, seeded alike: teacher and student see the same z.
    latents = torch.Generator().manual_seed(seed)
    total = math.ceil(n / batch_size)
    bar = tqdm(
        total=total,
        desc=f"eval {role}",
        unit="batch",
        disable=not progress,
        file=sys.stderr,
        leave=False,
    )
    try:
        for batch in eval_batches(dataset, batch_size, device=device, limit=n):
            x = batch.get("input")
            if x is None:
                if not isinstance(z_dim, int):
                    raise DataError(
                        f"data.eval: items have no 'input' (keys: {', '.join(batch)}) and the "
                        f"{role} has no z_dim to sample latents for"
                    )
                count = len(batch["target"]) if "target" in batch else batch_size
                x = torch.randn(count, z_dim, generator=latents).to(device)
            out = _first_tensor(module(x))
            if not isinstance(out, torch.Tensor):
                raise VemkitError(f"the {role} returned {type(out).__name__}, not a tensor")
            bar.update(1)
            yield batch, x, out
    finally:
        bar.close()


def _grid_columns(task: str, shown: dict[str, Any], keep: int) -> tuple[list[str], list[Any]]:
    """input | teacher | student | target, as the engine's sample grids (what applies)."""
    import torch

    cat = {k: torch.cat(v)[:keep] for k, v in shown.items()}
    student = cat["student"]
    names = []
    x = cat.get("input")
    if (
        x is not None
        and x.dim() == 4
        and x.shape[-2:] == student.shape[-2:]
        and x.shape[1] in (1, 3)
    ):
        names.append("input")
    names += [k for k in ("teacher", "student") if k in cat]
    target = cat.get("target")
    # Unconditional data: the target is an unrelated real image, not a ground truth.
    if task != "unconditional" and target is not None and target.shape[-2:] == student.shape[-2:]:
        names.append("target")
    return names, [cat[k] for k in names]


# -- size --------------------------------------------------------------------------------------
def size_of(module: Any, arch: Any, spec: Any) -> dict[str, Any]:
    """Params and MACs (paper and exact) of one generator at the spec's input size, batch 1."""
    from vemkit.commands.profile import generator_input_shape
    from vemkit.profile import (
        arch_channels,
        count_macs,
        count_params,
        example_inputs,
        spec_input_size,
    )

    size = spec_input_size(spec)
    shape = generator_input_shape(module, (arch_channels(arch), size, size))
    inputs = example_inputs(shape)
    return {
        "params": count_params(module),
        "macs": count_macs(module, inputs, MACS_CONVENTION),
        "macs_exact": count_macs(module, inputs, "exact"),
        "input_shape": list(shape),
    }


# -- the evaluation ----------------------------------------------------------------------------
def evaluate(
    source: Source,
    *,
    registry: Any = None,
    metrics: Sequence[Any] | None = None,
    max_items: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    teacher: bool = True,
    latency_runs: int = 0,
    samples: int = 8,
    samples_path: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate ``source``'s teacher (unless ``teacher=False``) and student.

    ``metrics``: metric configs replacing the spec's ``eval.metrics``; ``max_items``: evaluate
    the first N items only; ``batch_size`` defaults to ``train.batch_size``; ``device`` to
    ``train.device``; ``latency_runs > 0`` times a batch-1 forward of each network;
    ``samples`` items are drawn into a grid (input | teacher | student | target) written to
    ``samples_path``. Returns the ``eval.json`` data.
    """
    import torch
    from torch import nn

    from vemkit import __version__
    from vemkit import registry as registry_module
    from vemkit.weights import load_weights

    reg = registry or registry_module.default()
    spec = source.spec
    notes = list(source.notes)
    if spec.data.eval is None:
        raise VemkitError(
            "data.eval: the spec has no evaluation dataset; add one (e.g. data.eval: "
            "{type: aligned, root: ..., split: val}) or pass it with "
            "--set 'data.eval={type: aligned, root: data/edges2shoes, split: val}'"
        )
    if max_items is not None and max_items < 1:
        raise VemkitError("--max-items must be at least 1")
    if batch_size is not None and batch_size < 1:
        raise VemkitError("--batch-size must be at least 1")
    batch_size = batch_size or spec.train.batch_size
    dev = _pick_device(device or spec.train.device)
    configs = _metric_configs(spec, metrics, reg)
    roles = ROLES if teacher else ("student",)

    started = time.perf_counter()
    nets: dict[str, nn.Module] = {}
    result: dict[str, Any] = {}
    for role in roles:
        arch = getattr(spec, role).arch
        try:
            module = reg.build("arch", arch)
        except VemkitError as exc:
            raise VemkitError(f"{role}.arch: {exc}") from None
        if not isinstance(module, nn.Module):
            raise VemkitError(f"{role}.arch: '{arch.type}' did not build a torch.nn.Module")
        path = source.weights.get(role)
        if path is not None:
            try:
                load_weights(module, path, prefix_strip=("module.", "_orig_mod."))
            except VemkitError as exc:
                raise VemkitError(f"{role} weights: {exc}") from None
        module.eval().requires_grad_(False)
        # Count before moving: the counter runs on the meta device from CPU tensors.
        result[role] = {"arch": arch.type, "weights": path, **size_of(module, arch, spec)}
        result[role]["metrics"] = {}
        nets[role] = module.to(dev)
    if teacher:
        t, s = result["teacher"], result["student"]
        s["macs_ratio"] = t["macs"] / s["macs"] if s["macs"] else None
        s["params_ratio"] = t["params"] / s["params"] if s["params"] else None

    eval_set = reg.build("dataset", spec.data.eval, seed=spec.seed, augment=False)
    n = len(eval_set) if max_items is None else min(max_items, len(eval_set))
    if n == 0:
        raise DataError("data.eval: the evaluation dataset is empty")
    try:
        train_set = reg.build("dataset", spec.data.train, seed=spec.seed, augment=False)
    except DataError as exc:
        # Only metrics that learn from training data (the classifier score) need it.
        train_set = None
        notes.append(f"data.train unavailable to the metrics: {exc}")
    built = [
        reg.build("metric", m, registry=reg, train_dataset=train_set, device=dev) for m in configs
    ]
    higher: dict[str, bool] = {}
    for m in built:
        higher.update({k: bool(v) for k, v in (getattr(m, "higher_is_better", {}) or {}).items()})
    if not built:
        notes.append("no metrics (eval.metrics is empty and --metrics was not given)")

    keep = min(samples, n) if samples_path is not None else 0
    shown: dict[str, Any] = {}
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        for role in roles:
            torch.manual_seed(spec.seed)  # generators with internal noise draw the same noise
            for m in built:
                m.reset()
            if not built and not keep:
                continue
            got = 0
            for batch, x, out in _batches(
                nets[role],
                eval_set,
                n=n if built else keep,
                batch_size=batch_size,
                device=dev,
                seed=spec.seed,
                role=role,
                progress=progress,
            ):
                real = batch.get("target")
                extras = {k: v for k, v in batch.items() if k not in ("input", "target")}
                for m in built:
                    m.update(out, real, **extras)
                if got < keep:
                    take = min(keep - got, len(out))
                    # Inputs and targets are the same in every pass: keep the first pass's.
                    first = role == roles[0]
                    for key, value in (("input", x), (role, out), ("target", real)):
                        if isinstance(value, torch.Tensor) and (first or key == role):
                            shown.setdefault(key, []).append(value[:take].detach().cpu())
                    got += take
            scores: dict[str, float] = {}
            for m, config in zip(built, configs, strict=True):
                for key, value in m.compute().items():
                    if key in scores:
                        raise VemkitError(
                            f"two metrics report '{key}' (the second is {config.type}); "
                            "keep one of them"
                        )
                    scores[key] = float(value)
            result[role]["metrics"] = scores
    for m in built:
        m.reset()

    if latency_runs > 0:
        from vemkit.profile import example_inputs, measure_latency

        for role in roles:
            lat = measure_latency(
                nets[role],
                example_inputs(result[role]["input_shape"]),
                runs=latency_runs,
                device=dev,
            )
            result[role]["latency_s"] = lat["median_s"]

    grid = None
    if keep and samples_path is not None:
        from vemkit.engine.logging import save_grid

        names, columns = _grid_columns(spec.task, shown, keep)
        save_grid(Path(samples_path), columns)
        grid = {"file": Path(samples_path).name, "columns": names, "items": keep}

    return {
        "format": FORMAT,
        "spec": spec.name,
        "task": spec.task,
        "method": getattr(spec.method, "type", None),
        "mi": getattr(spec.mi, "type", None),
        "seed": spec.seed,
        "run_dir": str(source.run_dir) if source.run_dir is not None else None,
        "checkpoint": str(source.checkpoint) if source.checkpoint is not None else None,
        "step": source.step,
        "macs_convention": MACS_CONVENTION,
        "items": n,
        "batch_size": batch_size,
        "device": str(dev),
        "metric_configs": [_config_dict(c) for c in configs],
        "higher_is_better": higher,
        **result,
        "samples": grid,
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 3),
        "vemkit": __version__,
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_eval(data: dict[str, Any], path: Path) -> Path:
    """Write ``eval.json`` atomically."""
    from vemkit.engine.checkpoint import write_text_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=1, allow_nan=True) + "\n")
    return path


def default_output(source: Source) -> Path:
    """``RUN_DIR/eval.json``; for a spec file, ``eval.json`` in the spec's ``output.dir``."""
    run_dir = source.run_dir if source.run_dir is not None else Path(source.spec.run_dir())
    return run_dir / EVAL_FILE


def evaluate_target(
    target: str | Path,
    *,
    overrides: Sequence[str] = (),
    checkpoint: str | None = None,
    out: str | Path | None = None,
    registry: Any = None,
    **options: Any,
) -> tuple[dict[str, Any], Path]:
    """:func:`resolve` + :func:`evaluate` + :func:`write_eval` (the sample grid beside it).

    ``options`` go to :func:`evaluate`. Returns the data and the path of ``eval.json``.
    """
    source = resolve(target, overrides=overrides, checkpoint=checkpoint, registry=registry)
    threads = source.spec.train.threads
    if threads is not None:  # the run's CPU thread setting applies to its evaluation too
        import torch

        torch.set_num_threads(threads)
    path = Path(out) if out is not None else default_output(source)
    options.setdefault("samples_path", path.with_name(_samples_name(path)))
    data = evaluate(source, registry=registry, **options)
    return data, write_eval(data, path)


def _samples_name(eval_path: Path) -> str:
    # eval.json -> eval_samples.png; best.json -> best_samples.png
    return SAMPLES_FILE if eval_path.name == EVAL_FILE else f"{eval_path.stem}_samples.png"


# -- reading -----------------------------------------------------------------------------------
def read_eval(path: str | Path) -> dict[str, Any]:
    """An ``eval.json``; a clear error naming the file when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VemkitError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise VemkitError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "student" not in data:
        raise VemkitError(f"{path}: not an eval.json written by `vemkit eval` (no 'student')")
    return data


def metric_keys(evaluations: Iterable[dict[str, Any]]) -> list[str]:
    """Metric keys of several evaluations, in first-seen order."""
    keys: list[str] = []
    for data in evaluations:
        for role in ROLES:
            for key in (data.get(role) or {}).get("metrics", {}) or {}:
                if key not in keys:
                    keys.append(key)
    return keys
