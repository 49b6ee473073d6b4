"""The dataset components on tiny generated trees: layouts, values, transforms, bad data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from vemkit.errors import DataError, VemkitError
from vemkit.registry import Registry
from vemkit_plugins import data


@pytest.fixture
def reg() -> Registry:
    registry = Registry()
    data.register(registry)
    return registry


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.tile(np.array(rgb, dtype=np.uint8), (h, w, 1))


def scaled(value: float) -> float:
    """What the datasets make of a uint8 value: x / 127.5 - 1 (pix2pix's Normalize(0.5, 0.5))."""
    return value / 127.5 - 1


def pattern(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def aligned_root(tmp_path: Path) -> Path:
    """train/ with 3 A|B files (A red 10*i, B green 20*i), val/ with one."""
    root = tmp_path / "pairs"
    for i in range(3):
        ab = np.concatenate([solid(8, 8, (10 * i, 0, 0)), solid(8, 8, (0, 20 * i, 0))], axis=1)
        save(root / "train" / f"{i}.png", ab)
    save(
        root / "val" / "0.png", np.concatenate([solid(8, 8, (1, 2, 3)), solid(8, 8, (4, 5, 6))], 1)
    )
    return root


# -- aligned ----------------------------------------------------------------------------------


def test_aligned_items_values_and_order(reg: Registry, aligned_root: Path) -> None:
    ds = reg.build("dataset", {"type": "aligned", "root": str(aligned_root), "size": 8})
    assert len(ds) == 3
    item = ds[2]
    assert item["index"] == 2 and set(item) == {"input", "target", "index"}
    assert item["input"].shape == (3, 8, 8) and item["input"].dtype == torch.float32
    assert torch.allclose(item["input"][0], torch.full((8, 8), scaled(20)))
    assert torch.allclose(item["input"][1:], torch.full((2, 8, 8), -1.0))
    assert torch.allclose(item["target"][1], torch.full((8, 8), scaled(40)))


def test_aligned_direction_split_override_channels_max_items(
    reg: Registry, aligned_root: Path
) -> None:
    cfg = {"type": "aligned", "root": str(aligned_root), "size": 8, "direction": "BtoA"}
    item = reg.build("dataset", cfg)[1]
    assert torch.allclose(item["input"][1], torch.full((8, 8), scaled(20)))  # B (green) first
    val = reg.build("dataset", cfg, split_override="val")
    assert len(val) == 1 and torch.allclose(val[0]["input"][2], torch.full((8, 8), scaled(6)))
    gray = reg.build("dataset", {**cfg, "channels": 1, "max_items": 2})
    assert len(gray) == 2 and gray[0]["input"].shape == (1, 8, 8)


def test_aligned_resize_to_size_uses_pil_bicubic(reg: Registry, tmp_path: Path) -> None:
    a, b = pattern(16, 16, 0), pattern(16, 16, 1)
    save(tmp_path / "r" / "val" / "x.png", np.concatenate([a, b], axis=1))
    item = reg.build(
        "dataset", {"type": "aligned", "root": str(tmp_path / "r"), "split": "val", "size": 8}
    )[0]
    expected = np.asarray(Image.fromarray(a).resize((8, 8), Image.Resampling.BICUBIC))
    want = torch.from_numpy(expected.astype(np.float32)).permute(2, 0, 1) / 127.5 - 1
    assert torch.allclose(item["input"], want)


def test_aligned_crop_and_flip_shared_by_both_halves_and_seeded(
    reg: Registry, tmp_path: Path
) -> None:
    root = tmp_path / "aug"
    for i in range(6):
        a = pattern(12, 12, i)
        save(root / "train" / f"{i}.png", np.concatenate([a, 255 - a], axis=1))
    cfg = {"type": "aligned", "root": str(root), "size": 8, "load_size": 12, "flip": True}
    ds = reg.build("dataset", cfg, seed=3)
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        # B = 255 - A, so equal crops/flips give target = -input exactly.
        assert torch.allclose(item["target"], -item["input"], atol=1e-6)
        a = torch.from_numpy(pattern(12, 12, i).astype(np.float32)).permute(2, 0, 1) / 127.5 - 1
        # Which 8x8 window of the 12x12 image (and whether flipped) the item is.
        found = [
            (x, y, flip)
            for flip in (False, True)
            for y in range(5)
            for x in range(5)
            if torch.equal(
                a[:, y : y + 8, x : x + 8].flip(-1) if flip else a[:, y : y + 8, x : x + 8],
                item["input"],
            )
        ]
        assert len(found) == 1
        crop_found = found[0]
        seen.add(crop_found)
    assert len(seen) > 1  # the crops really are random
    again = reg.build("dataset", cfg, seed=3)
    assert all(torch.equal(again[i]["input"], ds[i]["input"]) for i in range(6))
    other_epoch = reg.build("dataset", cfg, seed=3)
    other_epoch.set_epoch(1)
    assert any(not torch.equal(other_epoch[i]["input"], ds[i]["input"]) for i in range(6))
    # Not augmenting (eval): centre crop, no flip.
    plain = reg.build("dataset", cfg, augment=False)[0]
    a0 = torch.from_numpy(pattern(12, 12, 0).astype(np.float32)).permute(2, 0, 1) / 127.5 - 1
    assert torch.equal(plain["input"], a0[:, 2:10, 2:10])


def test_aligned_val_split_does_not_augment(reg: Registry, tmp_path: Path) -> None:
    a = pattern(12, 12, 7)
    save(tmp_path / "v" / "val" / "0.png", np.concatenate([a, a], axis=1))
    cfg = {
        "type": "aligned",
        "root": str(tmp_path / "v"),
        "split": "val",
        "size": 8,
        "load_size": 12,
        "flip": True,
    }
    ds = reg.build("dataset", cfg)
    expect = torch.from_numpy(a[2:10, 2:10].astype(np.float32)).permute(2, 0, 1) / 127.5 - 1
    for epoch in range(3):
        ds.set_epoch(epoch)
        assert torch.equal(ds[0]["input"], expect)


def test_aligned_labels_file(reg: Registry, aligned_root: Path) -> None:
    files = {f"train/{i}.png": 2 - i for i in range(3)}
    (aligned_root / "labels.json").write_text(json.dumps({"files": files}))
    ds = reg.build(
        "dataset",
        {"type": "aligned", "root": str(aligned_root), "size": 8, "labels": "labels.json"},
    )
    assert [ds[i]["label"] for i in range(3)] == [2, 1, 0]
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["label"].tolist() == [2, 1] and batch["input"].shape == (2, 3, 8, 8)


# -- unaligned --------------------------------------------------------------------------------


@pytest.fixture
def unaligned_root(tmp_path: Path) -> Path:
    root = tmp_path / "h2z"
    for i in range(3):
        save(root / "trainA" / f"a{i}.png", solid(8, 8, (10 + i, 0, 0)))
        save(root / "testA" / f"t{i}.png", solid(8, 8, (100 + i, 0, 0)))
    for j in range(5):
        save(root / "trainB" / f"b{j}.png", solid(8, 8, (0, 10 + j, 0)))
    for j in range(2):
        save(root / "testB" / f"u{j}.png", solid(8, 8, (0, 100 + j, 0)))
    return root


def red(item: dict, key: str = "input") -> int:
    return round((float(item[key][0, 0, 0]) + 1) * 127.5)


def green(item: dict, key: str = "target") -> int:
    return round((float(item[key][1, 0, 0]) + 1) * 127.5)


def test_unaligned_random_b_is_seeded_per_epoch(reg: Registry, unaligned_root: Path) -> None:
    cfg = {"type": "unaligned", "root": str(unaligned_root), "size": 8}
    ds = reg.build("dataset", cfg, seed=0)
    assert len(ds) == 5  # max(|A|, |B|), as CycleGAN
    assert [red(ds[i]) for i in range(5)] == [10, 11, 12, 10, 11]  # A is i mod |A|
    draws = [[green(ds[i]) - 10 for i in range(5)]]
    assert draws[0] == [ds.b_index(i) for i in range(5)]
    assert draws[0] == [green(reg.build("dataset", cfg, seed=0)[i]) - 10 for i in range(5)]
    for epoch in range(1, 6):
        ds.set_epoch(epoch)
        draws.append([ds.b_index(i) for i in range(5)])
    assert len({tuple(d) for d in draws}) > 1
    assert {b for d in draws for b in d} == set(range(5))  # every B gets drawn


def test_unaligned_eval_is_serial_and_directions_swap(reg: Registry, unaligned_root: Path) -> None:
    cfg = {"type": "unaligned", "root": str(unaligned_root), "size": 8, "split": "test"}
    ds = reg.build("dataset", cfg)
    assert len(ds) == 3  # serial: each A once
    assert [(red(ds[i]), green(ds[i])) for i in range(3)] == [(100, 100), (101, 101), (102, 100)]
    back = reg.build("dataset", {**cfg, "direction": "BtoA"})
    assert len(back) == 2 and green(back[1], "input") == 101 and red(back[1], "target") == 101


def test_unaligned_pairs_file_yields_true_pairs(reg: Registry, unaligned_root: Path) -> None:
    (unaligned_root / "pairs.txt").write_text(
        "# held-out true pairs\ntestA/t2.png testB/u0.png\n\ntestA/t0.png testB/u1.png\n"
    )
    ds = reg.build(
        "dataset",
        {
            "type": "unaligned",
            "root": str(unaligned_root),
            "size": 8,
            "split": "test",
            "pairs": "pairs.txt",
        },
    )
    assert len(ds) == 2
    assert [(red(ds[i]), green(ds[i])) for i in range(2)] == [(102, 100), (100, 101)]


# -- folder -----------------------------------------------------------------------------------


def test_folder_with_class_subfolders_and_flat(reg: Registry, tmp_path: Path) -> None:
    root = tmp_path / "f"
    save(root / "train" / "cat" / "x.png", solid(8, 8, (1, 1, 1)))
    save(root / "train" / "ant" / "deep" / "y.png", solid(8, 8, (2, 2, 2)))
    save(root / "train" / "ant" / "z.png", solid(8, 8, (3, 3, 3)))
    ds = reg.build("dataset", {"type": "folder", "root": str(root), "split": "train", "size": 8})
    assert ds.classes == ["ant", "cat"]
    items = [ds[i] for i in range(len(ds))]
    assert [(i["label"], red(i, "target")) for i in items] == [(0, 2), (0, 3), (1, 1)]
    assert set(items[0]) == {"target", "index", "label"}
    flat = tmp_path / "flat"
    save(flat / "a.png", solid(6, 10, (9, 9, 9)))
    one = reg.build(
        "dataset", {"type": "folder", "root": str(flat), "size": 4, "channels": 1, "center_crop": 6}
    )
    assert set(one[0]) == {"target", "index"} and one[0]["target"].shape == (1, 4, 4)
    assert torch.allclose(one[0]["target"], torch.full((1, 4, 4), scaled(9)))


# -- cityscapes -------------------------------------------------------------------------------


def cityscapes_raw(root: Path, with_color: bool) -> None:
    stem = "aachen_000000_000019"
    save(root / "leftImg8bit/train/aachen" / f"{stem}_leftImg8bit.png", solid(8, 8, (50, 60, 70)))
    ids = np.zeros((8, 8), np.uint8)
    ids[:4] = 26  # car -> train id 13
    ids[4:, :4] = 7  # road -> 0; the rest stays 0 (unlabeled) -> 255
    save(root / "gtFine/train/aachen" / f"{stem}_gtFine_labelIds.png", ids)
    if with_color:
        save(root / "gtFine/train/aachen" / f"{stem}_gtFine_color.png", solid(8, 8, (5, 6, 7)))


def test_cityscapes_raw_label_ids_become_train_ids(reg: Registry, tmp_path: Path) -> None:
    cityscapes_raw(tmp_path / "cs", with_color=False)
    item = reg.build("dataset", {"type": "cityscapes", "root": str(tmp_path / "cs"), "size": 8})[0]
    seg = item["segmentation"]
    assert seg.dtype == torch.int64 and seg.shape == (8, 8)
    # cityscapesScripts labels.py: car id 26 -> trainId 13, road 7 -> 0, unlabeled 0 -> 255.
    assert (seg[:4] == 13).all() and (seg[4:, :4] == 0).all() and (seg[4:, 4:] == 255).all()
    # No colour file: the input is painted with the official palette (car = 0,0,142).
    assert torch.allclose(item["input"][:, 0, 0], torch.tensor([-1.0, -1.0, scaled(142)]))
    assert torch.allclose(
        item["target"][:, 0, 0], torch.tensor([scaled(50), scaled(60), scaled(70)])
    )


def test_cityscapes_raw_prefers_color_file(reg: Registry, tmp_path: Path) -> None:
    cityscapes_raw(tmp_path / "cs", with_color=True)
    ds = reg.build(
        "dataset",
        {"type": "cityscapes", "root": str(tmp_path / "cs"), "size": 8, "segmentation": False},
    )
    item = ds[0]
    assert "segmentation" not in item
    assert torch.allclose(item["input"][:, 3, 3], torch.tensor([scaled(5), scaled(6), scaled(7)]))


def test_cityscapes_prepared_layout_with_table(reg: Registry, tmp_path: Path) -> None:
    root = tmp_path / "prep"
    # GAN-Compression writes the photo left and the colour label right.
    save(
        root / "test" / "0.png",
        np.concatenate([solid(8, 8, (50, 0, 0)), solid(8, 8, (0, 0, 142))], 1),
    )
    full = np.full((16, 16), 13, np.uint8)
    full[8:] = 255
    save(root / "gtFine/val/x/x_1_gtFine_trainIds.png", full)
    (root / "table.txt").write_text(
        "0 gtFine/val/x/x_1_gtFine_trainIds.png leftImg8bit/val/x/x_1_leftImg8bit.png\n"
    )
    config = {
        "type": "cityscapes",
        "root": str(root),
        "layout": "prepared",
        "split": "test",
        "size": 8,
        "table": "table.txt",
    }
    item = reg.build("dataset", config)[0]
    assert red(item, "target") == 50 and round((float(item["input"][2, 0, 0]) + 1) * 127.5) == 142
    assert (item["segmentation"][:4] == 13).all() and (item["segmentation"][4:] == 255).all()

    # segmentation_size full: the 16 px map as stored, next to 8 px images (the mIoU protocol
    # compares at the labels' own resolution)
    config = {**config, "segmentation_size": "full"}
    item = reg.build("dataset", config)[0]
    assert item["input"].shape[-2:] == (8, 8) and item["segmentation"].shape == (16, 16)
    assert (item["segmentation"][:8] == 13).all() and (item["segmentation"][8:] == 255).all()
    # a training set that crops or flips cannot keep its maps whole
    with pytest.raises(VemkitError, match="segmentation_size full keeps the label maps whole"):
        reg.build("dataset", {**config, "flip": True}, augment=True)


# -- bad data ---------------------------------------------------------------------------------


def build(reg: Registry, cfg: dict, **context):
    return reg.build("dataset", cfg, **context)


def test_missing_root_and_split_name_the_folder(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset root .*nowhere does not exist"):
        build(reg, {"type": "aligned", "root": str(tmp_path / "nowhere")})
    (tmp_path / "r" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"split 'val' folder .*r/val does not exist.*train"):
        build(reg, {"type": "aligned", "root": str(tmp_path / "r"), "split": "val"})


def test_empty_split_names_the_folder(reg: Registry, tmp_path: Path) -> None:
    (tmp_path / "r" / "train").mkdir(parents=True)
    (tmp_path / "r" / "train" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"no images in .*r/train .*notes.txt"):
        build(reg, {"type": "aligned", "root": str(tmp_path / "r")})
    with pytest.raises(DataError, match=r"no images in .*r/train"):
        build(reg, {"type": "folder", "root": str(tmp_path / "r"), "split": "train"})


def test_undecodable_image_names_the_file(reg: Registry, aligned_root: Path) -> None:
    (aligned_root / "train" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds = build(reg, {"type": "aligned", "root": str(aligned_root), "size": 8})
    with pytest.raises(DataError, match=r"cannot decode image .*train/1\.png"):
        ds[1]
    problems = ds.check()
    assert len(problems) == 1 and "train/1.png" in problems[0]
    assert data.aligned.check(ds.options) == problems


def test_odd_width_pair_names_the_file(reg: Registry, tmp_path: Path) -> None:
    save(tmp_path / "r" / "train" / "odd.png", solid(8, 15, (0, 0, 0)))
    ds = build(reg, {"type": "aligned", "root": str(tmp_path / "r"), "size": 8})
    with pytest.raises(DataError, match=r"odd\.png is 15x8; an A\|B image needs an even width"):
        ds[0]
    assert "odd.png" in ds.check()[0]


def test_labels_file_without_an_entry(reg: Registry, aligned_root: Path) -> None:
    (aligned_root / "labels.json").write_text(json.dumps({"files": {"train/0.png": 0}}))
    with pytest.raises(DataError, match=r"labels\.json has no entry for train/1\.png"):
        build(reg, {"type": "aligned", "root": str(aligned_root), "labels": "labels.json"})


def test_unaligned_missing_domain_and_bad_pairs(reg: Registry, unaligned_root: Path) -> None:
    for f in (unaligned_root / "trainB").iterdir():
        f.unlink()
    (unaligned_root / "trainB").rmdir()
    with pytest.raises(DataError, match=r"domain B folder .*trainB does not exist.*trainA"):
        build(reg, {"type": "unaligned", "root": str(unaligned_root)})
    (unaligned_root / "pairs.txt").write_text(
        "testA/t0.png testB/u0.png\ntestA/t1.png testB/zz.png\n"
    )
    with pytest.raises(DataError, match=r"pairs\.txt:2: image .*testB/zz\.png does not exist"):
        build(
            reg,
            {
                "type": "unaligned",
                "root": str(unaligned_root),
                "split": "test",
                "pairs": "pairs.txt",
            },
        )
    (unaligned_root / "pairs.txt").write_text("testA/t0.png\n")
    with pytest.raises(DataError, match=r"pairs\.txt:1: expected 'A_path B_path'"):
        build(
            reg,
            {
                "type": "unaligned",
                "root": str(unaligned_root),
                "split": "test",
                "pairs": "pairs.txt",
            },
        )


def test_cityscapes_unmatched_photo_or_label(reg: Registry, tmp_path: Path) -> None:
    root = tmp_path / "cs"
    cityscapes_raw(root, with_color=True)
    save(root / "leftImg8bit/train/bonn/bonn_000000_000001_leftImg8bit.png", solid(8, 8, (0, 0, 0)))
    with pytest.raises(
        DataError, match=r"photo .*bonn_000000_000001_leftImg8bit\.png has no label"
    ):
        build(reg, {"type": "cityscapes", "root": str(root)})
    (root / "leftImg8bit/train/bonn/bonn_000000_000001_leftImg8bit.png").unlink()
    save(root / "gtFine/train/bonn/bonn_000000_000002_gtFine_color.png", solid(8, 8, (0, 0, 0)))
    with pytest.raises(
        DataError, match=r"label .*bonn_000000_000002_gtFine_color\.png has no photo"
    ):
        build(reg, {"type": "cityscapes", "root": str(root)})


def test_folder_label_and_crop_errors(reg: Registry, tmp_path: Path) -> None:
    save(tmp_path / "f" / "cls" / "a.png", solid(8, 8, (0, 0, 0)))
    save(tmp_path / "f" / "loose.png", solid(8, 8, (0, 0, 0)))
    ds = build(reg, {"type": "folder", "root": str(tmp_path / "f"), "size": 8})
    assert ds.labels is None  # auto: a loose image means unlabelled
    with pytest.raises(DataError, match=r"loose\.png lies directly in it"):
        build(reg, {"type": "folder", "root": str(tmp_path / "f"), "labels": True})
    small = build(reg, {"type": "folder", "root": str(tmp_path / "f"), "size": 8, "center_crop": 9})
    with pytest.raises(DataError, match=r"a\.png is 8x8, smaller than center_crop 9"):
        small[0]


def test_options_are_validated(reg: Registry) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="load_size"):
        reg.options("dataset", {"type": "aligned", "root": "x", "size": 256, "load_size": 128})
    with pytest.raises(ValidationError, match="direction"):
        reg.options("dataset", {"type": "unaligned", "root": "x", "direction": "AB"})


# -- vemkit data check --------------------------------------------------------------------


def run_data(argv: list[str]) -> int:
    from vemkit.commands import data as command

    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    return command.run(parser.parse_args(["data", *argv]))


@pytest.fixture
def private_registry(monkeypatch: pytest.MonkeyPatch, reg: Registry) -> Registry:
    import vemkit.registry

    monkeypatch.setattr(vemkit.registry, "_default", reg)
    return reg


def test_data_check_command(private_registry: Registry, aligned_root: Path, capsys) -> None:
    good = f"{{type: aligned, root: '{aligned_root}', size: 8}}"
    assert run_data(["check", "--dataset", good]) == 0
    assert (
        "--dataset: ok (aligned split=train items=3; every file decoded)" in capsys.readouterr().out
    )
    (aligned_root / "train" / "2.png").write_bytes(b"junk")
    assert run_data(["check", "--dataset", good]) == 2
    assert "cannot decode image" in capsys.readouterr().err
    assert run_data(["check", "--quick", "--dataset", good]) == 0
    assert run_data(["check", "--dataset", good, "--split", "test"]) == 2
    assert "split 'test' folder" in capsys.readouterr().err


def test_data_check_bad_configs_raise(private_registry: Registry) -> None:
    from vemkit.errors import VemkitError

    with pytest.raises(VemkitError, match="did you mean 'aligned'"):
        run_data(["check", "--dataset", "{type: alinged, root: x}"])
    with pytest.raises(VemkitError, match="--dataset sise: Extra inputs are not permitted"):
        run_data(["check", "--dataset", "{type: aligned, root: x, sise: 3}"])
    with pytest.raises(VemkitError, match="needs a SPEC or --dataset"):
        run_data(["check"])


def test_data_check_reads_the_spec(
    private_registry: Registry, aligned_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from vemkit.commands import data as command

    train = private_registry.options("dataset", {"type": "aligned", "root": str(aligned_root)})
    bad = private_registry.options("dataset", {"type": "folder", "root": str(aligned_root / "x")})
    seen = {}

    def fake_load(path: str, overrides: list[str]) -> SimpleNamespace:
        seen["args"] = (path, overrides)
        return SimpleNamespace(data=SimpleNamespace(train=train, eval=bad))

    monkeypatch.setattr(command, "load", fake_load)
    assert run_data(["check", "spec.yaml", "--set", "seed=1"]) == 2
    assert seen["args"] == ("spec.yaml", ["seed=1"])
    out, errors = capsys.readouterr()
    assert "data.train: ok" in out and "data.eval: folder: dataset root" in errors


def test_data_check_on_a_real_spec(
    aligned_root: Path, tmp_path: Path, fresh_registry: None, capsys
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "vemkit: 1\nname: tiny\nseed: 0\ntask: paired\n"
        f"data:\n  train: {{type: aligned, root: '{aligned_root}', size: 8}}\n"
        f"  eval: {{type: aligned, root: '{aligned_root}', split: test, size: 8}}\n"
        "teacher:\n  arch: {type: unet, ngf: 64}\n  mode: online\n"
        "student:\n  arch: {type: unet, ngf: 16}\n"
        "method: {type: kd}\nmi: {type: none}\ntrain: {iterations: 10, batch_size: 2}\n"
    )
    assert run_data(["check", str(spec)]) == 2
    out, errors = capsys.readouterr()
    assert "data.train: ok (aligned split=train items=3" in out
    assert "data.eval: aligned: split 'test' folder" in errors
    assert run_data(["check", str(spec), "--set", "data.eval.split=val"]) == 0
