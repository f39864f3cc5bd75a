"""The sample world's lidar point cloud: written from the world's layers, it agrees with them."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

pytest.importorskip("laspy")
pytest.importorskip("lazrs")

import terrapipe as tp
from terrapipe.datasets import LIDAR_BOUNDS, sample_point_cloud
from terrapipe.datasets.lidar import _ground_height


def test_sample_point_cloud_agrees_with_the_world(sample_world) -> None:  # type: ignore[no-untyped-def]
    path = sample_point_cloud(sample_world)
    assert sample_point_cloud(sample_world) == path  # written once
    cloud = tp.open_point_cloud(str(path))
    assert cloud.crs.to_epsg() == 32631
    assert len(cloud) > 100_000
    left, _, _, top = LIDAR_BOUNDS
    assert cloud.xyz[:, 0].min() >= left
    assert cloud.xyz[:, 1].max() <= top
    classes = set(np.unique(cloud.fields["classification"]).tolist())
    assert classes == {2, 5, 6}  # ground, high vegetation, buildings
    # chips cut from the world's imagery get lidar on their exact grid; roofs stand above the ground
    scene = tp.open_raster(str(sample_world.s2_cogs[0]))
    chip = scene.sel(x=slice(left, left + 640), y=slice(top, top - 640))
    ds = next(iter(tp.from_items([chip]).rasterize_points(str(path), classes=[2, 5, 6])))
    assert ds["lidar_count"].shape == chip.shape[-2:]
    x, y = cloud.xyz[:, 0], cloud.xyz[:, 1]
    on_chip = (x >= left) & (x < left + 640) & (y <= top) & (y > top - 640)
    assert int(ds["lidar_count"].sum()) == on_chip.sum() > 10_000
    # roof points stand the building's height above the ground
    buildings = (
        gpd.read_file(sample_world.buildings_gpkg).to_crs(32631).cx[left : left + 640, top - 640 : top]
    )
    cls, z = cloud.fields["classification"], cloud.xyz[:, 2]
    checked = 0
    for footprint, height in zip(buildings.geometry, buildings["height"], strict=True):
        roof = (cls == 6) & shapely.contains_xy(footprint, x, y)
        if roof.sum() >= 3:
            above = z[roof] - _ground_height(sample_world, x[roof], y[roof])  # the DEM, bilinear
            np.testing.assert_allclose(above, height, atol=0.3)  # plus 5 cm noise and 1 cm scale
            checked += 1
    assert checked >= 5


def test_sample_world_copc_has_the_same_points_and_laspy_reads_it(sample_world) -> None:  # type: ignore[no-untyped-def]
    laspy = pytest.importorskip("laspy")
    laz = sample_point_cloud(sample_world)
    copc = sample_point_cloud(sample_world, copc=True)
    ours = tp.open_point_cloud(str(copc))
    assert ours.copc
    reference = laspy.read(laz)
    with laspy.CopcReader.open(str(copc)) as reader:
        theirs = reader.query()
        box = (726900.0, 5072700.0, 727100.0, 5072900.0)
        small = reader.query(laspy.copc.Bounds(mins=np.array(box[:2]), maxs=np.array(box[2:])))
    np.testing.assert_array_equal(np.sort(theirs.array), np.sort(reference.points.array))
    np.testing.assert_array_equal(np.sort(ours.xyz, axis=0), np.sort(np.asarray(reference.xyz), axis=0))
    part = tp.open_point_cloud(str(copc), bounds=box)
    assert 0 < len(part) == len(small)
    assert part.bytes_fetched < 0.5 * copc.stat().st_size
