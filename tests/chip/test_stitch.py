from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import terrapipe as tp
from terrapipe.chip import stitch
from terrapipe.core.errors import GridMismatchError, InvalidArgumentError
from tests.chip.chip_helpers import geo_cube


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(3, 30),
    width=st.integers(3, 30),
    window=st.integers(2, 12),
    overlap=st.integers(0, 5),
    boundary=st.sampled_from(["shift", "pad"]),
    mode=st.sampled_from(["mean", "center"]),
    output=st.sampled_from(["xarray", "numpy"]),
)
def test_stitch_of_identity_predictions_gives_back_the_input(
    height, width, window, overlap, boundary, mode, output
):
    overlap = min(overlap, window - 1)
    cube = geo_cube(bands=2, height=height, width=width)
    chips = tp.from_items([cube]).chip(window, overlap=overlap, boundary=boundary, output=output)
    pairs = ((c.values, c) for c in chips) if output == "xarray" else chips
    out = stitch(pairs, template=cube, overlap=mode)
    np.testing.assert_array_equal(out.values, cube.values)
    assert out.dims == cube.dims
    for name in ("band", "y", "x"):
        np.testing.assert_array_equal(out[name].values, cube[name].values)
    assert out.rio.crs == cube.rio.crs
    assert out.rio.transform() == cube.rio.transform()
    if mode == "center":
        assert out.dtype == cube.dtype
    else:
        assert out.dtype == np.float32


def test_mean_and_center_resolve_overlaps_differently():
    image = xr.DataArray(np.zeros((1, 12)), dims=("y", "x"), coords={"y": [0.0], "x": np.arange(12.0)})
    chips = list(tp.from_items([image]).chip({"y": 1, "x": 6}, stride={"x": 3}))
    predictions = [(np.full((1, 6), float(i)), c) for i, c in enumerate(chips)]  # windows at x = 0, 3, 6
    mean = stitch(predictions, template=image, overlap="mean")
    center = stitch(predictions, template=image, overlap="center")
    np.testing.assert_allclose(mean.values[0], [0, 0, 0, 0.5, 0.5, 0.5, 1.5, 1.5, 1.5, 2, 2, 2])
    # window centres (in pixels) are 2.5, 5.5 and 8.5: pixels 4 and 7 are equidistant from two
    # centres and go to the window with the smaller origin
    np.testing.assert_array_equal(center.values[0], [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    reversed_center = stitch(predictions[::-1], template=image, overlap="center")
    np.testing.assert_array_equal(reversed_center.values, center.values)


def test_class_predictions_batches_and_torch_tensors(cube):
    chips = list(tp.from_items([cube]).chip(8, output="numpy", boundary="shift"))
    metas = [m for _, m in chips]
    batch = torch.stack([torch.ones(3, 8, 8) * k for k in range(len(chips))])
    out = stitch([(batch, metas)], template=cube, overlap="center")
    assert out.dims == ("band", "y", "x")
    assert out.sizes["band"] == 3
    assert "band" not in out.coords or out.band.size == 3
    assert float(out.values[:, 0, 0].max()) == 0.0


def test_uncovered_pixels_get_the_fill_value(cube):
    chips = tp.from_items([cube]).chip(16)  # drop: the right and bottom edges are not covered
    out = stitch(((c.values.astype("float32"), c) for c in chips), template=cube)
    assert np.isnan(out.values[:, 32:, :]).all()
    assert not np.isnan(out.values[:, :32, :48]).any()
    ints = stitch(
        ((c.values, c) for c in tp.from_items([cube]).chip(16)), template=cube, overlap="center", fill_value=9
    )
    assert (ints.values[:, 32:, :] == 9).all()
    assert ints.rio.nodata == 9


def test_geobox_template_and_cog_output(tmp_path, cube):
    from odc.geo.geobox import GeoBox

    gbox = GeoBox((40, 50), cube.rio.transform(), "EPSG:32631")
    chips = tp.from_items([cube]).chip(10, overlap=2, boundary="shift", output="numpy")
    out = stitch(chips, template=gbox, overlap="center")
    np.testing.assert_array_equal(out.values, cube.values)
    path = tmp_path / "pred.tif"
    out.rio.to_raster(path, driver="COG")
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(src.read(), cube.values)
        assert src.crs.to_epsg() == 32631
        assert src.transform == cube.rio.transform()
        assert src.profile["driver"] == "GTiff"  # COG is a GTiff layout
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_stitch_errors(cube):
    array, meta = next(iter(tp.from_items([cube]).chip(8, output="numpy")))
    with pytest.raises(InvalidArgumentError, match="overlap"):
        stitch([(array, meta)], template=cube, overlap="max")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="no predictions"):
        stitch([], template=cube)
    other = dict(meta, crs="EPSG:4326")
    with pytest.raises(GridMismatchError, match="CRS"):
        stitch([(array, other)], template=cube)
    shifted = dict(meta, transform=(10.0, 0.0, meta["transform"][2] + 3.0, 0.0, -10.0, meta["transform"][5]))
    with pytest.raises(GridMismatchError, match="whole pixel"):
        stitch([(array, shifted)], template=cube)
    coarse = dict(meta, transform=(20.0, 0.0, meta["transform"][2], 0.0, -20.0, meta["transform"][5]))
    with pytest.raises(GridMismatchError, match="pixel size"):
        stitch([(array, coarse)], template=cube)
    with pytest.raises(InvalidArgumentError, match="leading shapes"):
        stitch([(array, meta), (array[:1], meta)], template=cube)
    with pytest.raises(InvalidArgumentError, match="pairs"):
        stitch([5], template=cube)
    with pytest.raises(InvalidArgumentError, match="meta must be"):
        stitch([(array, "here")], template=cube)
