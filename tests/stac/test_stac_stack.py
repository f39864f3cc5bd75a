"""stack_stac: cubes equal direct rasterio reads and odc-stac's grids; grids, dtypes, chunks, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import terrapipe as tp
import terrapipe.stac
from terrapipe.core.errors import GridMismatchError, InvalidArgumentError, ReadError, STACSearchError
from terrapipe.datasets import SampleWorld
from terrapipe.stac import search_stac, stack_items
from tests.servers.http_range import range_server
from tests.stac.stac_helpers import MINI_TILE, mini_item

odc_stac = pytest.importorskip("odc.stac")
pystac = pytest.importorskip("pystac")

BBOX = (5.93, 45.71, 5.987, 45.7712)  # inside tile 0 (EPSG:32631), not on its tile grid


@pytest.fixture(scope="module")
def s2_items(world: SampleWorld) -> list[Any]:
    return list(search_stac(world.catalog, collections=["demo-s2"]))


@pytest.fixture(scope="module")
def tile0(s2_items: list[Any]) -> list[Any]:
    return [item for item in s2_items if item.properties["proj:code"] == "EPSG:32631"]


def _read(path: Any, window: Window | None = None) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1, window=window)


def test_native_cube_equals_rasterio_reads(tile0: list[Any], world: SampleWorld) -> None:
    cube = stack_items(tile0, bands=["red", "nir"])
    assert cube.dims == ("time", "band", "y", "x")
    assert cube.dtype == np.uint16
    assert cube.attrs["nodata"] == 0
    values = cube.values
    for t in range(3):
        for b, band in enumerate(("red", "nir")):
            np.testing.assert_array_equal(values[t, b], _read(world.cog(band, date=t, tile=0)))
    with rasterio.open(world.cog("red", date=0, tile=0)) as src:
        assert cube.rio.transform() == src.transform
        assert cube.rio.crs == src.crs
    assert cube.encoding["stac_item_ids"] == [item.id for item in tile0]


def test_native_grid_equals_odc_stac(tile0: list[Any]) -> None:
    ours = stack_items(tile0, bands=["red"])
    theirs = odc_stac.load(tile0, bands=["red"], chunks={})
    assert ours.odc.geobox == theirs.odc.geobox
    np.testing.assert_array_equal(ours.x.values, theirs.x.values)
    np.testing.assert_array_equal(ours.y.values, theirs.y.values)
    np.testing.assert_array_equal(ours.time.values, theirs.time.values)


def test_bbox_cube_is_a_native_window(tile0: list[Any], world: SampleWorld) -> None:
    cube = stack_items(tile0, bands=["red"], bbox=BBOX)
    theirs = odc_stac.load(tile0, bands=["red"], bbox=BBOX, crs="EPSG:32631", resolution=10, chunks={})
    assert cube.odc.geobox == theirs.odc.geobox
    transform = cube.rio.transform()
    with rasterio.open(world.cog("red", date=1, tile=0)) as src:
        col = round((transform.c - src.transform.c) / src.transform.a)
        row = round((transform.f - src.transform.f) / src.transform.e)
        assert (transform.c - src.transform.c) % 10 == 0  # on the native pixel grid
        window = Window(col, row, cube.sizes["x"], cube.sizes["y"])
    np.testing.assert_array_equal(
        cube.isel(time=1, band=0).values, _read(world.cog("red", date=1, tile=0), window)
    )
    np.testing.assert_array_equal(cube.isel(time=1, band=0).values, theirs.red.isel(time=1).values)


def test_chunks_are_whole_cog_tiles(tile0: list[Any], world: SampleWorld) -> None:
    cube = stack_items(tile0, bands=["red", "nir"], bbox=BBOX)
    with rasterio.open(world.cog("red", date=0, tile=0)) as src:
        tile_y, tile_x = src.block_shapes[0]
        transform = cube.rio.transform()
        row0 = round((transform.f - src.transform.f) / src.transform.e)
        col0 = round((transform.c - src.transform.c) / src.transform.a)
    assert cube.chunks is not None
    _, _, y_chunks, x_chunks = cube.chunks
    assert all(c % tile_y == 0 for c in np.cumsum(y_chunks)[:-1] + row0)
    assert all(c % tile_x == 0 for c in np.cumsum(x_chunks)[:-1] + col0)
    preferred = cube.encoding["preferred_chunks"]
    assert sum(preferred["y"]) == cube.sizes["y"]
    assert all((c + row0) % tile_y == 0 for c in np.cumsum(preferred["y"])[:-1])
    assert all((c + col0) % tile_x == 0 for c in np.cumsum(preferred["x"])[:-1])
    full = stack_items(tile0, bands=["red"])
    assert full.chunks is not None
    assert full.chunks[2] == (1024,)
    # The items state their data types: no file is opened, the layout is 1024-pixel blocks of tiles.
    assert full.encoding["preferred_chunks"]["y"] == (1024,)


def test_coarser_band_is_resampled_nearest_onto_the_finest_grid(tile0: list[Any], world: SampleWorld) -> None:
    cube = stack_items(tile0[:1], bands=["red", "scl"], bbox=BBOX)
    assert cube.dtype == np.uint16  # uint16 and uint8 bands: the common type, never float
    scl = _read(world.cog("scl", date=0, tile=0))
    transform = cube.rio.transform()
    row0 = round((transform.f - 5075760.0) / -10)
    col0 = round((transform.c - 723600.0) / 10)
    rows = np.arange(row0, row0 + cube.sizes["y"]) // 2
    cols = np.arange(col0, col0 + cube.sizes["x"]) // 2
    np.testing.assert_array_equal(cube.sel(band="scl").isel(time=0).values, scl[np.ix_(rows, cols)])
    only_scl = stack_items(tile0[:1], bands=["scl"])
    assert only_scl.dtype == np.uint8
    assert only_scl.sizes["x"] == 512


def test_mixed_crs_needs_crs(s2_items: list[Any]) -> None:
    with pytest.raises(GridMismatchError, match=r"2 CRSs: EPSG:32631 .*EPSG:32632 .*pass crs="):
        stack_items(s2_items, bands=["red"])
    cube = stack_items(s2_items, bands=["red"], crs="EPSG:32631", bbox=(5.97, 45.72, 6.02, 45.75))
    theirs = odc_stac.load(
        s2_items, bands=["red"], crs="EPSG:32631", resolution=10, bbox=(5.97, 45.72, 6.02, 45.75), chunks={}
    )
    assert cube.odc.geobox == theirs.odc.geobox
    np.testing.assert_array_equal(cube.time.values, theirs.time.values)
    np.testing.assert_array_equal(cube.isel(band=0).values, theirs.red.values)


def test_groupby_solar_day(s2_items: list[Any]) -> None:
    per_item = stack_items(s2_items, bands=["red"], crs="EPSG:32632", resolution=20, groupby="id")
    per_day = stack_items(s2_items, bands=["red"], crs="EPSG:32632", resolution=20, groupby="solar_day")
    assert per_item.sizes["time"] == 6
    assert per_day.sizes["time"] == 3
    assert per_day.rio.crs.to_epsg() == 32632
    assert per_day.rio.resolution() == (20.0, -20.0)
    assert per_day.dtype == np.uint16


def test_assets_without_raster_metadata_keep_their_dtype(make_catalog: Any) -> None:
    catalog = make_catalog([mini_item("a", 1, raster=False), mini_item("b", 2, raster=False)])
    items = list(search_stac(catalog))
    cube = stack_items(items, bands=["red"])
    assert cube.dtype == np.uint16  # odc-stac alone gives float32 here
    assert cube.attrs["nodata"] == 0
    np.testing.assert_array_equal(cube.isel(time=0, band=0).values, _read(items[0].assets["red"].href))


def test_items_without_projection_info(make_catalog: Any) -> None:
    catalog = make_catalog([mini_item("a", 1), mini_item("noproj", 2, proj=False)])
    items = list(search_stac(catalog))
    with pytest.raises(
        STACSearchError, match=r"without projection info: 'noproj'.*pass crs= and resolution="
    ):
        stack_items(items, bands=["red"])
    cube = stack_items(items, bands=["red"], crs="EPSG:32631", resolution=10)
    assert cube.sizes["time"] == 2
    assert cube.dtype == np.uint16


def test_projection_v1_and_migrated_items(make_catalog: Any) -> None:
    """pystac 1.15 migrates proj:epsg to proj:code on reading; both forms give the same cube."""
    catalog = make_catalog([mini_item("v1", 1)])
    (item,) = list(search_stac(catalog))
    v1 = copy.deepcopy(item.to_dict())
    v1["properties"]["proj:epsg"] = int(v1["properties"].pop("proj:code").split(":")[1])
    v1["stac_extensions"] = ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"]
    migrated = pystac.Item.from_dict(copy.deepcopy(v1))
    assert migrated.properties.get("proj:code") == "EPSG:32631"
    assert "proj:epsg" not in migrated.properties
    legacy = item.clone()
    legacy.properties["proj:epsg"] = int(legacy.properties.pop("proj:code").split(":")[1])
    reference = stack_items([item], bands=["red"]).values
    for candidate in (legacy, migrated):
        np.testing.assert_array_equal(stack_items([candidate], bands=["red"]).values, reference)


def test_band_names(tile0: list[Any]) -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"unknown band 'swir'.*'blue', 'green', 'nir', 'red', 'scl'"
    ):
        stack_items(tile0, bands=["swir"])
    by_name = stack_items(tile0[:1], bands=["B04"])  # eo:bands name of the "red" asset
    assert list(by_name.band.values) == ["B04"]
    np.testing.assert_array_equal(by_name.values, stack_items(tile0[:1], bands=["red"]).values)
    with pytest.raises(InvalidArgumentError, match="no items"):
        stack_items([], bands=["red"])


def test_a_missing_asset_is_named_when_computed(make_catalog: Any) -> None:
    catalog = make_catalog([mini_item("ok", 1), mini_item("broken", 2)])
    (Path(catalog).parent / "mini" / "broken" / "red.tif").unlink()
    with range_server(Path(catalog).parent) as server:
        items = list(search_stac(server.url_for(catalog)))
        cube = stack_items(items, bands=["red"])  # lazy: only the first asset's header is read
        with pytest.raises(ReadError) as info:
            cube.compute()
        message = str(info.value)
        assert "asset 'red' of STAC item 'broken'" in message
        assert f"{server.url}/mini/broken/red.tif" in message
        assert "404" in message
        reversed_cube = stack_items(items[::-1], bands=["red"])  # built from the metadata: nothing opened
        with pytest.raises(ReadError, match=r"asset 'red' of STAC item 'broken'.*HTTP 404"):
            reversed_cube.compute()


def test_cube_from_an_http_catalog_equals_the_local_one(make_catalog: Any) -> None:
    catalog = make_catalog([mini_item("a", 1), mini_item("b", 2)])
    local = stack_items(list(search_stac(catalog)), bands=["red", "nir"])
    with range_server(Path(catalog).parent) as server:
        remote = stack_items(list(search_stac(server.url_for(catalog))), bands=["red", "nir"])
        np.testing.assert_array_equal(remote.values, local.values)
    assert local.chunks is not None
    assert local.encoding["preferred_chunks"]["x"] == (2 * MINI_TILE,)  # one block: nothing opened


def test_remote_assets_get_512_pixel_chunks_local_ones_1024(tile0: list[Any]) -> None:
    """More, smaller reads in flight over the network (see stack.REMOTE_CHUNK_TARGET); nothing is opened."""
    remote = []
    for item in tile0:
        record = item.to_dict(include_self_link=False)
        for asset in record["assets"].values():
            asset["href"] = "https://example.invalid/" + asset["href"].rsplit("/", 2)[-2] + ".tif"
        remote.append(record)
    cube = stack_items(remote, bands=["red"])
    assert cube.chunks is not None
    assert cube.chunks[2] == (512, 512)
    assert cube.encoding["preferred_chunks"]["y"] == (512, 512)
    local = stack_items(tile0, bands=["red"])
    assert local.chunks is not None
    assert local.chunks[2] == (1024,)


def test_stack_stac_stage_forms(tile0: list[Any], stac_api: str) -> None:
    cubes = list(tp.from_items([tile0[:1], [], tile0]).stack_stac(bands=["red"]))
    assert [c.sizes["time"] for c in cubes] == [1, 3]
    collected = list(tp.from_items(tile0).stack_stac(bands=["red"]))
    assert [c.sizes["time"] for c in collected] == [3]
    (cube,) = search_stac(stac_api, collections=["demo-s2"], bbox=[5.93, 45.72, 5.95, 45.74]).stack_stac(
        bands=["red"], bbox=BBOX
    )
    assert cube.sizes["time"] == 3
    with pytest.raises(InvalidArgumentError, match="groupby"):
        tp.from_items([tile0]).stack_stac(groupby="month")


def test_bad_options(tile0: list[Any]) -> None:
    with pytest.raises(InvalidArgumentError, match="resolution must be a positive number"):
        stack_items(tile0, bands=["red"], resolution=-10)
    with pytest.raises(InvalidArgumentError, match="bbox must be"):
        stack_items(tile0, bands=["red"], bbox=(6, 46, 5, 45))
    with pytest.raises(InvalidArgumentError, match="geobox= fixes the grid"):
        stack_items(tile0, bands=["red"], bbox=BBOX, geobox=stack_items(tile0, bands=["red"]).odc.geobox)
    with pytest.raises(STACSearchError, match=r"malformed STAC item .*element 0"):
        stack_items([json.loads("{}")], bands=["red"])


# --- the native reader (stac/native_read.py) against odc-stac, pixel for pixel -------------------------

_RASTER_EXT = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
_PROJ_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"


def _cog(path: Path, data: np.ndarray, transform: Any, *, nodata: Any, crs: str = "EPSG:32631") -> str:
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype.name, "crs": crs, "transform": transform, "nodata": nodata,
               "tiled": True, "blockxsize": 32, "blockysize": 32}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return str(path)


def _item(
    ident: str,
    href: str,
    shape: tuple[int, int],
    origin: tuple[float, float],
    *,
    when: str = "2024-06-01T10:30:00Z",
    dtype: str = "uint16",
    nodata: Any = 0,
    res: float = 10.0,
) -> dict[str, Any]:
    from odc.geo import geom

    west, north = origin
    footprint = geom.box(west, north - res * shape[0], west + res * shape[1], north, "EPSG:32631").to_crs(
        "EPSG:4326"
    )
    band: dict[str, Any] = {"data_type": dtype}
    if nodata is not None:
        band["nodata"] = nodata
    return {
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": [_PROJ_EXT, _RASTER_EXT], "id": ident,
        "geometry": footprint.json, "bbox": list(footprint.boundingbox),
        "properties": {"datetime": when, "proj:code": "EPSG:32631", "proj:shape": list(shape),
                       "proj:transform": [res, 0.0, west, 0.0, -res, north]},
        "links": [], "collection": "c",
        "assets": {"data": {"href": href, "type": "image/tiff; application=geotiff", "roles": ["data"],
                            "raster:bands": [band]}},
    }  # fmt: skip


def _odc_same_grid(items: list[Any], cube: Any, **options: Any) -> np.ndarray:
    """odc-stac's load of ``items`` on the cube's grid, as ``(time, band, y, x)`` values."""
    ds = odc_stac.load(items, bands=["data"], geobox=cube.odc.geobox, **options)
    return ds["data"].values[:, None]


def _scenes(tmp_path: Path, dtype: str = "uint16", nodata: Any = 0) -> list[dict[str, Any]]:
    """Four overlapping scenes (two share a timestamp) on one 10 m lattice, with nodata holes."""
    rng = np.random.default_rng(7)
    out = []
    spots = [((70, 90), (600000, 5000000)), ((80, 60), (600300, 4999600)), ((50, 50), (599900, 5000200)),
             ((64, 96), (600100, 4999900))]  # fmt: skip
    for i, (shape, origin) in enumerate(spots):
        data = rng.integers(1, 1000, size=shape).astype(dtype)
        if nodata is not None:
            data[5:15, 7:30] = nodata  # a hole the next scene fills
        if np.dtype(dtype).kind == "f":
            data[20:25, 2:9] = np.nan
        href = _cog(
            tmp_path / f"s{i}.tif", data, rasterio.transform.from_origin(*origin, 10, 10), nodata=nodata
        )
        when = "2024-06-01T10:30:00Z" if i < 2 else f"2024-06-0{i}T10:30:00Z"
        out.append(_item(f"scene-{i}", href, shape, origin, when=when, dtype=dtype, nodata=nodata))
    return out


@pytest.mark.parametrize("chunks", [None, {"x": 48, "y": 40}, {"x": 1000, "y": 7}])
@pytest.mark.parametrize("groupby", ["time", "id", "solar_day"])
def test_native_reader_fuses_overlapping_scenes_as_odc_stac(
    tmp_path: Path, chunks: Any, groupby: str
) -> None:
    items = [pystac.Item.from_dict(d) for d in _scenes(tmp_path)]
    cube = stack_items(items, bands=["data"], chunks=chunks, groupby=groupby)
    want = _odc_same_grid(items, cube, groupby=groupby, chunks=chunks or {})
    np.testing.assert_array_equal(cube.values, want)
    theirs = odc_stac.load(items, bands=["data"], geobox=cube.odc.geobox, groupby=groupby, chunks={})
    np.testing.assert_array_equal(cube.time.values, theirs.time.values)


@pytest.mark.parametrize(
    ("dtype", "nodata"), [("float32", -9999.0), ("float32", None), ("int16", -1), ("uint8", None)]
)
def test_native_reader_nodata_and_fill_as_odc_stac(tmp_path: Path, dtype: str, nodata: Any) -> None:
    items = [pystac.Item.from_dict(d) for d in _scenes(tmp_path, dtype=dtype, nodata=nodata)]
    cube = stack_items(items, bands=["data"], chunks={"x": 50, "y": 50})
    want = _odc_same_grid(items, cube, chunks={"x": 50, "y": 50})
    np.testing.assert_array_equal(cube.values, want)


def test_native_reader_casts_with_dtype_as_the_odc_path(tmp_path: Path) -> None:
    """dtype= narrower than the files: cast on purpose, nodata mapped (asset_reader.cast_pixels)."""
    items = _scenes(tmp_path, dtype="float32", nodata=-9999.0)
    cube = stack_items(items, bands=["data"], dtype="uint8", nodata=255, chunks={"x": 40, "y": 40})
    # The same cube through odc-stac's reader (the resampling path) on the same grid.
    box = cube.odc.geobox
    odc_cube = stack_items(
        items, bands=["data"], dtype="uint8", nodata=255, geobox=box, chunks={"x": 40, "y": 40}
    )
    np.testing.assert_array_equal(cube.values, odc_cube.values)
    assert cube.dtype == np.uint8
    assert (cube.values == 255).any()


@pytest.mark.parametrize(
    ("shift", "res"), [((0.5, 0.0), 10.0), ((0.0, 0.25), 10.0), ((0.0, 0.0), 20.0), ((3.0, -2.0), 10.0)]
)
def test_a_file_off_its_item_s_grid_is_read_as_odc_stac_reads_it(
    tmp_path: Path, shift: tuple[float, float], res: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The item says one grid, the file has another (a fraction of a pixel off, another pixel size, whole pixels off)."""
    from terrapipe.stac import native_read

    resampled: list[str] = []
    original = native_read._resampled

    def spy(plan: Any, asset: Any, *args: Any) -> Any:
        resampled.append(asset.source.path)
        return original(plan, asset, *args)

    monkeypatch.setattr(native_read, "_resampled", spy)
    items = _scenes(tmp_path)
    data = np.arange(1, 40 * 30 + 1, dtype="uint16").reshape(40, 30)
    real = rasterio.transform.from_origin(600000 + shift[0] * 10, 5000000 + shift[1] * 10, res, res)
    items[0]["assets"]["data"]["href"] = _cog(tmp_path / "odd.tif", data, real, nodata=0)
    items[0]["properties"]["proj:shape"] = [70, 90]  # what the item claims (its scene's grid)
    cube = stack_items(items, bands=["data"], chunks={"x": 32, "y": 32})
    want = _odc_same_grid([pystac.Item.from_dict(d) for d in items], cube, chunks={"x": 32, "y": 32})
    np.testing.assert_array_equal(cube.values, want)
    whole = shift[0].is_integer() and shift[1].is_integer() and res == 10.0
    assert set(resampled) == (set() if whole else {str(tmp_path / "odd.tif")})


