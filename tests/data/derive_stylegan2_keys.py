"""Write ``stylegan2_rosinality_keys.json``: state-dict keys and shapes of rosinality's StyleGAN2.

Enumerated by hand, in plain Python (no torch, no vemkit), from reading the constructors of
rosinality/stylegan2-pytorch ``model.py`` @ 7e46e4754bf4e787053ee833d611ebfea5db1ddf
(``Generator(256, 512, 8, channel_multiplier=2)``, ``Discriminator(256, channel_multiplier=2)``),
so that ``tests/test_archs_uncond.py`` compares vemkit's modules with an independent derivation.
Run from the repository root: ``.venv/bin/python tests/data/derive_stylegan2_keys.py``.
"""

import json
import math
from pathlib import Path

size, style_dim, n_mlp, cm = 256, 512, 8, 2
channels = {
    4: 512,
    8: 512,
    16: 512,
    32: 512,
    64: 256 * cm,
    128: 128 * cm,
    256: 64 * cm,
    512: 32 * cm,
    1024: 16 * cm,
}
g = {}
# style = Sequential(PixelNorm, EqualLinear x n_mlp)
for i in range(1, n_mlp + 1):
    g[f"style.{i}.weight"] = [style_dim, style_dim]
    g[f"style.{i}.bias"] = [style_dim]


def modconv(prefix, cin, cout, k, up):
    d = {
        f"{prefix}.weight": [1, cout, cin, k, k],
        f"{prefix}.modulation.weight": [cin, style_dim],
        f"{prefix}.modulation.bias": [cin],
    }
    if up:
        d[f"{prefix}.blur.kernel"] = [4, 4]
    return d


def styled(prefix, cin, cout, up):
    d = modconv(f"{prefix}.conv", cin, cout, 3, up)
    d[f"{prefix}.noise.weight"] = [1]
    d[f"{prefix}.activate.bias"] = [cout]
    return d


def torgb(prefix, cin, up):
    d = {}
    if up:
        d[f"{prefix}.upsample.kernel"] = [4, 4]
    d.update(modconv(f"{prefix}.conv", cin, 3, 1, False))
    d[f"{prefix}.bias"] = [1, 3, 1, 1]
    return d


g["input.input"] = [1, channels[4], 4, 4]
g.update(styled("conv1", channels[4], channels[4], False))
g.update(torgb("to_rgb1", channels[4], False))
log_size = int(math.log(size, 2))
num_layers = (log_size - 2) * 2 + 1
inc = channels[4]
ci = 0
for i in range(3, log_size + 1):
    outc = channels[2**i]
    g.update(styled(f"convs.{ci}", inc, outc, True))
    ci += 1
    g.update(styled(f"convs.{ci}", outc, outc, False))
    ci += 1
    g.update(torgb(f"to_rgbs.{i - 3}", outc, True))
    inc = outc
for li in range(num_layers):
    res = (li + 5) // 2
    g[f"noises.noise_{li}"] = [1, 1, 2**res, 2**res]
g_buffers = sorted(k for k in g if k.endswith(".kernel") or k.startswith("noises."))

d = {}


def convlayer(prefix, cin, cout, k, down, bias=True, activate=True):
    out = {}
    idx = 0
    if down:
        out[f"{prefix}.{idx}.kernel"] = [4, 4]
        idx += 1
    out[f"{prefix}.{idx}.weight"] = [cout, cin, k, k]
    if bias and not activate:
        out[f"{prefix}.{idx}.bias"] = [cout]
    idx += 1
    if activate and bias:
        out[f"{prefix}.{idx}.bias"] = [cout]
    return out


d.update(convlayer("convs.0", 3, channels[size], 1, False))
inc = channels[size]
bi = 1
for i in range(log_size, 2, -1):
    outc = channels[2 ** (i - 1)]
    d.update(convlayer(f"convs.{bi}.conv1", inc, inc, 3, False))
    d.update(convlayer(f"convs.{bi}.conv2", inc, outc, 3, True))
    d.update(convlayer(f"convs.{bi}.skip", inc, outc, 1, True, bias=False, activate=False))
    inc = outc
    bi += 1
d.update(convlayer("final_conv", inc + 1, channels[4], 3, False))
d["final_linear.0.weight"] = [channels[4], channels[4] * 16]
d["final_linear.0.bias"] = [channels[4]]
d["final_linear.1.weight"] = [1, channels[4]]
d["final_linear.1.bias"] = [1]
d_buffers = sorted(k for k in d if k.endswith(".kernel"))
doc = {
    "source": "rosinality/stylegan2-pytorch model.py @ 7e46e4754bf4e787053ee833d611ebfea5db1ddf, "
    "enumerated by hand from the constructors (not from vemkit's implementation)",
    "generator": {
        "args": "Generator(size=256, style_dim=512, n_mlp=8, channel_multiplier=2)",
        "keys": g,
        "buffers": g_buffers,
    },
    "discriminator": {
        "args": "Discriminator(size=256, channel_multiplier=2)",
        "keys": d,
        "buffers": d_buffers,
    },
}
gp = sum(math.prod(v) for k, v in g.items() if k not in g_buffers)
dp = sum(math.prod(v) for k, v in d.items() if k not in d_buffers)
print("G params", gp, "D params", dp, len(g), len(d))
out = Path(__file__).with_name("stylegan2_rosinality_keys.json")
out.write_text(json.dumps(doc, indent=1) + "\n")
