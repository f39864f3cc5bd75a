"""stitch on a lon/lat template: a prediction written one turn of the globe away lands on its place.

Predictions of chips cut from a -180..180 cube, stitched onto a template written 0..360 (or the other
way), fell outside the template and were ignored: NaN where the predictions were, silently.
"""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

from terrapipe.chip.stitch import stitch
from terrapipe.core.errors import GridMismatchError
from terrapipe.core.sample import geo_meta


def _grid(west: float, width: int, crs: str = "EPSG:4326") -> xr.DataArray:
    x = west + np.arange(width) + 0.5
    y = 2 - (np.arange(2) + 0.5)
    return xr.DataArray(
        np.zeros((2, width), "float32"), dims=("y", "x"), coords={"y": y, "x": x}
    ).rio.write_crs(crs)


@pytest.mark.parametrize(
    ("template_west", "width", "chip_west", "column"),
    [(0.0, 360, -75.0, 285), (-180.0, 360, 200.0, 20), (170.0, 20, -175.0, 15), (-190.0, 20, 178.0, 8)],
)
def test_a_prediction_one_turn_away_is_placed_on_its_place(
    template_west: float, width: int, chip_west: float, column: int
) -> None:
    template = _grid(template_west, width)
    chip = _grid(chip_west, 2)
    prediction = np.array([[1.0, 2.0], [3.0, 4.0]], "float32")
    meta = geo_meta("EPSG:4326", (1.0, 0.0, chip_west, 0.0, -1.0, 2.0), (2, 2))
    for placed in (stitch([(prediction, meta)], template), stitch([(prediction, chip)], template)):
        np.testing.assert_array_equal(placed.values[:, column : column + 2], prediction)
        assert int(np.isnan(placed.values).sum()) == placed.size - 4


def test_projected_templates_do_not_wrap() -> None:
    template = _grid(500_000.0, 20, crs="EPSG:32631")
    meta = geo_meta("EPSG:32631", (1.0, 0.0, 500_000.0 - 360.0, 0.0, -1.0, 2.0), (2, 2))
    # not moved by a turn onto the template: it lies off it, and a stitch where none lies on it is refused
    with pytest.raises(GridMismatchError, match="no prediction lies on the template"):
        stitch([(np.ones((2, 2), "float32"), meta)], template)
