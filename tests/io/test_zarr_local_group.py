"""A local Zarr folder opened from its metadata files (io/zarr_local_group) is exactly what xarray's open gives.

``read_zarr``/``open_zarr`` of a folder on disk builds the zarr group and its
arrays from the metadata documents itself (no round trips to zarr's event
loop) and hands them to xarray's backend, which returns them with their
default indexes built (``_with_default_indexes``). Every store here is opened
both ways — that path, and xarray's own (``local_zarr_store`` patched to
decline, the indexes added by xarray) — and
the results must be identical: variables and their order, values, dtypes,
attributes, encodings, coordinates and indexes, the CRS, the lazy wrappers,
and for stores that cannot be opened the same error. Each case also says
whether the fast path must have been taken, so a case never passes by
falling back silently.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.io import zarr_local_group, zarr_reader
from terrapipe.io.zarr_local_group import local_zarr_store

zarr = pytest.importorskip("zarr")


def _dataset() -> xr.Dataset:
    """A scene with what real producers write: packed ints, fill values, CF times, strings, a grid mapping."""
    rng = np.random.default_rng(3)
    y = 5_000_000.0 - 10.0 * np.arange(12)
    x = 500_000.0 + 10.0 * np.arange(16)
    ds = xr.Dataset(
        {
            "image": (("band", "y", "x"), rng.integers(0, 4000, (3, 12, 16), dtype="uint16")),
            "temp": (("y", "x"), rng.normal(280, 5, (12, 16))),
            "flag": (("y", "x"), rng.random((12, 16)) > 0.5),
        },
        coords={
            "band": ["red", "green", "nir"],
            "y": y,
            "x": x,
            "time": pd.Timestamp("2024-06-01"),
            "lat": (("y", "x"), np.linspace(40, 41, 12 * 16).reshape(12, 16)),
        },
        attrs={"title": "scene", "history": "made by a test"},
    )
    ds.x.attrs.update({"units": "metre", "axis": "X", "standard_name": "projection_x_coordinate"})
    ds.y.attrs.update({"units": "metre", "axis": "Y", "long_name": "northing"})
    ds["temp"].encoding = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 280.0, "_FillValue": -32768}
    ds["temp"][0, 0] = np.nan
    return ds.rio.write_crs("EPSG:32633")


def _write(path: Path, ds: xr.Dataset, **kwargs: Any) -> Path:
    ds.to_zarr(path, mode="w", **kwargs)
    return path


def _plain(path: Path) -> Path:
    return _write(path, _dataset(), zarr_format=3)


def _listed(path: Path) -> Path:
    return _write(path, _dataset(), zarr_format=3, consolidated=False)


def _v2(path: Path) -> Path:
    return _write(path, _dataset(), zarr_format=2)


def _v2_listed(path: Path) -> Path:
    return _write(path, _dataset(), zarr_format=2, consolidated=False)


def _stale(path: Path) -> Path:
    """Consolidated, then a variable added without consolidating: the recorded list lacks it."""
    _write(path, _dataset(), zarr_format=3)
    extra = xr.Dataset({"added": (("y", "x"), np.ones((12, 16), "float32"))}, coords=_dataset().coords)
    extra.drop_vars(["band", "time", "lat", "spatial_ref"]).to_zarr(path, mode="a", consolidated=False)
    return path


def _junk(path: Path) -> Path:
    """A group with a nested group, a folder that is no node, and stray files."""
    _listed(path)
    (path / "notes").mkdir()
    (path / "notes" / "readme.txt").write_text("hello")
    (path / ".DS_Store").write_bytes(b"\0\0")
    sub = zarr.open_group(str(path), mode="a").create_group("inner")
    sub.create_array("deep", shape=(2,), dtype="int8", dimension_names=["d"])
    return path


def _junk_consolidated(path: Path) -> Path:
    """The same, consolidated afterwards: the nested group's arrays are in the recorded list too."""
    _junk(path)
    zarr.consolidate_metadata(str(path))
    return path


def _gdal_crs(path: Path) -> Path:
    """No grid-mapping variable; GDAL's ``_CRS`` on the array, GeoZarr's ``proj:code`` on the group."""
    ds = _dataset().drop_vars("spatial_ref")
    ds["image"].attrs["_CRS"] = {
        "wkt": 'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]]'
    }
    ds.attrs["proj:code"] = "EPSG:32633"
    for v in ds.variables.values():
        v.attrs.pop("grid_mapping", None)
        v.encoding.pop("grid_mapping", None)
    return _write(path, ds, zarr_format=3, consolidated=False)


