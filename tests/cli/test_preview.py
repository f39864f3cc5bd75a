"""``terrapipe preview``'s drawing: panels per sample, overlays, shared contrast stretch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.recipes.preview import preview_samples, rgb_of, stretch_limits


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def sample(**extra: object) -> dict[str, object]:
    return {"image": torch.rand(3, 32, 32) * 1000 + 1, **extra}


def test_a_mask_adds_a_panel_and_parts_get_one_each(tmp_path: Path) -> None:
    plain = image_size(preview_samples([sample()], tmp_path / "plain.png", columns=1))
    masked = image_size(
        preview_samples([sample(mask=torch.randint(0, 3, (32, 32)))], tmp_path / "mask.png", columns=1)
    )
    pair = image_size(preview_samples([{"fine": sample(), "coarse": sample()}], tmp_path / "pair.png"))
    assert masked[0] == pytest.approx(2 * plain[0], rel=0.05)
    assert pair[0] == pytest.approx(2 * plain[0], rel=0.05)


def test_boxes_are_drawn_in_yellow(tmp_path: Path) -> None:
    dark = {"image": torch.full((3, 32, 32), 1.0), "boxes": torch.tensor([[4.0, 4.0, 28.0, 28.0]])}
    path = preview_samples([dark], tmp_path / "boxes.png", columns=1)
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    yellow = (pixels[:, 0] > 200) & (pixels[:, 1] > 200) & (pixels[:, 2] < 80)
    assert yellow.sum() > 50


def test_stretch_is_shared_and_ignores_nodata() -> None:
    clear = np.stack([np.linspace(100, 200, 64).reshape(8, 8)] * 3)
    cloudy = clear + 5000
    nodata = np.zeros((3, 8, 8))
    limits = stretch_limits([clear, clear, cloudy, nodata])
    assert limits[0, 0] == pytest.approx(np.percentile(clear[0], 2))
    assert limits[0, 1] == pytest.approx(np.percentile(clear[0], 98))  # the median high: clouds do not win
    rgb = rgb_of(nodata, limits)
    assert rgb.shape == (8, 8, 3)
    assert (rgb == 0).all()


def test_nothing_to_draw_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="no samples"):
        preview_samples([], tmp_path / "x.png")
    with pytest.raises(InvalidArgumentError, match="preview needs samples"):
        preview_samples([{"label": 1}], tmp_path / "x.png")
