"""The resumable loader: order fixed by (seed, epoch), exact skip-ahead, worker independence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vemkit.registry import Registry
from vemkit_plugins import data
from vemkit_plugins.data.loader import epoch_order, make_loader


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    """10 random A|B pairs with random crops and flips, so items depend on the epoch too."""
    root = tmp_path_factory.mktemp("loader")
    rng = np.random.default_rng(0)
    for i in range(10):
        ab = rng.integers(0, 256, (10, 20, 3), dtype=np.uint8)
        (root / "train").mkdir(exist_ok=True)
        Image.fromarray(ab).save(root / "train" / f"{i:02d}.png")
    reg = Registry()
    data.register(reg)
    cfg = {"type": "aligned", "root": str(root), "size": 8, "load_size": 10, "flip": True}
    return reg.build("dataset", cfg, seed=5)


def collect(loader) -> tuple[list[int], list[torch.Tensor]]:
    indices, inputs = [], []
    for batch in loader:
        indices += batch["index"].tolist()
        inputs += list(batch["input"])
    return indices, inputs


def test_epoch_order_is_a_function_of_seed_and_epoch() -> None:
    assert epoch_order(6, shuffle=False, seed=1, epoch=3) == [0, 1, 2, 3, 4, 5]
    a = epoch_order(50, shuffle=True, seed=1, epoch=0)
    assert sorted(a) == list(range(50))
    assert a == epoch_order(50, shuffle=True, seed=1, epoch=0)
    assert a != epoch_order(50, shuffle=True, seed=1, epoch=1)
    assert a != epoch_order(50, shuffle=True, seed=2, epoch=0)


def test_loader_order_is_deterministic(dataset) -> None:
    first = collect(make_loader(dataset, 3, shuffle=True, seed=7))
    second = collect(make_loader(dataset, 3, shuffle=True, seed=7))
    assert first[0] == second[0] == epoch_order(10, shuffle=True, seed=7, epoch=0)
    assert all(torch.equal(x, y) for x, y in zip(first[1], second[1], strict=True))
    loader = make_loader(dataset, 3, shuffle=True, seed=7)
    loader.set_epoch(1)
    assert dataset.epoch == 1
    assert collect(loader)[0] == epoch_order(10, shuffle=True, seed=7, epoch=1) != first[0]
    dataset.set_epoch(0)


@pytest.mark.parametrize("k", [0, 1, 4, 9, 10])
def test_skip_ahead_equals_the_rest_of_the_full_epoch(dataset, k: int) -> None:
    full_idx, full_x = collect(make_loader(dataset, 4, shuffle=True, seed=3, epoch=2))
    rest_idx, rest_x = collect(
        make_loader(dataset, 4, shuffle=True, seed=3, epoch=2, start_index=k)
    )
    assert rest_idx == full_idx[k:]
    assert all(torch.equal(x, y) for x, y in zip(rest_x, full_x[k:], strict=True))
    dataset.set_epoch(0)


def test_drop_last_and_bad_start_index(dataset) -> None:
    loader = make_loader(dataset, 4, shuffle=False, seed=0, drop_last=True, start_index=1)
    assert len(loader) == 2 and collect(loader)[0] == list(range(1, 9))
    with pytest.raises(ValueError, match="start_index 11"):
        make_loader(dataset, 4, shuffle=False, seed=0, start_index=11)


def test_workers_do_not_change_the_items(dataset) -> None:
    single = collect(make_loader(dataset, 2, shuffle=True, seed=1, epoch=1))
    multi = collect(make_loader(dataset, 2, shuffle=True, seed=1, epoch=1, workers=2))
    assert single[0] == multi[0]
    assert all(torch.equal(x, y) for x, y in zip(single[1], multi[1], strict=True))
    dataset.set_epoch(0)
