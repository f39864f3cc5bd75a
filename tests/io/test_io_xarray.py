from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.io import open_xarray
from terrapipe.io.object_file import HTTPFile, open_http


@pytest.fixture
def netcdf_file(http_root, unique_name):
    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), np.random.default_rng(0).normal(290, 2, (3, 10, 12)))},
        coords={"time": [0, 1, 2], "lat": np.linspace(40, 49, 10), "lon": np.linspace(0, 11, 12)},
        attrs={"title": "sea surface"},
    )
    path = http_root / unique_name("sst.nc")
    ds.to_netcdf(path, engine="scipy")
    return path, ds


def test_netcdf_local_and_remote(netcdf_file, server):
    path, ref = netcdf_file
    local = open_xarray(path)
    xr.testing.assert_allclose(local.load(), ref)
    assert local.encoding["source"] == str(path)
    remote = open_xarray(server.url_for(path))
    xr.testing.assert_identical(remote.load(), local.load())
    assert remote.attrs["title"] == "sea surface"


def test_routes_zarr_and_rasterio_to_terrapipe_readers(zarr_factory, cog_factory):
    zpath, _ = zarr_factory()
    ds = open_xarray(zpath)
    assert ds.rio.crs.to_epsg() == 32631
    assert ds.t2m.encoding["preferred_chunks"] == {"time": 1, "y": 20, "x": 20}
    only = open_xarray(zpath, engine="zarr", variables="u10")
    assert isinstance(only, xr.DataArray)
    rpath, data = cog_factory(count=1)
    da = open_xarray(rpath)
    assert da.dims == ("band", "y", "x")
    np.testing.assert_array_equal(da.values, data)


def test_stac_asset_with_xarray_assets_fields(zarr_factory):
    pystac = pytest.importorskip("pystac")
    zpath, _ = zarr_factory()
    asset = pystac.Asset(
        href=str(zpath),
        media_type="application/vnd+zarr",
        extra_fields={"xarray:open_kwargs": {"consolidated": True, "variables": ["t2m"]}},
    )
    ds = open_xarray(asset)
    assert list(ds.data_vars) == ["t2m"]
    (again,) = list(tp.from_items([asset]).open_xarray())
    xr.testing.assert_identical(again, ds)


def test_engine_errors(tmp_path, netcdf_file):
    with pytest.raises(tp.InvalidArgumentError, match="cannot guess the engine"):
        open_xarray(tmp_path / "thing.bin")
    with pytest.raises(tp.MissingDependencyError, match="kvikio"):
        open_xarray(netcdf_file[0], engine="kvikio")
    with pytest.raises(tp.ReadError, match=r"missing\.nc'.*no such file"):
        open_xarray(tmp_path / "missing.nc")
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"CDF\x01garbage")
    with pytest.raises(tp.ReadError, match=r"bad\.nc'"):
        open_xarray(bad)


def test_stage_skips(netcdf_file, tmp_path):
    pipe = tp.from_items([netcdf_file[0], tmp_path / "gone.nc"]).open_xarray(on_error="skip")
    assert len(list(pipe)) == 1
    assert pipe.stats.skipped == 1


def test_http_file_reads_ranges(netcdf_file, server):
    path, _ = netcdf_file
    blob = path.read_bytes()
    with HTTPFile(server.url_for(path)) as raw:
        assert raw.size == len(blob)
        raw.seek(100)
        assert raw.read(50) == blob[100:150]
        raw.seek(-10, 2)
        assert raw.read() == blob[-10:]
        assert raw.bytes_read == 60
    with open_http(server.url_for(path)) as buffered:
        assert buffered.read() == blob
    with pytest.raises(tp.ReadError, match="404"):
        HTTPFile(f"{server.url}/nope.nc")
