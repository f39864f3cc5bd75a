"""clip_vector: the features intersecting each chip, clipped, in its CRS; boxes from them."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from shapely.geometry import GeometryCollection, LineString, Point, box

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.fuse import chip_vectors, grid_of, pixels_to_boxes, vector_names
from tests.fuse.conftest import make_chip


def _chip() -> object:
    return make_chip("EPSG:32631", Affine(10, 0, 0, 0, -10, 100), (10, 10), bands=1)


def test_clipped_features_match_geopandas_clip(sample_world) -> None:  # type: ignore[no-untyped-def]
    buildings = tp.open_vector(sample_world.buildings_gpkg)
    red = tp.open_raster(sample_world.cog("red", date=1, tile=1))
    chips = [
        red.isel(y=slice(r, r + 128), x=slice(c, c + 128))
        for r in range(0, 1024, 192)
        for c in range(0, 1024, 192)
    ]
    stage = tp.from_items(chips).clip_vector(buildings, name="buildings", columns=["roof"])
    total = 0
    for chip, ds in zip(chips, stage, strict=True):
        got = chip_vectors(ds, "buildings")
        assert got.crs.to_epsg() == 32632
        assert list(got.columns) == ["roof", "geometry"]
        expected = gpd.clip(buildings.to_crs(chip.rio.crs), grid_of(chip).boundingbox)
        expected = expected[expected.area > 0]
        assert sorted(got.index) == sorted(expected.index)
        if len(got):
            aligned = expected.loc[got.index]
            assert np.allclose(got.area.to_numpy(), aligned.area.to_numpy(), rtol=1e-9)
            assert shapely.equals_exact(
                got.geometry.normalize().values, aligned.geometry.normalize().values, 1e-6
            ).all()
        total += len(got)
    assert total > 10
    assert stage.index.reprojections == 1


def test_touching_only_features_are_left_out_and_dimensions_kept() -> None:
    frame = gpd.GeoDataFrame(
        {"kind": [1, 2, 3, 4, 5, 6, 7]},
        geometry=[
            box(100, 0, 120, 100),  # touches the right edge only
            box(90, 90, 120, 120),  # overlaps a corner
            LineString([(-10, 50), (50, 50)]),  # crosses the left edge
            Point(0, 100),  # on the top-left corner: kept (a point has no area to lose)
            GeometryCollection([box(80, 0, 110, 20), LineString([(100, 50), (130, 50)])]),
            Point(100, 100),  # on the right edge: the next chip's (half-open cells: one chip per point)
            Point(50, 0),  # on the bottom edge: the chip below's
        ],
        crs="EPSG:32631",
    )
    ds = next(iter(tp.from_items([_chip()]).clip_vector(frame)))
    got = chip_vectors(ds)
    assert list(got["kind"]) == [2, 3, 4, 5]
    assert got.geometry.iloc[0].equals(box(90, 90, 100, 100))
    assert got.geometry.iloc[1].equals(LineString([(0, 50), (50, 50)]))
    assert got.geometry.iloc[3].geom_type == "Polygon"  # the line part of the collection left out
    assert got.geometry.iloc[3].equals(box(80, 0, 100, 20))


def test_boxes_round_trip_to_map(sample_world) -> None:  # type: ignore[no-untyped-def]
    buildings = tp.open_vector(sample_world.buildings_gpkg)
    red = tp.open_raster(sample_world.cog("red", date=0, tile=0))
    chips = [
        red.isel(y=slice(r, r + 128), x=slice(c, c + 128))
        for r in range(0, 1024, 128)
        for c in range(0, 1024, 256)
    ]
    samples = list(tp.from_items(chips).clip_vector(buildings).to_tensor(dtype=None))
    checked = 0
    for chip, sample in zip(chips, samples, strict=True):
        frame = gpd.clip(buildings.to_crs(chip.rio.crs), grid_of(chip).boundingbox)
        frame = frame[frame.area > 0]
        assert len(sample["boxes"]) == len(frame)
        if not len(frame):
            continue
        boxes = sample["boxes"]
        assert boxes.dtype.is_floating_point
        assert boxes.shape[1] == 4
        assert (boxes[:, 0] <= boxes[:, 2]).all()
        assert (boxes[:, 1] <= boxes[:, 3]).all()
        assert boxes.min() >= 0
        assert boxes.max() <= 128
        back = pixels_to_boxes(boxes.double(), sample["meta"]).numpy()
        expected = frame.geometry.bounds.to_numpy()
        order = np.lexsort(expected.T[::-1])
        got_order = np.lexsort(back.T[::-1])
        # float32 pixel boxes: exact to well under a pixel (10 m)
        np.testing.assert_allclose(back[got_order], expected[order], atol=1e-2)
        checked += 1
    assert checked >= 5


def test_empty_results_and_bad_input() -> None:
    far = gpd.GeoDataFrame({"v": [1]}, geometry=[box(1000, 1000, 2000, 2000)], crs="EPSG:32631")
    ds = next(iter(tp.from_items([_chip()]).clip_vector(far, name="far")))
    assert vector_names(ds) == ("far",)
    assert len(chip_vectors(ds, "far")) == 0
    sample = tp.tensor.to_sample(ds)
    assert sample["boxes"].shape == (0, 4)
    assert sample["labels"].shape == (0,)
    with pytest.raises(InvalidArgumentError, match="has no CRS"):
        tp.from_items([_chip()]).clip_vector(gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]))
    with pytest.raises(InvalidArgumentError, match="no column"):
        tp.from_items([_chip()]).clip_vector(far, columns=["nope"])
    twice = tp.from_items([_chip()]).clip_vector(far, name="a").clip_vector(far, name="a")
    with pytest.raises(InvalidArgumentError, match="already carries vector features named 'a'"):
        next(iter(twice))
    with pytest.raises(InvalidArgumentError, match="no vector layer 'b'"):
        chip_vectors(ds, "b")
