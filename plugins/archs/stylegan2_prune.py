"""Channel pruning of the StyleGAN2 generator, as CAGC does it (``Util/mask_util.py``).

The prunable widths are CAGC's *net shape* (see :mod:`vemkit_plugins.archs.stylegan2`): entry 0
is the constant input, entry ``l ≥ 1`` the output of styled conv ``l − 1`` (conv1, then
``convs.0``, ``convs.1``, ...). Removing channels of entry ``l`` slices

* the **producer**: output rows of styled conv ``l − 1``'s weight and its activation bias (for
  entry 0: the constant input itself);
* every **reader**: input columns of styled conv ``l``'s weight and the rows of its modulation
  (the style has one scale per input channel), and, for odd ``l``, the toRGB that reads the
  entry (``to_rgb1`` reads entry 1, ``to_rgbs.j`` entry ``2j + 3``): its weight's input columns
  and its modulation rows.

Noise strengths (one scalar per layer), the fixed noise maps, blur kernels, toRGB biases and the
mapping network are untouched. Kept channels keep their order.

As in CAGC, the pruned layers recompute their equalised-learning-rate scale ``1/√fan_in`` from
the pruned width and nothing compensates for it: demodulated styled convs normalise it away,
but every toRGB (not demodulated) comes out ``√(C/C')`` times stronger than the full
network's restricted to the kept channels. CAGC retrains (distils) the pruned generator
afterwards, starting from exactly these weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from vemkit.errors import VemkitError
from vemkit_plugins.archs.stylegan2 import StyleGAN2Generator

__all__ = [
    "net_shape_of",
    "prune_generator",
    "prune_generator_state",
    "uniform_keep_indices",
]


def net_shape_of(state: Mapping[str, Tensor]) -> list[int]:
    """CAGC's ``Get_Network_Shape``: the input width of conv1 and of every styled conv, then the
    output width of the last one."""
    n_convs = sum(1 for k in state if k.startswith("convs.") and k.endswith(".conv.weight"))
    keys = ["conv1.conv.weight"] + [f"convs.{i}.conv.weight" for i in range(n_convs)]
    return [int(state[k].shape[2]) for k in keys] + [int(state[keys[-1]].shape[1])]


def uniform_keep_indices(
    scores: Sequence[Tensor], net_shape: Sequence[int], remove_ratio: float
) -> list[Tensor]:
    """CAGC's uniform schedule: remove the ``int(C · remove_ratio)`` lowest-scored channels of
    every entry (``Get_Uniform_RmveList`` + ``Generate_Prune_Mask_List``); the kept indices are
    returned in ascending order. Ties break towards the lower index being removed first (a
    stable sort; CAGC's ``np.argsort`` leaves ties unspecified)."""
    if not 0 <= remove_ratio < 1:
        raise VemkitError(f"remove_ratio must be in [0, 1), got {remove_ratio}")
    if len(scores) != len(net_shape):
        raise VemkitError(
            f"channel scores cover {len(scores)} layers but the generator has {len(net_shape)}"
        )
    keep = []
    for layer, (score, width) in enumerate(zip(scores, net_shape, strict=True)):
        score = torch.as_tensor(score).detach().flatten().cpu()
        if score.numel() != width:
            raise VemkitError(f"layer {layer}: {score.numel()} channel scores for {width} channels")
        n_remove = int(width * remove_ratio)
        order = torch.sort(score.double(), stable=True).indices
        keep.append(torch.sort(order[n_remove:]).values)
    return keep


def prune_generator_state(
    state: Mapping[str, Tensor], keep: Sequence[Tensor | Sequence[int]]
) -> dict[str, Tensor]:
    """The state dict of the generator restricted to the channels ``keep[l]`` of every net-shape
    entry ``l`` (CAGC's ``Mask_the_Generator``); all other tensors are copied unchanged."""
    shape = net_shape_of(state)
    if len(keep) != len(shape):
        raise VemkitError(f"keep lists {len(keep)} layers but the generator has {len(shape)}")
    idx = [torch.as_tensor(k, dtype=torch.long).flatten() for k in keep]
    for layer, (k, width) in enumerate(zip(idx, shape, strict=True)):
        if (
            k.numel() == 0
            or int(k.min()) < 0
            or int(k.max()) >= width
            or k.unique().numel() != k.numel()
        ):
            raise VemkitError(
                f"layer {layer}: keep indices must be distinct channels in [0, {width}), "
                f"at least one"
            )
    out = {k: v.clone() for k, v in state.items()}
    out["input.input"] = state["input.input"][:, idx[0]].clone()
    styled = ["conv1"] + [f"convs.{i}" for i in range(len(shape) - 2)]
    for reads, name in enumerate(styled):  # styled conv `reads` reads entry reads, writes +1
        c_in, c_out = idx[reads], idx[reads + 1]
        weight = state[f"{name}.conv.weight"]
        out[f"{name}.conv.weight"] = weight[:, c_out][:, :, c_in].clone()
        for p in ("weight", "bias"):
            out[f"{name}.conv.modulation.{p}"] = state[f"{name}.conv.modulation.{p}"][c_in].clone()
        out[f"{name}.activate.bias"] = state[f"{name}.activate.bias"][c_out].clone()
    to_rgbs = ["to_rgb1"] + [f"to_rgbs.{j}" for j in range((len(shape) - 2) // 2)]
    for j, name in enumerate(to_rgbs):
        c_in = idx[2 * j + 1]
        out[f"{name}.conv.weight"] = state[f"{name}.conv.weight"][:, :, c_in].clone()
        for p in ("weight", "bias"):
            out[f"{name}.conv.modulation.{p}"] = state[f"{name}.conv.modulation.{p}"][c_in].clone()
    return out


def prune_generator(
    generator: StyleGAN2Generator, keep: Sequence[Tensor | Sequence[int]]
) -> StyleGAN2Generator:
    """A new generator at the kept widths holding the kept slices of ``generator``'s weights."""
    state = prune_generator_state(generator.state_dict(), keep)
    pruned = StyleGAN2Generator(
        size=generator.size,
        style_dim=generator.style_dim,
        n_mlp=generator.n_mlp,
        net_shape=net_shape_of(state),
        lr_mlp=generator.lr_mlp,
        blur_kernel=generator.blur_kernel,
    )
    pruned.load_state_dict(state, strict=True)
    return pruned.to(generator.input.input.device)
