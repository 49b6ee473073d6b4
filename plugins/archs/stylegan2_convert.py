"""Load rosinality/stylegan2-pytorch (and CAGC) StyleGAN2 checkpoints.

Our StyleGAN2 modules keep the reference module tree and parameter names, so conversion is about
the checkpoint around the weights, not about renaming:

* a training checkpoint is ``{"g": ..., "d": ..., "g_ema": ..., "g_optim": ..., "d_optim": ...,
  "args": argparse.Namespace}``; ``convert_weight.py`` output is ``{"g_ema": ..., "latent_avg":
  ...}`` (plus ``"g"``/``"d"`` when asked); CAGC's pruned checkpoints are ``{"g", "d", "g_ema"}``
  with narrower tensors — pick one network;
* ``DataParallel``/DDP wrappers prefix every key with ``module.`` — strip it;
* checkpoints written before the fixed noise maps became buffers lack ``noises.noise_*`` — add
  them (drawn from a fixed seed), so a strict ``load_state_dict`` works; they only matter for
  ``randomize_noise=False``.

A CAGC-pruned generator has other widths than config F: :func:`generator_options` reads them back
from the state dict (CAGC's ``Get_Network_Shape``) so the matching generator can be built.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from vemkit.errors import VemkitError

__all__ = [
    "build_rosinality_networks",
    "convert_rosinality",
    "discriminator_options",
    "generator_options",
    "load_rosinality",
    "read_rosinality",
]

NETWORKS = ("g_ema", "g", "d")


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())
    )


def convert_rosinality(
    state_dict: Mapping[str, Any], *, network: str = "g_ema", source: str = "checkpoint"
) -> dict[str, Tensor]:
    """The state dict of one network (``g_ema``, ``g`` or ``d``) of a rosinality/CAGC checkpoint,
    ready for ``load_state_dict(strict=True)`` on our StyleGAN2 generator/discriminator.

    ``state_dict`` is a whole checkpoint dict or already one network's state dict.
    """
    if network not in NETWORKS:
        raise VemkitError(f"{source}: network must be one of {NETWORKS}, got {network!r}")
    if _is_state_dict(state_dict):
        weights: Mapping[str, Any] = state_dict
    elif isinstance(state_dict.get(network), Mapping):
        weights = state_dict[network]
    else:
        found = sorted(k for k, v in state_dict.items() if isinstance(v, Mapping))
        raise VemkitError(
            f"{source}: no '{network}' network in this StyleGAN2 checkpoint "
            f"(it holds {found or 'no state dicts'})"
        )
    out: dict[str, Tensor] = {}
    for key, value in weights.items():
        if not isinstance(value, Tensor):
            continue
        out[key.removeprefix("module.")] = value
    if "input.input" in out and not any(k.startswith("noises.") for k in out):
        out.update(_noise_buffers(out))
    return out


def _noise_buffers(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    # one map per styled conv: conv1 + 2 per upsampling stage; sizes 4, 8, 8, 16, 16, ...
    n_convs = 1 + sum(1 for k in weights if k.startswith("convs.") and k.endswith(".conv.weight"))
    gen = torch.Generator().manual_seed(0)
    dtype = weights["input.input"].dtype
    return {
        f"noises.noise_{i}": torch.randn(
            1, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2), generator=gen
        ).to(dtype)
        for i in range(n_convs)
    }


def read_rosinality(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Read a rosinality/CAGC ``.pt`` with ``torch.load(weights_only=True)``: the whole
    checkpoint dict, on the CPU.

    Training checkpoints pickle their ``argparse.Namespace`` under ``"args"``; that one class is
    allowed (it only carries attribute values), nothing else is unpickled.
    """
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise VemkitError(f"{source}: no such StyleGAN2 checkpoint")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; all mean "unreadable"
        raise VemkitError(f"{source}: cannot read as a StyleGAN2 checkpoint: {exc}") from exc
    if not isinstance(checkpoint, Mapping):
        raise VemkitError(f"{source}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    return checkpoint


def load_rosinality(path: str | os.PathLike[str], *, network: str = "g_ema") -> dict[str, Tensor]:
    """The converted state dict of ``network`` in the ``.pt`` at ``path`` (see
    :func:`read_rosinality` for what is unpickled)."""
    return convert_rosinality(read_rosinality(path), network=network, source=os.fspath(path))


def build_rosinality_networks(
    checkpoint: str | os.PathLike[str] | Mapping[str, Any],
    networks: tuple[str, ...] = NETWORKS,
) -> dict[str, torch.nn.Module]:
    """Build and strictly load the networks of a rosinality/CAGC training checkpoint.

    ``checkpoint`` is a ``.pt`` path (read as :func:`load_rosinality` does) or the loaded dict.
    Returns ``{name: module}`` for each of ``networks`` (``g_ema``, ``g``, ``d``) the checkpoint
    holds: the generators built at the widths their state dict has (full config F or CAGC's
    pruned ``net_shape``), the discriminator at its per-resolution widths. ``g_ema`` is returned
    in eval mode with gradients off, as an EMA copy is used; a checkpoint without ``g_ema``
    is an error (it is what evaluation and export use).
    """
    from vemkit_plugins.archs.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

    if isinstance(checkpoint, Mapping):
        raw: Mapping[str, Any] = checkpoint
        source = "checkpoint"
    else:
        source = os.fspath(checkpoint)
        raw = read_rosinality(source)
    if _is_state_dict(raw):  # one bare generator state dict: it is what g_ema holds
        raw = {"g_ema": raw}
    out: dict[str, torch.nn.Module] = {}
    for name in networks:
        if name != "g_ema" and not isinstance(raw.get(name), Mapping):
            continue  # g and d are optional (convert_weight.py writes g_ema alone)
        state = convert_rosinality(raw, network=name, source=source)
        module: torch.nn.Module
        if name == "d":
            module = StyleGAN2Discriminator(**discriminator_options(state))
        else:
            opts = generator_options(state)
            module = StyleGAN2Generator(
                size=opts["size"],
                style_dim=opts["style_dim"],
                n_mlp=opts["n_mlp"],
                net_shape=opts["net_shape"],
            )
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise VemkitError(f"{source}: network '{name}' does not load strictly: {exc}") from None
        if name == "g_ema":
            module.eval().requires_grad_(False)
        out[name] = module
    return out


def generator_options(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """``stylegan2_generator`` options that rebuild the generator this state dict belongs to:
    size, style_dim, n_mlp and the per-layer ``net_shape`` (CAGC's ``Get_Network_Shape``: the
    input width of conv1 and of every styled conv, then the output width of the last)."""
    try:
        conv_keys = ["conv1.conv.weight"]
        n_convs = sum(
            1 for k in state_dict if k.startswith("convs.") and k.endswith(".conv.weight")
        )
        conv_keys += [f"convs.{i}.conv.weight" for i in range(n_convs)]
        net_shape = [int(state_dict[k].shape[2]) for k in conv_keys]
        net_shape.append(int(state_dict[conv_keys[-1]].shape[1]))
        style_dim = int(state_dict["conv1.conv.modulation.weight"].shape[1])
    except KeyError as exc:
        raise VemkitError(f"not a StyleGAN2 generator state dict: missing {exc}") from None
    n_mlp = sum(1 for k in state_dict if k.startswith("style.") and k.endswith(".weight"))
    return {
        "size": 2 ** (len(net_shape) // 2 + 1),
        "style_dim": style_dim,
        "n_mlp": n_mlp,
        "net_shape": net_shape,
    }


def discriminator_options(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """``stylegan2_discriminator`` options (size and per-resolution ``channels``) rebuilding the
    discriminator this state dict belongs to."""
    try:
        first = int(state_dict["convs.0.0.weight"].shape[0])
        n_blocks = sum(
            1 for k in state_dict if k.startswith("convs.") and k.endswith(".conv1.0.weight")
        )
        size = 2 ** (n_blocks + 2)
        channels = {size: first}
        for b in range(1, n_blocks + 1):
            channels[size >> b] = int(state_dict[f"convs.{b}.conv2.1.weight"].shape[0])
    except KeyError as exc:
        raise VemkitError(f"not a StyleGAN2 discriminator state dict: missing {exc}") from None
    return {"size": size, "channels": channels}
