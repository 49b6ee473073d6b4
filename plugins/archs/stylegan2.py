"""StyleGAN2 generator and discriminator (config F) in plain PyTorch.

The layout, module tree and parameter names are those of rosinality/stylegan2-pytorch's
``model.py`` (the implementation CAGC builds on), so its checkpoints and CAGC's pruned ones load
unchanged (see ``stylegan2_convert.py``): ``style.1.weight``, ``input.input``,
``conv1.conv.weight``, ``convs.0.conv.modulation.weight``, ``to_rgbs.0.conv.weight``,
``noises.noise_0``, ... The two custom CUDA ops of that code are ordinary torch ops here:
``fused_leaky_relu`` (bias + leaky ReLU 0.2 + gain √2) and ``upfirdn2d`` (zero-insertion
upsampling, padding, FIR filtering, decimation), so everything runs on CPU and any GPU.

Widths are given per layer as CAGC's *net shape*: ``[input, conv1, up_8, conv_8, up_16, conv_16,
..., up_size, conv_size]`` — the constant input, the 4×4 conv, then the upsampling conv and the
plain conv of each resolution. The full network has the per-resolution widths of config F;
CAGC's student keeps ``C − int(0.7·C)`` channels of every entry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vemkit.errors import VemkitError
from vemkit_plugins.archs.uncond_options import (
    StyleGAN2DiscriminatorOptions,
    StyleGAN2GeneratorOptions,
)

__all__ = [
    "StyleGAN2Discriminator",
    "StyleGAN2Generator",
    "build_discriminator",
    "build_generator",
    "default_channels",
    "fused_leaky_relu",
    "stylegan2_analytic_macs",
    "stylegan2_net_shape",
    "stylegan2_net_shape_macs",
    "upfirdn2d",
]

_LRELU_SLOPE = 0.2
_LRELU_GAIN = math.sqrt(2.0)


# -- widths ----------------------------------------------------------------------------------------


def default_channels(channel_multiplier: int = 2) -> dict[int, int]:
    """Config-F width of every resolution."""
    m = channel_multiplier
    return {
        4: 512,
        8: 512,
        16: 512,
        32: 512,
        64: 256 * m,
        128: 128 * m,
        256: 64 * m,
        512: 32 * m,
        1024: 16 * m,
    }


def _log2(size: int) -> int:
    log = size.bit_length() - 1
    if size < 8 or 1 << log != size:
        raise ValueError(f"StyleGAN2 size must be a power of two ≥ 8, got {size}")
    return log


def stylegan2_net_shape(
    size: int,
    channel_multiplier: int = 2,
    channels: dict[int, int] | None = None,
    remove_ratio: float = 0.0,
) -> list[int]:
    """CAGC's per-layer width list for a generator of ``size`` pixels.

    ``remove_ratio`` removes ``int(C · ratio)`` channels from every entry, as CAGC's
    ``Get_Uniform_RmveList`` does (0.7 at 256 px → 154 ×10, 77 ×2, 39 ×2).
    """
    ch = default_channels(channel_multiplier)
    ch.update(channels or {})
    shape = [ch[4], ch[4]]
    for log in range(3, _log2(size) + 1):
        shape += [ch[1 << log]] * 2
    return [c - int(c * remove_ratio) for c in shape]


def _generator_shape(options: StyleGAN2GeneratorOptions) -> list[int]:
    if options.net_shape is not None:
        return list(options.net_shape)
    return stylegan2_net_shape(
        options.size, options.channel_multiplier, options.channels, options.remove_ratio
    )


# -- the two CUDA ops of the reference code, as plain torch ----------------------------------------


def fused_leaky_relu(x: Tensor, bias: Tensor | None = None) -> Tensor:
    """``leaky_relu(x + bias, 0.2) · √2``, bias broadcast over dim 1 (gain keeps the variance)."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, _LRELU_SLOPE) * _LRELU_GAIN


def upfirdn2d(
    x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> Tensor:
    """Upsample by zero insertion, pad (negative pads crop), convolve with the 2-D FIR ``kernel``
    per channel (a true convolution, hence the flip), keep every ``down``-th sample."""
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, (p0, p1, p0, p1))
    kh, kw = kernel.shape
    weight = kernel.flip((0, 1)).to(x.dtype).expand(c, 1, kh, kw)
    return F.conv2d(x, weight, stride=down, groups=c)


def make_kernel(k: Sequence[int]) -> Tensor:
    k1 = torch.tensor(list(k), dtype=torch.float32)
    k2 = torch.outer(k1, k1)
    return k2 / k2.sum()


