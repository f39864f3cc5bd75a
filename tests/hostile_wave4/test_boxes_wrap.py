"""boxes_to_pixels on lon/lat grids: a box lands on its place, however its longitudes are written.

Before, map boxes went through the inverse transform as written: a box at -179..-177 on a chip
170..190 came out at columns -349..-347 (off the chip: to_tensor's clipping made it an empty box at
column 0), one on a 0..360 grid written -75 missed it by 360 columns, and an antimeridian-crossing
box (xmin east of xmax, as RFC 7946 and STAC write it) was taken as the whole globe minus the box.
The reference is the box moved by hand (shapely) to the turn where it overlaps the grid most, then
converted with the bare transform (no wrapping: a plain affine, as before).
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import torch
from affine import Affine

from terrapipe.core.sample import geo_meta
from terrapipe.fuse.boxes import boxes_to_pixels, pixels_to_boxes

GRIDS = [  # (west, pixel size, width): 0..360, -180..180, across the antimeridian, a small 0..360 chip
    (0.0, 1.0, 360),
    (-180.0, 0.25, 1440),
    (170.0, 0.5, 40),
    (250.0, 0.1, 200),
    (-190.0, 1.0, 20),
]


def _reference(box: np.ndarray, west: float, east: float) -> np.ndarray | None:
    """The box moved to the turn where it overlaps the grid most (None: no overlap, or a tie)."""
    xmin, ymin, xmax, ymax = box
    if xmin > xmax:
        xmax += 360.0
    grid = shapely.box(west, -90.0, east, 90.0)
    areas = []
    for k in range(-3, 4):
        moved = shapely.box(xmin + 360.0 * k, ymin, xmax + 360.0 * k, ymax)
        areas.append((moved.intersection(grid).area, moved.bounds))
    areas.sort(key=lambda pair: -pair[0])
    if areas[0][0] <= 0 or areas[0][0] - areas[1][0] < 1e-6 * areas[0][0]:
        return None
    return np.array(areas[0][1])


@pytest.mark.parametrize(("west", "res", "width"), GRIDS)
def test_boxes_land_where_a_shifted_copy_overlaps_the_grid(west: float, res: float, width: int) -> None:
    rng = np.random.default_rng(int(width))
    east = west + res * width
    transform = Affine(res, 0.0, west, 0.0, -res, 60.0)
    meta = geo_meta("EPSG:4326", transform, (1200, width))
    lefts = west + rng.uniform(-0.5, 1.0, 400) * res * width + 360.0 * rng.integers(-1, 2, 400)
    widths = rng.uniform(0.01, 0.4, 400) * res * width
    boxes = np.stack([lefts, rng.uniform(-50, 0, 400), lefts + widths, rng.uniform(10, 50, 400)], axis=1)
    wrapped = (boxes[:, :1] + 180.0) % 360.0 - 180.0  # some crossing the antimeridian: xmin > xmax
    boxes[:200, 0] = wrapped[:200, 0]
    boxes[:200, 2] = (boxes[:200, 0] + widths[:200] + 180.0) % 360.0 - 180.0
    got = boxes_to_pixels(boxes, meta)
    checked = 0
    for box, pixels in zip(boxes, got, strict=True):
        moved = _reference(box, west, east)
        if moved is None:
            continue
        np.testing.assert_allclose(pixels, boxes_to_pixels(moved[None], transform)[0], atol=1e-6)
        checked += 1
    assert checked > 50


def test_one_box_one_answer_from_every_input_kind() -> None:
    meta = geo_meta("EPSG:4326", (0.5, 0.0, 170.0, 0.0, -0.5, 10.0), (20, 40))  # 170..190
    box = [[-179.0, 1.0, -177.0, 3.0]]
    expected = np.array([[22.0, 14.0, 26.0, 18.0]])
    np.testing.assert_array_equal(boxes_to_pixels(np.array(box), meta), expected)
    np.testing.assert_array_equal(boxes_to_pixels(torch.tensor(box), meta).numpy(), expected)
    transform = meta["transform"]
    np.testing.assert_array_equal(boxes_to_pixels(box, transform, crs="EPSG:4326", shape=(20, 40)), expected)
    np.testing.assert_array_equal(boxes_to_pixels(box, transform, crs="OGC:CRS84"), expected)
    crossing = boxes_to_pixels([[179.0, 1.0, -179.0, 3.0]], meta)
    np.testing.assert_array_equal(crossing, [[18.0, 14.0, 22.0, 18.0]])
    back = pixels_to_boxes(expected, meta)
    np.testing.assert_array_equal(back, [[181.0, 1.0, 183.0, 3.0]])  # the chip's own writing


def test_projected_grids_and_bare_transforms_are_unchanged() -> None:
    utm = geo_meta("EPSG:32631", (10.0, 0.0, 500_000.0, 0.0, -10.0, 5_000_000.0), (4, 4))
    box = np.array([[500_000.0 - 3600.0, 4_999_960.0, 500_000.0 - 3590.0, 4_999_970.0]])
    np.testing.assert_array_equal(boxes_to_pixels(box, utm), [[-360.0, 3.0, -359.0, 4.0]])
    bare = boxes_to_pixels([[-179.0, 1.0, -177.0, 3.0]], (1.0, 0.0, 170.0, 0.0, -1.0, 10.0))
    np.testing.assert_array_equal(bare, [[-349.0, 7.0, -347.0, 9.0]])
