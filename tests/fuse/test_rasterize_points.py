"""rasterize_points on real LAS/LAZ/COPC files (laspy 2.7.0's), against laspy's points binned by hand."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from pyproj import Transformer

laspy = pytest.importorskip("laspy")
pytest.importorskip("lazrs")

import terrapipe as tp  # noqa: E402
from terrapipe.core.errors import InvalidArgumentError  # noqa: E402
from tests.servers.http_range import RangeServer  # noqa: E402

DATA = Path(__file__).parents[1] / "conformance" / "files" / "data" / "laspy"
CRS = "EPSG:2991"  # the horizontal part of simple.copc.laz's compound CRS; simple.las declares none
SOURCES = ["simple.copc.laz", "simple_with_page.copc.laz", "simple.las", "simple.laz"]


def _chip(left: float, top: float, res: float, ny: int, nx: int, crs: str = CRS) -> xr.DataArray:
    coords = {"y": top - res * (np.arange(ny) + 0.5), "x": left + res * (np.arange(nx) + 0.5)}
    return xr.DataArray(
        np.zeros((1, ny, nx), "float32"), dims=("band", "y", "x"), coords=coords
    ).rio.write_crs(crs)


def _by_hand(x, y, z, intensity, classification, left, top, res, ny, nx, classes):  # type: ignore[no-untyped-def]
    """Per-pixel statistics with one boolean selection per pixel (pixel = [left, right) x (bottom, top])."""
    out = {k: np.full((ny, nx), np.nan) for k in ("max_z", "min_z", "mean_z", "mean_intensity")}
    out["count"] = np.zeros((ny, nx), int)
    out["class_fraction"] = np.full((len(classes), ny, nx), np.nan)
    for i in range(ny):
        for j in range(nx):
            sel = (x >= left + j * res) & (x < left + (j + 1) * res)
            sel &= (y <= top - i * res) & (y > top - (i + 1) * res)
            out["count"][i, j] = sel.sum()
            if sel.any():
                out["max_z"][i, j] = z[sel].max()
                out["min_z"][i, j] = z[sel].min()
                out["mean_z"][i, j] = z[sel].mean()
                out["mean_intensity"][i, j] = intensity[sel].mean()
                for k, c in enumerate(classes):
                    out["class_fraction"][k, i, j] = (classification[sel] == c).mean()
    return out


def _laspy(name: str = "simple.las"):  # type: ignore[no-untyped-def]
    las = laspy.read(DATA / name)
    return (
        np.asarray(las.x),
        np.asarray(las.y),
        np.asarray(las.z),
        np.asarray(las.intensity),
        np.asarray(las.classification),
    )


STATS = ("max_z", "min_z", "mean_z", "count", "mean_intensity")


@pytest.mark.parametrize("name", SOURCES)
def test_statistics_equal_laspy_binned_by_hand(name: str) -> None:
    left, top, res, ny, nx = 636000.0, 851000.0, 100.0, 12, 10
    pipe = tp.from_items([_chip(left, top, res, ny, nx)]).rasterize_points(
        str(DATA / name), statistics=STATS, classes=[1, 2], crs=CRS
    )
    ds = next(iter(pipe))
    want = _by_hand(*_laspy(name), left, top, res, ny, nx, classes=[1, 2])
    assert want["count"].sum() > 50
    for stat in STATS:
        np.testing.assert_allclose(
            ds[f"lidar_{stat}"].values, want[stat], rtol=1e-6, equal_nan=True, err_msg=stat
        )
    np.testing.assert_allclose(
        ds["lidar_class_fraction"].values, want["class_fraction"], rtol=1e-6, equal_nan=True
    )
    assert ds["lidar_count"].dtype == np.int32
    assert ds["lidar_max_z"].dims == ("y", "x")


def test_chips_tiling_an_area_count_every_point_once() -> None:
    res, n = 100.0, 8
    lefts, tops = [636000.0, 636800.0], [851000.0, 850200.0]
    chips = [_chip(a, b, res, n, n) for b in tops for a in lefts]
    total = sum(
        int(ds["lidar_count"].sum())
        for ds in tp.from_items(chips).rasterize_points(str(DATA / "simple.copc.laz"))
    )
    x, y, *_ = _laspy()
    inside = (x >= 636000) & (x < 637600) & (y <= 851000) & (y > 849400)
    assert total == inside.sum() > 0


def test_chip_in_another_crs_gets_reprojected_points() -> None:
    to_utm = Transformer.from_crs(CRS, "EPSG:32610", always_xy=True)
    cx, cy = to_utm.transform(637300.0, 850500.0)
    left, top, res, ny, nx = float(np.floor(cx - 500)), float(np.floor(cy + 500)), 100.0, 10, 10
    ds = next(
        iter(
            tp.from_items([_chip(left, top, res, ny, nx, "EPSG:32610")]).rasterize_points(
                str(DATA / "simple.copc.laz"), statistics=("max_z", "count")
            )
        )
    )
    x, y, z, intensity, cls = _laspy()
    ux, uy = to_utm.transform(x, y)
    want = _by_hand(ux, uy, z, intensity, cls, left, top, res, ny, nx, classes=[])
    assert want["count"].sum() > 50
    np.testing.assert_array_equal(ds["lidar_count"].values, want["count"])
    np.testing.assert_allclose(ds["lidar_max_z"].values, want["max_z"], rtol=1e-6, equal_nan=True)


def test_padded_points_are_the_chips_points_and_collate() -> None:
    left, top, res, n = 636000.0, 851000.0, 100.0, 8
    chips = [_chip(left, top, res, n, n), _chip(left + 800, top, res, n, n)]
    x, y, z, intensity, cls = _laspy()
    sel = (x >= left) & (x < left + 800) & (y <= top) & (y > top - 800)
    big = list(tp.from_items(chips).rasterize_points(str(DATA / "simple.copc.laz"), max_points=400))
    ds = big[0]
    mask = ds["lidar_points_mask"].values
    assert int(ds["lidar_points_total"]) == mask.sum() == sel.sum() > 20
    rows = ds["lidar_points"].values[mask].astype(np.float64)
    assert ds["lidar_points"].attrs["columns"] == [
        "x",
        "y",
        "z",
        "intensity",
        "classification",
        "return_number",
        "number_of_returns",
    ]
    got = np.column_stack([rows[:, 0] + left, rows[:, 1] + top, rows[:, 2], rows[:, 3], rows[:, 4]])
    want = np.column_stack([x[sel], y[sel], z[sel], intensity[sel], cls[sel]])
    got, want = got[np.lexsort(got.T[::-1])], want[np.lexsort(want.T[::-1])]
    np.testing.assert_allclose(got, want, atol=0.02)  # float32 offsets from the corner: centimetres at most
    assert not ds["lidar_points"].values[~mask].any()
    np.testing.assert_array_equal(ds["lidar_points_origin"].values, [left, top, 0.0])
    np.testing.assert_array_equal(ds["lidar_points_scale"].values, [0.01, 0.01, 0.01])
    # fewer rows than points: a seeded choice, the same on a rerun, the total says how many there were
    small = [
        list(tp.from_items(chips).rasterize_points(str(DATA / "simple.copc.laz"), max_points=5))
        for _ in range(2)
    ]
    assert int(small[0][0]["lidar_points_mask"].sum()) == 5
    assert int(small[0][0]["lidar_points_total"]) == sel.sum()
    np.testing.assert_array_equal(small[0][0]["lidar_points"].values, small[1][0]["lidar_points"].values)
    samples = list(tp.from_items(small[0]).to_tensor())
    batch = torch.utils.data.default_collate([s["variables"] for s in samples])
    assert batch["lidar_points"].shape == (2, 5, 7)
    assert batch["lidar_points_mask"].dtype == torch.bool
    assert batch["lidar_max_z"].shape == (2, n, n)


def test_copc_over_http_reads_a_fraction_per_chip(range_server_session: RangeServer, http_root: Path) -> None:
    with range_server_session.cleared() as server:
        _fraction_per_chip(server, http_root)


def _fraction_per_chip(server: RangeServer, http_root: Path) -> None:
    name = "rasterize-points.copc.laz"
    shutil.copy(DATA / "simple_with_page.copc.laz", http_root / name)
    size = (http_root / name).stat().st_size
    url = server.url_for(http_root / name)
    stage = tp.from_items([_chip(636000.0, 849600.0, 50.0, 10, 10)]).rasterize_points(url)
    opened = server.bytes_served()
    ds = next(iter(stage))
    assert stage.bytes_fetched == server.bytes_served()
    assert server.bytes_served() - opened < 0.25 * size
    assert server.bytes_served() < 0.3 * size
    local = next(
        iter(
            tp.from_items([_chip(636000.0, 849600.0, 50.0, 10, 10)]).rasterize_points(
                str(DATA / name.replace("rasterize-points", "simple_with_page"))
            )
        )
    )
    np.testing.assert_array_equal(ds["lidar_count"].values, local["lidar_count"].values)
    assert int(ds["lidar_count"].sum()) > 0


def test_bad_options() -> None:
    src = tp.from_items([])
    with pytest.raises(InvalidArgumentError, match="statistics"):
        src.rasterize_points(str(DATA / "autzen.las"), statistics=("p95",))
    with pytest.raises(InvalidArgumentError, match="max_points"):
        src.rasterize_points(str(DATA / "autzen.las"), max_points=0)
    with pytest.raises(tp.ReadError, match="declares no CRS"):
        src.rasterize_points(str(DATA / "simple.las"))
    ds = next(
        iter(
            tp.from_items([_chip(636000.0, 851000.0, 100.0, 4, 4)]).rasterize_points(
                str(DATA / "simple.copc.laz")
            )
        )
    )
    with pytest.raises(InvalidArgumentError, match="lidar_max_z"):
        next(iter(tp.from_items([ds]).rasterize_points(str(DATA / "simple.copc.laz"))))


def test_stage_pickles_for_process_workers() -> None:
    import pickle

    chip = _chip(636000.0, 851000.0, 100.0, 8, 8)
    stage = tp.from_items([chip]).rasterize_points(str(DATA / "simple.copc.laz"), max_points=64)
    want = next(iter(stage))
    copy = pickle.loads(pickle.dumps(stage))
    got = next(iter(copy))
    np.testing.assert_array_equal(got["lidar_count"].values, want["lidar_count"].values)
    np.testing.assert_array_equal(got["lidar_points"].values, want["lidar_points"].values)


def test_cache_key_follows_the_file(tmp_path: Path) -> None:
    import os

    from terrapipe.cache.segment import describe_stage

    path = tmp_path / "cloud.copc.laz"
    shutil.copy(DATA / "simple.copc.laz", path)
    first = describe_stage(tp.from_items([]).rasterize_points(str(path)))
    assert describe_stage(tp.from_items([]).rasterize_points(str(path))) == first
    assert describe_stage(tp.from_items([]).rasterize_points(str(path), classes=[2])) != first
    shutil.copy(DATA / "simple_with_page.copc.laz", path)  # same points, another file
    os.utime(path, (1_000_000_000, 1_000_000_000))
    assert describe_stage(tp.from_items([]).rasterize_points(str(path))) != first
    cloud = tp.open_point_cloud(str(DATA / "autzen.las"))
    moved = cloud.select(np.arange(len(cloud) - 1))
    assert describe_stage(tp.from_items([]).rasterize_points(cloud)) != describe_stage(
        tp.from_items([]).rasterize_points(moved)
    )
