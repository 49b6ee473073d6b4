"""``emoji-google2twitter``: Google -> Twitter emoji style translation (npm emoji-datasource-*).

Both packages hold 64x64 RGBA PNGs for the same codepoints and ``emoji.json`` (base emoji with
their skin-tone variants). Images are composited on white. The split is by **base** codepoint,
so a skin-tone variant is always on its base's side; a base goes to test when a hash of its
codepoint falls below ``test_fraction`` (stable when new emoji are added). Written under root:

* ``paired/{train,test,val}/<image>.png`` — A|B 64x128, Google left (val = test);
* ``unpaired/trainA`` (Google) and ``unpaired/trainB`` (Twitter) from two disjoint halves of the
  training bases, so no emoji appears on both sides; ``unpaired/testA``/``testB`` hold both
  styles of every test base, and ``unpaired/test_pairs.txt`` lists the true pairs.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vemkit.errors import DataError
from vemkit_plugins.data.demo import DemoSet
from vemkit_plugins.data.demo._common import (
    Source,
    npm_pack,
    progress,
    save_png,
    source_of,
    write_text,
)
from vemkit_plugins.data.options import EmojiGoogle2TwitterOptions

VENDORS = ("google", "twitter")
SIZE = 64
LICENCE_LINES = (
    "Google emoji images (Noto Emoji): Apache License 2.0 "
    "(https://github.com/googlefonts/noto-emoji/blob/main/LICENSE)",
    "Twitter emoji images (Twemoji): CC BY 4.0, Copyright Twitter, Inc and other contributors "
    "(https://creativecommons.org/licenses/by/4.0/)",
    "emoji-datasource packaging and emoji.json: MIT, Copyright (c) 2013 Cal Henderson",
)


def emoji_groups(
    entries: list[dict[str, Any]], vendors: tuple[str, ...] = VENDORS
) -> dict[str, list[str]]:
    """Base codepoint -> image files of the base and its skin-tone variants that every vendor
    draws (``has_img_<vendor>``)."""
    groups: dict[str, list[str]] = {}
    for entry in entries:
        members = [entry, *entry.get("skin_variations", {}).values()]
        images = [m["image"] for m in members if all(m.get(f"has_img_{v}") for v in vendors)]
        if images:
            groups[entry["unified"]] = images
    return groups


def _unit(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` (the first 8 bytes of its sha256)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def is_test_base(base: str, fraction: float) -> bool:
    return _unit(f"split:{base}") < fraction


def unpaired_side(base: str) -> str:
    """Which training domain (``A`` or ``B``) a base's images go to in the unpaired form."""
    return "A" if _unit(f"side:{base}") < 0.5 else "B"


@dataclass
class EmojiPlan:
    """Every file to write, as (path relative to root, vendor(s), source image)."""

    paired: list[tuple[str, str]] = field(default_factory=list)
    unpaired: list[tuple[str, str, str]] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)


def plan_layout(
    groups: dict[str, list[str]], test_fraction: float, max_items: int | None = None
) -> EmojiPlan:
    """The paired and unpaired layouts of ``groups``; ``max_items`` caps the bases per split
    (and per unpaired training side), in sorted codepoint order."""
    bases = sorted(groups)
    test = [b for b in bases if is_test_base(b, test_fraction)][:max_items]
    train = [b for b in bases if not is_test_base(b, test_fraction)]
    side_a = [b for b in train if unpaired_side(b) == "A"][:max_items]
    side_b = [b for b in train if unpaired_side(b) == "B"][:max_items]
    train = train[:max_items]
    plan = EmojiPlan()
    for split, chosen in (("train", train), ("test", test), ("val", test)):
        plan.paired += [(f"paired/{split}/{img}", img) for b in chosen for img in groups[b]]
    plan.unpaired += [
        (f"unpaired/trainA/{img}", "google", img) for b in side_a for img in groups[b]
    ]
    plan.unpaired += [
        (f"unpaired/trainB/{img}", "twitter", img) for b in side_b for img in groups[b]
    ]
    for b in test:
        for img in groups[b]:
            plan.unpaired.append((f"unpaired/testA/{img}", "google", img))
            plan.unpaired.append((f"unpaired/testB/{img}", "twitter", img))
            plan.pairs.append((f"testA/{img}", f"testB/{img}"))
    return plan


