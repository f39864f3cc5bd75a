"""stitch on lon/lat templates: every pixel of a prediction lands on its place, on every copy of it.

Before, a prediction was moved by whole turns of the globe to one column near the template and cut
there: one straddling the edge of a 0..360 template (a chip -2..2) kept only the part east of 0 (the
rest NaN), and on a template wider than the globe (a 0.25-degree grid of 1441 columns, its last one
repeating its first) a chip at column 0 went to column 1440 and kept one column of 256, silently.
The reference is the world itself: chips cut from it (written -180..180 or 0..360) and stitched back
onto a template in the other writing must give the world back, pixel for pixel.
"""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import terrapipe as tp
import terrapipe.chip  # registers chip
from terrapipe.chip.stitch import stitch
from terrapipe.core.errors import GridMismatchError
from terrapipe.core.sample import geo_meta
from terrapipe.tensor.meta import meta_of


def _world(west: float, width: int, res: float = 1.0, crs: str = "EPSG:4326") -> xr.DataArray:
    """A lon/lat raster whose pixels hold a value of their place alone (the same one turn away)."""
    x = west + (np.arange(width) + 0.5) * res
    place = np.round((x + 180.0) % 360.0 - 180.0, 6)
    y = 3 - (np.arange(3) + 0.5)
    values = np.stack([place + 1000 * row for row in range(3)]).astype("float64")
    return xr.DataArray(values, dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs(crs)


@pytest.mark.parametrize("overlap", ["mean", "center"])
@pytest.mark.parametrize(("source_west", "template_west"), [(-180.0, 0.0), (0.0, -180.0), (-170.0, 10.0)])
def test_chips_of_one_writing_stitched_on_the_other_give_the_world_back(
    overlap: str, source_west: float, template_west: float
) -> None:
    source = _world(source_west, 360)
    template = _world(template_west, 360)
    chips = list(tp.from_items([source]).chip({"y": 3, "x": 40}, overlap={"x": 8}, boundary="shift"))
    for placed in (
        stitch(((c.values, c) for c in chips), template, overlap=overlap),  # type: ignore[arg-type]
        stitch(((c.values, meta_of(c)) for c in chips), template, overlap=overlap),
    ):
        np.testing.assert_array_equal(placed.values, template.values)


def test_a_prediction_straddling_the_edge_fills_both_ends() -> None:
    template = _world(0.0, 360)
    prediction = np.arange(12, dtype="float32").reshape(3, 4)
    meta = geo_meta("EPSG:4326", (1.0, 0.0, -2.0, 0.0, -1.0, 3.0), (3, 4))
    placed = stitch([(prediction, meta)], template).values
    np.testing.assert_array_equal(placed[:, 358:], prediction[:, :2])
    np.testing.assert_array_equal(placed[:, :2], prediction[:, 2:])
    assert int(np.isnan(placed).sum()) == placed.size - 12


@pytest.mark.parametrize("overlap", ["mean", "center"])
def test_a_template_wider_than_the_globe_gets_every_chip_whole(overlap: str) -> None:
    template = _world(-0.125, 1441, res=0.25)  # column 1440 is column 0's place again
    chips = list(tp.from_items([template]).chip({"y": 3, "x": 256}, boundary="shift"))
    for chip in chips[:2]:
        meta = meta_of(chip)
        alone = stitch([(chip.values, meta)], template, overlap=overlap).values
        start = round((float(chip.x[0]) - float(template.x[0])) / 0.25)
        np.testing.assert_array_equal(alone[:, start : start + 256], chip.values)
    placed = stitch(((c.values, c) for c in chips), template, overlap=overlap)
    np.testing.assert_array_equal(placed.values, template.values)


def test_a_chip_on_one_copy_of_a_wide_template_lands_on_the_other_copy_too() -> None:
    template = _world(-10.0, 380)  # -10..370: columns 0..19 and 360..379 are the same places
    meta = geo_meta("EPSG:4326", (1.0, 0.0, 355.0, 0.0, -1.0, 3.0), (3, 10))  # 355..365
    placed = stitch([(np.ones((3, 10), "float32"), meta)], template).values
    covered = np.flatnonzero(~np.isnan(placed[0]))
    assert covered.tolist() == [*range(5, 15), *range(365, 375)]


def test_projected_and_off_turn_grids_are_not_wrapped() -> None:
    projected = _world(500_000.0, 20, crs="EPSG:32631")
    meta = geo_meta("EPSG:32631", (1.0, 0.0, 500_000.0 - 362.0, 0.0, -1.0, 3.0), (3, 4))
    with pytest.raises(GridMismatchError, match="no prediction lies on the template"):  # not moved onto it
        stitch([(np.ones((3, 4), "float32"), meta)], projected)
    odd = _world(0.0, 50, res=0.7)  # 360 / 0.7 is no whole number of columns: no turn to move by
    meta = geo_meta("EPSG:4326", (0.7, 0.0, -1.4, 0.0, -1.0, 3.0), (3, 4))
    placed = stitch([(np.ones((3, 4), "float32"), meta)], odd).values
    assert np.flatnonzero(~np.isnan(placed[0])).tolist() == [0, 1]