def _crs_attr(path: Path) -> Path:
    """A ``crs`` attribute only (rioxarray reads it)."""
    ds = xr.Dataset(
        {"v": (("y", "x"), np.arange(12.0).reshape(3, 4))}, coords={"y": [3.0, 2, 1], "x": [0.0, 1, 2, 3]}
    )
    ds["v"].attrs["crs"] = "EPSG:4326"
    return _write(path, ds, zarr_format=3)


def _no_crs(path: Path) -> Path:
    ds = xr.Dataset(
        {"v": (("y", "x"), np.arange(12, dtype="uint8").reshape(3, 4))},
        coords={"y": [3.0, 2, 1], "x": [0.0, 1, 2, 3]},
    )
    return _write(path, ds, zarr_format=3, consolidated=False)


def _zarr_written(path: Path) -> Path:
    """Written by zarr-python alone: dimension names, a fill value, attributes, no xarray encodings."""
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    a = root.create_array(
        "a", shape=(4, 5), chunks=(2, 2), dtype="float32", fill_value=-1.0, dimension_names=["y", "x"]
    )
    a[:] = np.arange(20, dtype="float32").reshape(4, 5)
    a.attrs["units"] = "m"
    root.create_array("y", shape=(4,), dtype="int32", dimension_names=["y"])[:] = np.arange(4)
    root.create_array("x", shape=(5,), dtype="float64", dimension_names=["x"])[:] = np.arange(5) * 0.5
    return path


def _no_dims(path: Path) -> Path:
    """An array without dimension names: xarray cannot name its dims."""
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.create_array("a", shape=(2, 2), dtype="int8")
    return path


