"""Write ``omgd_discriminator_keys.json``: state-dict keys and shapes of OMGD's shared D.

Derived by hand, in plain Python (no torch, no vemkit), from reading bytedance/OMGD @
d5b3d3ab294e06a335c044b550a4d6e664769cd4 ``models/modules/discriminators.py``
(``MultiNLayerDiscriminator``, ``ConvReLU``, ``ConvBNReLU``, ``Conv``) and ``models/networks.py``
(``define_D`` for netD ``multi_n_layers``, ``get_norm_layer``); only facts were taken:

* five ``nn.ModuleList`` attributes ``block1s`` .. ``block5s``, each filled in a loop
  ``for _ in [0, 1]`` — two copies of every block, whatever ``n_share`` is;
* every wrapper keeps its layers in ``self.block = nn.Sequential(...)``: conv at ``block.0``,
  norm (ConvBNReLU only) at ``block.1``;
* 4×4 convs, widths input_nc→ndf→2ndf→4ndf→8ndf→1; ConvReLU and Conv use ``use_bias=True``
  (their default, not overridden), ConvBNReLU gets ``use_bias = norm is InstanceNorm2d``;
* batch norm = BatchNorm2d(affine, tracked stats): weight, bias, running_mean, running_var
  [C] and num_batches_tracked []; instance norm = InstanceNorm2d(affine=False, no stats): no keys.

Run from the repository root: ``.venv/bin/python tests/data/derive_omgd_discriminator_keys.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

SOURCE = {
    "repo": "bytedance/OMGD",
    "commit": "d5b3d3ab294e06a335c044b550a4d6e664769cd4",
    "files": ["models/modules/discriminators.py", "models/networks.py"],
}


def layout(input_nc: int, ndf: int, norm: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    bn_bias = norm == "instance"
    widths = [input_nc, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 1]
    for copy in (0, 1):
        for k in range(1, 6):
            c_in, c_out = widths[k - 1], widths[k]
            prefix = f"block{k}s.{copy}.block"
            out[f"{prefix}.0.weight"] = [c_out, c_in, 4, 4]
            middle = 2 <= k <= 4  # ConvBNReLU
            if not middle or bn_bias:
                out[f"{prefix}.0.bias"] = [c_out]
            if middle and norm == "batch":
                for key in ("weight", "bias", "running_mean", "running_var"):
                    out[f"{prefix}.1.{key}"] = [c_out]
                out[f"{prefix}.1.num_batches_tracked"] = []
    return out


def main() -> None:
    layouts = {
        "omgd_pix2pix": {
            "arch": {"type": "omgd_patchgan", "input_nc": 6, "ndf": 128, "norm": "batch"},
            "note": "OMGD pix2pix scripts: --netD multi_n_layers --norm batch, ndf 128 default",
            "keys": layout(6, 128, "batch"),
        },
        "instance_ndf8": {
            "arch": {"type": "omgd_patchgan", "input_nc": 3, "ndf": 8, "norm": "instance"},
            "note": "instance norm: biased middle convs, no norm keys",
            "keys": layout(3, 8, "instance"),
        },
    }
    for entry in layouts.values():
        entry["params"] = sum(
            _numel(shape) for key, shape in entry["keys"].items() if not _is_buffer(key)
        )
    data = {
        "_comment": (
            "Written by tests/data/derive_omgd_discriminator_keys.py from a hand reading of "
            "bytedance/OMGD (see its docstring); never from vemkit's modules."
        ),
        "source": SOURCE,
        "layouts": layouts,
    }
    path = Path(__file__).with_name("omgd_discriminator_keys.json")
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _is_buffer(key: str) -> bool:
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))


if __name__ == "__main__":
    main()
