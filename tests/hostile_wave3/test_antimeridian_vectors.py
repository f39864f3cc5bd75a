"""Vector layers on lon/lat chips past +-180: rasterize and clip_vector wrap longitudes.

A lon/lat chip written 0..360 (ERA5-style) or crossing the antimeridian (170..190, -190..-170)
covers features written -180..180 on its far side; a layer written 0..360 covers chips written
-180..180. The reference for every case is ``rasterio.features.rasterize`` (and shapely's
intersection) of the layer's geometries moved by -360, 0 and +360 degrees, in layer order then
west to east, the copies of one feature joined (one feature burns a pixel once): what a user would
get by shifting the layer by hand.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import shapely
import xarray as xr
from rasterio.features import rasterize as rio_rasterize
from shapely.geometry import LineString, MultiPolygon, Point, box

import terrapipe as tp
from terrapipe.fuse.carrier import chip_vectors
from terrapipe.fuse.grid import grid_of

LONLAT = "EPSG:4326"


def _chip(
    west: float, south: float, width: int, height: int, step: float = 1.0, crs: str = LONLAT
) -> xr.DataArray:
    x = west + step * (np.arange(width) + 0.5)
    y = south + step * height - step * (np.arange(height) + 0.5)
    return xr.DataArray(
        np.zeros((height, width), "float32"), dims=("y", "x"), coords={"y": y, "x": x}
    ).rio.write_crs(crs)


def _moved(geometry: object, shift: float) -> object:
    return shapely.transform(geometry, lambda xy: xy + np.array([shift, 0.0]))


def _reference_burn(layer: gpd.GeoDataFrame, chip: xr.DataArray, **options: object) -> np.ndarray:
    grid = grid_of(chip)
    frame = layer.to_crs(LONLAT) if layer.crs != grid.crs else layer
    footprint = box(*grid.boundingbox)
    shapes = []
    for geom, value in zip(frame.geometry, frame["v"], strict=True):
        copies = [_moved(geom, shift) for shift in (-360.0, 0.0, 360.0)]
        met = [c for c in copies if c.intersects(footprint)]
        if met:  # one feature burns once: its copies on the chip joined
            shapes.append((shapely.union_all(met), value))
    return rio_rasterize(shapes, out_shape=grid.shape.yx, transform=grid.affine, dtype="int32", **options)


def _burnt(layer: gpd.GeoDataFrame, chip: xr.DataArray, **options: object) -> np.ndarray:
    out = next(iter(tp.from_items([chip]).rasterize(layer, column="v", **options)))
    return np.asarray(out["mask"].values)


WORLD = gpd.GeoDataFrame(
    {"v": [1, 2, 3, 4, 5]},
    geometry=[
        box(-180, 0, -176, 4),  # the far west edge
        box(176, 0, 180, 4),  # the far east edge
        MultiPolygon([box(178, 5, 180, 7), box(-180, 5, -178, 7)]),  # one field split at the antimeridian
        box(-4, 0, 0, 4),  # west of Greenwich (a 0..360 chip sees it at 356..360)
        box(0, 0, 3, 3),
    ],
    crs=LONLAT,
)

CHIPS = {
    "across the antimeridian, written past 180": _chip(172, -2, 16, 10),
    "across the antimeridian, written past -180": _chip(-188, -2, 16, 10),
    "0..360 chip at Greenwich": _chip(352, -2, 10, 10),
    "0..360 chip at 180": _chip(176, -2, 8, 10),
    "chip east of Greenwich (unchanged)": _chip(-2, -2, 8, 8),
}


@pytest.mark.parametrize("name", list(CHIPS))
@pytest.mark.parametrize("options", [{}, {"all_touched": True}, {"merge_alg": "add"}])
def test_rasterize_wraps_longitudes_like_rasterio_on_shifted_geometries(name: str, options: dict) -> None:
    chip = CHIPS[name]
    ours = {
        "all_touched": options.get("all_touched", False),
        "merge": "add" if options.get("merge_alg") else "replace",
    }
    reference_options = dict(options)
    if "merge_alg" in reference_options:
        from rasterio.enums import MergeAlg

        reference_options["merge_alg"] = MergeAlg.add
    expected = _reference_burn(WORLD, chip, **reference_options)
    assert expected.any()
    np.testing.assert_array_equal(_burnt(WORLD, chip, **ours), expected)


def test_a_layer_written_0_to_360_burns_chips_written_minus_180_to_180() -> None:
    layer = gpd.GeoDataFrame({"v": [7, 8]}, geometry=[box(356, 0, 360, 4), box(180, 0, 184, 4)], crs=LONLAT)
    for chip in (_chip(-6, -2, 10, 8), _chip(-182, -2, 8, 8)):
        expected = _reference_burn(layer, chip)
        assert expected.any()
        np.testing.assert_array_equal(_burnt(layer, chip), expected)


def test_points_and_lines_wrap() -> None:
    layer = gpd.GeoDataFrame(
        {"v": [1, 2]},
        geometry=[Point(-179.5, 0.5), LineString([(-179.9, 2.5), (-176.1, 2.5)])],
        crs=LONLAT,
    )
    chip = _chip(178, -2, 6, 6)
    expected = _reference_burn(layer, chip)
    assert (expected == 1).sum() == 1
    assert (expected == 2).sum() == 4
    np.testing.assert_array_equal(_burnt(layer, chip), expected)


def test_a_projected_layer_burns_a_lon_lat_chip_past_180() -> None:
    utm1 = WORLD.iloc[[0, 2]].to_crs("EPSG:32601")  # UTM zone 1: -180..-174
    chip = _chip(176, -2, 10, 10)
    expected = _reference_burn(utm1, chip)
    assert expected.any()
    np.testing.assert_array_equal(_burnt(utm1, chip), expected)


def test_a_feature_met_on_both_sides_of_a_chip_burns_each_side_once() -> None:
    world = gpd.GeoDataFrame({"v": [9]}, geometry=[box(-180, -10, 180, 10)], crs=LONLAT)
    assert (_burnt(world, _chip(170, -2, 20, 4)) == 9).all()
    astride = _chip(175.5, -2, 10, 4)  # a pixel centred on 180: both copies touch it
    assert (_burnt(world, astride, merge="add", all_touched=True) == 9).all()


def _clipped(layer: gpd.GeoDataFrame, chip: xr.DataArray) -> gpd.GeoDataFrame:
    out = next(iter(tp.from_items([chip]).clip_vector(layer, name="f")))
    frame: gpd.GeoDataFrame = chip_vectors(out, "f")
    return frame


@pytest.mark.parametrize("name", list(CHIPS))
def test_clip_vector_wraps_longitudes_one_row_per_feature(name: str) -> None:
    chip = CHIPS[name]
    grid = grid_of(chip)
    footprint = box(*grid.boundingbox)
    expected = {}
    for label, geom in zip(WORLD.index, WORLD.geometry, strict=True):
        parts = [shapely.intersection(_moved(geom, s), footprint) for s in (-360.0, 0.0, 360.0)]
        union = shapely.union_all([p for p in parts if not p.is_empty and p.area > 0])
        if not union.is_empty:
            expected[label] = union
    got = _clipped(WORLD, chip)
    assert list(got.index) == sorted(expected)
    assert got.index.is_unique
    for label, geom in zip(got.index, got.geometry, strict=True):
        assert geom.equals(expected[label]), (label, geom.wkt, expected[label].wkt)
    assert list(got["v"]) == [int(WORLD.loc[i, "v"]) for i in got.index]


def test_boxes_of_a_field_split_at_the_antimeridian_are_one_box_on_the_chip() -> None:
    chip = _chip(172, -2, 16, 10)
    sample = next(iter(tp.from_items([chip]).clip_vector(WORLD, name="f").to_tensor(boxes="f")))
    boxes = sample["f_boxes"] if "f_boxes" in sample else sample["boxes"]
    labels = list(_clipped(WORLD, chip).index)
    pixel = dict(zip(labels, np.asarray(boxes).tolist(), strict=True))
    # field 2 is 178..182 east, 5..7 north: columns 6..10, rows 1..3 of a chip whose top is 8 north
    assert pixel[2] == [6.0, 1.0, 10.0, 3.0]


def test_a_feature_whose_copies_only_touch_a_wide_chip_is_left_out() -> None:
    layer = gpd.GeoDataFrame({"v": [1]}, geometry=[box(-10, 0, 0, 1)], crs=LONLAT)
    chip = _chip(0, 0, 35, 2, step=10.0)  # 0..350 east: the feature touches both edges, one turn apart
    assert len(_clipped(layer, chip)) == 0
    assert not _burnt(layer, chip).any()


def test_a_stray_far_coordinate_in_the_layer_does_not_refuse_every_chip() -> None:
    layer = gpd.GeoDataFrame({"v": [1, 2]}, geometry=[box(0, 0, 1, 1), Point(1e9, 0.5)], crs=LONLAT)
    chip = _chip(0, 0, 2, 2)
    np.testing.assert_array_equal(_burnt(layer, chip), [[0, 0], [1, 0]])
    assert list(_clipped(layer, chip)["v"]) == [1]


def test_a_chip_wider_than_many_turns_of_the_globe_is_refused() -> None:
    from terrapipe.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="turns of the globe"):
        _burnt(WORLD, _chip(0, 0, 2, 2, step=4000.0))
