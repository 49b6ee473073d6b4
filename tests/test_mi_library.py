"""The README's library example (VEM inside a hand-written loop) runs exactly as printed."""

from __future__ import annotations

import torch

# Verbatim in the README; keep the two in step.
EXAMPLE = """\
import torch
from vemkit_plugins.mi.vem import VEM

student = torch.nn.Conv2d(3, 3, 3, padding=1)  # any generator
opt = torch.optim.Adam(student.parameters(), lr=2e-4)
vem = VEM.default(channels=3, width=8, blocks=3)  # authors' energy net + paper's sampler
for _ in range(2):
    x, y = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1
    s = student(x)
    t_neg, diag = vem.fit(y, s)  # energy step: Langevin negatives, Adam(1e-4, (0, .999))
    loss = (s - y).abs().mean() + vem.student_term(y, s, t_neg)
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def test_readme_vem_example_runs() -> None:
    assert len(EXAMPLE.splitlines()) <= 15
    torch.manual_seed(0)
    ns: dict = {}
    exec(compile(EXAMPLE, "README-example", "exec"), ns)
    y, t_neg, diag, vem, student, opt = (
        ns[k] for k in ("y", "t_neg", "diag", "vem", "student", "opt")
    )
    assert torch.isfinite(ns["loss"])
    assert t_neg.shape == y.shape and t_neg.min() >= -1 and t_neg.max() <= 1
    assert torch.isfinite(diag["loss"]) and torch.isfinite(diag["sampler_grad_norm"])
    assert vem.optimizer is not None and vem.optimizer.state  # the energy was trained by fit
    assert student.weight.grad is not None and opt.state  # and the student by its own step
