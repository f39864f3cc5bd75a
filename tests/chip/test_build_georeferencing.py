"""``chip(output="numpy")`` never hands out NaN/inf georeferencing: the check :func:`geo_meta` makes.

``chip/build.py`` builds each window's ``GeoMeta`` itself (separable x/y parts, cached per offset)
instead of calling :func:`terrapipe.core.sample.geo_meta` per chip; before, a transform derived from
NaN/inf coordinates, or one whose windows run past the float range, reached every chip's meta
silently, and a GeoTransform that is not finite on an element without x/y coordinates gave the
identity grid in the element's CRS.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from affine import Affine

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.sample import geo_meta

N = 8


def _array(
    x: Any = None, y: Any = None, *, coords: bool = True, geotransform: str | None = None
) -> xr.DataArray:
    data = np.arange(N * N, dtype="uint16").reshape(N, N)
    xs = np.arange(N) * 10.0 + 5.0 if x is None else np.asarray(x, dtype="float64")
    ys = 100.0 - np.arange(N) * 10.0 - 5.0 if y is None else np.asarray(y, dtype="float64")
    da = xr.DataArray(data, dims=("y", "x"), coords={"y": ys, "x": xs} if coords else None)
    da = da.rio.write_crs("EPSG:32631")
    if geotransform is not None:
        da.spatial_ref.attrs["GeoTransform"] = geotransform
    return da


def _chips(obj: Any, **options: Any) -> list[Any]:
    return list(tp.from_items([obj]).chip({"y": 4, "x": 4}, output="numpy", **options))


def _finite(meta: Any) -> bool:
    return all(math.isfinite(v) for v in (*meta["transform"], *meta["bounds"]))


COORDINATES = {
    "x starts with NaN": {"x": [math.nan, 15, 25, 35, 45, 55, 65, 75]},
    "y starts with inf": {"y": [math.inf, 85, 75, 65, 55, 45, 35, 25]},
    "y starts with -inf": {"y": [-math.inf, 85, 75, 65, 55, 45, 35, 25]},
    "x edges past the float range": {
        "x": [1e308, 1.5e308, 1.7e308, 1.79e308, 1.7976e308, 1.7976e308, 1.7976e308, 1.7976e308]
    },
}


@pytest.mark.parametrize("case", sorted(COORDINATES))
def test_coordinates_that_are_not_finite_are_refused(case: str) -> None:
    with pytest.raises(
        InvalidArgumentError,
        match=r"chip: an element of sizes .*(not 6 finite|not all finite|beyond the float range)",
    ):
        _chips(_array(**COORDINATES[case]))


@pytest.mark.parametrize("case", sorted(COORDINATES))
def test_a_dataset_with_such_coordinates_is_refused(case: str) -> None:
    ds = _array(**COORDINATES[case]).to_dataset(name="image")
    with pytest.raises(InvalidArgumentError, match="chip: an element of sizes"):
        _chips(ds)


@pytest.mark.parametrize(
    "geotransform", ["nan 10 0 100 0 -10", "0 10 0 100 0 inf", "0 10 1 100 nan -10", "0 0 0 100 0 -10"]
)
def test_a_geotransform_that_places_nothing_without_coordinates_is_refused(geotransform: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"has the GeoTransform .* no x/y coordinates"):
        _chips(_array(coords=False, geotransform=geotransform))


@pytest.mark.parametrize("geotransform", ["nan 10 0 100 0 -10", "0 10 0 100 0 inf", "0 inf 0 100 0 -10"])
def test_coordinates_decide_over_a_geotransform_that_is_not_finite(geotransform: str) -> None:
    chips = _chips(_array(geotransform=geotransform))
    reference = _chips(_array())
    assert [meta for _, meta in chips] == [meta for _, meta in reference]
    assert all(_finite(meta) for _, meta in chips)


def test_padded_windows_past_the_float_range_are_refused_and_dropped_ones_kept() -> None:
    xs = (
        1.1e308 + np.arange(7) * 1e307
    )  # pixel edges up to 1.75e308; a padded 8th column would end at 1.85e308
    da = _array(x=np.concatenate([xs, [xs[-1] + 5e306]]))[:, :7]
    kept = _chips(da, boundary="drop")
    assert kept
    assert all(_finite(meta) for _, meta in kept)
    with pytest.raises(InvalidArgumentError, match="beyond the float range"):
        _chips(da, boundary="pad")


def test_finite_georeferencing_is_as_geo_meta_makes_it() -> None:
    """The direct metadata equals geo_meta's for every window (rectilinear and rotated grids)."""
    for da in (_array(), _array(coords=False, geotransform="1000 10 2 5000 1.5 -10")):
        for start, (array, meta) in zip([(0, 0), (0, 4), (4, 0), (4, 4)], _chips(da), strict=True):
            transform = da.rio.transform() * Affine.translation(start[1], start[0])
            assert meta == geo_meta("EPSG:32631", transform, (4, 4))
            np.testing.assert_array_equal(array, da.values[start[0] : start[0] + 4, start[1] : start[1] + 4])


def test_an_array_without_georeferencing_keeps_pixel_coordinates() -> None:
    """No GeoTransform and no coordinates: the identity grid, as before (nothing was stated to refuse)."""
    (_, meta), *_ = _chips(_array(coords=False))
    assert meta["transform"] == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
