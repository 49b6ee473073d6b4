"""SAGAN generator and discriminator at 64×64, the CelebA setting GCC compresses.

Layer list (GCC's ``models/SAGAN.py``, which follows the common "Self-Attention GAN" PyTorch port):

generator, z (N, z_dim) viewed as (N, z_dim, 1, 1)::

    l1    SN ConvT(z_dim → w0, k4)          + BN + ReLU    4×4     w0 = 8·ngf
    l2    SN ConvT(w0 → w1, k4 s2 p1)       + BN + ReLU    8×8     w1 = 4·ngf
    l3    SN ConvT(w1 → w2, k4 s2 p1)       + BN + ReLU   16×16    w2 = 2·ngf
    attn1 self-attention(w2)
    l4    SN ConvT(w2 → w3, k4 s2 p1)       + BN + ReLU   32×32    w3 = ngf
    attn2 self-attention(w3)
    last  ConvT(w3 → 3, k4 s2 p1) + tanh                  64×64    (no spectral norm)

discriminator::

    l1 SN Conv(3 → ndf, k4 s2 p1) + LeakyReLU(0.1)        32×32
    l2 → 2·ndf 16×16,  l3 → 4·ndf 8×8,  attn1(4·ndf),  l4 → 8·ndf 4×4,  attn2(8·ndf)
    last Conv(8·ndf → 1, k4) (no spectral norm), one score per image

Module names follow GCC so its feature taps (``l2``, ``attn2``) address the same tensors. A pruned
student is GCC's ``filter_cfgs``: the four widths ``w0..w3`` given explicitly.

Spectral norm is ``torch.nn.utils.parametrizations.spectral_norm`` with ``dim=0`` for every layer:
GCC's wrapper reshapes the weight to ``(shape[0], -1)`` whatever the layer type, which for a
transposed conv is the *input*-channel axis (PyTorch's default there would be ``dim=1``). Its
``u``/``v`` vectors are buffers, so ``parameters()`` counts what the papers count (3.83M at ngf
64).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from vemkit_plugins.archs.uncond_options import SAGANDiscriminatorOptions, SAGANGeneratorOptions

__all__ = [
    "SAGANDiscriminator",
    "SAGANGenerator",
    "SelfAttention",
    "build_discriminator",
    "build_generator",
    "convert_gcc_sagan",
    "sagan_thop_legacy_macs",
]


def _sn(module: nn.Module) -> nn.Module:
    return spectral_norm(module, dim=0)


class SelfAttention(nn.Module):
    """SAGAN self-attention: ``x + γ · V · softmax(Qᵀ K)ᵀ`` over all positions, γ starting at 0."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 8, 1)
        self.key_conv = nn.Conv2d(channels, channels // 8, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        query = self.query_conv(x).flatten(2)  # (n, c/8, hw)
        key = self.key_conv(x).flatten(2)
        # attention[i, j]: how much output position i reads from input position j
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)
        value = self.value_conv(x).flatten(2)  # (n, c, hw)
        out = (value @ attention.transpose(1, 2)).view(n, c, h, w)
        return self.gamma * out + x


def _init_gcc(net: nn.Module) -> None:
    """GCC's ``init_weights(normal, 0.02)`` as it actually acts on these nets.

    Its hook sees no ``weight`` on spectral-normalised convs (the wrapper has moved it to
    ``weight_bar``), so those keep PyTorch's default init; plain convs get N(0, 0.02) and zero
    bias; BatchNorm gets weight N(1, 0.02) and bias N(0, 1) (``init.normal_(bias, 0.0)`` has the
    default std of 1).
    """
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            if parametrize.is_parametrized(m):
                continue
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.normal_(m.bias, 0.0, 1.0)


def _up_block(c_in: int, c_out: int, *, first: bool = False) -> nn.Sequential:
    conv = nn.ConvTranspose2d(c_in, c_out, 4) if first else nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
    return nn.Sequential(_sn(conv), nn.BatchNorm2d(c_out), nn.ReLU())


def _down_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(_sn(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.1))


