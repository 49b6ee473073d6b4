"""Write ``official_layouts.json``: state-dict keys and shapes of the official generators.

The layouts are derived here by hand, in plain Python (no torch, no vemkit), from reading the
official module nesting; they are deliberately *not* produced by vemkit's own modules, so that
``tests/test_archs_image.py`` compares two independent derivations. Run it from the repository
root after changing a rule below (``.venv/bin/python tests/data/derive_official_layouts.py``).

Sources read (public code; only facts were taken, no code):

* junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py`` (master; ``get_norm_layer``: batch
  = BatchNorm2d(affine, tracked stats), instance = InstanceNorm2d(affine=False, no stats),
  convs biased only when the norm is InstanceNorm): ``UnetGenerator`` / ``UnetSkipConnectionBlock``
  and ``ResnetGenerator`` / ``ResnetBlock``, ``NLayerDiscriminator``, ``PixelDiscriminator``.
* bytedance/OMGD @ d5b3d3ab294e06a335c044b550a4d6e664769cd4:
  ``models/modules/unet_architecture/unet_generator.py``, ``unet_deepest_generator.py``,
  ``models/modules/resnet_architecture/mobile_resnet_generator.py``,
  ``mobile_resnet_deepest_generator.py``, ``models/modules/mobile_modules.py``.
* mit-han-lab/gan-compression @ 2e88928b8812e6e1a7d775ff92e53c84fb6c8ac7:
  ``models/modules/resnet_architecture/sub_mobile_resnet_generator.py``.
* snap-research/CAT @ 1dbd048cc91e3cc2c59d4e4f0434e79ac260e7ed (master):
  ``models/modules/inception_architecture/inception_generator.py``,
  ``models/modules/inception_modules.py`` (``InvertedResidualChannels``, ``ConvBNReLU``),
  ``models/networks.py`` (``get_norm_layer``, ``define_G``); the scripts pass ``--norm_affine``,
  the Cityscapes ones also ``--norm_track_running_stats``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

COMPACT_ABOVE = 200  # larger layouts are stored as a hash plus their first and last lines

Shape = list[int]
Layout = dict[str, Shape]

JUNYANZ = {
    "repo": "junyanz/pytorch-CycleGAN-and-pix2pix",
    "file": "models/networks.py",
    "commit": "78913853ab4a4f5eba717af8433809300c99f0bb",
    "note": (
        "nesting read at that commit (and 000f2981); there InstanceNorm still tracked running "
        "stats, current master does not (track_running_stats=False, no buffers); the official "
        "loader drops such stale keys and so does vemkit.weights.load_weights"
    ),
}
OMGD = {"repo": "bytedance/OMGD", "commit": "d5b3d3ab294e06a335c044b550a4d6e664769cd4"}
GANC = {"repo": "mit-han-lab/gan-compression", "commit": "2e88928b8812e6e1a7d775ff92e53c84fb6c8ac7"}
CAT = {
    "repo": "snap-research/CAT",
    "commit": "1dbd048cc91e3cc2c59d4e4f0434e79ac260e7ed",
    "file": "models/modules/inception_architecture/inception_generator.py",
}


# -- leaf layers ------------------------------------------------------------------------------
def conv(out: Layout, name: str, cin: int, cout: int, k: int, bias: bool, groups: int = 1) -> None:
    """nn.Conv2d: weight [out, in/groups, k, k], bias [out]."""
    out[f"{name}.weight"] = [cout, cin // groups, k, k]
    if bias:
        out[f"{name}.bias"] = [cout]


def convt(out: Layout, name: str, cin: int, cout: int, k: int, bias: bool) -> None:
    """nn.ConvTranspose2d: weight [in, out, k, k] (note the order), bias [out]."""
    out[f"{name}.weight"] = [cin, cout, k, k]
    if bias:
        out[f"{name}.bias"] = [cout]


def norm(out: Layout, name: str, c: int, kind: str) -> None:
    """BatchNorm2d(affine, tracked): 4 vectors + a scalar counter; InstanceNorm(no affine): none."""
    if kind == "batch":
        for key in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.{key}"] = [c]
        out[f"{name}.num_batches_tracked"] = []


# -- U-Net (junyanz UnetSkipConnectionBlock; OMGD's copy is the same) --------------------------
def unet(
    ngf: int,
    num_downs: int = 8,
    nc_in: int = 3,
    nc_out: int = 3,
    kind: str = "batch",
    deepest: bool = False,
) -> Layout:
    bias = kind == "instance"
    # levels from the outside in: (outer_nc, inner_nc)
    levels = [(nc_out, ngf), (ngf, 2 * ngf), (2 * ngf, 4 * ngf), (4 * ngf, 8 * ngf)]
    levels += [(8 * ngf, 8 * ngf)] * (num_downs - 5)
    levels += [(8 * ngf, 8 * ngf)]  # innermost
    out: Layout = {}
    prefix = "model.model"
    for depth, (outer, inner) in enumerate(levels):
        if depth == 0:
            # outermost: [downconv, (RB, RB,) submodule, (RB, RB,) ReLU, upconv(+bias), Tanh]
            conv(out, f"{prefix}.0", nc_in, inner, 4, bias)
            i = 1
            if deepest:
                expansion_block(out, f"{prefix}.1", inner, kind, bias)
                expansion_block(out, f"{prefix}.2", inner, kind, bias)
                i = 3
            sub = i
            i += 1
            if deepest:
                expansion_block(out, f"{prefix}.{i}", 2 * inner, kind, bias)
                expansion_block(out, f"{prefix}.{i + 1}", 2 * inner, kind, bias)
                i += 2
            convt(out, f"{prefix}.{i + 1}", 2 * inner, outer, 4, True)  # i = ReLU
        elif depth == len(levels) - 1:
            # innermost: [LeakyReLU, downconv, ReLU, upconv, upnorm]
            conv(out, f"{prefix}.1", outer, inner, 4, bias)
            convt(out, f"{prefix}.3", inner, outer, 4, bias)
            norm(out, f"{prefix}.4", outer, kind)
            break
        else:
            # [LeakyReLU, downconv, downnorm, (RB, RB,) sub, ReLU, upconv, upnorm, (RB, RB)]
            conv(out, f"{prefix}.1", outer, inner, 4, bias)
            norm(out, f"{prefix}.2", inner, kind)
            i = 3
            if deepest:
                expansion_block(out, f"{prefix}.3", inner, kind, bias)
                expansion_block(out, f"{prefix}.4", inner, kind, bias)
                i = 5
            sub = i
            convt(out, f"{prefix}.{i + 2}", 2 * inner, outer, 4, bias)
            norm(out, f"{prefix}.{i + 3}", outer, kind)
            if deepest:
                expansion_block(out, f"{prefix}.{i + 4}", outer, kind, bias)
                expansion_block(out, f"{prefix}.{i + 5}", outer, kind, bias)
        prefix = f"{prefix}.{sub}.model"
    return out


def expansion_block(out: Layout, name: str, d: int, kind: str, bias: bool) -> None:
    """OMGD ResnetBlock/ExpansionResnetBlock (reflect): conv_block = [pad, 1x1 d->4d, norm, ReLU,
    3x3 4d->4d, norm, ReLU, 1x1 4d->d, norm, ReLU, Dropout, pad, 3x3 d->d, norm]."""
    cb = f"{name}.conv_block"
    conv(out, f"{cb}.1", d, 4 * d, 1, bias)
    norm(out, f"{cb}.2", 4 * d, kind)
    conv(out, f"{cb}.4", 4 * d, 4 * d, 3, bias)
    norm(out, f"{cb}.5", 4 * d, kind)
    conv(out, f"{cb}.7", 4 * d, d, 1, bias)
    norm(out, f"{cb}.8", d, kind)
    conv(out, f"{cb}.12", d, d, 3, bias)
    norm(out, f"{cb}.13", d, kind)


# -- ResNet family -----------------------------------------------------------------------------
def resnet(ngf: int = 64, n_blocks: int = 9, nc_in: int = 3, nc_out: int = 3) -> Layout:
    """junyanz ResnetGenerator, instance norm, reflect padding, no dropout.

    model = [pad, conv7, IN, ReLU, (conv s2, IN, ReLU) x2, blocks..., (convT, IN, ReLU) x2,
    pad, conv7, Tanh]; block conv_block = [pad, conv3, IN, ReLU, pad, conv3, IN].
    """
    out: Layout = {}
    conv(out, "model.1", nc_in, ngf, 7, True)
    conv(out, "model.4", ngf, 2 * ngf, 3, True)
    conv(out, "model.7", 2 * ngf, 4 * ngf, 3, True)
    for b in range(n_blocks):
        conv(out, f"model.{10 + b}.conv_block.1", 4 * ngf, 4 * ngf, 3, True)
        conv(out, f"model.{10 + b}.conv_block.5", 4 * ngf, 4 * ngf, 3, True)
    i = 10 + n_blocks
    convt(out, f"model.{i}", 4 * ngf, 2 * ngf, 3, True)
    convt(out, f"model.{i + 3}", 2 * ngf, ngf, 3, True)
    conv(out, f"model.{i + 7}", ngf, nc_out, 7, True)
    return out


def separable(out: Layout, name: str, cin: int, cout: int) -> None:
    """SeparableConv2d.conv = [depthwise 3x3 (bias), InstanceNorm, pointwise 1x1 (bias)]."""
    conv(out, f"{name}.conv.0", cin, cin, 3, True, groups=cin)
    conv(out, f"{name}.conv.2", cin, cout, 1, True)


def mobile_block(out: Layout, name: str, ic: int, oc: int) -> None:
    """MobileResnetBlock conv_block = [pad, Sep(ic->oc), norm, ReLU, Dropout, pad, Sep(oc->ic),
    norm]."""
    separable(out, f"{name}.conv_block.1", ic, oc)
    separable(out, f"{name}.conv_block.6", oc, ic)


def sub_mobile_resnet(c: list[int], nc_in: int = 3, nc_out: int = 3) -> Layout:
    """GAN-Compression SubMobileResnetGenerator (instance norm => every conv biased).

    Stem c0; down convs c0 -> 2*c1 -> 4*c2; block i widens 4*c2 -> 4*c[3 + i//3] and back; ups
    4*c2 -> 2*c6 -> c7; last conv c7 -> out. ``mobile_resnet(ngf)`` is the config [ngf] * 8.
    """
    out: Layout = {}
    conv(out, "model.1", nc_in, c[0], 7, True)
    conv(out, "model.4", c[0], 2 * c[1], 3, True)
    conv(out, "model.7", 2 * c[1], 4 * c[2], 3, True)
    for b in range(9):
        mobile_block(out, f"model.{10 + b}", 4 * c[2], 4 * c[3 + b // 3])
    convt(out, "model.19", 4 * c[2], 2 * c[6], 3, True)
    convt(out, "model.22", 2 * c[6], c[7], 3, True)
    conv(out, "model.26", c[7], nc_out, 7, True)
    return out


def mobile_resnet_deepest(ngf: int = 16, nc_in: int = 3, nc_out: int = 3) -> Layout:
    """OMGD MobileResnetDeepestGenerator, instance norm (every conv biased), 9 mobile blocks.

    model = [pad, conv7, IN, ReLU,
             (conv s2, IN, ReLU, ExpansionRB, conv3, IN, ReLU) x2,
             MobileRB x4, ExpansionRB x2, MobileRB x5,
             (convT, IN, ReLU, ExpansionRB, conv3, IN, ReLU) x2, pad, conv7, Tanh]
    """
    out: Layout = {}
    conv(out, "model.1", nc_in, ngf, 7, True)
    i = 4
    for mult in (1, 2):
        c = ngf * mult * 2
        conv(out, f"model.{i}", ngf * mult, c, 3, True)
        expansion_block(out, f"model.{i + 3}", c, "instance", True)
        conv(out, f"model.{i + 4}", c, c, 3, True)
        i += 7
    trunk = 4 * ngf
    for _ in range(4):
        mobile_block(out, f"model.{i}", trunk, trunk)
        i += 1
    for _ in range(2):
        expansion_block(out, f"model.{i}", trunk, "instance", True)
        i += 1
    for _ in range(5):
        mobile_block(out, f"model.{i}", trunk, trunk)
        i += 1
    for mult in (4, 2):
        c = ngf * mult // 2
        convt(out, f"model.{i}", ngf * mult, c, 3, True)
        expansion_block(out, f"model.{i + 3}", c, "instance", True)
        conv(out, f"model.{i + 4}", c, c, 3, True)
        i += 7
    conv(out, f"model.{i + 1}", ngf, nc_out, 7, True)
    return out


# -- CAT's Inception generator ---------------------------------------------------------------
def affine_norm(out: Layout, name: str, c: int, kind: str) -> None:
    """CAT's norms are affine (--norm_affine); batch also tracks running stats (Cityscapes
    scripts), instance does not (CycleGAN scripts)."""
    out[f"{name}.weight"] = [c]
    out[f"{name}.bias"] = [c]
    if kind == "batch":
        out[f"{name}.running_mean"] = [c]
        out[f"{name}.running_var"] = [c]
        out[f"{name}.num_batches_tracked"] = []


def cat_inception(
    ngf: int = 64,
    kind: str = "instance",
    kernels: tuple[int, ...] = (1, 3, 5),
    factor: int = 6,
    n_blocks: int = 9,
    nc_in: int = 3,
    nc_out: int = 3,
) -> Layout:
    """CAT InceptionGenerator (channels None => hidden 4*ngf // factor per branch).

    down_sampling = [pad, conv7, norm, ReLU, (conv3 s2, norm, ReLU) x2];
    features.b = InvertedResidualChannels: res_ops.i = [pad, ConvBNReLU(k), Dropout, pad,
    conv k h->in], dw_ops.i = [ConvBNReLU(1x1), pad, ConvBNReLU(k, groups=h), Dropout,
    conv 1x1 h->in], pw_bn; up_sampling = [(convT, norm, ReLU) x2, pad, conv7 (bias), Tanh].
    ConvBNReLU = Sequential(conv, norm, act). Convs are biased only with InstanceNorm.
    """
    bias = kind == "instance"
    trunk, hidden = 4 * ngf, 4 * ngf // factor
    out: Layout = {}
    conv(out, "down_sampling.1", nc_in, ngf, 7, bias)
    affine_norm(out, "down_sampling.2", ngf, kind)
    conv(out, "down_sampling.4", ngf, 2 * ngf, 3, bias)
    affine_norm(out, "down_sampling.5", 2 * ngf, kind)
    conv(out, "down_sampling.7", 2 * ngf, trunk, 3, bias)
    affine_norm(out, "down_sampling.8", trunk, kind)
    for b in range(n_blocks):
        f = f"features.{b}"
        for i, k in enumerate(kernels):
            conv(out, f"{f}.res_ops.{i}.1.0", trunk, hidden, k, bias)
            affine_norm(out, f"{f}.res_ops.{i}.1.1", hidden, kind)
            conv(out, f"{f}.res_ops.{i}.4", hidden, trunk, k, bias)
        for i, k in enumerate(kernels):
            conv(out, f"{f}.dw_ops.{i}.0.0", trunk, hidden, 1, bias)
            affine_norm(out, f"{f}.dw_ops.{i}.0.1", hidden, kind)
            conv(out, f"{f}.dw_ops.{i}.2.0", hidden, hidden, k, bias, groups=hidden)
            affine_norm(out, f"{f}.dw_ops.{i}.2.1", hidden, kind)
            conv(out, f"{f}.dw_ops.{i}.4", hidden, trunk, 1, bias)
        affine_norm(out, f"{f}.pw_bn", trunk, kind)
    convt(out, "up_sampling.0", trunk, 2 * ngf, 3, bias)
    affine_norm(out, "up_sampling.1", 2 * ngf, kind)
    convt(out, "up_sampling.3", 2 * ngf, ngf, 3, bias)
    affine_norm(out, "up_sampling.4", ngf, kind)
    conv(out, "up_sampling.7", ngf, nc_out, 7, True)
    return out


# -- discriminators ----------------------------------------------------------------------------
def patchgan(nc_in: int, ndf: int = 64, n_layers: int = 3, kind: str = "batch") -> Layout:
    """junyanz NLayerDiscriminator: [conv s2 (bias), LReLU, (conv s2, norm, LReLU) x (n-1),
    conv s1, norm, LReLU, conv s1 -> 1 (bias)]."""
    bias = kind == "instance"
    out: Layout = {}
    conv(out, "model.0", nc_in, ndf, 4, True)
    i, mult = 2, 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        conv(out, f"model.{i}", ndf * prev, ndf * mult, 4, bias)
        norm(out, f"model.{i + 1}", ndf * mult, kind)
        i += 3
    conv(out, f"model.{i}", ndf * mult, 1, 4, True)
    return out


def pixel(nc_in: int, ndf: int = 64, kind: str = "batch") -> Layout:
    """junyanz PixelDiscriminator: net = [1x1 (bias), LReLU, 1x1, norm, LReLU, 1x1 -> 1]."""
    bias = kind == "instance"
    out: Layout = {}
    conv(out, "net.0", nc_in, ndf, 1, True)
    conv(out, "net.2", ndf, 2 * ndf, 1, bias)
    norm(out, "net.3", 2 * ndf, kind)
    conv(out, "net.5", 2 * ndf, 1, 1, bias)
    return out


def params(layout: Layout) -> int:
    """Parameters only (BatchNorm running stats and counters are buffers)."""
    total = 0
    for key, shape in layout.items():
        if key.rsplit(".", 1)[1] in ("running_mean", "running_var", "num_batches_tracked"):
            continue
        n = 1
        for s in shape:
            n *= s
        total += n
    return total


def layout_lines(layout: Layout) -> list[str]:
    """Sorted ``key:d0,d1,...`` lines (a scalar is ``key:``); the hash is over these."""
    return [f"{k}:{','.join(str(d) for d in layout[k])}" for k in sorted(layout)]


def entry(spec: dict, source: dict, layout: Layout, published: int | None, note: str) -> dict:
    count = params(layout)
    if published is not None:
        # A derivation that misses the published count is wrong; refuse to write it.
        assert count == published, (spec, count, published)
    item = {
        "arch": spec,
        "source": source,
        "note": note,
        "params": count,
        "published_params": published,
        "num_entries": len(layout),
    }
    if len(layout) <= COMPACT_ABOVE:
        item["state_dict"] = {k: layout[k] for k in sorted(layout)}
    else:
        lines = layout_lines(layout)
        item["sha256"] = hashlib.sha256("\n".join(lines).encode()).hexdigest()
        item["first"] = lines[:10]
        item["last"] = lines[-10:]
    return item


def _one_line(match: re.Match[str]) -> str:
    numbers = [n for n in re.split(r"[\s,\[\]]+", match[0]) if n]
    return "[" + ", ".join(numbers) + "]"


def main() -> None:
    layouts = {
        "pix2pix_unet_256_ngf64": entry(
            {"type": "unet", "ngf": 64, "norm": "batch"},
            JUNYANZ | {"class": "UnetGenerator(num_downs=8, norm='batch')"},
            unet(64),
            54_413_955,  # offline_assets.md §5 / baselines.md §0
            "pix2pix teacher / original; with dropout the keys are the same",
        ),
        "cyclegan_resnet_9blocks_ngf64": entry(
            {"type": "resnet", "ngf": 64, "n_blocks": 9, "norm": "instance"},
            JUNYANZ | {"class": "ResnetGenerator(n_blocks=9, norm='instance', no_dropout)"},
            resnet(64, 9),
            11_378_179,  # offline_assets.md §5 / baselines.md §0
            "CycleGAN original",
        ),
        "omgd_unet_256_ngf16": entry(
            {"type": "unet", "ngf": 16, "norm": "batch"},
            OMGD | {"file": "models/modules/unet_architecture/unet_generator.py"},
            unet(16),
            3_404_451,  # baselines.md §0, OMGD student 1.0x
            "OMGD pix2pix student",
        ),
        "omgd_unet_deepest_256_ngf16": entry(
            {"type": "unet_deepest", "ngf": 16, "norm": "batch"},
            OMGD | {"file": "models/modules/unet_architecture/unet_deepest_generator.py"},
            unet(16, deepest=True),
            None,  # baselines.md §0 gives only "44.17M"; checked to that precision in the test
            "OMGD deeper pix2pix teacher (netG unet_deepest_256)",
        ),
        "omgd_mobile_resnet_9blocks_ngf16": entry(
            {"type": "mobile_resnet", "ngf": 16, "norm": "instance"},
            OMGD | {"file": "models/modules/resnet_architecture/mobile_resnet_generator.py"},
            sub_mobile_resnet([16] * 8),
            137_347,  # baselines.md §0, OMGD student 1.0x
            "OMGD CycleGAN student",
        ),
        "omgd_mobile_resnet_9blocks_ngf64": entry(
            {"type": "mobile_resnet", "ngf": 64, "norm": "instance"},
            OMGD | {"file": "models/modules/resnet_architecture/mobile_resnet_generator.py"},
            sub_mobile_resnet([64] * 8),
            None,  # baselines.md §0 gives "1.987M"; checked to that precision in the test
            "GAN-Compression / OMGD Mobile ResNet teacher",
        ),
        "omgd_mobile_resnet_deepest_ngf16": entry(
            {"type": "mobile_resnet_deepest", "ngf": 16, "norm": "instance"},
            OMGD
            | {"file": "models/modules/resnet_architecture/mobile_resnet_deepest_generator.py"},
            mobile_resnet_deepest(16),
            None,  # baselines.md §0 gives "2.55M"; checked to that precision in the test
            "OMGD deeper ResNet teacher (netG mobile_deepest_resnet)",
        ),
        "ganc_sub_mobile_16_16_32_16_32_32_16_16": entry(
            {"type": "sub_mobile_resnet", "config": "16_16_32_16_32_32_16_16"},
            GANC | {"file": "models/modules/resnet_architecture/sub_mobile_resnet_generator.py"},
            sub_mobile_resnet([16, 16, 32, 16, 32, 32, 16, 16]),
            356_867,  # baselines.md §0, horse->zebra compressed
            "GAN-Compression horse2zebra compressed generator",
        ),
        "ganc_sub_mobile_32_32_48_32_48_48_16_16": entry(
            {"type": "sub_mobile_resnet", "config": "32_32_48_32_48_48_16_16"},
            GANC | {"file": "models/modules/resnet_architecture/sub_mobile_resnet_generator.py"},
            sub_mobile_resnet([32, 32, 48, 32, 48, 48, 16, 16]),
            822_051,  # baselines.md §0, edges2shoes compressed
            "GAN-Compression edges2shoes compressed generator",
        ),
        "ganc_sub_mobile_32_32_48_32_32_48_24_24": entry(
            {"type": "sub_mobile_resnet", "config": "32_32_48_32_32_48_24_24"},
            GANC | {"file": "models/modules/resnet_architecture/sub_mobile_resnet_generator.py"},
            sub_mobile_resnet([32, 32, 48, 32, 32, 48, 24, 24]),
            780_819,  # baselines.md §0, Cityscapes compressed
            "GAN-Compression Cityscapes compressed generator",
        ),
        "cat_inception_9blocks_ngf64_instance": entry(
            {"type": "inception_resnet", "ngf": 64, "norm": "instance"},
            CAT
            | {
                "class": "InceptionGenerator (netG inception_9blocks), kernel_sizes 1 3 5, "
                "channels_reduction_factor 6, norm instance, norm_affine"
            },
            cat_inception(64, "instance"),
            None,  # baselines.md §0 gives "8.15M"; checked to that precision in test_cat_parts
            "CAT horse2zebra teacher (scripts/cycle_gan/horse2zebra/train_inception_teacher.sh)",
        ),
        "cat_inception_9blocks_ngf64_batch": entry(
            {"type": "inception_resnet", "ngf": 64, "norm": "batch"},
            CAT
            | {
                "class": "InceptionGenerator (netG inception_9blocks), kernel_sizes 1 3 5, "
                "channels_reduction_factor 6, norm batch, norm_affine, "
                "norm_track_running_stats"
            },
            cat_inception(64, "batch"),
            None,
            "CAT pix2pix Cityscapes teacher (scripts/pix2pix/cityscapes/train_inception_teacher"
            ".sh)",
        ),
        "pix2pix_patchgan_basic": entry(
            {"type": "patchgan", "input_nc": 6, "ndf": 64, "n_layers": 3, "norm": "batch"},
            JUNYANZ | {"class": "NLayerDiscriminator(n_layers=3, norm='batch')"},
            patchgan(6, 64, 3, "batch"),
            None,
            "pix2pix 70x70 PatchGAN on concat(A, B)",
        ),
        "cyclegan_patchgan_basic": entry(
            {"type": "patchgan", "input_nc": 3, "ndf": 64, "n_layers": 3, "norm": "instance"},
            JUNYANZ | {"class": "NLayerDiscriminator(n_layers=3, norm='instance')"},
            patchgan(3, 64, 3, "instance"),
            None,
            "CycleGAN 70x70 PatchGAN",
        ),
        "pix2pix_pixel": entry(
            {"type": "pixel", "input_nc": 6, "ndf": 64, "norm": "batch"},
            JUNYANZ | {"class": "PixelDiscriminator(norm='batch')"},
            pixel(6, 64, "batch"),
            None,
            "1x1 PixelGAN",
        ),
    }
    doc = {
        "_comment": (
            "Written by tests/data/derive_official_layouts.py from a hand reading of the official "
            "code (see its docstring); never from vemkit's modules. Shapes as in state_dict(): "
            "ConvTranspose2d weights are [in, out, k, k]; BatchNorm keeps running stats and a "
            "scalar num_batches_tracked (shape []). Large layouts are stored compactly: sha256 "
            "of the sorted lines 'key:d0,d1,...' joined by newlines (a scalar is 'key:'), with the "
            "first and last 10 lines verbatim."
        ),
        "layouts": layouts,
    }
    path = Path(__file__).with_name("official_layouts.json")
    text = json.dumps(doc, indent=1)
    text = re.sub(r"\[[\d,\s]*\]", _one_line, text)  # one line per shape: "key": [a, b]
    path.write_text(text + "\n")
    for name, item in layouts.items():
        print(f"{name:45s} {item['params']:>12,d} params {item['num_entries']:4d} entries")


if __name__ == "__main__":
    main()
