"""open_zarr_on_device: its host-buffer twin equals open_zarr; device checks; and the real GPU read."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.gpu
from terrapipe.core.errors import DeviceError, InvalidArgumentError, MissingDependencyError, ReadError
from terrapipe.gpu import DeviceZarrArray, check_zarr_device, open_zarr_on_device
from terrapipe.io import open_zarr
from tests.gpu.conftest import HAS_CUDA, HAS_CUPY


def write_cube(path, *, shards=None):
    rng = np.random.default_rng(0)
    t2m = rng.normal(280, 5, (3, 6, 8)).astype("float32")
    t2m[0, 0, 0] = np.nan
    precip = rng.uniform(0, 10, (3, 6, 8))
    precip[1, 2, 3] = np.nan
    cube = xr.Dataset(
        {
            "t2m": (("time", "y", "x"), t2m, {"units": "K"}),
            "precip": (("time", "y", "x"), precip),  # packed as int16 with scale and fill
            "land": (("y", "x"), (rng.uniform(size=(6, 8)) > 0.5).astype("uint8")),
            "time_of_max": (("y", "x"), np.full((6, 8), np.datetime64("2024-01-01", "ns"))),
            "sst": (
                ("y", "x"),
                np.where(rng.uniform(size=(6, 8)) > 0.8, np.nan, rng.uniform(270, 300, (6, 8))),
            ),
            "ice": (("y", "x"), rng.uniform(size=(6, 8)) > 0.5),
            "flags": (("y", "x"), rng.integers(-128, 128, (6, 8)).astype("int8"), {"_Unsigned": "true"}),
        },
        coords={
            "time": np.array(["2024-01-01", "2024-01-02", "2024-01-03"], dtype="datetime64[ns]"),
            "y": np.linspace(5100000, 5099500, 6),
            "x": np.linspace(600000, 600700, 8),
        },
    ).rio.write_crs("EPSG:32631")
    chunks = {"chunks": (1, 3, 4)} | ({"shards": shards} if shards else {})
    encoding = {
        "t2m": dict(chunks),
        "precip": {**chunks, "dtype": "int16", "scale_factor": 0.01, "_FillValue": -1},
        "sst": {"dtype": "int16", "scale_factor": 0.002, "add_offset": 285.0, "missing_value": -32767},
    }
    cube.to_zarr(path, zarr_format=3, encoding=encoding, consolidated=False)
    return cube


def assert_same(got, want):
    assert dict(got.sizes) == dict(want.sizes)
    assert dict(got.attrs) == dict(want.attrs)
    for name in [*want.coords, *want.data_vars]:
        assert got[name].dtype == want[name].dtype, name
        assert repr(got[name].encoding) == repr(want[name].encoding), name  # NaN fill values
        assert got[name].attrs == want[name].attrs, name
        np.testing.assert_array_equal(np.asarray(got[name].data), want[name].values, err_msg=str(name))


@pytest.mark.parametrize("shards", [None, (3, 6, 8)], ids=["chunked", "sharded"])
def test_host_buffer_twin_equals_open_zarr(tmp_path, shards):
    write_cube(tmp_path / "c.zarr", shards=shards)
    want = open_zarr(tmp_path / "c.zarr")
    got = open_zarr_on_device(tmp_path / "c.zarr", device="cpu")
    for name in ("t2m", "precip", "land", "sst", "ice"):  # lazy, and read through the device array
        assert "DeviceZarrArray" in repr(got[name].variable._data), name
    for name in ("time_of_max", "flags"):  # CF coders CFDecode does not do: host variables
        assert "DeviceZarrArray" not in repr(got[name].variable._data), name
    assert_same(got.load(), want.load())
    assert got.rio.crs == want.rio.crs
    assert got["time_of_max"].dtype.kind == "M"
    assert got["ice"].dtype == bool
    assert got["flags"].dtype == np.uint8
    assert int(np.isnan(got["sst"].values).sum()) > 0


def test_selections_read_through_the_device_array(tmp_path):
    cube = write_cube(tmp_path / "c.zarr")
    got = open_zarr_on_device(tmp_path / "c.zarr", device="cpu", variables="precip")
    want = open_zarr(tmp_path / "c.zarr", variables="precip")
    for sel in ({"time": 1}, {"y": slice(1, 5), "x": [0, 3, 7]}, {"time": [2, 0], "x": slice(None, None, 3)}):
        np.testing.assert_array_equal(got.isel(sel).data, want.isel(sel).values)
    np.testing.assert_allclose(got.isel(time=0).data, cube["precip"].isel(time=0).values, atol=0.006)
    assert np.isnan(got.isel(time=1, y=2, x=3).data)
    assert got.encoding["source"] == want.encoding["source"]
    assert got.rio.crs == want.rio.crs


def test_variables_list_and_errors_as_open_zarr(tmp_path):
    write_cube(tmp_path / "c.zarr")
    got = open_zarr_on_device(tmp_path / "c.zarr", device="cpu", variables=["t2m", "land"])
    assert sorted(got.data_vars) == ["land", "t2m"]
    with pytest.raises(ReadError, match=r"nothing\.zarr"):
        open_zarr_on_device(tmp_path / "nothing.zarr", device="cpu")
    with pytest.raises(ReadError, match="no variable named"):
        open_zarr_on_device(tmp_path / "c.zarr", device="cpu", variables="wind")


@pytest.mark.parametrize("consolidated", [True, False])
def test_consolidated_or_not_without_warnings(tmp_path, consolidated):
    import zarr

    write_cube(tmp_path / "c.zarr")
    if consolidated:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)  # "not part of the v3 spec"
            zarr.consolidate_metadata(tmp_path / "c.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = open_zarr_on_device(tmp_path / "c.zarr", device="cpu", variables="t2m")
    np.testing.assert_array_equal(got.data, open_zarr(tmp_path / "c.zarr", variables="t2m").values)


def test_device_array_pickles_with_its_zarr_array(tmp_path):
    import pickle

    import zarr

    write_cube(tmp_path / "c.zarr")
    import torch

    backend = DeviceZarrArray(zarr.open_array(tmp_path / "c.zarr" / "t2m", mode="r"), torch.device("cpu"))
    clone = pickle.loads(pickle.dumps(backend))
    assert clone.shape == (3, 6, 8)
    assert not clone.sharded


def test_device_checks():
    assert check_zarr_device(None) is None
    assert check_zarr_device("cpu") is None
    with pytest.raises(InvalidArgumentError, match="tpu-9000"):
        check_zarr_device("tpu-9000")
    with pytest.raises(InvalidArgumentError, match="'cpu' or a CUDA device"):
        check_zarr_device("meta")


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here")
def test_cuda_without_cupy_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"terrapipe\[gpu\]"):
        check_zarr_device("cuda")
    with pytest.raises(MissingDependencyError, match="read_zarr\\(device='cuda'\\)"):
        open_zarr_on_device("anything.zarr", device="cuda")


@pytest.mark.skipif(not HAS_CUPY or HAS_CUDA, reason="needs CuPy installed on a machine without CUDA")
def test_cuda_with_cupy_but_no_gpu_is_a_device_error():
    with pytest.raises(DeviceError):
        check_zarr_device("cuda")


def test_gds_options(tmp_path):
    write_cube(tmp_path / "c.zarr")
    with pytest.raises(InvalidArgumentError, match="gds"):
        open_zarr_on_device(tmp_path / "c.zarr", device="cpu", gds="maybe")
    with pytest.raises(InvalidArgumentError, match="gds=True"):
        open_zarr_on_device(tmp_path / "c.zarr", device="cpu", gds=True)


def read_zarr_has_device():
    return "device" in inspect.signature(tp.io.ReadZarr.__init__).parameters


@pytest.mark.skipif(not read_zarr_has_device(), reason="read_zarr has no device= yet (see the gpu/ report)")
def test_read_zarr_device_cpu_is_the_ordinary_read(tmp_path):
    write_cube(tmp_path / "c.zarr")
    (got,) = tp.from_items([tmp_path / "c.zarr"]).read_zarr(device="cpu", variables="t2m")
    np.testing.assert_array_equal(got.values, open_zarr(tmp_path / "c.zarr", variables="t2m").values)
    if not HAS_CUDA:
        with pytest.raises((DeviceError, MissingDependencyError)):
            tp.from_items([]).read_zarr(device="cuda")


# -- on a GPU ---------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("shards", [None, (3, 6, 8)], ids=["chunked", "sharded"])
@pytest.mark.parametrize("gds", [False, "auto"])
def test_gpu_read_equals_the_cpu_read(tmp_path, cupy, shards, gds):
    write_cube(tmp_path / "c.zarr", shards=shards)
    want = open_zarr(tmp_path / "c.zarr").load()
    got = open_zarr_on_device(tmp_path / "c.zarr", device="cuda", gds=gds)
    for name in ("t2m", "precip", "land", "sst", "ice"):
        values = got[name].isel(time=slice(0, 2)).data if "time" in got[name].dims else got[name].data
        assert isinstance(values, cupy.ndarray), name
        expected = want[name].isel(time=slice(0, 2)) if "time" in want[name].dims else want[name]
        np.testing.assert_array_equal(cupy.asnumpy(values), expected.values)
    assert got["precip"].dtype == want["precip"].dtype
    assert isinstance(got["flags"].data, np.ndarray)  # _Unsigned: decoded by xarray, on the host


@pytest.mark.gpu
def test_gpu_read_to_torch_without_a_copy(tmp_path, cupy):
    from terrapipe.gpu import as_tensor

    write_cube(tmp_path / "c.zarr")
    chip = open_zarr_on_device(tmp_path / "c.zarr", device="cuda", variables="t2m").isel(time=1)
    values = chip.data
    t = as_tensor(values)
    assert t.device.type == "cuda"
    assert t.data_ptr() == values.data.ptr


@pytest.mark.gpu
@pytest.mark.skipif(not read_zarr_has_device(), reason="read_zarr has no device= yet (see the gpu/ report)")
def test_read_zarr_device_cuda_equals_cpu(tmp_path, cupy):
    write_cube(tmp_path / "c.zarr")
    (got,) = tp.from_items([tmp_path / "c.zarr"]).read_zarr(device="cuda", variables="t2m")
    (want,) = tp.from_items([tmp_path / "c.zarr"]).read_zarr(variables="t2m")
    np.testing.assert_array_equal(cupy.asnumpy(got.data), want.values)


# -- read_zarr(device=) reaches the GPU layer through a registered reader: io/ never imports gpu/ --------
def test_read_zarr_device_goes_through_the_reader_gpu_registers(tmp_path, monkeypatch):
    from terrapipe.io import zarr_reader

    reader = zarr_reader._DEVICE_READER["reader"]
    assert reader.check is check_zarr_device  # registered by importing terrapipe.gpu.zarr_gpu
    assert reader.open is open_zarr_on_device
    write_cube(tmp_path / "c.zarr")
    calls = []

    def fake_open(source, **kwargs):
        calls.append((source, kwargs["device"]))
        return open_zarr(source, variables=kwargs["variables"])

    fake = zarr_reader.DeviceReader(check=lambda device: f"dev:{device}", open=fake_open)
    monkeypatch.setitem(zarr_reader._DEVICE_READER, "reader", fake)
    got = list(tp.from_items([tmp_path / "c.zarr"]).read_zarr(variables="t2m", device="gpu9"))
    assert calls == [(tmp_path / "c.zarr", "dev:gpu9")]
    assert got[0].name == "t2m"


def test_read_zarr_device_without_the_gpu_layer_names_it(monkeypatch):
    from terrapipe.io import zarr_reader

    monkeypatch.delitem(zarr_reader._DEVICE_READER, "reader")
    with pytest.raises(MissingDependencyError, match=r"import terrapipe\.gpu"):
        tp.from_items(["c.zarr"]).read_zarr(device="cuda")
    assert list(tp.from_items([]).read_zarr()) == []  # a host read needs no device reader


def test_io_never_imports_gpu():
    """The import graph (tests/core/test_import_cycles.py): nothing in terrapipe.io imports terrapipe.gpu."""
    from tests.core.test_import_cycles import import_graph

    graph = import_graph()
    upward = sorted(
        (a, b)
        for a, targets in graph.items()
        if a.startswith("terrapipe.io")
        for b in targets
        if b.startswith("terrapipe.gpu")
    )
    assert upward == []
    assert "terrapipe.io.zarr_reader" in graph["terrapipe.gpu.zarr_gpu"]


def test_remote_store_on_device_twin_equals_open_zarr(tmp_path, http_root, range_server_session):
    """Over HTTP the device reader's raw opens go through the prefetched store too: same Dataset, fewer requests."""
    import shutil

    import zarr

    write_cube(tmp_path / "c.zarr")
    zarr.consolidate_metadata(str(tmp_path / "c.zarr"))
    name = f"gpu-{tmp_path.name}.zarr"
    shutil.copytree(tmp_path / "c.zarr", http_root / name)
    with range_server_session.cleared() as server:
        got = open_zarr_on_device(f"{server.url}/{name}", device="cpu")
        paths = server.stats()["paths"]
    want = open_zarr(tmp_path / "c.zarr")
    xr.testing.assert_identical(got.drop_encoding(), want.drop_encoding())
    for var in want.data_vars:
        np.testing.assert_array_equal(np.asarray(got[var].data), want[var].values)
    # the metadata and coordinates: once for open_zarr, once for the device reader's two raw opens
    # (before: the metadata once per open, three times in all)
    assert paths[f"/{name}/zarr.json"]["requests"] == 2
    coordinate_chunks = {p: e["requests"] for p, e in paths.items() if p.startswith(f"/{name}/time/")}
    assert coordinate_chunks
    assert set(coordinate_chunks.values()) == {2}