class SAGANGenerator(nn.Module):
    """z (N, z_dim) → image (N, 3, 64, 64) in [-1, 1]."""

    def __init__(
        self, z_dim: int = 128, ngf: int = 64, widths: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        w = list(widths) if widths is not None else [ngf * 8, ngf * 4, ngf * 2, ngf]
        if len(w) != 4:
            raise ValueError(f"SAGAN generator takes 4 widths, got {w}")
        self.z_dim = z_dim
        self.widths = tuple(w)
        self.l1 = _up_block(z_dim, w[0], first=True)
        self.l2 = _up_block(w[0], w[1])
        self.l3 = _up_block(w[1], w[2])
        self.attn1 = SelfAttention(w[2])
        self.l4 = _up_block(w[2], w[3])
        self.attn2 = SelfAttention(w[3])
        self.last = nn.Sequential(nn.ConvTranspose2d(w[3], 3, 4, 2, 1), nn.Tanh())
        _init_gcc(self)

    def forward(self, z: Tensor) -> Tensor:
        out = self.l1(z.view(z.shape[0], -1, 1, 1))
        out = self.attn1(self.l3(self.l2(out)))
        out = self.attn2(self.l4(out))
        return self.last(out)


class SAGANDiscriminator(nn.Module):
    """image (N, 3, 64, 64) → score (N,)."""

    def __init__(self, ndf: int = 64) -> None:
        super().__init__()
        self.l1 = _down_block(3, ndf)
        self.l2 = _down_block(ndf, ndf * 2)
        self.l3 = _down_block(ndf * 2, ndf * 4)
        self.attn1 = SelfAttention(ndf * 4)
        self.l4 = _down_block(ndf * 4, ndf * 8)
        self.attn2 = SelfAttention(ndf * 8)
        self.last = nn.Sequential(nn.Conv2d(ndf * 8, 1, 4))
        _init_gcc(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.attn1(self.l3(self.l2(self.l1(x))))
        out = self.attn2(self.l4(out))
        # GCC squeezes; a fixed (N,) shape is kinder to batch-of-one callers.
        return self.last(out).view(x.shape[0])


def build_generator(options: SAGANGeneratorOptions, **context: object) -> SAGANGenerator:
    return SAGANGenerator(options.z_dim, options.ngf, options.widths)


def build_discriminator(
    options: SAGANDiscriminatorOptions, **context: object
) -> SAGANDiscriminator:
    return SAGANDiscriminator(options.ndf)


# -- the literature's MAC figure ----------------------------------------------------------------


def sagan_thop_legacy_macs(module: nn.Module, inputs: Tensor) -> int:
    """MACs as thop 0.0.31 reported them for GCC's SAGAN (paper Table 3: 23.45M for ngf 64).

    GCC's spectral-norm wrapper calls the wrapped layer's ``forward`` directly, so thop's hooks
    never fire on spectral-normalised layers: only the plain convs (the last transposed conv and
    the attention 1×1 convs) and BatchNorm are counted. The rules are thop 0.0.31's:
    conv/transposed conv = ``out.numel() · (C_in/groups · k_h·k_w + [bias])`` (output-based, so a
    stride-2 transposed conv counts 4× its true cost); BatchNorm in eval mode = ``2 · in.numel()``;
    activations, softmax and the attention matmuls count zero. Pass a batch of one to get the
    per-image figure. ngf 64 gives 23,449,600 and ngf 48 15,624,192 (baselines §0); the true cost
    of the same generator is ≈200M MACs.
    """
    total = 0

    def conv_hook(m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        k = m.weight.shape[2] * m.weight.shape[3]
        total += out.numel() * (m.in_channels // m.groups * k + (m.bias is not None))

    def bn_hook(m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        total += 2 * args[0].numel()

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and not parametrize.is_parametrized(m):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.BatchNorm2d):
            handles.append(m.register_forward_hook(bn_hook))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(inputs)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return total


# -- GCC checkpoints ------------------------------------------------------------------------------

_GCC_SN = {
    ".module.weight_bar": ".parametrizations.weight.original",
    ".module.weight_u": ".parametrizations.weight.0._u",
    ".module.weight_v": ".parametrizations.weight.0._v",
    ".module.bias": ".bias",
}


def convert_gcc_sagan(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a GCC SAGAN ``G``/``D`` state dict to this module's names.

    GCC's hand-written spectral norm stores ``<layer>.module.weight_bar`` (the raw weight) and
    ``weight_u``/``weight_v``; PyTorch's parametrization stores ``parametrizations.weight.original``
    and ``parametrizations.weight.0._u``/``_v`` with the same shapes and meaning. thop's
    ``total_ops``/``total_params`` entries, which GCC sometimes leaves in, are dropped.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith(("total_ops", "total_params")):
            continue
        for old, new in _GCC_SN.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
                break
        out[key] = value
    return out