def on_white(png: bytes, name: str) -> np.ndarray:
    """An RGBA PNG composited on white, as SIZE x SIZE x 3 uint8."""
    try:
        image = Image.open(io.BytesIO(png))
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot decode {name}: {exc}") from None
    rgba = image.convert("RGBA")
    if rgba.size != (SIZE, SIZE):
        rgba = rgba.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    white = Image.new("RGBA", rgba.size, "white")
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


def read_package(tgz: Path, vendor: str) -> tuple[dict[str, bytes], bytes, str]:
    """(64 px PNGs by file name, emoji.json, LICENSE text) from an npm tarball."""
    prefix = f"package/img/{vendor}/64/"
    images: dict[str, bytes] = {}
    meta = licence = None
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.name.startswith(prefix) and member.name.endswith(".png"):
                    images[member.name[len(prefix) :]] = tar.extractfile(member).read()  # type: ignore[union-attr]
                elif member.name == "package/emoji.json":
                    meta = tar.extractfile(member).read()  # type: ignore[union-attr]
                elif member.name == "package/LICENSE":
                    licence = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DataError(f"cannot read npm package {tgz}: {exc}") from None
    if meta is None or not images:
        raise DataError(f"{tgz} holds no package/emoji.json or no {prefix}*.png images")
    return images, meta, licence or ""


class EmojiGoogle2Twitter(DemoSet):
    name = "emoji-google2twitter"
    summary = "Google -> Twitter emoji, 64 px, paired A|B and unpaired A/B + true test pairs (npm)"
    licences = LICENCE_LINES
    usage = (
        "{{type: aligned, root: {root}/paired, split: train, size: 64}}",
        "{{type: unaligned, root: {root}/unpaired, split: train, size: 64}}",
        "{{type: unaligned, root: {root}/unpaired, split: test, size: 64, pairs: test_pairs.txt}}",
    )
    options: EmojiGoogle2TwitterOptions

    def fetch(self, work: Path, source_dir: Path | None) -> tuple[list[Source], Any]:
        version = self.options.version
        sources, packages = [], {}
        for vendor in VENDORS:
            package = f"emoji-datasource-{vendor}"
            tgz = npm_pack(package, version, work, source_dir)
            sources.append(source_of("npm", package, version, tgz))
            packages[vendor] = read_package(tgz, vendor)
        return sources, packages

    def write(self, fetched: Any, out: Path, *, max_items: int | None, show_progress: bool) -> str:
        images = {vendor: fetched[vendor][0] for vendor in VENDORS}
        try:
            entries = json.loads(fetched["google"][1])
        except ValueError as exc:
            raise DataError(f"emoji-datasource-google: emoji.json is not JSON ({exc})") from None
        groups = emoji_groups(entries)
        # Keep only images both tarballs really contain (the flags should already say so).
        groups = {
            base: kept
            for base, files in groups.items()
            if (kept := [f for f in files if all(f in images[v] for v in VENDORS)])
        }
        plan = plan_layout(groups, self.options.test_fraction, max_items)
        cache: dict[tuple[str, str], np.ndarray] = {}

        def load(vendor: str, image: str) -> np.ndarray:
            key = (vendor, image)
            if key not in cache:
                cache[key] = on_white(images[vendor][image], f"{vendor}/64/{image}")
            return cache[key]

        rows = progress(plan.paired, len(plan.paired), f"{self.name} paired", show_progress)
        for rel, image in rows:
            pair = np.concatenate([load("google", image), load("twitter", image)], axis=1)
            save_png(pair, out / rel)
        rows = progress(plan.unpaired, len(plan.unpaired), f"{self.name} unpaired", show_progress)
        for rel, vendor, image in rows:
            save_png(load(vendor, image), out / rel)
        write_text(
            out / "unpaired" / "test_pairs.txt",
            "# testA/<image> testB/<image>: the same emoji drawn by Google and by Twitter\n"
            + "".join(f"{a} {b}\n" for a, b in plan.pairs),
        )
        return (
            f"{self.name} is derived from the npm packages emoji-datasource-google and "
            f"emoji-datasource-twitter {self.options.version} (https://github.com/iamcal/emoji-data).\n"
            + "\n".join(LICENCE_LINES)
            + "\n\n--- package/LICENSE of emoji-datasource-google ---\n"
            + fetched["google"][2]
        )


def emoji_google2twitter(
    options: EmojiGoogle2TwitterOptions, **context: Any
) -> EmojiGoogle2Twitter:
    return EmojiGoogle2Twitter(options)
