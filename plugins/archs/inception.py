"""CAT's Inception-style ResNet generator (snap-research/CAT ``InceptionGenerator``).

The CycleGAN ResNet skeleton whose residual blocks are Inception blocks
(``InvertedResidualChannels``): for each kernel size k of ``kernel_sizes`` a *plain* branch
``[pad, k×k conv in→h, norm, ReLU, Dropout, pad, k×k conv h→in]`` and a *depthwise* branch
``[1×1 conv in→h, norm, ReLU, pad, k×k depthwise conv h→h, norm, ReLU, Dropout, 1×1 conv h→in]``;
the block sums every branch, normalises the sum (``pw_bn``) and adds the input. Module names
and nesting are the official ones so that CAT's checkpoints load unchanged and its distillation
taps (``down_sampling.9``, ``features.2/5/8``) name the same tensors:

* ``down_sampling`` = [pad, 7×7 conv, norm, ReLU, (3×3 s2 conv, norm, ReLU) ×2];
* ``features.b.res_ops.i`` = [pad, (conv, norm, ReLU), Dropout, pad, conv];
* ``features.b.dw_ops.i`` = [(1×1 conv, norm, ReLU), pad, (depthwise conv, norm, ReLU), Dropout,
  1×1 conv]; ``features.b.pw_bn`` the norm of the sum;
* ``up_sampling`` = [(3×3 s2 transposed conv, norm, ReLU) ×2, pad, 7×7 conv, tanh].

Every norm is affine (CAT's scripts pass ``--norm_affine``; the |γ| of these scales are what CAT
prunes). A branch of width 0 is left out, so the surviving branches are renumbered from 0, as
in CAT's pruned students. The forward is a plain composition of modules with sums (no
data-dependent control flow), so ``torch.fx`` traces it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from vemkit_plugins.archs._blocks import init_weights


def _norm(kind: str, channels: int) -> nn.Module:
    # CAT's get_norm_layer with affine=True; only the Cityscapes (batch) scripts track running
    # statistics, the CycleGAN (instance) ones do not.
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)
    raise ValueError(f"CAT's generator supports norm 'instance' or 'batch', got {kind!r}")


def _pad(padding_type: str, amount: int) -> nn.Module:
    # CAT inserts a padding module even for 1×1 kernels (amount 0), keeping module indices fixed.
    if padding_type == "reflect":
        return nn.ReflectionPad2d(amount)
    if padding_type == "replicate":
        return nn.ReplicationPad2d(amount)
    if padding_type == "zero":
        return nn.ZeroPad2d(amount)
    raise ValueError(f"unknown padding type {padding_type!r}")


class ConvNormAct(nn.Sequential):
    """CAT's ``ConvBNReLU``: ``[0]`` conv (no padding), ``[1]`` affine norm, ``[2]`` ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        norm: str,
        bias: bool,
        groups: int = 1,
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, 1, 0, groups=groups, bias=bias),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
        )


