"""Lower precision where it keeps the losses: VEM's ``autocast`` (the energy's passes under bf16)
and OMGD's ``perceptual_autocast``, each against the fp32 path, from the same weights, batch and
noise. A default may move each loss by at most ``BF16_TOLERANCE`` (relative) in the first
iteration and ``DRIFT_TOLERANCE`` over the first few; ``autocast: all`` is an option because it
moves the energy's loss by more."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F

from benchmarks import throughput
from tests.test_benchmarks_issue7 import TINY_PIX2PIX
from vemkit.errors import VemkitError
from vemkit.spec import load_spec
from vemkit_plugins._precision import has_fast_bf16
from vemkit_plugins.energies.conv_sn import ConvSNEnergy, _box2
from vemkit_plugins.methods.omgd import PERCEPTUAL_BF16_TOLERANCE
from vemkit_plugins.mi.vem import BF16_TOLERANCE, DRIFT_TOLERANCE, VEM
from vemkit_plugins.samplers.langevin import Langevin

needs_bf16 = pytest.mark.skipif(
    not has_fast_bf16("cpu"), reason="this CPU has no bf16 units: the options leave fp32 alone"
)


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = float(a), float(b)
    return abs(a - b) / max(abs(a), abs(b))


def test_box_filtered_kernel_is_the_four_padded_sum_bit_for_bit():
    w = torch.randn(16, 8, 3, 3)
    four = 0.25 * (
        F.pad(w, (0, 1, 0, 1))
        + F.pad(w, (1, 0, 0, 1))
        + F.pad(w, (0, 1, 1, 0))
        + F.pad(w, (1, 0, 1, 0))
    )
    assert torch.equal(_box2(w), four)


def _energy() -> ConvSNEnergy:
    torch.manual_seed(0)
    energy = ConvSNEnergy(3, width=16, blocks=3, downsample=1)
    with torch.no_grad():  # trained-looking energies: branches active, energies not ~0
        for block in energy.blocks:
            block.conv2.weight.normal_(0.0, 0.3)
    return energy


def _one_step(
    autocast: str, energy: ConvSNEnergy, t: torch.Tensor, s0: torch.Tensor, noise_seed: int = 1
) -> dict:
    """One energy update and the student term, as an iteration runs them."""
    vem = VEM(copy.deepcopy(energy), Langevin(), autocast=autocast)
    stem_dtypes: list[torch.dtype] = []
    vem.energy.stem.register_forward_hook(lambda m, i, o: stem_dtypes.append(o.dtype))
    torch.manual_seed(noise_seed)  # the same Langevin noise for every precision
    s = s0.clone().requires_grad_(True)
    t_neg, diag = vem.fit(t, s)  # K chain passes, then the update's pass
    term = vem.student_term(t, s, t_neg)
    term.backward()
    steps = vem.sampler.steps
    assert len(stem_dtypes) == steps + 2
    return {
        "energy_loss": diag["loss"],
        "student_term": term.detach(),
        "t_neg": t_neg,
        "grad_s": s.grad,
        "sampler_dtypes": set(stem_dtypes[:steps]),
        "loss_dtypes": set(stem_dtypes[steps:]),
        "term_dtype": term.dtype,
    }


@needs_bf16
def test_vem_autocast_sampler_keeps_the_losses_and_all_is_cheaper_but_further():
    energy = _energy()
    g = torch.Generator().manual_seed(2)
    t = torch.rand(4, 3, 64, 64, generator=g) * 2 - 1
    s0 = (t + 0.3 * torch.randn(4, 3, 64, 64, generator=g)).clamp(-1, 1)
    ref = _one_step("none", energy, t, s0)
    sampler = _one_step("sampler", energy, t, s0)
    every = _one_step("all", energy, t, s0)

    # Where each pass ran: the chain in bf16 for sampler/all, the losses in bf16 for all only.
    assert ref["sampler_dtypes"] == ref["loss_dtypes"] == {torch.float32}
    assert sampler["sampler_dtypes"] == {torch.bfloat16}
    assert sampler["loss_dtypes"] == {torch.float32}
    assert every["sampler_dtypes"] == every["loss_dtypes"] == {torch.bfloat16}
    # Energies, losses and samples stay fp32 whatever ran inside.
    for out in (ref, sampler, every):
        assert out["term_dtype"] == out["t_neg"].dtype == out["grad_s"].dtype == torch.float32

    # The default (sampler): each loss within the tolerance, and every difference smaller than
    # what the sampler's own randomness makes (another draw of its noise): the losses by under
    # half (0.1 on AVX512-BF16, 0.3 on AMX), the samples by under a tenth, the gradient a fifth.
    other = _one_step("none", energy, t, s0, noise_seed=7)
    for key in ("energy_loss", "student_term"):
        assert _rel(sampler[key], ref[key]) <= BF16_TOLERANCE
        assert _rel(sampler[key], ref[key]) <= 0.5 * _rel(other[key], ref[key])

    def rms(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).pow(2).mean().sqrt())

    assert 0 < rms(sampler["t_neg"], ref["t_neg"]) <= 0.1 * rms(other["t_neg"], ref["t_neg"])

    def misalignment(a: torch.Tensor, b: torch.Tensor) -> float:
        return 1.0 - float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0))

    assert misalignment(sampler["grad_s"], ref["grad_s"]) <= 0.2 * misalignment(
        other["grad_s"], ref["grad_s"]
    )
    # all: really lower precision (the losses move), and further from fp32 than sampler.
    assert _rel(every["energy_loss"], ref["energy_loss"]) > _rel(
        sampler["energy_loss"], ref["energy_loss"]
    )
    assert math.isfinite(float(every["energy_loss"])) and math.isfinite(
        float(every["student_term"])
    )


def test_vem_autocast_none_is_the_plain_fp32_computation():
    energy = _energy()
    t = torch.rand(2, 3, 32, 32) * 2 - 1
    s = torch.rand(2, 3, 32, 32) * 2 - 1
    vem = VEM(copy.deepcopy(energy), autocast="none")
    plain = copy.deepcopy(energy)
    e_pos, e_neg = vem.energies(t, s, s)
    e = plain(torch.cat([t, s]), torch.cat([s, s]))  # one call: one power iteration, as there
    assert torch.equal(e_pos, e[:2]) and torch.equal(e_neg, e[2:])
    with pytest.raises(VemkitError, match="autocast must be one of none, sampler, all"):
        VEM(energy, autocast="fp16")  # type: ignore[arg-type]


def test_vem_options_default_to_the_sampler_in_bf16_and_reject_others():
    spec = load_spec(throughput.REPO / "specs/paper/edges2shoes_omgd_vem.yaml")
    assert spec.mi.autocast == "sampler" and spec.method.perceptual_autocast == "bf16"
    with pytest.raises(VemkitError, match="autocast"):
        load_spec(throughput.REPO / "specs/paper/edges2shoes_omgd_vem.yaml", ["mi.autocast=fp16"])


@needs_bf16
def test_the_defaults_keep_every_loss_of_an_omgd_vem_run_within_the_tolerance(tmp_path):
    # Two tiny pix2pix OMGD+VEM runs from one seed, the defaults against every lower-precision
    # option off (the benchmark's vem_fp32 side): each loss term, 3 iterations.
    out = tmp_path / "throughput.json"
    argv = [
        "--settings", "pix2pix", "--size", "32", "--iterations", "1", "--warmup", "0",
        "--repeats", "1", "--device", "cpu", "--threads", "1", "--perceptual", "random_vgg16",
        "--sides", "vem", "--losses", "3", "--malloc", "default", "--output", str(out),
        "--quiet", *[x for s in TINY_PIX2PIX for x in ("--set", s)],
        "--vem-set", "mi.energy.width=8", "--clock", "cpu",
    ]  # fmt: skip
    assert throughput.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["clock"] == "cpu"
    (res,) = report["results"]
    assert list(res["samples"]) == ["vem"] and res["samples"]["vem"][0][0] > 0
    assert res["vem_over_omgd"] is None and res["fp32_over_vem"] is None
    losses = res["losses"]
    assert losses["iterations"] == 3 and len(losses["values"]["vem"]) == 3
    diffs = losses["relative_difference"]
    terms = [k for k, d in diffs.items() if d["loss"]]
    assert {"mi.energy", "mi.vem", "omgd.style.wide", "omgd.feature.wide"} <= set(terms)
    # The first iteration (same weights, batch, noise) isolates the precision; later ones add
    # the drift of training on slightly different gradients.
    tolerance = min(BF16_TOLERANCE, PERCEPTUAL_BF16_TOLERANCE)
    moved = {k: diffs[k]["first"] for k in terms if diffs[k]["first"] > tolerance}
    assert not moved, moved
    drifted = {k: diffs[k]["max"] for k in terms if diffs[k]["max"] > DRIFT_TOLERANCE}
    assert not drifted, drifted
    # The teachers and discriminator never see the student: bit-identical.
    assert diffs["loss/teacher"]["max"] == diffs["loss/discriminator"]["max"] == 0.0
    # ... and the defaults are really on: the student's perceptual terms moved.
    assert diffs["omgd.style.wide"]["first"] > 0
    assert losses["losses_max"]["value"] == max(diffs[k]["max"] for k in terms)


def test_without_bf16_units_the_bf16_options_leave_the_passes_in_fp32(monkeypatch):
    # Emulated bf16 is slower than fp32: the options only take effect on bf16 hardware.
    from vemkit_plugins import _precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    _precision.has_fast_bf16.cache_clear()
    try:
        assert not _precision.has_fast_bf16("cpu")
        energy = _energy()
        t = torch.rand(2, 3, 32, 32) * 2 - 1
        out = _one_step("all", energy, t, t.flip(0))
        assert out["sampler_dtypes"] == out["loss_dtypes"] == {torch.float32}
        ref = _one_step("none", energy, t, t.flip(0))
        assert torch.equal(out["t_neg"], ref["t_neg"])
        assert torch.equal(out["energy_loss"], ref["energy_loss"])
    finally:
        monkeypatch.undo()
        _precision.has_fast_bf16.cache_clear()
