"""A lidar point on the edge between two chips counts in exactly one of them, whatever the pixel size.

``rasterize_points`` promises half-open cells (``[left, right) x (bottom,
top]``), so chips cut from one grid count every point once. The points here
lie exactly on the corners of a lattice of pixels (LAS integers at the file's
scale), a case real files hit on round pixel sizes: a lattice of 41 x 41
points over a 40 x 40 pixel grid cut into 8 x 8 chips must give one point in
every pixel (the last row and column lie on the grid's far edges, outside).
Pixel sizes like 0.1 m are not exact in binary: chips lost the line of points
between them (a chip's box ended a hair before the point, its neighbour's
pixel ended a hair after it), at 0.7 m they counted it twice. LAS (read
whole) and COPC (read per chip) alike; the padded point arrays
(``max_points``) give the same totals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from affine import Affine

laspy = pytest.importorskip("laspy")
pytest.importorskip("lazrs")

from pyproj import CRS  # noqa: E402

import terrapipe as tp  # noqa: E402
import terrapipe.fuse  # noqa: E402
from terrapipe.datasets.copc_writer import write_copc  # noqa: E402

SIZE, CHIP = 40, 8


def _chip(transform: Affine, shape: tuple[int, int]) -> xr.DataArray:
    height, width = shape
    ys = transform.f + (np.arange(height) + 0.5) * transform.e
    xs = transform.c + (np.arange(width) + 0.5) * transform.a
    chip = xr.DataArray(np.zeros((height, width)), dims=("y", "x"), coords={"y": ys, "x": xs})
    return chip.rio.write_crs("EPSG:32631").rio.write_transform(transform)


def _lattice(path: Path, pixel: float, x0: float, y0: float, scale: float, copc: bool) -> str:
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = np.array([scale] * 3)
    header.offsets = np.array([500000.0, 4000000.0, 0.0])
    header.add_crs(CRS.from_epsg(32631))
    las = laspy.LasData(header)
    xs, ys = np.meshgrid(x0 + np.arange(SIZE + 1) * pixel, y0 - np.arange(SIZE + 1) * pixel)
    las.x, las.y, las.z = xs.ravel(), ys.ravel(), np.ones(xs.size)
    if copc:
        return str(write_copc(las, path.with_suffix(".copc.laz"), points_per_node=50))
    las.write(path.with_suffix(".las"))
    return str(path.with_suffix(".las"))


@pytest.mark.parametrize("copc", [False, True], ids=["las", "copc"])
@pytest.mark.parametrize(
    ("pixel", "x0", "y0", "scale"),
    [(0.1, 500000.3, 4000000.9, 0.01), (0.7, 500001.1, 4000003.3, 0.1), (0.05, 500000.05, 4000000.05, 0.01)],
)
def test_every_pixel_of_the_tiled_grid_gets_its_one_point(
    tmp_path: Path, pixel: float, x0: float, y0: float, scale: float, copc: bool
) -> None:
    path = _lattice(tmp_path / "lattice", pixel, x0, y0, scale, copc)
    grid = Affine(pixel, 0, x0, 0, -pixel, y0)
    offsets = [(r, c) for r in range(0, SIZE, CHIP) for c in range(0, SIZE, CHIP)]
    chips = [_chip(grid * Affine.translation(c, r), (CHIP, CHIP)) for r, c in offsets]
    out = list(tp.from_items(chips).rasterize_points(path, statistics=["count"], max_points=4 * CHIP * CHIP))
    counts = np.zeros((SIZE, SIZE), dtype=np.int64)
    for (r, c), ds in zip(offsets, out, strict=True):
        counts[r : r + CHIP, c : c + CHIP] = ds["lidar_count"].values
        assert int(ds["lidar_points_total"].values) == CHIP * CHIP
    assert (counts == 1).all(), (
        f"{int((counts == 0).sum())} pixels lost their point, {int((counts > 1).sum())} got two"
    )
    whole = next(
        iter(tp.from_items([_chip(grid, (SIZE, SIZE))]).rasterize_points(path, statistics=["count"]))
    )
    assert (whole["lidar_count"].values == 1).all()
