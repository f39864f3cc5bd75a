from __future__ import annotations

import threading

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.io import open_zarr

zarr = pytest.importorskip("zarr")


def _is_lazy(da: xr.DataArray) -> bool:
    return not da.variable._in_memory


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_local_store_is_lazy_with_chunks_and_crs(zarr_factory, zarr_format):
    path, ref = zarr_factory(zarr_format=zarr_format)
    ds = open_zarr(path)
    assert isinstance(ds, xr.Dataset)
    assert sorted(ds.data_vars) == ["t2m", "u10"]
    assert _is_lazy(ds.t2m)
    assert ds.t2m.encoding["preferred_chunks"] == {"time": 1, "y": 20, "x": 20}
    assert ds.t2m.encoding["source"] == str(path)
    assert ds.rio.crs.to_epsg() == 32631
    assert ds.t2m.rio.crs.to_epsg() == 32631
    xr.testing.assert_equal(ds.t2m.isel(time=2, y=slice(5, 25)), ref.t2m.isel(time=2, y=slice(5, 25)))


def test_variables_select_dataarray_or_subset(zarr_factory):
    path, _ = zarr_factory()
    t2m = open_zarr(path, variables="t2m")
    assert isinstance(t2m, xr.DataArray)
    assert t2m.name == "t2m"
    assert t2m.rio.crs.to_epsg() == 32631
    sub = open_zarr(path, variables=["u10"])
    assert list(sub.data_vars) == ["u10"]
    with pytest.raises(
        tp.ReadError, match=r"cube-.*\.zarr'.*no variable named \['v10'\] \(variables: \['t2m', 'u10'\]\)"
    ):
        open_zarr(path, variables=["t2m", "v10"])
    with pytest.raises(tp.InvalidArgumentError, match="variables"):
        open_zarr(path, variables=[])


def test_group(zarr_factory):
    path, ref = zarr_factory(group="climate")
    ds = open_zarr(path, group="climate")
    xr.testing.assert_equal(ds.u10, ref.u10)
    with pytest.raises(tp.ReadError, match=r"group 'weather' not found"):
        open_zarr(path, group="weather")


def test_cf_grid_mapping_gives_the_crs(http_root, unique_name):
    ds = xr.Dataset(
        {"dem": (("lat", "lon"), np.ones((3, 4), "float32"), {"grid_mapping": "crs"})},
        coords={"lat": [45.0, 44.0, 43.0], "lon": [5.0, 6.0, 7.0, 8.0]},
    )
    from pyproj import CRS

    ds["crs"] = xr.DataArray(0, attrs=CRS.from_epsg(4326).to_cf())
    path = http_root / unique_name("cf.zarr")
    ds.to_zarr(path, zarr_format=3, consolidated=False)
    opened = open_zarr(path)
    assert opened.rio.crs.to_epsg() == 4326
    assert "crs" in opened.coords or "spatial_ref" in opened.coords


def test_no_crs_is_fine(zarr_factory):
    path, _ = zarr_factory(crs=None)
    assert open_zarr(path).rio.crs is None


def test_dask_chunks(zarr_factory):
    pytest.importorskip("dask")
    path, ref = zarr_factory()
    ds = open_zarr(path, chunks={})
    assert ds.t2m.chunks == ((1, 1, 1, 1), (20, 20), (20, 20, 20))
    xr.testing.assert_equal(ds.t2m.compute(), ref.t2m)


def test_store_objects(zarr_factory):
    path, ref = zarr_factory()
    ds = open_zarr(zarr.storage.LocalStore(path, read_only=True))
    xr.testing.assert_equal(ds.t2m, ref.t2m)
    with pytest.raises(tp.InvalidArgumentError, match="read_zarr takes"):
        open_zarr(42)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_remote_equals_local(zarr_factory, server, zarr_format):
    path, _ = zarr_factory(zarr_format=zarr_format)
    local = open_zarr(path)
    remote = open_zarr(server.url_for(path))
    assert remote.t2m.encoding["source"] == server.url_for(path)
    assert remote.t2m.encoding["preferred_chunks"] == local.t2m.encoding["preferred_chunks"]
    xr.testing.assert_identical(remote.drop_encoding(), local.drop_encoding())


def test_remote_selection_reads_only_its_chunks(zarr_factory, server):
    path, ref = zarr_factory()
    remote = open_zarr(server.url_for(path), variables="t2m")
    server.reset()
    window = remote.isel(time=3, y=slice(0, 20), x=slice(20, 40)).values
    np.testing.assert_array_equal(window, ref.t2m.isel(time=3, y=slice(0, 20), x=slice(20, 40)).values)
    served = server.stats()["paths"]
    chunk_paths = [p for p in served if "/t2m/c/" in p]
    assert chunk_paths == [f"/{path.name}/t2m/c/3/0/1"]


def test_remote_needs_consolidated_metadata(zarr_factory, server):
    path, _ = zarr_factory(consolidated=False)
    with pytest.raises(tp.ReadError, match=r"no consolidated metadata.*zarr.consolidate_metadata"):
        open_zarr(server.url_for(path))


def test_remote_missing_store(server):
    with pytest.raises(tp.ReadError, match=r"nothing\.zarr'.*no Zarr group or array found"):
        open_zarr(f"{server.url}/nothing.zarr")


def test_remote_server_error_while_reading_chunks(zarr_factory, server):
    path, _ = zarr_factory()
    remote = open_zarr(server.url_for(path), variables="u10", retries=1)
    server.fault(f"/{path.name}/u10/c/", status=500)
    with pytest.raises(tp.ReadError, match=r"u10/c/0/0/0'.*HTTP 500 \(server error\) \(after 2 tries\)"):
        remote.isel(time=0, y=slice(0, 5), x=slice(0, 5)).values  # noqa: B018


def test_remote_transient_error_is_retried(zarr_factory, server):
    path, ref = zarr_factory()
    server.fault(f"/{path.name}/zarr.json", status=503, count=1)
    remote = open_zarr(server.url_for(path), variables="t2m")
    np.testing.assert_array_equal(remote.values, ref.t2m.values)


def test_remote_timeout(zarr_factory, server):
    path, _ = zarr_factory()
    server.fault(f"/{path.name}", status=None, delay=3)
    with pytest.raises(tp.ReadError, match=r"did not answer within 1 s"):
        open_zarr(server.url_for(path), timeout=1)


def test_parallel_remote_reads(zarr_factory, server):
    path, ref = zarr_factory()
    remote = open_zarr(server.url_for(path), variables="t2m")
    expected = ref.t2m.values
    rng = np.random.default_rng(0)
    picks = [(int(rng.integers(0, 4)), int(rng.integers(0, 30)), int(rng.integers(0, 50))) for _ in range(64)]
    errors = []

    def work(part):
        for t, y, x in part:
            got = remote.isel(time=t, y=slice(y, y + 10), x=slice(x, x + 10)).values
            if not np.array_equal(got, expected[t, y : y + 10, x : x + 10]):
                errors.append((t, y, x))

    threads = [threading.Thread(target=work, args=(picks[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors


def test_stage_skips_and_counts(zarr_factory, tmp_path):
    path, _ = zarr_factory()
    pipe = tp.from_items([path, tmp_path / "missing.zarr", path]).read_zarr(variables="t2m", on_error="skip")
    out = list(pipe)
    assert [da.name for da in out] == ["t2m", "t2m"]
    assert pipe.stats.skipped == 1
    assert "missing.zarr" in pipe.stats.last_errors[0]