class InceptionBlock(nn.Module):
    """CAT's ``InvertedResidualChannels``: ``x + pw_bn(Σ res_ops(x) + Σ dw_ops(x))``.

    ``res_channels[i]`` / ``dw_channels[i]`` are the hidden widths of the plain / depthwise
    branch with kernel ``kernel_sizes[i]``; a width of 0 drops that branch. With no branch at
    all the block is the identity (CAT's pruned blocks can end up so).
    """

    def __init__(
        self,
        channels: int,
        res_channels: Sequence[int],
        dw_channels: Sequence[int],
        kernel_sizes: Sequence[int],
        *,
        norm: str,
        bias: bool,
        dropout_rate: float = 0.0,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        if not len(res_channels) == len(dw_channels) == len(kernel_sizes):
            raise ValueError(
                f"one width per kernel size: kernel_sizes {list(kernel_sizes)}, res "
                f"{list(res_channels)}, dw {list(dw_channels)}"
            )
        self.channels = channels
        self.kernel_sizes = tuple(kernel_sizes)
        self.res_channels = tuple(res_channels)
        self.dw_channels = tuple(dw_channels)
        self.res_ops = nn.ModuleList()
        self.dw_ops = nn.ModuleList()
        for hidden, k in zip(res_channels, kernel_sizes, strict=True):
            if hidden == 0:
                continue
            self.res_ops.append(
                nn.Sequential(
                    _pad(padding_type, (k - 1) // 2),
                    ConvNormAct(channels, hidden, k, norm=norm, bias=bias),
                    nn.Dropout(dropout_rate),
                    _pad(padding_type, (k - 1) // 2),
                    nn.Conv2d(hidden, channels, k, 1, 0, bias=bias),
                )
            )
        for hidden, k in zip(dw_channels, kernel_sizes, strict=True):
            if hidden == 0:
                continue
            self.dw_ops.append(
                nn.Sequential(
                    ConvNormAct(channels, hidden, 1, norm=norm, bias=bias),
                    _pad(padding_type, (k - 1) // 2),
                    ConvNormAct(hidden, hidden, k, norm=norm, bias=bias, groups=hidden),
                    nn.Dropout(dropout_rate),
                    nn.Conv2d(hidden, channels, 1, 1, 0, bias=bias),
                )
            )
        self.pw_bn = _norm(norm, channels)

    def forward(self, x: Tensor) -> Tensor:
        total: Tensor | None = None
        # The branch lists are fixed at construction, so this loop unrolls under torch.fx.
        for op in [*self.res_ops, *self.dw_ops]:
            out = op(x)
            total = out if total is None else total + out
        if total is None:
            return x
        return x + self.pw_bn(total)


class InceptionGenerator(nn.Module):
    """CAT's generator at explicit widths.

    ``down`` = (stem, down 1, trunk) output channels, ``blocks`` = one ``(res, dw)`` pair of
    per-kernel hidden widths per Inception block, ``up`` = (up 1, up 2) output channels. The
    full network of ngf has down (ngf, 2·ngf, 4·ngf), up (2·ngf, ngf) and every hidden width
    4·ngf // channels_reduction_factor (see :func:`full_widths`); CAT's pruned students have
    other widths per layer.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        down: Sequence[int],
        blocks: Sequence[tuple[Sequence[int], Sequence[int]]],
        up: Sequence[int],
        *,
        kernel_sizes: Sequence[int] = (1, 3, 5),
        norm: str = "instance",
        dropout_rate: float = 0.0,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        stem, down1, trunk = down
        up1, up2 = up
        # CAT: biased convs only with InstanceNorm (BatchNorm's shift makes a bias redundant).
        bias = norm == "instance"
        self.kernel_sizes = tuple(kernel_sizes)
        self.down_sampling = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, stem, 7, padding=0, bias=bias),
            _norm(norm, stem),
            nn.ReLU(True),
            nn.Conv2d(stem, down1, 3, stride=2, padding=1, bias=bias),
            _norm(norm, down1),
            nn.ReLU(True),
            nn.Conv2d(down1, trunk, 3, stride=2, padding=1, bias=bias),
            _norm(norm, trunk),
            nn.ReLU(True),
        )
        self.features = nn.Sequential(
            *(
                InceptionBlock(
                    trunk,
                    res,
                    dw,
                    kernel_sizes,
                    norm=norm,
                    bias=bias,
                    dropout_rate=dropout_rate,
                    padding_type=padding_type,
                )
                for res, dw in blocks
            )
        )
        self.up_sampling = nn.Sequential(
            nn.ConvTranspose2d(trunk, up1, 3, stride=2, padding=1, output_padding=1, bias=bias),
            _norm(norm, up1),
            nn.ReLU(True),
            nn.ConvTranspose2d(up1, up2, 3, stride=2, padding=1, output_padding=1, bias=bias),
            _norm(norm, up2),
            nn.ReLU(True),
            nn.ReflectionPad2d(3),
            nn.Conv2d(up2, output_nc, 7, padding=0),  # always biased: no norm follows
            nn.Tanh(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.up_sampling(self.features(self.down_sampling(x)))

    def named_macs(self, x: Tensor) -> dict[str, int]:
        """MACs under CAT's own rule for ``vemkit profile`` to print beside its generic counts:
        ``cat`` (:func:`cat_macs`: convolutions as the paper convention plus one MAC per output
        element of each norm without running statistics): 43.53G at ngf 64, 256 px, where the
        paper convention (convolutions only) gives 43.49G."""
        return {"cat": cat_macs(self, x[:1])}

    def widths(self) -> dict[str, Any]:
        """This network's widths as ``arch: inception_resnet``'s ``widths`` option takes them."""
        return {
            "down": [self.down_sampling[i].out_channels for i in (1, 4, 7)],
            "blocks": [
                {"res": list(b.res_channels), "dw": list(b.dw_channels)} for b in self.features
            ],
            "up": [self.up_sampling[i].out_channels for i in (0, 3)],
        }

    def prunable_norms(self) -> dict[str, nn.Module]:
        """The norm layers whose |γ| CAT thresholds (``utils/common.py: shrink_model``), by name.

        The down-sampling norms (stem, down 1, trunk — the trunk's mask also fixes the width of
        every block's input, output and ``pw_bn``), the norm after the *first* conv of every
        branch (``res_ops.i.1.1``, ``dw_ops.i.0.1``; the depthwise conv and its norm follow that
        width) and the two up-sampling norms. ``pw_bn`` and the depthwise norms are not scored.
        """
        out: dict[str, nn.Module] = {f"down_sampling.{i}": self.down_sampling[i] for i in (2, 5, 8)}
        for b, block in enumerate(self.features):
            for i, op in enumerate(block.res_ops):
                out[f"features.{b}.res_ops.{i}.1.1"] = op[1][1]
            for i, op in enumerate(block.dw_ops):
                out[f"features.{b}.dw_ops.{i}.0.1"] = op[0][1]
        out.update({f"up_sampling.{i}": self.up_sampling[i] for i in (1, 4)})
        return out


def full_widths(
    ngf: int,
    n_blocks: int,
    kernel_sizes: Sequence[int],
    channels: int | Sequence[int] | None = None,
    channels_reduction_factor: int = 6,
) -> tuple[list[int], list[tuple[list[int], list[int]]], list[int]]:
    """(down, blocks, up) of CAT's unpruned generator, exactly as ``InvertedResidualChannels``
    derives its hidden widths: ``channels`` None → 4·ngf // factor per kernel; an int c →
    c // factor per kernel; a list → each entry // factor (one per kernel size)."""
    trunk = 4 * ngf
    if channels is None:
        hidden = [trunk // channels_reduction_factor] * len(kernel_sizes)
    elif isinstance(channels, int):
        hidden = [channels // channels_reduction_factor] * len(kernel_sizes)
    else:
        if len(channels) != len(kernel_sizes):
            raise ValueError(
                f"channels has {len(channels)} entries for {len(kernel_sizes)} kernel sizes"
            )
        hidden = [c // channels_reduction_factor for c in channels]
    blocks = [(list(hidden), list(hidden)) for _ in range(n_blocks)]
    return [ngf, 2 * ngf, trunk], blocks, [2 * ngf, ngf]


def widths_from_state_dict(
    state: Mapping[str, Tensor], kernel_sizes: Sequence[int] = (1, 3, 5)
) -> dict[str, Any]:
    """The ``widths`` option of the generator a CAT state dict (e.g. a pruned student's
    ``best_net_G.pth``) was saved from, read from its shapes as CAT's
    ``load_pretrained_student`` does; branches absent from the state dict get width 0."""
    kernels = list(kernel_sizes)

    def branch_widths(b: int, kind: str, conv_key: str) -> list[int]:
        out = [0] * len(kernels)
        i = 0
        while f"features.{b}.{kind}.{i}.{conv_key}" in state:
            hidden, _, k, _ = state[f"features.{b}.{kind}.{i}.{conv_key}"].shape
            if k not in kernels or out[kernels.index(k)]:
                raise ValueError(
                    f"features.{b}.{kind}.{i}: kernel {k} is not one of kernel_sizes {kernels} "
                    "(or appears twice)"
                )
            out[kernels.index(k)] = int(hidden)
            i += 1
        return out

    n_blocks = 0
    while any(key.startswith(f"features.{n_blocks}.") for key in state):
        n_blocks += 1
    return {
        "down": [int(state[f"down_sampling.{i}.weight"].shape[0]) for i in (1, 4, 7)],
        "blocks": [
            {
                "res": branch_widths(b, "res_ops", "1.0.weight"),
                "dw": branch_widths(b, "dw_ops", "2.0.weight"),
            }
            for b in range(n_blocks)
        ],
        "up": [int(state[f"up_sampling.{i}.weight"].shape[1]) for i in (0, 3)],
    }


def cat_macs(net: nn.Module, inputs: Tensor) -> int:
    """MACs as CAT's own profiler (``utils/model_profiling.py``) counts them, the figure of
    CAT's tables and the unit of its pruning budget (``--target_flops``).

    Convolutions follow the paper convention (``prod(output)·C_in/groups·k²``, transposed convs
    at their output resolution), plus one MAC per output element of every InstanceNorm2d /
    BatchNorm2d that does *not* track running statistics (CAT charges those, not the others).
    For the instance-norm teacher at ngf 64 this is 43,527,405,568 (43.53G; the convs alone are
    43.49G); with affine instance norms it coincides with torchprofile's count. Pass a batch of
    one for the per-image figure. The forward runs on the meta device (no arithmetic).
    """
    from vemkit.profile import count_macs

    charged = 0

    def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal charged
        charged += out.numel()

    handles = [
        m.register_forward_hook(hook)
        for m in net.modules()
        if isinstance(m, nn.InstanceNorm2d | nn.BatchNorm2d) and not m.track_running_stats
    ]
    try:
        state = {**dict(net.named_parameters()), **dict(net.named_buffers())}
        meta = {k: torch.empty_like(v, device="meta") for k, v in state.items()}
        with torch.no_grad():
            torch.func.functional_call(net, meta, (torch.empty_like(inputs, device="meta"),))
    finally:
        for handle in handles:
            handle.remove()
    return count_macs(net, inputs, "paper") + charged


def build(options: Any, **context: Any) -> InceptionGenerator:
    """Factory of ``arch: inception_resnet`` (:class:`~.options.InceptionResnetOptions`)."""
    if options.widths is not None:
        w = options.widths
        down, up = list(w.down), list(w.up)
        blocks = [(list(b.res), list(b.dw)) for b in w.blocks]
    else:
        down, blocks, up = full_widths(
            options.ngf,
            options.n_blocks,
            options.kernel_sizes,
            options.channels,
            options.channels_reduction_factor,
        )
    net = InceptionGenerator(
        options.input_nc,
        options.output_nc,
        down,
        blocks,
        up,
        kernel_sizes=options.kernel_sizes,
        norm=options.norm,
        dropout_rate=options.dropout_rate,
        padding_type=options.padding_type,
    )
    return init_weights(net, options.init_type, options.init_gain)


__all__ = [
    "ConvNormAct",
    "InceptionBlock",
    "InceptionGenerator",
    "build",
    "cat_macs",
    "full_widths",
    "widths_from_state_dict",
]
