"""boxes_to_pixels / pixels_to_boxes: y flipped, exact round trips, numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.sample import geo_meta
from terrapipe.fuse import boxes_to_pixels, pixels_to_boxes

NORTH_UP = Affine(10, 0, 600000, 0, -10, 5100000)


def test_north_up_flips_y() -> None:
    # a map box in the top-left pixel
    px = boxes_to_pixels(np.array([600000.0, 5099990.0, 600010.0, 5100000.0]), NORTH_UP)
    np.testing.assert_array_equal(px, [0, 0, 1, 1])
    # its ymax (north) is the pixel box's row_min
    px = boxes_to_pixels(np.array([[600000.0, 5099900.0, 600010.0, 5099950.0]]), NORTH_UP)
    np.testing.assert_array_equal(px, [[0, 5, 1, 10]])


@pytest.mark.parametrize(
    "transform",
    [
        NORTH_UP,
        Affine(10, 0, 600000, 0, 10, 5000000),
        Affine(-0.5, 0, 10, 0, -0.25, 50),
        Affine(1 / 3600, 0, 5.5, 0, -1 / 3600, 46),
    ],
    ids=["north-up", "south-up", "mirrored", "degrees"],
)
def test_round_trip_is_exact(transform: Affine) -> None:
    rng = np.random.default_rng(0)
    corner = rng.uniform(0, 1000, (50, 2))
    px = np.concatenate([corner, corner + rng.uniform(0, 30, (50, 2))], axis=1)
    back = boxes_to_pixels(pixels_to_boxes(px, transform), transform)
    np.testing.assert_allclose(back, px, rtol=0, atol=1e-6)
    assert (back[:, :2] <= back[:, 2:]).all()


@settings(max_examples=50, deadline=None)
@given(
    st.floats(0.01, 100),
    st.floats(0.01, 100),
    st.booleans(),
    st.floats(-1e6, 1e6),
    st.floats(-1e7, 1e7),
    st.lists(st.floats(0, 4096), min_size=4, max_size=4),
)
def test_round_trip_any_rectilinear_grid(
    a: float, e: float, north: bool, c: float, f: float, v: list[float]
) -> None:
    transform = Affine(a, 0, c, 0, -e if north else e, f)
    px = np.array([[min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3])]])
    mapped = pixels_to_boxes(px, transform)
    assert (mapped[:, :2] <= mapped[:, 2:]).all()
    np.testing.assert_allclose(
        boxes_to_pixels(mapped, transform), px, rtol=0, atol=1e-6 * max(1.0, abs(c) / a, abs(f) / e)
    )


def test_torch_in_torch_out_and_meta() -> None:
    meta = geo_meta("EPSG:32631", NORTH_UP, (256, 256))
    px = torch.tensor([[[0.0, 0.0, 2.0, 3.0]], [[10.0, 10.0, 12.5, 11.0]]])
    mapped = pixels_to_boxes(px, meta)
    assert isinstance(mapped, torch.Tensor)
    assert mapped.dtype == torch.float64
    assert mapped.shape == (2, 1, 4)
    assert mapped[0, 0].tolist() == [600000.0, 5099970.0, 600020.0, 5100000.0]
    assert torch.equal(boxes_to_pixels(mapped, meta["transform"]).float(), px)


def test_rotated_grid_gives_the_enclosing_box() -> None:
    rotated = Affine.translation(100, 100) @ Affine.rotation(30) @ Affine.scale(2, -2)
    px = boxes_to_pixels(pixels_to_boxes(np.array([[0.0, 0.0, 4.0, 4.0]]), rotated), rotated)
    assert (px[0, :2] <= 0 + 1e-9).all()
    assert (px[0, 2:] >= 4 - 1e-9).all()


def test_bad_input() -> None:
    with pytest.raises(InvalidArgumentError, match=r"shape \(\.\.\., 4\)"):
        boxes_to_pixels(np.zeros((2, 3)), NORTH_UP)
    with pytest.raises(InvalidArgumentError, match="cannot be inverted"):
        boxes_to_pixels(np.zeros((1, 4)), (0, 0, 0, 0, 0, 0))
    with pytest.raises(InvalidArgumentError, match="Affine or 6 numbers"):
        pixels_to_boxes(np.zeros((1, 4)), (1, 2))
    with pytest.raises(InvalidArgumentError, match="'transform' key"):
        pixels_to_boxes(np.zeros((1, 4)), {"crs": "EPSG:4326"})