def test_native_reader_reads_a_file_rewritten_in_place(tmp_path: Path) -> None:
    """A local file rewritten between two cubes is read anew (its handle is keyed by its stamp)."""
    items = _scenes(tmp_path)[:1]
    first = stack_items(items, bands=["data"]).values
    path = items[0]["assets"]["data"]["href"]
    with rasterio.open(path) as src:
        data = src.read(1)
    _cog(
        Path(path),
        (data + 1).astype("uint16"),
        rasterio.transform.from_origin(600000, 5000000, 10, 10),
        nodata=0,
    )
    second = stack_items(items, bands=["data"]).values
    np.testing.assert_array_equal(second, first + 1)


def test_native_cube_is_one_read_per_chunk_and_has_odc_stac_s_coords(tile0: list[Any]) -> None:
    cube = stack_items(tile0, bands=["red", "nir"], chunks={"x": 512, "y": 512})
    # one read per chunk (3 times x 2 x 2 blocks, both bands in each), and the reader
    assert len(dict(cube.data.__dask_graph__())) == 3 * 2 * 2 + 1
    assert cube.chunks is not None
    assert cube.chunks[1] == (2,)
    theirs = odc_stac.load(tile0, bands=["red"], chunks={"x": 512, "y": 512})
    for name in ("x", "y", "time", "spatial_ref"):
        assert cube[name].identical(theirs[name]), name
    again = stack_items(tile0, bands=["red", "nir"], chunks={"x": 512, "y": 512})
    assert again.data.name == cube.data.name  # the same cube, the same graph name


