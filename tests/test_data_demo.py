"""Demo-set builders on synthetic inputs: IDX parsing, edges, emoji splits, layouts, manifest.

Nothing here downloads: packages are faked in tmp_path (IDX files, npm tarballs, a tiny .deb)
and handed to the builders through ``source`` folders.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vemkit.errors import DataError, VemkitError
from vemkit.registry import Registry
from vemkit_plugins import data
from vemkit_plugins.data.demo import _common
from vemkit_plugins.data.demo.emoji import (
    EmojiGoogle2Twitter,
    emoji_groups,
    is_test_base,
    plan_layout,
)
from vemkit_plugins.data.demo.fmnist import (
    DATA_DIR,
    Edges2ShoesFmnist,
    Fmnist32,
    load_split,
    pad,
    shoe_pair,
    upsample,
)
from vemkit_plugins.data.demo.idx import parse_idx, write_idx
from vemkit_plugins.data.options import (
    Edges2ShoesFmnistOptions,
    EmojiGoogle2TwitterOptions,
    Fmnist32Options,
)


@pytest.fixture
def reg() -> Registry:
    registry = Registry()
    data.register(registry)
    return registry


# -- IDX --------------------------------------------------------------------------------------


def test_parse_idx_hand_written_bytes() -> None:
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 2, 3) + bytes(range(12))
    array = parse_idx(raw)
    assert array.shape == (2, 2, 3) and array.dtype == np.uint8 and array[1, 1, 2] == 11
    assert np.array_equal(parse_idx(gzip.compress(raw)), array)
    ints = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + struct.pack(">2i", -1, 258)
    assert parse_idx(ints).tolist() == [-1, 258]
    labels = np.array([9, 0, 5], np.uint8)
    assert np.array_equal(parse_idx(write_idx(labels)), labels)


def test_parse_idx_rejects_bad_files() -> None:
    with pytest.raises(DataError, match=r"labels\.idx: not an IDX file"):
        parse_idx(b"\x01\x00\x08\x01\x00\x00\x00\x01\x07", "labels.idx")
    truncated = bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 2, 2) + bytes(3)
    with pytest.raises(
        DataError, match=r"x: shape \(2, 2\) needs 4 bytes of values, the file has 3"
    ):
        parse_idx(truncated, "x")
    with pytest.raises(DataError, match="unknown IDX value type 0x07"):
        parse_idx(bytes([0, 0, 7, 1, 0, 0, 0, 0]))


# -- Fashion-MNIST sets -----------------------------------------------------------------------

TRAIN_LABELS = [5, 0, 7, 9, 1, 5]
TEST_LABELS = [9, 2, 7]


def blob(label: int) -> np.ndarray:
    """A 28x28 'garment': a bright rectangle whose size depends on the label."""
    image = np.zeros((28, 28), np.uint8)
    image[8:20, 4 : 10 + label] = 200
    return image


def write_fake_fmnist(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, labels in (("train", TRAIN_LABELS), ("t10k", TEST_LABELS)):
        images = np.stack([blob(k) for k in labels])
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(write_idx(images)))
        labels_idx = write_idx(np.array(labels, np.uint8))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels_idx))


def test_load_split_and_consistency_check(tmp_path: Path) -> None:
    write_fake_fmnist(tmp_path / DATA_DIR)
    images, labels = load_split(tmp_path / DATA_DIR, "test")
    assert images.shape == (3, 28, 28) and labels.tolist() == TEST_LABELS
    assert np.array_equal(images[1], blob(2))
    bad = write_idx(np.zeros(2, np.uint8))
    (tmp_path / DATA_DIR / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bad))
    with pytest.raises(DataError, match=r"do not describe the same images"):
        load_split(tmp_path / DATA_DIR, "test")


def test_shoe_pair_is_canny_sketch_and_inverted_photo() -> None:
    image = blob(6)
    pair = shoe_pair(image, size=64, sigma=1.5)
    assert pair.shape == (64, 128, 3) and pair.dtype == np.uint8
    assert np.array_equal(pair[:, :, 0], pair[:, :, 2])  # gray stored as RGB
    sketch, photo = pair[:, :64, 0], pair[:, 64:, 0]
    assert np.array_equal(photo, 255 - upsample(image, 64))
    assert photo[0, 0] == 255 and photo[32, 22] == 55  # white background, dark garment
    assert set(np.unique(sketch)) == {0, 255}
    # The rectangle spans rows 8..20, columns 4..16 of 28 -> ~18..46 and ~9..37 of 64.
    edge_rows, edge_cols = np.nonzero(sketch == 0)
    assert 14 <= edge_rows.min() <= 21 and 43 <= edge_rows.max() <= 50
    assert 5 <= edge_cols.min() <= 12 and 33 <= edge_cols.max() <= 40
    assert (sketch[25:40, 15:30] == 255).all()  # nothing inside the flat interior


def test_pad_centres_the_image() -> None:
    padded = pad(blob(3), 32)
    assert padded.shape == (32, 32)
    assert np.array_equal(padded[2:30, 2:30], blob(3)) and padded[:2].sum() == 0


def test_edges2shoes_layout_and_labels(tmp_path: Path, reg: Registry) -> None:
    unpacked = tmp_path / "unpacked"
    write_fake_fmnist(unpacked / DATA_DIR)
    out = tmp_path / "out"
    demo = Edges2ShoesFmnist(Edges2ShoesFmnistOptions())
    licence = demo.write(unpacked, out, max_items=None, show_progress=False)
    assert "Zalando" in licence
    names = {
        split: sorted(p.name for p in (out / split).iterdir()) for split in ("train", "test", "val")
    }
    # Shoes only (5, 7, 9), named by their index in the official file.
    assert names == {
        "train": ["00000.png", "00002.png", "00003.png", "00005.png"],
        "test": ["00000.png", "00002.png"],
        "val": ["00000.png", "00002.png"],
    }
    table = json.loads((out / "labels.json").read_text())
    assert table["files"]["train/00003.png"] == 2 and table["files"]["val/00002.png"] == 1
    assert [c["fashion_mnist_label"] for c in table["classes"]] == [5, 7, 9]
    ds = reg.build(
        "dataset",
        {"type": "aligned", "root": str(out), "split": "val", "size": 64, "labels": "labels.json"},
    )
    item = ds[0]
    assert item["label"] == 2 and item["input"].shape == (3, 64, 64)
    photo = torch.from_numpy(255.0 - upsample(blob(9), 64).astype(np.float32)) / 127.5 - 1
    assert torch.allclose(item["target"][0], photo)
    demo.write(unpacked, tmp_path / "few", max_items=1, show_progress=False)
    assert [p.name for p in (tmp_path / "few" / "train").iterdir()] == ["00000.png"]


def test_fmnist32_folder_layout(tmp_path: Path, reg: Registry) -> None:
    unpacked = tmp_path / "unpacked"
    write_fake_fmnist(unpacked / DATA_DIR)
    out = tmp_path / "out"
    Fmnist32(Fmnist32Options()).write(unpacked, out, max_items=None, show_progress=False)
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "0_t-shirt-top",
        "1_trouser",
        "5_sandal",
        "7_sneaker",
        "9_ankle-boot",
    ]
    ds = reg.build(
        "dataset", {"type": "folder", "root": str(out), "split": "train", "size": 32, "channels": 1}
    )
    assert len(ds) == 6 and ds.classes[2] == "5_sandal"
    item = ds[2]  # 5_sandal/00000.png
    assert item["label"] == 2 and item["target"].shape == (1, 32, 32)
    expected = torch.from_numpy(pad(blob(5), 32).astype(np.float32)) / 127.5 - 1
    assert torch.equal(item["target"][0], expected)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to make a .deb")
def test_fmnist32_get_from_a_local_deb(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    write_fake_fmnist(pkg / DATA_DIR)
    (pkg / "DEBIAN").mkdir()
    (pkg / "DEBIAN" / "control").write_text(
        "Package: dataset-fashion-mnist\nVersion: 9.9-test\nArchitecture: all\n"
        "Maintainer: test <t@example.org>\nDescription: fake\n"
    )
    source = tmp_path / "source"
    source.mkdir()
    deb = source / "dataset-fashion-mnist_9.9-test_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(pkg), str(deb)], check=True, capture_output=True)
    lines: list[str] = []
    root = Fmnist32(Fmnist32Options()).get(
        tmp_path / "fm", source=source, progress=False, echo=lines.append
    )
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["sources"] == [
        {
            "registry": "debian",
            "package": "dataset-fashion-mnist",
            "version": "9.9-test",
            "file": deb.name,
            "sha256": _common.sha256_file(deb),
        }
    ]
    assert len(manifest["files"]) == 9 + 1  # 9 images + LICENSES.txt
    assert any(line.startswith("fmnist32: ") for line in lines)


def test_apt_failure_gives_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apt-get"
    fake.write_text('#!/bin/sh\necho "E: Unable to locate package $2" >&2\nexit 100\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(
        DataError, match=r"(?s)Unable to locate package dataset-fashion-mnist.*apt-get update"
    ):
        _common.apt_download("dataset-fashion-mnist", tmp_path)
    fake.unlink()
    with pytest.raises(DataError, match=r"`apt-get` is not installed.*--source"):
        _common.apt_download("dataset-fashion-mnist", tmp_path)
    with pytest.raises(DataError, match=r"`npm` is not installed.*registry\.npmjs\.org"):
        _common.npm_pack("emoji-datasource-google", "16.0.0", tmp_path)


# -- emoji ------------------------------------------------------------------------------------


def entry(base: str, variants: int = 0, twitter: bool = True) -> dict:
    tones = ["1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"][:variants]
    return {
        "unified": base,
        "image": f"{base.lower()}.png",
        "has_img_google": True,
        "has_img_twitter": twitter,
        "skin_variations": {
            t: {
                "unified": f"{base}-{t}",
                "image": f"{base.lower()}-{t.lower()}.png",
                "has_img_google": True,
                "has_img_twitter": True,
            }
            for t in tones
        },
    }


def test_emoji_groups_keep_images_both_vendors_draw() -> None:
    groups = emoji_groups([entry("1F600"), entry("1F44D", 2), entry("1F9CC", 1, twitter=False)])
    assert groups == {
        "1F600": ["1f600.png"],
        "1F44D": ["1f44d.png", "1f44d-1f3fb.png", "1f44d-1f3fc.png"],
        "1F9CC": ["1f9cc-1f3fb.png"],  # the base lacks a Twitter image, its variant does not
    }


def test_plan_splits_by_base_and_unpaired_halves_are_disjoint() -> None:
    groups = {
        f"1F{i:03X}": [f"1f{i:03x}.png"] + [f"1f{i:03x}-{t}.png" for t in range(i % 4)]
        for i in range(400)
    }
    plan = plan_layout(groups, test_fraction=0.25)
    owner = {img: base for base, imgs in groups.items() for img in imgs}

    def bases(prefix: str, rows) -> set[str]:
        return {owner[r[0].rsplit("/", 1)[1]] for r in rows if r[0].startswith(prefix)}

    train, test = bases("paired/train/", plan.paired), bases("paired/test/", plan.paired)
    assert train | test == set(groups) and not train & test
    assert test == {b for b in groups if is_test_base(b, 0.25)}
    # A hash split: 400 bases, expected 100 in test (binomial sd ~8.7); the hash is fixed, so
    # this is deterministic, the range only documents what "about a quarter" means.
    assert 75 <= len(test) <= 125
    paired_val = [r[1] for r in plan.paired if r[0].startswith("paired/val/")]
    assert paired_val == [r[1] for r in plan.paired if r[0].startswith("paired/test/")]
    # Every image of a base (variants included) is on the base's side.
    for rel, image in plan.paired:
        split = rel.split("/")[1]
        assert (owner[image] in test) == (split in ("test", "val"))
    side_a, side_b = (
        bases("unpaired/trainA/", plan.unpaired),
        bases("unpaired/trainB/", plan.unpaired),
    )
    assert side_a | side_b == train and not side_a & side_b and len(side_a) > 100
    assert {r[1] for r in plan.unpaired if "/trainA/" in r[0]} == {"google"}
    assert {r[1] for r in plan.unpaired if "/trainB/" in r[0]} == {"twitter"}
    files = {r[0].removeprefix("unpaired/") for r in plan.unpaired}
    assert plan.pairs and all(a in files and b in files for a, b in plan.pairs)
    assert all(a.split("/")[1] == b.split("/")[1] for a, b in plan.pairs)
    capped = plan_layout(groups, test_fraction=0.25, max_items=3)
    assert len(bases("paired/train/", capped.paired)) == 3
    assert len(bases("unpaired/trainB/", capped.unpaired)) == 3


def png_bytes(color: tuple[int, int, int]) -> bytes:
    """64x64 RGBA: a coloured square on a transparent background."""
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[16:48, 16:48] = (*color, 255)
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def fake_npm_packages(folder: Path, n_bases: int = 24) -> list[dict]:
    """emoji-datasource-{google,twitter}-16.0.0.tgz with n_bases emoji (some with tones)."""
    entries = [entry(f"1F{600 + i}", variants=i % 3) for i in range(n_bases)]
    folder.mkdir(parents=True, exist_ok=True)
    colors = {"google": (200, 30, 30), "twitter": (30, 30, 200)}
    for vendor, color in colors.items():
        with tarfile.open(folder / f"emoji-datasource-{vendor}-16.0.0.tgz", "w:gz") as tar:

            def add(name: str, payload: bytes) -> None:
                info = tarfile.TarInfo(f"package/{name}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))

            add("emoji.json", json.dumps(entries).encode())
            add("LICENSE", b"The MIT License (MIT)\n\nCopyright (c) 2013 Cal Henderson\n")
            for e in entries:
                for member in [e, *e["skin_variations"].values()]:
                    add(f"img/{vendor}/64/{member['image']}", png_bytes(color))
    return entries


def test_emoji_get_builds_both_forms_and_is_idempotent(tmp_path: Path, reg: Registry) -> None:
    source = tmp_path / "npm"
    fake_npm_packages(source)
    demo = EmojiGoogle2Twitter(EmojiGoogle2TwitterOptions(test_fraction=0.3))
    lines: list[str] = []
    root = demo.get(tmp_path / "emoji", source=source, progress=False, echo=lines.append)
    assert any("Apache License 2.0" in line for line in lines) and lines[-4].endswith(str(root))
    licences = (root / "LICENSES.txt").read_text()
    assert "CC BY 4.0" in licences and "Cal Henderson" in licences

    paired = reg.build("dataset", {"type": "aligned", "root": f"{root}/paired", "size": 64})
    item = paired[0]
    white = torch.ones(3)
    assert torch.equal(item["input"][:, 0, 0], white)  # transparent -> white
    google, twitter = (
        torch.tensor(c) / 127.5 - 1 for c in ((200.0, 30.0, 30.0), (30.0, 30.0, 200.0))
    )
    assert torch.allclose(item["input"][:, 32, 32], google)
    assert torch.allclose(item["target"][:, 32, 32], twitter)
    pairs = reg.build(
        "dataset",
        {
            "type": "unaligned",
            "root": f"{root}/unpaired",
            "size": 64,
            "split": "test",
            "pairs": "test_pairs.txt",
        },
    )
    assert len(pairs) == len(list((root / "paired" / "test").iterdir())) > 0
    assert torch.allclose(pairs[0]["target"][:, 32, 32], twitter)
    unpaired = reg.build("dataset", {"type": "unaligned", "root": f"{root}/unpaired", "size": 64})
    assert len(unpaired) > 0

    manifest = json.loads((root / "manifest.json").read_text())
    assert [s["package"] for s in manifest["sources"]] == [
        "emoji-datasource-google",
        "emoji-datasource-twitter",
    ]
    tgz = source / "emoji-datasource-google-16.0.0.tgz"
    assert manifest["sources"][0]["sha256"] == _common.sha256_file(tgz)
    assert manifest["files"]["unpaired/test_pairs.txt"] == _common.sha256_file(
        root / "unpaired" / "test_pairs.txt"
    )

    # Rerun: verified and skipped (the files are not rewritten).
    stamp = (root / "LICENSES.txt").stat().st_mtime_ns
    lines.clear()
    demo.get(tmp_path / "emoji", source=source, progress=False, echo=lines.append)
    assert "up to date" in lines[0] and (root / "LICENSES.txt").stat().st_mtime_ns == stamp
    # A damaged file is noticed and the set rebuilt.
    victim = next((root / "paired" / "train").iterdir())
    victim.write_bytes(b"damaged")
    lines.clear()
    demo.get(tmp_path / "emoji", source=source, progress=False, echo=lines.append)
    assert "differ from the manifest" in lines[0] and victim.read_bytes()[:4] == b"\x89PNG"
    # Other options: rebuilt.
    lines.clear()
    demo.get(tmp_path / "emoji", source=source, progress=False, echo=lines.append, max_items=2)
    assert "built with other options" in lines[0]
    assert len(list((root / "paired" / "train").iterdir())) <= 2 * 3


def test_build_refuses_foreign_folders_and_leaves_nothing_half_done(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("user data")

    def make(out: Path) -> list:
        (out / "a.txt").write_text("a")
        return []

    with pytest.raises(DataError, match=r"mine exists and is not a vemkit demo set.*--force"):
        _common.build_atomically(mine, {}, make, force=False, echo=print)
    assert (mine / "precious.txt").exists()

    def broken(out: Path) -> list:
        (out / "half.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        _common.build_atomically(tmp_path / "new", {}, broken, force=False, echo=print)
    assert sorted(os.listdir(tmp_path)) == ["mine"]
    root, built = _common.build_atomically(mine, {}, make, force=True, echo=print)
    assert built and sorted(os.listdir(root)) == ["a.txt", "manifest.json"]


# -- the command ------------------------------------------------------------------------------


def run_data(argv: list[str]) -> int:
    from vemkit.commands import data as command

    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    return command.run(parser.parse_args(["data", *argv]))


def test_data_list_and_get_commands(
    tmp_path: Path, reg: Registry, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import vemkit.registry

    monkeypatch.setattr(vemkit.registry, "_default", reg)
    monkeypatch.chdir(tmp_path)
    assert run_data(["list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == [
        "edges2shoes-fmnist",
        "emoji-google2twitter",
        "fmnist32",
    ]
    fake_npm_packages(tmp_path / "npm", n_bases=6)
    argv = ["get", "emoji-google2twitter", "--source", "npm", "--no-progress", "--max-items", "2"]
    assert run_data(argv) == 0
    assert (tmp_path / "data" / "emoji-google2twitter" / "manifest.json").is_file()
    assert "emoji-google2twitter: " in capsys.readouterr().out
    assert run_data(["list"]) == 0
    assert "[present in ./data]" in capsys.readouterr().out
    with pytest.raises(VemkitError, match="did you mean 'fmnist32'"):
        run_data(["get", "fmnist23"])
