"""CRD (Tian et al., ICLR 2020) as an MI-term ablation: contrastive bound I(T;S) ≥ log N + E[log h].

Both tensors are embedded by a linear head to ``feature_dim`` and L2-normalised. With
``negatives="bank"`` (CRD) every sample is contrasted with its own memory entry (the positive)
and ``num_negatives`` entries drawn uniformly from a memory bank of past embeddings keyed by
sample index, by CRD's NCE against the uniform noise 1/n or by a softmax over the drawn set; the
banks are updated with momentum. With ``negatives="batch"`` the other samples of the batch are the
negatives (InfoNCE). The loss is symmetric: student-anchored against teacher embeddings plus
teacher-anchored against student embeddings. The heads are trained by the student term.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.mi.base import MITerm
from vemkit_plugins.mi.options import CRDOptions

__all__ = ["CRD", "build"]

_NCE_EPS = 1e-7  # CRD's reference NCE loss


def _nce_loss(p: Tensor, n_data: int) -> Tensor:
    """CRD's NCE: column 0 holds the positive's (normalised) score, the rest the K negatives';
    each is classified against K noise samples of probability 1/n."""
    k = p.shape[1] - 1
    noise = k / n_data
    log_d1 = torch.log(p[:, 0] / (p[:, 0] + noise + _NCE_EPS))
    log_d0 = torch.log(noise / (p[:, 1:] + noise + _NCE_EPS))
    return -(log_d1.sum() + log_d0.sum()) / len(p)


class CRD(MITerm):
    """The CRD term over ``s`` and ``t`` of ``s_features`` / ``t_features`` features (after
    pooling images to ``pool``×``pool`` and flattening)."""

    def __init__(
        self,
        s_features: int,
        t_features: int,
        *,
        feature_dim: int = 128,
        temperature: float = 0.07,
        negatives: str = "bank",
        objective: str = "nce",
        bank_size: int | None = None,
        num_negatives: int = 16384,
        momentum: float = 0.5,
        pool: int = 8,
        weight: float = 0.1,
        positive: str = "target",
    ) -> None:
        super().__init__(weight=weight, positive=positive)
        if negatives not in ("bank", "batch") or objective not in ("nce", "softmax"):
            raise VemkitError(f"mi crd: unknown negatives '{negatives}' or objective '{objective}'")
        self.embed_s = nn.Linear(s_features, feature_dim)
        self.embed_t = nn.Linear(t_features, feature_dim)
        self.temperature = temperature
        self.negatives = negatives
        self.objective = objective
        self.num_negatives = num_negatives
        self.momentum = momentum
        self.pool = pool
        self.needs_index = negatives == "bank"
        if negatives == "bank":
            if bank_size is None or bank_size < 2:
                raise VemkitError(
                    "mi crd: negatives 'bank' needs bank_size ≥ 2 (the training set size)"
                )
            # CRD's initial memory: uniform in ±1/√(d/3), i.e. unit expected norm.
            std = 1.0 / math.sqrt(feature_dim / 3)
            self.register_buffer("bank_s", torch.rand(bank_size, feature_dim) * 2 * std - std)
            self.register_buffer("bank_t", torch.rand(bank_size, feature_dim) * 2 * std - std)
            # NCE normalisers, estimated once from the first batch as in CRD (−1: not yet).
            self.register_buffer("z_s", torch.tensor(-1.0))
            self.register_buffer("z_t", torch.tensor(-1.0))

    def embed(self, x: Tensor, head: nn.Linear) -> Tensor:
        """Pool (images), flatten, project and L2-normalise."""
        if x.dim() == 4:
            x = F.adaptive_avg_pool2d(x, self.pool)
        x = x.flatten(1)
        if x.shape[1] != head.in_features:
            raise VemkitError(
                f"mi crd: expected {head.in_features} features per sample after pooling, got "
                f"{x.shape[1]}; set s_channels/t_channels/pool to match the tensors"
            )
        return F.normalize(head(x).float(), dim=1)

    def student_term(
        self, t_pos: Tensor, s: Tensor, t_neg: Tensor | None = None, *, index: Tensor | None = None
    ) -> Tensor:
        """``λ·(loss_student_anchored + loss_teacher_anchored)``."""
        z_s = self.embed(s, self.embed_s)
        z_t = self.embed(t_pos.detach(), self.embed_t)
        if self.negatives == "batch":
            return self.weight * self._batch_loss(z_s, z_t)
        if index is None:
            raise VemkitError(
                "mi crd: negatives 'bank' needs the data loader's sample indices; pass index= "
                "or use negatives: batch"
            )
        return self.weight * self._bank_loss(z_s, z_t, index.to(z_s.device).long())

    def _batch_loss(self, z_s: Tensor, z_t: Tensor) -> Tensor:
        logits = z_s @ z_t.t() / self.temperature
        labels = torch.arange(len(z_s), device=z_s.device)
        return F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)

    def _bank_loss(self, z_s: Tensor, z_t: Tensor, index: Tensor) -> Tensor:
        n_data = self.bank_s.shape[0]
        k = min(self.num_negatives, n_data)
        drawn = torch.randint(n_data, (len(index), k + 1), device=index.device)
        drawn[:, 0] = index  # column 0: the sample's own entry, the positive
        # Student anchors against the teacher bank and vice versa.
        logit_s = torch.einsum("bkd,bd->bk", self.bank_t[drawn], z_s) / self.temperature
        logit_t = torch.einsum("bkd,bd->bk", self.bank_s[drawn], z_t) / self.temperature
        if self.objective == "softmax":
            target = torch.zeros(len(index), dtype=torch.long, device=index.device)
            loss = F.cross_entropy(logit_s, target) + F.cross_entropy(logit_t, target)
        else:
            out_s, out_t = logit_s.exp(), logit_t.exp()
            with torch.no_grad():  # set once; torch.where avoids a host sync per call
                self.z_s.copy_(torch.where(self.z_s < 0, out_s.mean() * n_data, self.z_s))
                self.z_t.copy_(torch.where(self.z_t < 0, out_t.mean() * n_data, self.z_t))
            loss = _nce_loss(out_s / self.z_s, n_data) + _nce_loss(out_t / self.z_t, n_data)
        with torch.no_grad():
            m = self.momentum
            self.bank_s[index] = F.normalize(m * self.bank_s[index] + (1 - m) * z_s.detach(), dim=1)
            self.bank_t[index] = F.normalize(m * self.bank_t[index] + (1 - m) * z_t.detach(), dim=1)
        return loss


def build(options: CRDOptions, **context: Any) -> CRD:
    """Factory of the ``crd`` MI term. A bank without ``bank_size`` takes the training set size
    from the context key ``num_samples``."""
    bank_size = options.bank_size if options.bank_size is not None else context.get("num_samples")
    if options.negatives == "bank" and bank_size is None:
        raise VemkitError(
            "mi crd: negatives 'bank' needs bank_size, or the training set size from the run; "
            "set mi.bank_size or use negatives: batch"
        )
    pooled = options.pool * options.pool
    return CRD(
        options.s_channels * pooled,
        options.t_channels * pooled,
        feature_dim=options.feature_dim,
        temperature=options.temperature,
        negatives=options.negatives,
        objective=options.objective,
        bank_size=bank_size,
        num_negatives=options.num_negatives,
        momentum=options.momentum,
        pool=options.pool,
        weight=options.weight,
        positive=options.positive,
    )
