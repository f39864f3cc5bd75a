"""A Zarr array's own CRS declaration (GDAL's ``_CRS``, GeoZarr's ``proj:*``) against everything around it.

a77eaa1: ``open_zarr`` gives each array "the CRS it declares (GDAL's _CRS, GeoZarr's proj:* on the array,
else the group's)". The siblings of that rule: another array's rioxarray grid mapping, an array's
declaration that cannot be read under a group's that can, and one array declaring two CRSs. In each,
the array must keep its own CRS or have none (a stage that needs one refuses): never another's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import TerrapipeError
from terrapipe.fuse.grid import grid_of

pytestmark = pytest.mark.filterwarnings("ignore::zarr.errors.ZarrUserWarning")

VALUES = np.arange(48, dtype="uint8").reshape(6, 8)
COORDS = {"y": 3999995.0 - 10 * np.arange(6), "x": 500005.0 + 10 * np.arange(8)}


def _store(path: Path, arrays: dict[str, dict[str, Any]], group: dict[str, Any] | None = None) -> Path:
    xr.Dataset(
        {name: (("y", "x"), VALUES, attrs) for name, attrs in arrays.items()},
        coords=COORDS,
        attrs=group or {},
    ).to_zarr(path, zarr_format=2)
    return path


def _epsg_or_refused(obj: Any) -> int | None:
    """The EPSG code a stage would place ``obj`` by, or None where it refuses for want of a CRS."""
    try:
        return int(grid_of(obj).crs.to_epsg())
    except TerrapipeError:
        return None


@pytest.mark.parametrize(
    "declared",
    [{"proj:code": "EPSG:32632"}, {"_CRS": {"url": "http://www.opengis.net/def/crs/EPSG/0/32632"}}],
    ids=["proj_code", "gdal_crs"],
)
def test_another_array_s_grid_mapping_never_overrides_an_array_s_own_crs(
    tmp_path: Path, declared: dict[str, Any]
) -> None:
    ds = xr.Dataset(dict.fromkeys("ab", (("y", "x"), VALUES)), coords=COORDS)
    ds["a"] = ds["a"].rio.write_crs("EPSG:32631", grid_mapping_name="spatial_ref")
    ds["b"].attrs.update(declared)
    path = tmp_path / "mixed.zarr"
    ds.to_zarr(path, zarr_format=2)
    assert _epsg_or_refused(tp.open_zarr(path, variables="a")) == 32631
    assert _epsg_or_refused(tp.open_zarr(path, variables="b")) == 32632
    assert _epsg_or_refused(tp.open_zarr(path)["b"]) == 32632


@pytest.mark.parametrize(
    "declared",
    [
        {"proj:code": "EPSG:9999999"},
        {"proj:wkt2": 'PROJCRS["half written'},
        {"_CRS": {"wkt": "PROJCS[garbage"}},
        {"_CRS": {"url": "http://www.opengis.net/def/crs/EPSG/0/9999999"}},
    ],
    ids=["proj_code", "proj_wkt2", "gdal_wkt", "gdal_url"],
)
def test_an_array_s_unreadable_crs_never_becomes_the_group_s(
    tmp_path: Path, declared: dict[str, Any]
) -> None:
    path = _store(tmp_path / "s.zarr", {"a": {}, "b": declared}, {"proj:code": "EPSG:32631"})
    assert _epsg_or_refused(tp.open_zarr(path, variables="a")) == 32631  # the group's, as declared
    assert _epsg_or_refused(tp.open_zarr(path, variables="b")) is None
    assert _epsg_or_refused(tp.open_zarr(path)["b"]) is None


def test_an_array_declaring_two_crss_is_not_silently_given_one(tmp_path: Path) -> None:
    declared = {"_CRS": {"url": "http://www.opengis.net/def/crs/EPSG/0/32631"}, "proj:code": "EPSG:32632"}
    path = _store(tmp_path / "two.zarr", {"b": declared})
    try:
        found = _epsg_or_refused(tp.open_zarr(path, variables="b"))
    except TerrapipeError:
        found = None  # refused at open: fine
    assert found is None


@pytest.mark.parametrize(
    "declared",
    [
        {"_CRS": {"url": "http://www.opengis.net/def/crs/EPSG/0/32632"}, "proj:code": "EPSG:32632"},
        {"_CRS": {"wkt": "PROJCS[garbage"}, "proj:code": "EPSG:32632"},
    ],
    ids=["agreeing", "one_unreadable"],
)
def test_an_array_s_agreeing_or_partly_unreadable_declarations_give_its_crs(
    tmp_path: Path, declared: dict[str, Any]
) -> None:
    path = _store(tmp_path / "ok.zarr", {"b": declared}, {"proj:code": "EPSG:32631"})
    assert _epsg_or_refused(tp.open_zarr(path, variables="b")) == 32632


def test_per_array_crss_survive_a_round_trip_through_to_zarr(tmp_path: Path) -> None:
    src = _store(tmp_path / "src.zarr", {"a": {"proj:code": "EPSG:32631"}, "b": {"proj:code": "EPSG:32632"}})
    copy = tmp_path / "copy.zarr"
    tp.open_zarr(src).to_zarr(copy, zarr_format=2)
    for name, epsg in (("a", 32631), ("b", 32632)):
        assert _epsg_or_refused(tp.open_zarr(copy, variables=name)) == epsg
        assert _epsg_or_refused(tp.open_zarr(copy)[name]) == epsg
