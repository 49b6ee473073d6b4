"""`vemkit data preview`: a grid of the first items, input and target side by side."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vemkit.cli import main


def test_preview_writes_a_grid_of_pairs(tmp_path, capsys):
    split = tmp_path / "pairs" / "test"
    split.mkdir(parents=True)
    for i in range(3):
        a = np.full((16, 16, 3), 40 * i, np.uint8)
        b = np.full((16, 16, 3), 255 - 40 * i, np.uint8)
        Image.fromarray(np.concatenate([a, b], axis=1)).save(split / f"{i}.png")
    out = tmp_path / "grid.png"
    dataset = f"{{type: aligned, root: {tmp_path / 'pairs'}, split: test, size: 16}}"
    assert main(["data", "preview", "--dataset", dataset, "--out", str(out), "--items", "3"]) == 0
    grid = np.asarray(Image.open(out).convert("RGB"))
    # 3 items x (input | target) in one row of 16-px tiles with 2-px padding
    assert grid.shape == (2 + 16 + 2, 2 + 6 * (16 + 2), 3)
    first_input = grid[2 + 8, 2 + 8]
    first_target = grid[2 + 8, 2 + 18 + 8]
    assert tuple(first_input) == (0, 0, 0) and tuple(first_target) == (255, 255, 255)
    assert "wrote 3 items of aligned" in capsys.readouterr().out