def _both_formats(path: Path) -> Path:
    _listed(path)
    (path / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    return path


def _bad_child(path: Path) -> Path:
    _listed(path)
    (path / "temp" / "zarr.json").write_text("{not json")
    return path


def _edited_dtype(path: Path) -> Path:
    """A consolidated store whose array document was edited afterwards: the consolidated copy is what counts."""
    _plain(path)
    doc = json.loads((path / "image" / "zarr.json").read_text())
    doc["attributes"]["edited"] = True
    (path / "image" / "zarr.json").write_text(json.dumps(doc))
    return path


#: case -> (how to make it, options, whether the fast path must be taken)
CASES: dict[str, tuple[Callable[[Path], Path], dict[str, Any], bool]] = {
    "v3 consolidated": (_plain, {}, True),
    "v3 consolidated, consolidated=True": (_plain, {"consolidated": True}, True),
    "v3 consolidated, consolidated=False": (_plain, {"consolidated": False}, True),
    "v3 listed": (_listed, {}, True),
    "v3 listed, consolidated=False": (_listed, {"consolidated": False}, True),
    "v3 listed, consolidated=True": (_listed, {"consolidated": True}, False),
    "v2 consolidated": (_v2, {}, True),
    "v2 consolidated, consolidated=True": (_v2, {"consolidated": True}, True),
    "v2 consolidated, consolidated=False": (_v2, {"consolidated": False}, False),
    "v2 listed": (_v2_listed, {}, False),
    "stale consolidated": (_stale, {}, True),
    "stale consolidated, consolidated=False": (_stale, {"consolidated": False}, True),
    "junk and nested group": (_junk, {}, True),
    "nested group, consolidated": (_junk_consolidated, {}, True),
    "GDAL _CRS and proj:code": (_gdal_crs, {}, True),
    "crs attribute": (_crs_attr, {}, True),
    "no CRS": (_no_crs, {}, True),
    "written by zarr": (_zarr_written, {}, True),
    "written by zarr, one variable": (_zarr_written, {"variables": "a"}, True),
    "no dimension names": (_no_dims, {}, True),
    "both formats": (_both_formats, {}, False),
    "a child's document broken": (_bad_child, {}, False),
    "edited after consolidating": (_edited_dtype, {}, True),
    "dask chunks": (_plain, {"chunks": {}}, True),
    "no CF time decoding": (_plain, {"decode_times": False}, True),
}


def _open(path: Path, options: dict[str, Any]) -> tuple[Any, BaseException | None]:
    try:
        return tp.open_zarr(path, **options), None
    except Exception as err:  # compared below: the same error both ways
        return None, err


def _wrappers(var: xr.Variable) -> list[str]:
    names, data = [], var._data
    while data is not None and len(names) < 8:
        names.append(type(data).__name__)
        data = getattr(data, "array", None)
    return names


def _listed_members(path: Path, options: dict[str, Any]) -> bool:
    """Whether the group's members are found by listing its folder (no consolidated metadata used)."""
    if options.get("consolidated") is False:
        return True
    doc = path / "zarr.json"
    if doc.exists():
        return json.loads(doc.read_text()).get("consolidated_metadata") is None
    return not (path / ".zmetadata").exists()


def _same(fast: Any, slow: Any, *, listed: bool) -> None:
    xr.testing.assert_identical(fast, slow)
    fast_ds = fast if isinstance(fast, xr.Dataset) else fast.to_dataset()
    slow_ds = slow if isinstance(slow, xr.Dataset) else slow.to_dataset()
    if (
        listed
    ):  # zarr lists a folder's members in the order their reads complete (two opens differ); here by name
        assert sorted(fast_ds.variables) == sorted(slow_ds.variables)
    else:
        assert list(fast_ds.variables) == list(slow_ds.variables)
    assert dict(fast_ds.xindexes).keys() == dict(slow_ds.xindexes).keys()
    assert fast_ds.encoding.get("source") == slow_ds.encoding.get("source")
    for name, var in fast_ds.variables.items():
        other = slow_ds.variables[name]
        assert repr(sorted(var.encoding.items())) == repr(sorted(other.encoding.items())), name
        assert var.dtype == other.dtype, name
        assert _wrappers(var) == _wrappers(other), name
        np.testing.assert_array_equal(np.asarray(var.values), np.asarray(other.values))
    try:
        fast_crs = fast.rio.crs
    except Exception as err:
        fast_crs = type(err).__name__
    try:
        slow_crs = slow.rio.crs
    except Exception as err:
        slow_crs = type(err).__name__
    assert fast_crs == slow_crs


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_local_folder_opens_as_xarray_opens_it(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, options, fast_path = CASES[case]
    path = make(tmp_path / "s.zarr")
    consolidated = options.get("consolidated")
    assert (local_zarr_store(str(path), consolidated=consolidated) is not None) is fast_path
    fast, fast_err = _open(path, options)
    monkeypatch.setattr(zarr_local_group, "local_zarr_store", lambda *a, **k: None)
    monkeypatch.setattr(zarr_reader, "_with_default_indexes", lambda ds: ds)  # xarray adds them
    slow, slow_err = _open(path, options)
    if slow_err is not None or fast_err is not None:
        assert type(fast_err) is type(slow_err), (fast_err, slow_err)
        assert str(fast_err) == str(slow_err)
        return
    listed = _listed_members(path, options)
    _same(fast, slow, listed=listed)
    if listed and fast_path:
        names = list(fast.data_vars) if isinstance(fast, xr.Dataset) else [fast.name]
        assert names == sorted(names)


def test_the_fast_path_reads_what_a_chip_reads(tmp_path: Path) -> None:
    """Chips of a folder opened from its metadata files are the array's values (the direct chunk reads)."""
    path = _plain(tmp_path / "s.zarr")
    expected = _dataset()["image"].values
    chips = list(tp.from_items([str(path)]).read_zarr(variables="image").chip({"y": 4, "x": 8}))
    assert len(chips) == 3 * 2
    for chip in chips:
        y0 = int(np.searchsorted(-_dataset().y.values, -chip.y.values[0]))
        x0 = int(np.searchsorted(_dataset().x.values, chip.x.values[0]))
        np.testing.assert_array_equal(chip.values, expected[:, y0 : y0 + 4, x0 : x0 + 8])


def test_a_folder_changed_between_opens_is_read_anew(tmp_path: Path) -> None:
    """Nothing is remembered between opens: a variable added, a store rewritten, each open sees the folder now."""
    path = _listed(tmp_path / "s.zarr")
    assert "added" not in tp.open_zarr(path)
    xr.Dataset({"added": (("y", "x"), np.zeros((12, 16), "int8"))}).to_zarr(
        path, mode="a", consolidated=False
    )
    assert "added" in tp.open_zarr(path)
    shutil.rmtree(path)
    _no_crs(path)
    assert list(tp.open_zarr(path).data_vars) == ["v"]
