"""The top-level sections of a spec (DESIGN.md §2).

These models name *where* components go (``Slot(kind)``); what each component accepts is its own
options model, registered by a plugin. The Spec model used for validation is built from these
after plugins load (``vemkit.spec_model.spec_model``).
"""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from vemkit.options import Options, Slot

SPEC_VERSION = 1


class Section(Options):
    """A top-level section of a spec: the same strict, self-documenting model as a component's
    options (unknown keys are errors, field docstrings are descriptions)."""


class DataSection(Section):
    """Where the images come from."""

    train: Annotated[dict[str, Any], Slot("dataset")]
    """Training set, e.g. ``{type: aligned, root: data/edges2shoes, split: train}``."""
    eval: Annotated[dict[str, Any] | None, Slot("dataset")] = None
    """Evaluation set for metrics and sample grids; ``null`` to skip evaluation."""


class TeacherSection(Section):
    """The large generator whose knowledge is distilled."""

    arch: Annotated[dict[str, Any], Slot("arch")]
    """Teacher architecture, e.g. ``{type: unet, ngf: 64}``."""
    checkpoint: str | None = None
    """Weights to start from (safetensors, or an official pix2pix/CycleGAN ``.pth``)."""
    mode: Literal["online", "frozen"] = "online"
    """``online``: trained alongside the student (OMGD, GCC); ``frozen``: pre-trained, fixed."""


class StudentSection(Section):
    """The small generator being trained."""

    arch: Annotated[dict[str, Any], Slot("arch")]
    """Student architecture, e.g. ``{type: unet, ngf: 16}``."""
    init: str | None = None
    """Warm start: weights to load before training (a new run; not a resume)."""


class TrainSection(Section):
    """How long and how the generators are optimised."""

    iterations: Annotated[int, Field(gt=0)] = 200_000
    """Number of training iterations (one iteration = the energy, student and teacher phases)."""
    batch_size: Annotated[int, Field(gt=0)] = 4
    """Images per iteration per process (paper: pix2pix 4, CycleGAN 1)."""
    optimizer: Annotated[dict[str, Any], Slot("optimizer")] = {
        "type": "adam",
        "lr": 2.0e-4,
        "betas": [0.5, 0.999],
    }
    """Optimizer of each generator/discriminator group (paper: Adam 2e-4)."""
    scheduler: Annotated[dict[str, Any], Slot("scheduler")] = {"type": "linear_decay"}
    """Learning-rate schedule (paper: constant, then linear decay to zero)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Arithmetic: fp32, or autocast to bf16/fp16 (fp16 uses a gradient scaler)."""
    grad_clip: Annotated[float, Field(gt=0)] | None = None
    """Clip each group's gradient norm to this value; ``null`` for no clipping."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` picks CUDA when present, else the CPU."""
    compile: bool = False
    """Wrap the generators in ``torch.compile`` (helps on GPU; slow to start on CPU)."""
    deterministic: bool = False
    """Deterministic kernels and ordering, for bitwise-reproducible CPU runs."""
    max_bad_steps: Annotated[int, Field(gt=0)] = 20
    """Stop after this many consecutive steps with a NaN/Inf loss (each such step is skipped)."""
    workers: Annotated[int, Field(ge=0)] = 0
    """Data-loader worker processes."""
    threads: Annotated[int, Field(gt=0)] | None = None
    """CPU threads for PyTorch's intra-op parallelism; ``null`` keeps PyTorch's default (all
    cores). Small CPU runs on busy machines are often several times faster with 1."""


class EvalSection(Section):
    """Evaluation during and after training."""

    every: Annotated[int, Field(ge=0)] = 5000
    """Evaluate every this many iterations (0: only at the end)."""
    metrics: Annotated[list[dict[str, Any]], Slot("metric", many=True)] = []
    """Metrics, e.g. ``[{type: fid}, {type: psnr}]``."""
    samples: Annotated[int, Field(ge=0)] = 8
    """Number of eval inputs shown in sample grids."""
    best: str | None = None
    """Metric key that selects the best checkpoint, e.g. ``fid`` (lower is better) or ``psnr``."""


class OutputSection(Section):
    """Where a run writes."""

    dir: str = "runs/{name}"
    """Run directory; ``{name}`` is replaced by the spec's name."""
    checkpoint_every: Annotated[int, Field(ge=0)] = 2000
    """Write a checkpoint every this many iterations (0: only at the end)."""
    keep: Annotated[int, Field(gt=0)] = 3
    """Keep this many recent checkpoints (the best one is kept besides)."""
    sample_every: Annotated[int, Field(ge=0)] = 1000
    """Write a sample grid every this many iterations (0: never)."""
    log_every: Annotated[int, Field(gt=0)] = 10
    """Append to ``metrics.jsonl`` every this many iterations."""
    tensorboard: bool = False
    """Also write TensorBoard event files (needs the ``tensorboard`` package)."""


class SpecBase(Section):
    """A vemkit experiment: teacher, student, baseline method, MI term, data, schedule."""

    vemkit: int = SPEC_VERSION
    """Spec language version. This vemkit reads version 1."""
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    """Name of the experiment (letters, digits, ``.``, ``_``, ``-``); used for the run directory."""
    seed: Annotated[int, Field(ge=0)] = 0
    """Random seed for weights, data order and sampling."""
    requires: list[str] = []
    """Plugin distributions this spec needs, with optional versions: ``["my-plugin>=0.2"]``."""
    task: Literal["paired", "unpaired", "unconditional"] = "paired"
    """Paired (pix2pix), unpaired (CycleGAN) or unconditional (SAGAN, StyleGAN2) generation."""
    data: DataSection
    """Training and evaluation data."""
    teacher: TeacherSection
    """The teacher generator."""
    student: StudentSection
    """The student generator."""
    method: Annotated[dict[str, Any], Slot("method")]
    """Baseline compression method, e.g. ``{type: omgd}``; it brings its own losses and phases."""
    mi: Annotated[dict[str, Any], Slot("mi")] = {"type": "none"}
    """Mutual-information term added to the student loss: ``vem``, ``vid``, ``crd`` or ``none``."""
    losses: Annotated[list[dict[str, Any]], Slot("loss", many=True)] = []
    """Extra loss terms of your own over named tensors, e.g. ``{type: l1, inputs: [...]}``."""
    train: TrainSection = {}  # a dict: validated on use (validate_default), no build at import
    """Optimisation schedule."""
    eval: EvalSection = {}
    """Evaluation protocol."""
    output: OutputSection = {}
    """Run directory, checkpoints, logs."""

    @model_validator(mode="before")
    @classmethod
    def _version(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("vemkit", SPEC_VERSION) != SPEC_VERSION:
            raise ValueError(
                f"unsupported spec version {data['vemkit']!r}; this vemkit reads `vemkit: "
                f"{SPEC_VERSION}`"
            )
        return data

    # -- conveniences for specs built in Python ---------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data, every component's ``type`` first."""
        return _type_first(self.model_dump(mode="json"))

    def to_yaml(self) -> str:
        """The spec as YAML; ``load_spec`` of the text gives an equal spec."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def run_dir(self) -> str:
        return self.output.dir.replace("{name}", self.name)


def _type_first(value: Any) -> Any:
    if isinstance(value, dict):
        ordered = {"type": value["type"]} if "type" in value else {}
        ordered.update({k: _type_first(v) for k, v in value.items() if k != "type"})
        return ordered
    if isinstance(value, list):
        return [_type_first(v) for v in value]
    return value
