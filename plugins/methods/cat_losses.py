"""CAT's (Compression And Teaching, Jin et al., CVPR 2021) distillation term: kernel alignment.

Definitions follow the public snap-research/CAT code (``utils/common.py: KA``,
``distillers/inception_distiller.py: calc_distill_loss``):

* **KA(X, Y)** = ⟨XXᵀ, YYᵀ⟩_F / (‖XXᵀ‖_F · ‖YYᵀ‖_F), where X (Y) is the batch of features with
  every sample flattened to one row, so XXᵀ is the N×N Gram matrix of the *batch* (linear kernel,
  **no centring**, unlike CKA). It lies in [0, 1] because both Grams are positive semi-definite;
  it is 1 when Y = c·X (any c ≠ 0) and it does not depend on the channel count, so the student
  and teacher taps need no adapter.
* The distillation loss is −Σ_l KA(S_l, T_l) over CAT's four taps (``CAT_KA_TAPS`` in
  ``vemkit_plugins.methods.options``); the student maximises the alignment, so the *loss* is
  negative (CAT issue #27 reports users confused by that), bounded below by −(number of taps).

**It depends on the batch.** The Grams compare every sample with every other sample of the same
forward; with N = 1 each Gram is a 1×1 positive number and KA ≡ 1 with zero gradient. CAT ran a
batch of 80 on 4 GPUs under ``DataParallel``: KA was computed per GPU replica on 20 samples and
the four values were summed (``ka_distill_loss(..., chunks=4)`` reproduces that on one device).
Under DDP the same holds per process: the loss sees the per-process batch, not the global one,
so changing the number of processes at a fixed global batch changes the objective (and, with
CAT's sum over replicas, its scale).

The alignment is computed in float32 with autocast off: the Gram entries are sums over
C·H·W products (≈10⁶ at CAT's taps) and their squares overflow float16.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def kernel_alignment(x: Tensor, y: Tensor) -> Tensor:
    """KA(x, y) of two batches of features (CAT's ``KA``): a scalar in [0, 1].

    ``x`` and ``y`` have the same batch size N (dimension 0); the rest of each is flattened per
    sample, so their feature shapes may differ (student and teacher widths). N = 1 gives 1.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"kernel alignment needs the same batch size on both sides, got {x.shape[0]} "
            f"and {y.shape[0]}"
        )
    with torch.autocast(device_type=x.device.type, enabled=False):
        xf = x.reshape(x.shape[0], -1).float()
        yf = y.reshape(y.shape[0], -1).float()
        gx = xf @ xf.T
        gy = yf @ yf.T
        # CAT: (gx * gy).sum() / ((gx**2).sum() * (gy**2).sum()) ** 0.5
        return (gx * gy).sum() / ((gx**2).sum() * (gy**2).sum()).sqrt()


def ka_distill_loss(
    s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], *, chunks: int = 1
) -> Tensor:
    """CAT's ``loss_G_distill`` before λ_distill: −Σ_l Σ_chunks KA(S_l, T_l), teacher detached.

    ``chunks`` > 1 splits the batch as ``DataParallel`` scattered it over GPUs
    (``torch.chunk`` along dimension 0) and sums the per-chunk alignments, which is what CAT
    optimised with ``--gpu_ids 0,1,2,3`` (``gather(loss).sum()`` over replicas): batch 80 on 4
    GPUs is ``chunks=4`` on one device, and the loss then lies in [−4·L, 0] for L taps. With
    ``chunks=1`` it is the single-process loss in [−L, 0]. Multiply by ``lambda_distill`` (CAT: 1
    horse→zebra, 0.5 Cityscapes). The teacher taps come from a frozen teacher under ``no_grad``
    in CAT; they are detached here in any case.
    """
    if len(s_feats) != len(t_feats) or not s_feats:
        raise ValueError(
            f"ka_distill_loss needs the same non-zero number of student and teacher taps, got "
            f"{len(s_feats)} and {len(t_feats)}"
        )
    if chunks < 1 or chunks > s_feats[0].shape[0]:
        raise ValueError(
            f"ka_distill_loss chunks must be between 1 and the batch size "
            f"{s_feats[0].shape[0]}, got {chunks}"
        )
    total = s_feats[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(s_feats, t_feats, strict=True):
        for s_part, t_part in zip(s.chunk(chunks), t.detach().chunk(chunks), strict=True):
            total = total - kernel_alignment(s_part, t_part)
    return total
