"""Factories of the built-in optimizers and learning-rate schedules.

An optimizer factory is called as ``build(options, params=...)``; a schedule factory as
``build(options, optimizer=..., total_steps=...)`` and returns a ``LambdaLR`` stepped once per
iteration, so that its state is a plain state dict (exact resume).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from vemkit_plugins.optim.options import (
    AdamOptions,
    AdamWOptions,
    ConstantOptions,
    CosineOptions,
    LinearDecayOptions,
    SGDOptions,
)

_FUSED_DEVICES = ("cpu", "cuda")
_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _listed(params: Iterable[Any]) -> list[Any]:
    """``params`` as a list of tensors or of groups whose ``params`` are lists (iterated once)."""
    out = []
    for item in params:
        if isinstance(item, dict):
            group = item["params"]
            item = {**item, "params": [group] if isinstance(group, torch.Tensor) else list(group)}
        out.append(item)
    return out


def _fused(wanted: bool, params: list[Any]) -> bool | None:
    """``True`` when torch's fused Adam kernel can step every parameter (floating point, on the
    CPU or CUDA, dense); else ``None``: torch's default implementation."""
    tensors = [t for item in params for t in (item["params"] if isinstance(item, dict) else [item])]
    usable = all(
        isinstance(t, torch.Tensor)
        and t.dtype in _FUSED_DTYPES
        and t.device.type in _FUSED_DEVICES
        and not t.is_sparse
        for t in tensors
    )
    return True if wanted and usable else None


def adam(options: AdamOptions, *, params: Iterable[Any], **_: Any) -> torch.optim.Optimizer:
    params = _listed(params)
    return torch.optim.Adam(
        params,
        lr=options.lr,
        betas=tuple(options.betas),
        eps=options.eps,
        weight_decay=options.weight_decay,
        fused=_fused(options.fused, params),
    )


def adamw(options: AdamWOptions, *, params: Iterable[Any], **_: Any) -> torch.optim.Optimizer:
    params = _listed(params)
    return torch.optim.AdamW(
        params,
        lr=options.lr,
        betas=tuple(options.betas),
        eps=options.eps,
        weight_decay=options.weight_decay,
        fused=_fused(options.fused, params),
    )


def sgd(options: SGDOptions, *, params: Iterable[Any], **_: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=options.lr,
        momentum=options.momentum,
        nesterov=options.nesterov,
        weight_decay=options.weight_decay,
    )


def linear_decay_factor(step: int, total: int, constant_fraction: float) -> float:
    """Learning-rate factor at ``step`` of ``total``: 1 until the decay starts, then linear to 0."""
    start = round(total * constant_fraction)
    if step < start:
        return 1.0
    span = max(total - start, 1)
    return max(0.0, 1.0 - (step - start) / span)


def linear_decay(
    options: LinearDecayOptions, *, optimizer: torch.optim.Optimizer, total_steps: int, **_: Any
) -> torch.optim.lr_scheduler.LRScheduler:
    def factor(step: int) -> float:
        return linear_decay_factor(step, total_steps, options.constant_fraction)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def constant(
    options: ConstantOptions, *, optimizer: torch.optim.Optimizer, **_: Any
) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def cosine(
    options: CosineOptions, *, optimizer: torch.optim.Optimizer, total_steps: int, **_: Any
) -> torch.optim.lr_scheduler.LRScheduler:
    def factor(step: int) -> float:
        if step < options.warmup:
            return (step + 1) / options.warmup
        span = max(total_steps - options.warmup, 1)
        progress = min(1.0, (step - options.warmup) / span)
        cos = 0.5 * (1 + math.cos(math.pi * progress))
        return options.min_factor + (1 - options.min_factor) * cos

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