class Upsample(nn.Module):
    """2× upsampling of the toRGB skip path: zero insertion + blur (kernel scaled by factor²)."""

    def __init__(self, kernel: Sequence[int], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)
        p = len(kernel) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Blur(nn.Module):
    """FIR filtering with padding (anti-aliasing around the stride-2 convs)."""

    def __init__(
        self, kernel: Sequence[int], pad: tuple[int, int], upsample_factor: int = 1
    ) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor**2)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


# -- equalised-learning-rate layers ----------------------------------------------------------------


class PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with weights ~ N(0, 1/lr_mul²) scaled at run time by lr_mul/√fan_in."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channel * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(
            x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding
        )


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel: int, bias: bool = True) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias)


# -- synthesis layers ------------------------------------------------------------------------------


class ModulatedConv2d(nn.Module):
    """Conv whose weight is scaled per input channel by a style (affine of w), then optionally
    demodulated to unit norm per output channel; one grouped conv handles the whole batch.
    With ``upsample`` it is a stride-2 transposed conv followed by the blur."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[int] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.kernel_size = kernel_size
        self.upsample = upsample
        self.demodulate = demodulate
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            pad = ((p + 1) // 2 + factor - 1, p // 2 + 1)
            self.blur = Blur(blur_kernel, pad=pad, upsample_factor=factor)
        self.scale = 1.0 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            torch.randn(1, out_channel, in_channel, kernel_size, kernel_size)
        )
        # bias 1: styles start as the identity modulation
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1.0)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        batch, c_in, h, w = x.shape
        k = self.kernel_size
        s = self.modulation(style).view(batch, 1, c_in, 1, 1)
        weight = self.scale * self.weight * s  # (batch, out, in, k, k)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4)) + 1e-8)
            weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)
        x = x.reshape(1, batch * c_in, h, w)
        if self.upsample:
            # conv_transpose2d wants (in, out/groups, k, k) per group
            weight = weight.transpose(1, 2).reshape(batch * c_in, self.out_channel, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, padding=0, groups=batch)
            out = self.blur(out.view(batch, self.out_channel, *out.shape[2:]))
            return out
        weight = weight.reshape(batch * self.out_channel, c_in, k, k)
        out = F.conv2d(x, weight, padding=self.padding, groups=batch)
        return out.view(batch, self.out_channel, *out.shape[2:])


class NoiseInjection(nn.Module):
    """Adds per-pixel Gaussian noise scaled by one learned weight (initially 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            n, _, h, w = image.shape
            noise = image.new_empty(n, 1, h, w).normal_()
        return image + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[int] = (1, 3, 3, 1),
        demodulate: bool = True,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel, out_channel, kernel_size, style_dim, demodulate, upsample, blur_kernel
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """Modulated 1×1 conv to RGB (no demodulation) + bias, added to the upsampled skip image."""

    def __init__(
        self,
        in_channel: int,
        style_dim: int,
        upsample: bool = True,
        blur_kernel: Sequence[int] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class StyleGAN2Generator(nn.Module):
    """z → image (N, 3, size, size); see the module docstring for the layout."""

    def __init__(
        self,
        size: int = 256,
        style_dim: int = 512,
        n_mlp: int = 8,
        net_shape: Sequence[int] | None = None,
        lr_mlp: float = 0.01,
        blur_kernel: Sequence[int] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        log_size = _log2(size)
        shape = list(net_shape) if net_shape is not None else stylegan2_net_shape(size)
        if len(shape) != 2 * log_size - 2:
            raise ValueError(f"net_shape for size {size} needs {2 * log_size - 2} widths: {shape}")
        self.size = size
        self.style_dim = style_dim
        self.n_mlp = n_mlp
        self.lr_mlp = lr_mlp
        self.blur_kernel = tuple(blur_kernel)
        self.z_dim = style_dim  # what a training loop samples
        self.net_shape = tuple(shape)
        self.log_size = log_size
        self.num_layers = 2 * log_size - 3  # styled convs, one noise map each
        self.n_latent = 2 * log_size - 2  # w vectors consumed (convs + the last toRGB)

        mapping: list[nn.Module] = [PixelNorm()]
        mapping += [
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True) for _ in range(n_mlp)
        ]
        self.style = nn.Sequential(*mapping)

        self.input = ConstantInput(shape[0])
        self.conv1 = StyledConv(shape[0], shape[1], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(shape[1], style_dim, upsample=False)

        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for i in range(1, log_size - 1):
            c_in, c_mid, c_out = shape[2 * i - 1], shape[2 * i], shape[2 * i + 1]
            self.convs.append(
                StyledConv(c_in, c_mid, 3, style_dim, upsample=True, blur_kernel=blur_kernel)
            )
            self.convs.append(StyledConv(c_mid, c_out, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(c_out, style_dim, blur_kernel=blur_kernel))

        # Fixed noise maps, used when randomize_noise=False (part of the reference state dict).
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))

    # -- cost ------------------------------------------------------------------------------------
    def named_macs(self) -> dict[str, int]:
        """MAC counts under conventions of this architecture's papers, for ``vemkit profile``
        to print beside its generic counts: ``cagc_analytic`` is CAGC's analytic count
        (modulated 3×3 convs and toRGB 1×1 at their input resolution, plus the mapping and
        modulation linears; :func:`stylegan2_net_shape_macs`): 45.12G at 256 px full width."""
        return {
            "cagc_analytic": stylegan2_net_shape_macs(self.net_shape, self.style_dim, self.n_mlp)
        }

    # -- latents ---------------------------------------------------------------------------------
    def get_latent(self, z: Tensor) -> Tensor:
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int) -> Tensor:
        z = torch.randn(n, self.style_dim, device=self.input.input.device)
        return self.style(z).mean(0, keepdim=True)

    def make_noise(self) -> list[Tensor]:
        device = self.input.input.device
        return [
            torch.randn(1, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2), device=device)
            for i in range(self.num_layers)
        ]

    def _latents(
        self,
        styles: list[Tensor],
        inject_index: int | None,
        truncation: float,
        truncation_latent: Tensor | None,
    ) -> Tensor:
        if truncation < 1:
            if truncation_latent is None:
                raise ValueError("truncation < 1 needs truncation_latent (see mean_latent)")
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        if len(styles) == 1:
            s = styles[0]
            return s if s.ndim == 3 else s.unsqueeze(1).expand(-1, self.n_latent, -1)
        if len(styles) != 2:
            raise ValueError(f"style mixing takes two latents, got {len(styles)}")
        if inject_index is None:
            inject_index = int(torch.randint(1, self.n_latent, ()).item())
        first = styles[0].unsqueeze(1).expand(-1, inject_index, -1)
        second = styles[1].unsqueeze(1).expand(-1, self.n_latent - inject_index, -1)
        return torch.cat([first, second], dim=1)

    def forward(
        self,
        z: Tensor | Sequence[Tensor],
        *,
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: Tensor | None = None,
        input_is_latent: bool = False,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Generate images.

        ``z``: (N, style_dim), or a list of one or two such tensors (two = style mixing, the
        second taking over from ``inject_index``, random in [1, n_latent) if not given). With
        ``input_is_latent`` they are w vectors (or one (N, n_latent, style_dim) tensor).
        ``noise``: one map per styled conv; default fresh noise, or the stored maps when
        ``randomize_noise`` is False. Returns the image, or ``(image, latents)``. Unlike the
        reference code the image is returned alone unless latents are asked for.
        """
        styles = [z] if isinstance(z, Tensor) else list(z)
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if noise is None:
            if randomize_noise:
                noise = [None] * self.num_layers
            else:
                noise = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        latent = self._latents(styles, inject_index, truncation, truncation_latent)

        out = self.input(latent.shape[0])
        out = self.conv1(out, latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for up, conv, to_rgb in zip(self.convs[::2], self.convs[1::2], self.to_rgbs, strict=True):
            out = up(out, latent[:, i], noise[i])
            out = conv(out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return (skip, latent) if return_latents else skip


# -- discriminator ---------------------------------------------------------------------------------


class ConvLayer(nn.Sequential):
    """[Blur] + EqualConv2d + [FusedLeakyReLU]; a Sequential so the indices match the reference
    state dict (``convs.1.conv2.1.weight``)."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        downsample: bool = False,
        blur_kernel: Sequence[int] = (1, 3, 3, 1),
        bias: bool = True,
        activate: bool = True,
    ) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        # with an activation the bias lives in FusedLeakyReLU
        layers.append(
            EqualConv2d(
                in_channel, out_channel, kernel_size, stride, padding, bias and not activate
            )
        )
        if activate:
            layers.append(FusedLeakyReLU(out_channel, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, blur_kernel: Sequence[int]) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(
            in_channel,
            out_channel,
            1,
            downsample=True,
            blur_kernel=blur_kernel,
            activate=False,
            bias=False,
        )

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


class StyleGAN2Discriminator(nn.Module):
    """image (N, 3, size, size) → logit (N, 1)."""

    def __init__(
        self,
        size: int = 256,
        channel_multiplier: int = 2,
        channels: dict[int, int] | None = None,
        blur_kernel: Sequence[int] = (1, 3, 3, 1),
        stddev_group: int = 4,
        stddev_feat: int = 1,
    ) -> None:
        super().__init__()
        ch = default_channels(channel_multiplier)
        ch.update(channels or {})
        log_size = _log2(size)
        self.size = size
        convs: list[nn.Module] = [ConvLayer(3, ch[size], 1)]
        in_channel = ch[size]
        for log in range(log_size, 2, -1):
            out_channel = ch[1 << (log - 1)]
            convs.append(ResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)
        self.stddev_group = stddev_group
        self.stddev_feat = stddev_feat
        self.final_conv = ConvLayer(in_channel + 1, ch[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 4 * 4, ch[4], activation=True),
            EqualLinear(ch[4], 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.convs(x)
        batch, channel, h, w = out.shape
        group = min(batch, self.stddev_group)
        if batch % group:
            raise VemkitError(
                f"StyleGAN2 discriminator: batch {batch} is not a multiple of the minibatch-stddev "
                f"group {group}; change the batch size or stddev_group"
            )
        # std over the group of every feature, averaged to one value per (group member, feat)
        grouped = out.view(group, -1, self.stddev_feat, channel // self.stddev_feat, h, w)
        std = torch.sqrt(grouped.var(0, unbiased=False) + 1e-8)
        std = std.mean(dim=(2, 3, 4), keepdim=True).squeeze(2)
        std = std.repeat(group, 1, h, w)
        out = self.final_conv(torch.cat([out, std], dim=1))
        return self.final_linear(out.view(batch, -1))


# -- factories -------------------------------------------------------------------------------------


def build_generator(options: StyleGAN2GeneratorOptions, **context: object) -> StyleGAN2Generator:
    return StyleGAN2Generator(
        size=options.size,
        style_dim=options.style_dim,
        n_mlp=options.n_mlp,
        net_shape=_generator_shape(options),
        lr_mlp=options.lr_mlp,
        blur_kernel=options.blur_kernel,
    )


def build_discriminator(
    options: StyleGAN2DiscriminatorOptions, **context: object
) -> StyleGAN2Discriminator:
    return StyleGAN2Discriminator(
        size=options.size,
        channel_multiplier=options.channel_multiplier,
        channels=options.channels,
        blur_kernel=options.blur_kernel,
        stddev_group=options.stddev_group,
        stddev_feat=options.stddev_feat,
    )


# -- CAGC's analytic MAC count ---------------------------------------------------------------------


def stylegan2_net_shape_macs(
    net_shape: Sequence[int], style_dim: int = 512, n_mlp: int = 8, *, styles: bool = True
) -> int:
    """CAGC's analytic MAC count (``Util/Calculators.py``, ``StyleGAN2_FLOPCal``) of a generator
    with per-layer widths ``net_shape`` (input, conv1, two per resolution).

    With ``r_i`` the resolution at which styled conv ``i`` *reads* its input (4, 4, 8, 8, 16, ...
    — an upsampling conv is a stride-2 transposed conv, whose true cost is counted at its input
    size) and ``C_i`` the entries of net_shape::

        styled 3×3   Σ_i  C_i · C_{i+1} · 9 · r_i²          i = 0 .. len−2
        toRGB 1×1    Σ_j  C_{2j+1} · 3 · r_{2j+1}²          one per resolution
        mapping      n_mlp · style_dim²
        modulation   style_dim · Σ (input widths of every styled conv and toRGB)

    The last two (``styles=True``) are 0.015% of the total at 256 px and are included because
    CAGC's reference constants include them: 45,124,673,536 at 256 px, 74,266,894,336 at
    1024 px. Blur, noise, bias, activation and demodulation cost nothing here.
    """
    shape = list(net_shape)
    res = [2 ** (2 + i // 2) for i in range(len(shape))]  # 4, 4, 8, 8, 16, 16, ...
    conv = sum(shape[i] * shape[i + 1] * 9 * res[i] ** 2 for i in range(len(shape) - 1))
    to_rgb = sum(shape[2 * j + 1] * 3 * res[2 * j + 1] ** 2 for j in range(len(shape) // 2))
    if not styles:
        return conv + to_rgb
    mapping = n_mlp * style_dim * style_dim
    # inputs: conv1 reads shape[0], styled conv k (k ≥ 1) reads shape[k]; toRGB j reads shape[2j+1]
    mod_inputs = sum(shape[:-1]) + sum(shape[2 * j + 1] for j in range(len(shape) // 2))
    return conv + to_rgb + mapping + style_dim * mod_inputs


def stylegan2_analytic_macs(options: StyleGAN2GeneratorOptions, *, styles: bool = True) -> int:
    """CAGC's analytic MACs of the generator ``options`` describe (≈45.1e9 at 256 px full width,
    ≈4.1e9 for CAGC's 0.7-removed student); see :func:`stylegan2_net_shape_macs`."""
    return stylegan2_net_shape_macs(
        _generator_shape(options), options.style_dim, options.n_mlp, styles=styles
    )
