"""CAGC's building blocks: content masks, content-aware channel scores, uniform pruning of the
StyleGAN2 generator and its analytic MAC count."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from vemkit.commands import profile as profile_cmd
from vemkit.errors import VemkitError
from vemkit.profile import ProfileRow, format_table, profile_module
from vemkit.registry import Registry
from vemkit_plugins import archs, masks
from vemkit_plugins.archs.stylegan2 import StyleGAN2Generator, stylegan2_net_shape_macs
from vemkit_plugins.archs.stylegan2_prune import (
    net_shape_of,
    prune_generator,
    prune_generator_state,
    uniform_keep_indices,
)
from vemkit_plugins.masks.bisenet import BiSeNet
from vemkit_plugins.masks.content import spectral_residual_saliency
from vemkit_plugins.methods.cagc_scores import (
    content_aware_prune,
    content_aware_scores,
    salt_and_pepper,
    scored_layers,
)
from vemkit_plugins.methods.recipe_options import ContentAwarePruningOptions

SHAPE = [8, 8, 8, 8, 6, 6]  # input, conv1, up 8, conv 8, up 16, conv 16


@pytest.fixture(scope="module")
def reg() -> Registry:
    r = Registry()
    archs.register(r)
    masks.register(r)
    return r


def tiny_generator(seed: int = 0) -> StyleGAN2Generator:
    torch.manual_seed(seed)
    g = StyleGAN2Generator(size=16, style_dim=8, n_mlp=2, net_shape=SHAPE)
    with torch.no_grad():  # non-zero noise strengths and biases: nothing trivially zero
        for name, p in g.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias"):
                p.uniform_(0.1, 0.3)
    return g


def kill_channel(g: StyleGAN2Generator, entry: int, channel: int) -> None:
    """Make channel ``channel`` of net-shape entry ``entry`` unable to affect the image: zero
    every weight that reads it (styled conv ``entry`` and, for odd entries, its toRGB)."""
    readers = [*scored_layers(g)[:-1], None]
    with torch.no_grad():
        if entry < len(readers) - 1:
            readers[entry].weight[:, :, channel] = 0
        if entry % 2 == 1:
            rgb = g.to_rgb1 if entry == 1 else g.to_rgbs[(entry - 3) // 2]
            rgb.conv.weight[:, :, channel] = 0


class HalfMask(torch.nn.Module):
    """Content = the left half of the image (columns < W/2)."""

    def forward(self, images: Tensor) -> Tensor:
        n, _, h, w = images.shape
        m = images.new_zeros(n, 1, h, w)
        m[..., : w // 2] = 1
        return m


def zero_mask(images: Tensor) -> Tensor:
    return images.new_zeros(images.shape[0], 1, *images.shape[2:])


def whole_mask(images: Tensor) -> Tensor:
    return images.new_ones(images.shape[0], 1, *images.shape[2:])


# -- content-aware scores ------------------------------------------------------------------------


def test_scores_cover_every_entry_and_dead_channels_score_zero() -> None:
    g = tiny_generator()
    kill_channel(g, 2, 3)  # read by convs.1 only
    kill_channel(g, 5, 1)  # the last entry: read by the last toRGB only
    # A channel whose readers are zero still changes the output when the weights reading it
    # change, unless it is also silent: zero its producer row and bias too.
    with torch.no_grad():
        g.convs[0].conv.weight[:, 3] = 0
        g.convs[0].activate.bias[3] = 0
        g.convs[0].noise.weight.zero_()
        g.convs[-1].conv.weight[:, 1] = 0
        g.convs[-1].activate.bias[1] = 0
        g.convs[-1].noise.weight.zero_()
    scores = content_aware_scores(
        g, whole_mask, n_samples=6, batch_size=4, rng=torch.Generator().manual_seed(0)
    )
    assert [s.numel() for s in scores] == SHAPE
    assert scores[2][3] == 0 and scores[5][1] == 0
    alive = [s.clone() for s in scores]
    alive[2][3] = alive[5][1] = 1.0
    assert all((s > 0).all() for s in alive)
    # the generator's flags and grads are left as they were
    assert all(p.requires_grad and p.grad is None for p in g.parameters())


def test_empty_mask_gives_zero_scores() -> None:
    g = tiny_generator()
    scores = content_aware_scores(g, zero_mask, n_samples=4, batch_size=2)
    assert all(torch.equal(s, torch.zeros_like(s)) for s in scores)


def test_noise_falls_inside_the_mask_only() -> None:
    images = torch.zeros(3, 3, 16, 16)
    mask = HalfMask()(images)
    positions, values = salt_and_pepper(images, mask, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(positions, mask.bool())  # p = 1: exactly the mask
    assert set(values.unique().tolist()) == {-1.0, 1.0}
    positions, _ = salt_and_pepper(images, mask, 0.05, torch.Generator().manual_seed(0))
    assert not positions[..., 8:].any() and positions[..., :8].any()
    # about 5 % of the masked pixels: 384 pixels, binomial std 4.3
    assert abs(int(positions.sum()) - 0.05 * 384) < 4 * 4.3


def test_scores_equal_the_masked_loss_gradient_by_hand() -> None:
    g = tiny_generator()
    torch.manual_seed(11)  # the generator's noise maps come from the global RNG
    scores = content_aware_scores(
        g,
        HalfMask(),
        n_samples=3,
        batch_size=3,
        noise_prob=0.2,
        rng=torch.Generator().manual_seed(7),
    )
    # the same draws, replayed: z, the noise maps, then the salt and pepper
    torch.manual_seed(11)
    rng = torch.Generator().manual_seed(7)
    z = torch.randn(3, 8, generator=rng)
    images = g([z])
    positions, values = salt_and_pepper(images, HalfMask()(images), 0.2, rng)
    noisy = torch.where(positions, values.expand_as(images), images)
    g.zero_grad()
    (noisy - images).abs().sum().backward()
    layers = scored_layers(g)
    expected = [layer.weight.grad.abs().mean(dim=(0, 1, 3, 4)) for layer in layers]
    for got, want in zip(scores, expected, strict=True):
        torch.testing.assert_close(got, want)
    # restricting the mask changes the scores (pixels outside it no longer count)
    whole = content_aware_scores(
        g,
        whole_mask,
        n_samples=3,
        batch_size=3,
        noise_prob=0.2,
        rng=torch.Generator().manual_seed(7),
    )
    assert not torch.allclose(whole[3], scores[3])


def test_scores_reject_bad_masks_and_arguments() -> None:
    g = tiny_generator()
    with pytest.raises(VemkitError, match="mask returned shape"):
        content_aware_scores(g, lambda x: x[:, :1, :4], n_samples=2, batch_size=2)
    with pytest.raises(VemkitError, match="noise_prob"):
        content_aware_scores(g, whole_mask, noise_prob=0)


# -- uniform pruning -----------------------------------------------------------------------------


def test_uniform_keep_indices_keep_the_top_scored() -> None:
    scores = [torch.tensor([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 1.0])]
    keep = uniform_keep_indices(scores, [10], 0.7)  # remove int(7.0) = 7
    assert keep[0].tolist() == [2, 6, 9]
    keep = uniform_keep_indices(scores, [10], 0.0)
    assert keep[0].tolist() == list(range(10))
    ties = uniform_keep_indices([torch.zeros(4)], [4], 0.5)
    assert ties[0].tolist() == [2, 3]  # stable: the lower indices go first
    with pytest.raises(VemkitError, match="3 channel scores for 4"):
        uniform_keep_indices([torch.zeros(3)], [4], 0.5)
    with pytest.raises(VemkitError, match="cover 1 layers"):
        uniform_keep_indices([torch.zeros(4)], [4, 4], 0.5)


def test_pruned_generator_holds_the_kept_slices() -> None:
    g = tiny_generator()
    gen = torch.Generator().manual_seed(3)
    scores = [torch.rand(c, generator=gen) for c in SHAPE]
    keep = uniform_keep_indices(scores, SHAPE, 0.5)
    assert [k.numel() for k in keep] == [c - int(c * 0.5) for c in SHAPE]
    for s, k in zip(scores, keep, strict=True):  # every kept score beats every removed one
        removed = torch.ones(s.numel(), dtype=torch.bool)
        removed[k] = False
        assert s[k].min() > s[removed].max()
    pruned = prune_generator(g, keep)
    assert list(pruned.net_shape) == [4, 4, 4, 4, 3, 3]
    torch.testing.assert_close(pruned.input.input, g.input.input[:, keep[0]])
    torch.testing.assert_close(
        pruned.conv1.conv.weight, g.conv1.conv.weight[:, keep[1]][:, :, keep[0]]
    )
    torch.testing.assert_close(
        pruned.convs[1].conv.weight, g.convs[1].conv.weight[:, keep[3]][:, :, keep[2]]
    )
    torch.testing.assert_close(
        pruned.convs[2].conv.modulation.weight, g.convs[2].conv.modulation.weight[keep[3]]
    )
    torch.testing.assert_close(pruned.convs[3].activate.bias, g.convs[3].activate.bias[keep[5]])
    torch.testing.assert_close(pruned.to_rgb1.conv.weight, g.to_rgb1.conv.weight[:, :, keep[1]])
    torch.testing.assert_close(
        pruned.to_rgbs[1].conv.modulation.bias, g.to_rgbs[1].conv.modulation.bias[keep[5]]
    )
    torch.testing.assert_close(pruned.style[2].weight, g.style[2].weight)
    torch.testing.assert_close(pruned.noises.noise_3, g.noises.noise_3)


def test_pruning_channels_nobody_reads_leaves_the_image_unchanged() -> None:
    # If every weight reading the removed channels is zero, they never reach the image (and
    # contribute nothing to the demodulation norms): the pruned generator must then compute
    # the same function, which checks every slice and its alignment at once.
    g = tiny_generator()
    keep = [torch.tensor(k) for k in ([0, 2, 5], [1, 4, 6, 7], [0, 3], [2, 5, 6], [1, 4], [0, 5])]
    for entry, width in enumerate(SHAPE):
        for c in set(range(width)) - set(keep[entry].tolist()):
            kill_channel(g, entry, c)
    pruned = prune_generator(g, keep)
    assert list(pruned.net_shape) == [3, 4, 2, 3, 2, 2]
    z = torch.randn(3, 8)
    # One deliberate difference, as in CAGC: the equalised-lr scale 1/√fan_in of a layer is
    # recomputed from its pruned width. Demodulated convs cancel it; the toRGB convs (no
    # demodulation) come out √(C/C') larger. Undo that here to compare the functions.
    with torch.no_grad():
        for rgb, entry in zip([pruned.to_rgb1, *pruned.to_rgbs], (1, 3, 5), strict=True):
            rgb.conv.weight.mul_((len(keep[entry]) / SHAPE[entry]) ** 0.5)
    torch.testing.assert_close(
        pruned(z, randomize_noise=False), g(z, randomize_noise=False), rtol=1e-5, atol=1e-5
    )
    # and the state dict round-trips through the rosinality layout (CAGC's pruned checkpoint)
    state = prune_generator_state(g.state_dict(), keep)
    assert net_shape_of(state) == [3, 4, 2, 3, 2, 2]
    with pytest.raises(VemkitError, match="distinct channels"):
        prune_generator_state(g.state_dict(), [torch.tensor([0, 0]), *keep[1:]])


def test_score_prune_pipeline_removes_dead_channels_first() -> None:
    # Channels that cannot affect the output score 0 and are the first to go.
    g = tiny_generator()
    dead = {2: [1, 6], 4: [0, 3, 5]}
    with torch.no_grad():
        for entry, channels in dead.items():
            producer = scored_layers(g)[entry - 1]
            act = g.convs[entry - 2].activate
            for c in channels:
                producer.weight[:, c] = 0
                act.bias[c] = 0
                kill_channel(g, entry, c)
        for c in g.convs:
            c.noise.weight.zero_()
    scores = content_aware_scores(
        g, whole_mask, n_samples=4, batch_size=2, rng=torch.Generator().manual_seed(0)
    )
    assert all(scores[e][c] == 0 for e, cs in dead.items() for c in cs)
    keep = uniform_keep_indices(scores, SHAPE, 0.4)  # removes 3 of 8, 2 of 6
    assert set(dead[2]).isdisjoint(keep[2].tolist())
    # three dead channels tie at 0 in entry 4 and two go: the lower indices (stable order)
    assert set(dead[4][:2]).isdisjoint(keep[4].tolist()) and 5 in keep[4].tolist()


def test_content_aware_prune_end_to_end() -> None:
    g = tiny_generator()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    out = content_aware_prune(
        g,
        HalfMask(),
        remove_ratio=0.7,
        n_samples=4,
        batch_size=2,
        rng=torch.Generator().manual_seed(0),
    )
    # C − int(0.7·C): 8 → 3, 6 → 2
    assert list(out.generator.net_shape) == [3, 3, 3, 3, 2, 2]
    for score, kept in zip(out.scores, out.keep, strict=True):
        dropped = torch.ones(score.numel(), dtype=torch.bool)
        dropped[kept] = False
        assert score[kept].min() >= score[dropped].max()
    torch.testing.assert_close(
        out.generator.convs[2].conv.weight,
        g.convs[2].conv.weight[:, out.keep[4]][:, :, out.keep[3]],
    )
    for k, v in g.state_dict().items():  # the original is untouched
        assert torch.equal(v, before[k]), k
    assert out.generator(torch.randn(2, 8)).shape == (2, 3, 16, 16)


# -- analytic MACs -------------------------------------------------------------------------------


def test_cagc_analytic_macs_full_and_70_percent(reg: Registry) -> None:
    # CAGC Util/Calculators.py: GENERATOR_FLOPS_256PX = 45,124,673,536; the 0.7 student is
    # paper Table 3's "4.1B". Both through the generator's own named convention.
    full = reg.build("arch", {"type": "stylegan2_generator"}).named_macs()["cagc_analytic"]
    assert full == 45_124_673_536
    student = reg.build("arch", {"type": "stylegan2_generator", "remove_ratio": 0.7})
    macs = student.named_macs()["cagc_analytic"]
    assert macs == pytest.approx(4.1e9, rel=0.02)
    assert macs == stylegan2_net_shape_macs([154] * 10 + [77, 77, 39, 39])


def test_profile_prints_the_named_convention_beside_the_generic_one(reg: Registry) -> None:
    g = reg.build(
        "arch",
        {"type": "stylegan2_generator", "size": 16, "style_dim": 8, "n_mlp": 2, "net_shape": SHAPE},
    )
    row = profile_module("student", g, (8,), arch="stylegan2_generator")
    assert row.macs_named == {"cagc_analytic": stylegan2_net_shape_macs(SHAPE, 8, 2)}
    assert row.macs_paper > 0 and row.to_dict()["macs_named"] == row.macs_named
    # the paper-scale table: teacher 45.12G, CAGC's student 4.12G (10.9x) in the named column
    teacher = ProfileRow(
        "teacher",
        30_034_338,
        85_020_000_000,
        0,
        [(1, 512)],
        macs_named={"cagc_analytic": 45_124_673_536},
    )
    student = ProfileRow(
        "student",
        5_570_000,
        7_810_000_000,
        0,
        [(1, 512)],
        macs_named={"cagc_analytic": 4_123_578_080},
    )
    energy = ProfileRow("mi.energy", 1000, 10**9, 0, [(1, 3, 8, 8)], generator=False)
    table = format_table([teacher, student, energy])
    header = table.splitlines()[0]
    assert "MACs (paper)" in header and "MACs (cagc_analytic)" in header
    assert header.index("MACs (paper)") < header.index("MACs (cagc_analytic)")
    lines = table.splitlines()
    assert "45.12G (1.0x)" in lines[2] and "4.12G (10.9x)" in lines[3]
    assert lines[4].split()[3] == "-"  # the energy net has no named count


def test_profile_cli_feeds_a_latent_and_reports_the_named_count(capsys) -> None:
    parser = argparse.ArgumentParser(prog="vemkit")
    profile_cmd.add_parser(parser.add_subparsers(dest="command"))
    arch = "{type: stylegan2_generator, size: 16, style_dim: 8, n_mlp: 2, remove_ratio: 0.5}"
    # no --input: an unconditional generator is fed its latent, not a 3x256x256 image
    args = parser.parse_args(["profile", "--arch", arch, "--no-latency", "--json"])
    assert profile_cmd.run(args) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["input_shapes"] == [[1, 8]]
    shape = [256] * 6  # config-F widths at 4..16 px are 512; 512 − int(512·0.5) = 256
    assert row["macs_named"] == {"cagc_analytic": stylegan2_net_shape_macs(shape, 8, 2)}


# -- masks ---------------------------------------------------------------------------------------


def test_registered_masks(reg: Registry) -> None:
    assert set(reg.names("mask")) == {"whole", "saliency", "face_parser"}
    whole = reg.build("mask", {"type": "whole"})
    out = whole(torch.rand(2, 3, 8, 8) * 2 - 1)
    assert out.shape == (2, 1, 8, 8) and bool((out == 1).all())
    assert whole.label == "whole image"
    assert "offline fallback" in reg.build("mask", {"type": "saliency"}).label
    opts = ContentAwarePruningOptions()
    assert (opts.n_samples, opts.batch_size, opts.noise_prob, opts.remove_ratio) == (
        400,
        10,
        0.05,
        0.7,
    )


def test_saliency_mask_finds_the_object(reg: Registry) -> None:
    # a bright square on a grey background with a little sensor-like noise (a synthetic image
    # without any has exact spectral zeros, which no photo or generated image has): the
    # salient pixels are on the square
    gen = torch.Generator().manual_seed(0)
    img = torch.full((1, 3, 64, 64), -0.2) + 0.05 * torch.randn(1, 1, 64, 64, generator=gen)
    img[..., 24:40, 20:36] += 1.1
    mask = reg.build("mask", {"type": "saliency", "threshold": 2.0})(img)
    assert mask.shape == (1, 1, 64, 64) and set(mask.unique().tolist()) <= {0.0, 1.0}
    inside = mask[..., 20:44, 16:40].sum()
    assert mask.sum() > 0 and inside / mask.sum() > 0.95
    # and it is translation-equivariant: move the square, the mask follows
    shifted = torch.roll(img, shifts=(0, 16), dims=(2, 3))
    moved = reg.build("mask", {"type": "saliency", "threshold": 2.0})(shifted)
    assert moved[..., 20:44, 32:56].sum() / moved.sum() > 0.95
    sal = spectral_residual_saliency(img)
    assert sal.shape == (1, 1, 64, 64) and (sal >= 0).all()


def test_face_parser_needs_user_weights(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(VemkitError, match=r"79999_iter\.pth.*does not download"):
        reg.build("mask", {"type": "face_parser", "weights": str(tmp_path / "none.pth")})
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(VemkitError, match="not a 19-class BiSeNet"):
        reg.build("mask", {"type": "face_parser", "weights": str(bad)})


def test_face_parser_with_weights(reg: Registry, tmp_path: Path) -> None:
    torch.manual_seed(0)
    parser = BiSeNet(19)
    state = parser.state_dict()
    # the released checkpoint's names (zllackey/face-parsing.PyTorch model.py / resnet.py)
    assert tuple(state["cp.resnet.layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)
    assert tuple(state["cp.arm32.conv_atten.weight"].shape) == (128, 128, 1, 1)
    assert tuple(state["ffm.conv1.weight"].shape) == (64, 256, 1, 1)
    assert tuple(state["conv_out.conv_out.weight"].shape) == (19, 256, 1, 1)
    assert tuple(state["conv_out32.conv_out.weight"].shape) == (19, 64, 1, 1)
    path = tmp_path / "79999_iter.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    config = {"type": "face_parser", "weights": str(path), "parse_size": 64}
    mask = reg.build("mask", config)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    out = mask(images)
    assert out.shape == (2, 1, 32, 32) and set(out.unique().tolist()) <= {0.0, 1.0}
    classes = mask.classes(images)
    expected = ~((classes == 0) | (classes == 16))
    resized = torch.nn.functional.interpolate(expected[:, None].float(), (32, 32), mode="bilinear")
    torch.testing.assert_close(out, (resized > 0.5).float())
    none = reg.build("mask", {**config, "exclude": list(range(19))})(images)
    assert not none.any()
    mask.train()
    assert not mask.parser.training  # frozen BatchNorm statistics
