"""Lower precision where the hardware computes it natively (shared by the built-in plugins)."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch

__all__ = ["bf16_autocast", "has_fast_bf16"]


@functools.cache
def has_fast_bf16(device_type: str) -> bool:
    """Whether ``device_type`` has bf16 arithmetic units: a CPU with AVX512-BF16 or AMX, a CUDA
    device that supports bf16 (Ampere and later). Elsewhere bf16 is emulated and slower than
    fp32, so the bf16 options leave those passes in fp32."""
    if device_type == "cpu":
        cpu = torch.cpu
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return False


def bf16_autocast(
    device: torch.device | str, enabled: bool
) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on ``device`` when ``enabled`` and the device computes bf16 natively
    (:func:`has_fast_bf16`); otherwise nothing (the caller's precision)."""
    device_type = torch.device(device).type
    if enabled and has_fast_bf16(device_type):
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
