"""rasterize: equals rasterio.features.rasterize on the same grid; prefiltering, caching, bad input."""

from __future__ import annotations

import pickle

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from rasterio.enums import MergeAlg
from rasterio.features import rasterize as rio_rasterize
from shapely.geometry import GeometryCollection, LineString, MultiPolygon, Point, Polygon, box

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.fuse import grid_of
from tests.fuse.conftest import make_chip

GRID = Affine(10, 0, 0, 0, -10, 100)


def _chip(**kwargs: object) -> xr.DataArray:
    return make_chip("EPSG:32631", GRID, (10, 10), bands=1, **kwargs)  # type: ignore[arg-type]


def _frame(
    geoms: list[object], values: list[int] | None = None, crs: str | None = "EPSG:32631"
) -> gpd.GeoDataFrame:
    data = {"value": values if values is not None else list(range(1, len(geoms) + 1))}
    return gpd.GeoDataFrame(data, geometry=geoms, crs=crs)


def test_points_lines_polygons_and_collections_equal_rasterio() -> None:
    geoms = [
        box(0, 0, 35, 35),
        LineString([(50, 5), (95, 50)]),
        Point(75, 85),
        MultiPolygon([box(60, 60, 70, 70), box(80, 0, 100, 10)]),
        GeometryCollection([box(10, 70, 30, 90), Point(45, 45), LineString([(0, 55), (40, 55)])]),
    ]
    frame = _frame(geoms)
    for all_touched in (False, True):
        for merge in ("replace", "add"):
            ds = next(
                iter(
                    tp.from_items([_chip()]).rasterize(
                        frame, column="value", all_touched=all_touched, merge=merge
                    )
                )
            )
            expected = rio_rasterize(
                zip(geoms, range(1, 6), strict=True),
                out_shape=(10, 10),
                transform=GRID,
                all_touched=all_touched,
                merge_alg=MergeAlg.add if merge == "add" else MergeAlg.replace,
                dtype="int32",
            )
            np.testing.assert_array_equal(ds["mask"].values, expected)
    assert ds["mask"].dtype == np.int32
    assert ds["mask"][1, 7] == 3  # the point at (75, 85)
    assert ds["mask"][2, 2] == 5  # a polygon inside the GeometryCollection


def test_sample_world_masks_equal_full_layer_rasterize(sample_world) -> None:  # type: ignore[no-untyped-def]
    landcover = tp.open_vector(sample_world.landcover_fgb)
    chips = []
    for tile in (0, 1):
        red = tp.open_raster(sample_world.cog("red", date=0, tile=tile))
        for row, col in ((0, 0), (300, 500), (768, 768)):
            chips.append(red.isel(y=slice(row, row + 256), x=slice(col, col + 256)))
    stage = tp.from_items(chips).rasterize(landcover, column="class")
    masks = [ds["mask"].values for ds in stage]
    for chip, mask in zip(chips, masks, strict=True):
        grid = grid_of(chip)
        frame = landcover.to_crs(chip.rio.crs)
        expected = rio_rasterize(
            zip(frame.geometry, frame["class"], strict=True),
            out_shape=(256, 256),
            transform=grid.affine,
            dtype="int32",
        )
        np.testing.assert_array_equal(mask, expected)
        assert (mask > 0).mean() > 0.5
    # two UTM zones: the layer (EPSG:4326) was reprojected once per zone, not once per chip
    assert stage.index.reprojections == 2
    assert stage.stats.elements == 6


def test_reprojected_once_per_crs_and_not_pickled() -> None:
    frame = _frame([box(5.0, 45.0, 5.1, 45.1)], crs="EPSG:4326")
    a = make_chip("EPSG:32631", Affine(10, 0, 700000, 0, -10, 5000000), (8, 8))
    b = make_chip("EPSG:32632", Affine(10, 0, 250000, 0, -10, 5000000), (8, 8))
    stage = tp.from_items([a, b, a, b, a]).rasterize(frame)
    assert len(list(stage)) == 5
    assert stage.index.reprojections == 2
    clone = pickle.loads(pickle.dumps(stage))
    assert clone.index._by_crs == {}
    assert len(list(clone)) == 5
    assert clone.index.reprojections == 4  # 2 before pickling + 2 in the copy


def test_empty_layer_and_chip_outside_give_fill() -> None:
    empty = _frame([], values=[])
    ds = next(iter(tp.from_items([_chip()]).rasterize(empty, column="value", fill=7, dtype="uint8")))
    assert (ds["mask"].values == 7).all()
    assert ds["mask"].attrs["_FillValue"] == 7
    far = _frame([box(5000, 5000, 6000, 6000)])
    ds = next(iter(tp.from_items([_chip()]).rasterize(far)))
    assert (ds["mask"].values == 0).all()
    assert ds["mask"].dtype == np.uint8


