"""OMGD's shared multi-head PatchGAN (``MultiNLayerDiscriminator`` in bytedance/OMGD).

The 70×70 PatchGAN (n_layers 3) cut into its n_layers + 2 blocks — ``block1s`` (conv s2 +
LeakyReLU), ``block2s`` … (conv + norm + LeakyReLU, the last of them stride 1) and the final
1-channel conv — where every block exists once per head (``blockKs.0``, ``blockKs.1``, ...), so the
state dict is the official one and OMGD checkpoints load unchanged. The first ``n_share`` blocks
are shared by all heads; a shared block always uses the *last* copy (OMGD indexes it with -1),
so the other copies of a shared block are never used (they are kept for the layout, and receive
no gradient). Head i judges teacher i: OMGD's ``FLAGS.teacher_ids`` 1 (the wide U-Net) is head
0, 2 (the deep U-Net) is head 1. OMGD's pix2pix scripts share all 5 blocks (``n_share 5``): then
both heads are the same network.

Each block is a ``block`` Sequential (``blockKs.i.block.0`` the conv, ``.1`` the norm), as in
OMGD's ``ConvReLU`` / ``ConvBNReLU`` / ``Conv`` wrappers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vemkit_plugins.archs._blocks import conv_bias, init_weights, norm_factory


class _Block(nn.Module):
    """``block``: conv (+ norm) (+ LeakyReLU 0.2), as OMGD's ConvReLU / ConvBNReLU / Conv."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class OMGDPatchGAN(nn.Module):
    """Multi-head PatchGAN: ``forward(x, head)`` gives head ``head``'s logit map;
    ``forward(x)`` gives every head's map as a list (the shared blocks run once)."""

    def __init__(
        self,
        input_nc: int = 6,
        ndf: int = 128,
        n_layers: int = 3,
        *,
        norm: str = "batch",
        n_share: int = 5,
        heads: int = 2,
    ) -> None:
        super().__init__()
        n_blocks = n_layers + 2
        if not 0 <= n_share <= n_blocks:
            raise ValueError(f"n_share must be in 0..{n_blocks} for n_layers {n_layers}")
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}")
        self.n_share = n_share
        self.heads = heads
        self.n_blocks = n_blocks
        make_norm = norm_factory(norm)
        bias = conv_bias(norm)

        def first() -> _Block:  # always biased: no norm follows
            return _Block(
                [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
            )

        def middle(c_in: int, c_out: int, stride: int) -> _Block:
            return _Block(
                [
                    nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=bias),
                    make_norm(c_out),
                    nn.LeakyReLU(0.2, True),
                ]
            )

        def last(c_in: int) -> _Block:
            return _Block([nn.Conv2d(c_in, 1, 4, stride=1, padding=1)])

        makers = [first]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            makers.append(lambda p=prev, m=mult, s=stride: middle(ndf * p, ndf * m, s))
        makers.append(lambda m=mult: last(ndf * m))
        for k, make in enumerate(makers, start=1):
            self.add_module(f"block{k}s", nn.ModuleList(make() for _ in range(heads)))

    def _copy(self, k: int, head: int) -> nn.Module:
        """Block ``k`` (0-based) as head ``head`` uses it: shared blocks use the last copy."""
        blocks = getattr(self, f"block{k + 1}s")
        return blocks[-1] if k < self.n_share else blocks[head]

    def forward(
        self, x: torch.Tensor, head: int | None = None
    ) -> torch.Tensor | list[torch.Tensor]:
        if head is not None:
            if not -self.heads <= head < self.heads:
                raise IndexError(f"head {head} out of range for {self.heads} heads")
            head %= self.heads
            for k in range(self.n_blocks):
                x = self._copy(k, head)(x)
            return x
        for k in range(min(self.n_share, self.n_blocks)):
            x = self._copy(k, 0)(x)
        outputs = []
        for h in range(self.heads):
            y = x
            for k in range(self.n_share, self.n_blocks):
                y = self._copy(k, h)(y)
            outputs.append(y)
        return outputs


def build(options: Any, **context: Any) -> OMGDPatchGAN:
    """Factory of ``arch: omgd_patchgan`` (:class:`~.options.OMGDPatchGANOptions`)."""
    net = OMGDPatchGAN(
        options.input_nc,
        options.ndf,
        options.n_layers,
        norm=options.norm,
        n_share=options.n_share,
        heads=options.heads,
    )
    return init_weights(net, options.init_type, options.init_gain)