@pytest.mark.parametrize("remote", [False, True], ids=["local", "http"])
def test_slices_of_a_native_cube_read_only_what_they_select(
    tmp_path: Path, remote: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dask fuses a slice into the read of its chunk: a band, a window, a step, a time read just that."""
    from terrapipe.stac import native_read

    items = _scenes(tmp_path)
    for item in items:
        item["assets"]["nir"] = copy.deepcopy(item["assets"]["data"])
    full_local = stack_items(items, bands=["data", "nir"], chunks={"x": 64, "y": 64}).values
    fills: list[tuple[int, int]] = []
    original = native_read._fill_slot

    def spy(plan: Any, assets: Any, cfg: Any, dst: Any, rows: Any, cols: Any) -> None:
        fills.append((rows[1] - rows[0], cols[1] - cols[0]))
        original(plan, assets, cfg, dst, rows, cols)

    monkeypatch.setattr(native_read, "_fill_slot", spy)
    with range_server(tmp_path) as server:
        if remote:
            for item in items:
                for asset in item["assets"].values():
                    asset["href"] = server.url_for(Path(asset["href"]))
        cube = stack_items(items, bands=["data", "nir"], chunks={"x": 64, "y": 64})
        cases = [
            ({"band": 1, "time": 0, "y": slice(10, 30), "x": slice(70, 75)}, (1, 1)),
            ({"band": slice(0, 1), "y": slice(5, 60, 3), "x": -1}, (cube.sizes["time"], 1)),
            ({"time": -1}, (1, 2)),
        ]
        for selection, (times, bands) in cases:  # (time slots, bands) each read covers
            fills.clear()
            got = cube.isel(selection).values
            want = full_local[tuple(selection.get(d, slice(None)) for d in ("time", "band", "y", "x"))]
            np.testing.assert_array_equal(got, want)
            assert all(r <= 64 and c <= 64 for r, c in fills)  # never more than a chunk
            assert len(fills) % (times * bands) == 0
        fills.clear()
        np.testing.assert_array_equal(
            cube.isel(band=1, time=0, y=slice(0, 8), x=slice(0, 8)).values, full_local[0, 1, :8, :8]
        )
        assert fills == [(8, 8)]  # one read of just that window


def test_a_computed_native_cube_still_pickles(tmp_path: Path) -> None:
    """Its reader's per-process caches (weak references to open handles) are not pickled."""
    import pickle

    cube = stack_items(_scenes(tmp_path), bands=["data"], chunks={"x": 50, "y": 50})
    values = cube.values
    again = pickle.loads(pickle.dumps(cube))
    np.testing.assert_array_equal(again.values, values)