def test_none_and_empty_geometries_are_dropped() -> None:
    frame = _frame([None, Polygon(), box(0, 0, 50, 50)])
    stage = tp.from_items([_chip()]).rasterize(frame, column="value")
    mask = next(iter(stage))["mask"].values
    assert stage.index.dropped == 2
    assert set(np.unique(mask)) == {0, 3}


def test_dtypes_and_values() -> None:
    frame = gpd.GeoDataFrame(
        {"f": [0.5, 2.25], "big": [1, 70000], "flag": [True, False]},
        geometry=[box(0, 50, 50, 100), box(50, 0, 100, 50)],
        crs="EPSG:32631",
    )
    chip = _chip()
    floats = next(iter(tp.from_items([chip]).rasterize(frame, column="f", name="f")))["f"]
    assert floats.dtype == np.float32
    assert set(np.unique(floats.values)) == {0.0, 0.5, 2.25}
    big = next(iter(tp.from_items([chip]).rasterize(frame, column="big")))["mask"]
    assert big.dtype == np.int32
    assert big.values.max() == 70000
    flags = next(iter(tp.from_items([chip]).rasterize(frame, column="flag")))["mask"]
    assert set(np.unique(flags.values)) == {0, 1}
    with pytest.raises(InvalidArgumentError, match="do not fit dtype uint8"):
        tp.from_items([chip]).rasterize(frame, column="big", dtype="uint8")
    with pytest.raises(InvalidArgumentError, match="fill=-1 does not fit"):
        tp.from_items([chip]).rasterize(frame, fill=-1)
    with pytest.raises(InvalidArgumentError, match="cannot burn dtype"):
        tp.from_items([chip]).rasterize(frame, dtype="complex64")


def test_bad_layers() -> None:
    chip = _chip()
    with pytest.raises(InvalidArgumentError, match="has no CRS"):
        tp.from_items([chip]).rasterize(_frame([box(0, 0, 1, 1)], crs=None))
    with pytest.raises(InvalidArgumentError, match="no value column 'nope'"):
        tp.from_items([chip]).rasterize(_frame([box(0, 0, 1, 1)]), column="nope")
    named = gpd.GeoDataFrame({"name": ["a"]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:32631")
    with pytest.raises(InvalidArgumentError, match="must be numeric"):
        tp.from_items([chip]).rasterize(named, column="name")
    holes = gpd.GeoDataFrame({"v": [1.0, np.nan]}, geometry=[box(0, 0, 1, 1)] * 2, crs="EPSG:32631")
    with pytest.raises(InvalidArgumentError, match="1 missing values"):
        tp.from_items([chip]).rasterize(holes, column="v")
    with pytest.raises(InvalidArgumentError, match="merge must be"):
        tp.from_items([chip]).rasterize(named, merge="max")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="GeoDataFrame, GeoSeries or a vector file"):
        tp.from_items([chip]).rasterize([box(0, 0, 1, 1)])


def test_vector_path_and_geoseries(tmp_path) -> None:  # type: ignore[no-untyped-def]
    frame = _frame([box(0, 0, 50, 50)])
    frame.to_file(tmp_path / "labels.fgb")
    from_file = next(iter(tp.from_items([_chip()]).rasterize(tmp_path / "labels.fgb", column="value")))
    from_series = next(iter(tp.from_items([_chip()]).rasterize(frame.geometry)))
    np.testing.assert_array_equal(from_file["mask"].values, from_series["mask"].values)
    assert from_file["mask"].encoding["source"] == str(tmp_path / "labels.fgb")


def test_chip_without_crs() -> None:
    chip = _chip().drop_vars("spatial_ref")
    with pytest.raises(InvalidArgumentError, match="has no CRS"):
        next(iter(tp.from_items([chip]).rasterize(_frame([box(0, 0, 1, 1)]))))


def test_threads_burn_the_serial_masks_without_spurious_warnings() -> None:
    # rasterio warns "no geotransform" for about one call in a few thousand when
    # threads race; the masks must still equal the serial ones, and the stage
    # keeps that spurious warning away from users.
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from rasterio.errors import NotGeoreferencedWarning

    frame = _frame([box(0, 0, 35, 35), box(50, 50, 90, 95)])
    chips = [_chip() for _ in range(150)]
    serial = [ds["mask"].values for ds in tp.from_items(chips, shard=False).rasterize(frame, name="mask")]

    def run(_: int) -> list[np.ndarray]:
        pipe = tp.from_items(chips, shard=False).rasterize(frame, name="mask")
        return [ds["mask"].values for ds in pipe]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(run, range(4)))
    assert all(np.array_equal(a, b) for masks in results for a, b in zip(masks, serial, strict=True))
    assert not [w for w in caught if issubclass(w.category, NotGeoreferencedWarning)]
