"""``stitch`` with xarray chips as metas: a chip is placed only where all of it lies on the template.

A prediction's xarray chip is placed by its first x/y coordinate (``_Grid.origin_from_chip``: the
offset of the first coordinate in template steps, or on an uneven axis the template coordinate equal
to it, fb87913). The rest of the chip is not looked at: a chip whose rows run the other way (a
flipped chip, ``y`` ascending on a north-up template), a chip at another resolution (coarsened for a
model that predicts at 20 m), a chip in another CRS (the same coordinate numbers, another zone)
or a chip of an uneven axis whose later coordinates are not the template's are placed as if they
were the template's pixels, silently. A GeoMeta given instead is refused for another pixel size or
CRS (``origin_from_meta``), as the docstring promises for both: "GridMismatchError: when a
prediction is in another CRS or resolution, or not aligned with the template's pixels".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr

from terrapipe.chip import stitch
from terrapipe.core.errors import GridMismatchError

Y = 4_000_075.0 - 10 * np.arange(8)
X = 500_005.0 + 10 * np.arange(8)


def _template(xs: np.ndarray = X) -> xr.DataArray:
    values = np.arange(8 * xs.size, dtype="float32").reshape(8, xs.size)
    da = xr.DataArray(values, dims=("y", "x"), coords={"y": Y, "x": xs}, name="t")
    return da.rio.write_crs("EPSG:32631")


def _placed_or_refused(chip: xr.DataArray, template: xr.DataArray) -> None:
    """Stitch one chip: refused by name, or every pixel lands where its own coordinates are."""
    try:
        out = stitch([(chip.values, chip)], template)
    except GridMismatchError:
        return
    for i, y in enumerate(chip.y.values):
        for j, x in enumerate(chip.x.values):
            assert x in out.x.values, f"placed, but x={x} is no pixel of the template"
            assert y in out.y.values, f"placed, but y={y} is no pixel of the template"
            assert float(out.sel(y=y, x=x)) == float(chip.values[i, j]), (y, x)


REFUSED: dict[str, Callable[[xr.DataArray], xr.DataArray]] = {
    # rows ascending (a chip flipped north-down): the first row is y=4000015, the template's row 6
    "rows_flipped": lambda t: t.isel(y=slice(2, 6), x=slice(2, 6)).isel(y=slice(None, None, -1)),
    "columns_flipped": lambda t: t.isel(y=slice(2, 6), x=slice(2, 6)).isel(x=slice(None, None, -1)),
    # 20 m pixels whose first centre happens to be a 10 m centre: coarsened by striding
    "every_other_pixel": lambda t: t.isel(y=slice(0, 8, 2), x=slice(0, 8, 2)),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_chip_not_on_the_template_s_pixels_is_refused_or_placed_right(case: str) -> None:
    template = _template()
    _placed_or_refused(REFUSED[case](template), template)


def test_a_chip_in_another_crs_is_refused() -> None:
    template = _template()
    chip = template.isel(y=slice(0, 4), x=slice(0, 4)).rio.write_crs("EPSG:32632")
    with pytest.raises(GridMismatchError):
        stitch([(chip.values, chip)], template)


def test_a_chip_of_an_uneven_axis_must_match_all_its_coordinates() -> None:
    uneven = np.array([0.0, 1, 2, 4, 8, 16, 32, 64])
    template = _template(uneven)
    chip = template.isel(y=slice(0, 4), x=slice(1, 4)).assign_coords(
        x=[1.0, 3.0, 5.0]
    )  # only 1 is the template's
    _placed_or_refused(chip, template)


def test_the_same_chips_by_geometa_are_refused() -> None:
    """A control: the GeoMeta of a strided chip (another pixel size) is refused."""
    from terrapipe.core.sample import geo_meta

    template = _template()
    meta = geo_meta("EPSG:32631", (20.0, 0.0, 500_000.0, 0.0, -20.0, 4_000_080.0), (4, 4))
    with pytest.raises(GridMismatchError, match="pixel size"):
        stitch([(np.zeros((4, 4), "float32"), meta)], template)


@pytest.mark.parametrize("held_as", ["float64", "float32"])
def test_a_chip_on_the_template_lands_on_its_pixels(held_as: str) -> None:
    template = _template()
    chip = template.isel(y=slice(2, 6), x=slice(3, 7))
    chip = chip.assign_coords(x=chip.x.astype(held_as), y=chip.y.astype(held_as))
    out = stitch([(chip.values, chip)], template)
    np.testing.assert_array_equal(out.values[2:6, 3:7], template.values[2:6, 3:7])
    assert np.isnan(out.values[0, 0])
