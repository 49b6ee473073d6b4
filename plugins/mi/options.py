"""Options of the built-in mutual-information terms (``mi`` kind), torch-free.

An MI term adds ``−λ_MI·Ĩ(T;S)`` to the student's loss, where T is the positive (the real target
on paired data, the teacher output otherwise) and S the student output.
"""

# No `from __future__ import annotations` here: string annotations make pydantic compile
# and evaluate every field's type when the class is made, a third of the cost of loading
# the options models (start-up of `vemkit validate`, benchmarks/startup.py).

from typing import Annotated, Literal

from pydantic import Field

from vemkit.options import Options, Slot

Positive = Literal["target", "teacher"]
Weight = Annotated[float, Field(ge=0)]


class VEMOptions(Options):
    """Variational Energy-based Model (Kang et al., NeurIPS 2022): a Barber–Agakov bound whose
    q(t|s) ∝ exp(−E(t, s)) is a conditional EBM trained by short-run Langevin dynamics."""

    weight: Weight = 0.1
    """λ_MI, the weight of the MI term in the student loss (authors' code: 0.1; paper Cityscapes:
    0.2)."""
    alpha: Annotated[float, Field(ge=0)] = 0.05
    """α of the energy-magnitude regulariser α·mean(E(t⁺)² + E(t̃)²) (every author script: 0.05)."""
    positive: Positive = "target"
    """What t⁺ is: the real ``target`` (paired data, the paper's rule) or the ``teacher`` output
    (unpaired and unconditional data)."""
    energy: Annotated[dict, Slot("energy")] = {"type": "conv_sn"}
    """The energy network E(t, s)."""
    sampler: Annotated[dict, Slot("sampler")] = {"type": "langevin"}
    """The sampler of the negatives t̃ ~ q(·|s)."""
    optimizer: Annotated[dict, Slot("optimizer")] = {
        "type": "adam",
        "lr": 1.0e-4,
        "betas": [0.0, 0.999],
    }
    """Optimizer of the energy network (authors: Adam 1e-4, betas (0, 0.999), constant lr)."""
    autocast: Literal["none", "sampler", "all"] = "sampler"
    """Which of the energy network's passes run under bfloat16 autocast, on hardware with bf16
    units (a CPU with AVX512-BF16 or AMX, a GPU from Ampere on; elsewhere bf16 is emulated and
    slower, so every pass stays in the run's precision). Only the energy's convolutions run in
    bf16: its output head, the energies, the losses and the Langevin samples stay fp32.
    ``sampler`` (default): the K passes of the Langevin chain (two thirds of VEM's cost), whose
    bf16 gradients move each loss by less than ``vemkit_plugins.mi.vem.BF16_TOLERANCE`` (2⁻⁸,
    relative, in a run's first iteration); the energy update and the student term run in the
    run's precision. ``none``: every pass in the run's precision (``train.precision``, fp32 by
    default), as the authors compute it. ``all``: every pass; faster, but it moves the energy's
    loss by more than the tolerance (about 1 % near initialisation), so it is not a default."""


class VIDOptions(Options):
    """Variational Information Distillation (Ahn et al., CVPR 2019): a fully factorised Gaussian
    q(t|s) = N(μ(s), diag σ_c²) with a learned variance per channel."""

    weight: Weight = 0.1
    """λ of the term in the student loss (the VEM paper's ablation value is not published)."""
    positive: Positive = "target"
    """What t is: the real ``target`` or the ``teacher`` output."""
    regressor: Literal["conv", "none"] = "conv"
    """μ(s): ``conv`` = 1×1 conv → ReLU → 1×1 conv → ReLU → 1×1 conv (VID), ``none`` = s itself
    (the VEM authors' module on output images)."""
    in_channels: Annotated[int, Field(gt=0)] = 3
    """Channels of the student tensor s."""
    out_channels: Annotated[int, Field(gt=0)] = 3
    """Channels of the positive t (one variance each)."""
    hidden: Annotated[int, Field(gt=0)] | None = None
    """Hidden channels of the regressor; null: ``out_channels`` (as in VID's reference code)."""
    init_variance: Annotated[float, Field(gt=0)] = 5.0
    """Initial σ_c² (VID: 5)."""
    min_variance: Annotated[float, Field(gt=0)] = 1.0e-5
    """ε in σ_c² = softplus(a_c) + ε."""


class CRDOptions(Options):
    """Contrastive Representation Distillation (Tian et al., ICLR 2020): linear 128-d embeddings
    of t and s, L2-normalised, contrasted at temperature 0.07 against negatives from a memory bank
    (or the batch); symmetric, teacher- and student-anchored."""

    weight: Weight = 0.1
    """λ of the term in the student loss (the VEM paper's ablation value is not published)."""
    positive: Positive = "target"
    """What t is: the real ``target`` or the ``teacher`` output."""
    s_channels: Annotated[int, Field(gt=0)] = 3
    """Channels of the student tensor s."""
    t_channels: Annotated[int, Field(gt=0)] = 3
    """Channels of the positive t."""
    pool: Annotated[int, Field(gt=0)] = 8
    """Image tensors are average-pooled to pool×pool before the linear heads, which then see
    channels·pool² features; a flat [N, D] tensor needs channels·pool² = D (e.g. pool 1)."""
    feature_dim: Annotated[int, Field(gt=0)] = 128
    """Embedding size (CRD: 128)."""
    temperature: Annotated[float, Field(gt=0)] = 0.07
    """Softmax/NCE temperature (CRD: 0.07)."""
    negatives: Literal["bank", "batch"] = "bank"
    """``bank``: a memory bank keyed by sample index (CRD; the data must yield indices);
    ``batch``: the other samples of the batch (InfoNCE)."""
    objective: Literal["nce", "softmax"] = "nce"
    """With the bank: CRD's NCE against uniform noise 1/n, or a softmax over the drawn set."""
    bank_size: Annotated[int, Field(gt=0)] | None = None
    """Memory bank entries; null: the training set size, supplied when the run is compiled."""
    num_negatives: Annotated[int, Field(gt=0)] = 16384
    """Negatives drawn from the bank per sample (CRD: 16,384)."""
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.5
    """Bank update: entry ← normalise(m·entry + (1 − m)·new) (CRD: 0.5)."""


class NoMIOptions(Options):
    """No mutual-information term: the baseline alone (the ablations' 'base' column)."""
