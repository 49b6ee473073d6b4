"""How much OMGD's perceptual terms weigh with a given feature network: the calibration tool.

OMGD's student loss weights (SSIM 10, style 1e4, feature 10) were set for ImageNet VGG16
features. The style term is a difference of Gram matrices, so its size goes with the *square*
of the network's activation scale, and the feature term with the scale itself: another network
(the offline Inception substitute) puts other magnitudes behind the same weights. This script
measures the unweighted terms on image pairs of a paired data set, for every network it can
build, and prints for each the weighted terms next to the SSIM term:

* pairs ``blur``: a target image and a blurred, contrast-reduced copy (what an early student
  produces), and ``other``: two different target images;
* with ``--vgg-weights PATH`` (torchvision's vgg16-397923af.pth, not obtainable offline here)
  it also prints the weights that give the substitute the magnitudes OMGD's weights give VGG16:
  ``w_substitute = w_vgg · median(term_vgg / term_substitute)`` over the pairs.

    .venv/bin/python benchmarks/perceptual_scale.py --root data/edges2shoes-fmnist --items 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OMGD_WEIGHTS = {"ssim": 10.0, "style": 1e4, "feature": 10.0}


def image_pairs(root: str, items: int, size: int) -> dict[str, tuple]:
    import torch
    import torch.nn.functional as F

    from vemkit import registry

    data = registry.build(
        "dataset", {"type": "aligned", "root": root, "split": "test", "size": size}
    )
    targets = torch.stack([data[i]["target"] for i in range(min(items + 1, len(data)))])
    real = targets[:-1]
    # An early student: blurred (5×5 box), contrast halved towards mid-grey.
    blurred = F.avg_pool2d(real, 5, stride=1, padding=2, count_include_pad=False) * 0.5
    return {"blur": (real, blurred), "other": (real, targets[1:])}


def unweighted_terms(extractor, a, b, layer: int = 1) -> dict[str, list[float]]:
    """Per pair: 1 − SSIM, the style term and the feature term, unweighted (OMGD's formulas)."""
    import torch

    from vemkit_plugins.methods.omgd_losses import feature_loss, ssim_loss, style_loss

    out: dict[str, list[float]] = {"ssim": [], "style": [], "feature": []}
    with torch.no_grad():
        for x, y in zip(a, b, strict=True):
            fx, fy = extractor(x[None]), extractor(y[None])
            out["ssim"].append(float(ssim_loss(x[None], y[None])))
            out["style"].append(float(style_loss(fx, fy)))
            out["feature"].append(float(feature_loss(fx, fy, layer)))
    return out


def main(argv: list[str] | None = None) -> dict:
    import torch

    from vemkit_plugins.methods.perceptual import build_extractor

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(ROOT / "data" / "edges2shoes-fmnist"))
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--vgg-weights", default=None, help="torchvision vgg16-397923af.pth")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/perceptual_scale.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    networks = {"inception": build_extractor("inception")}
    if args.vgg_weights:
        networks["vgg16"] = build_extractor("vgg16", vgg_weights=args.vgg_weights)
    pairs = image_pairs(args.root, args.items, args.size)
    terms = {
        net: {kind: unweighted_terms(ext, a, b) for kind, (a, b) in pairs.items()}
        for net, ext in networks.items()
    }
    print(f"OMGD's weighted student terms, median over {args.items} pairs at {args.size} px")
    print("| network | pairs | ssim | style | feature | style share |\n|---|---|---|---|---|---|")
    for net, by_kind in terms.items():
        for kind, values in by_kind.items():
            w = {t: OMGD_WEIGHTS[t] * statistics.median(v) for t, v in values.items()}
            share = w["style"] / sum(w.values())
            print(
                f"| {net} | {kind} | {w['ssim']:.3g} | {w['style']:.3g} | "
                f"{w['feature']:.3g} | {share:.0%} |"
            )
    result: dict = {"items": args.items, "size": args.size, "terms": terms}
    if "vgg16" in terms:
        calibrated = {}
        for term in ("style", "feature"):
            ratios = [
                v / s
                for kind in pairs
                for v, s in zip(
                    terms["vgg16"][kind][term], terms["inception"][kind][term], strict=True
                )
                if s > 0
            ]
            calibrated[term] = OMGD_WEIGHTS[term] * statistics.median(ratios)
        result["inception_weights"] = calibrated
        print(
            f"\ninception weights matching VGG16's magnitudes: style_weight "
            f"{calibrated['style']:.3g}, feature_weight {calibrated['feature']:.3g}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
