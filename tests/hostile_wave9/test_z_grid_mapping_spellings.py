"""read_zarr gives each array the CRS its own ``grid_mapping`` names, in every CF spelling, and no other.

CF lets a data variable name its grid mapping as ``"crs"`` or, since CF 1.7, in
the extended form ``"crs: x y"`` / ``"crsOSGB: x y crsWGS84: lat lon"`` (each
mapping with the coordinates it applies to). Before: an array naming a grid
mapping the store does not have (``"nope"``) was given another array's CRS
(silently placed on the wrong grid), and the extended form gave no CRS at
all. Promise: the CRS of each array is the one of the grid-mapping variable
it names (``pyproj.CRS.from_cf`` of that variable, the reference); with the
extended form, the mapping whose coordinates are the array's dimensions (its
grid); none when the named mapping is missing or the form does not say which
mapping is the grid's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp

pyproj = pytest.importorskip("pyproj")

UTM, MERCATOR = 32631, 3857


def _mapping(epsg: int) -> xr.Variable:
    crs = pyproj.CRS.from_epsg(epsg)
    return xr.Variable((), 0, {**crs.to_cf(), "crs_wkt": crs.to_wkt()})


def _store(path: Path, a_mapping: str | None, b_mapping: str | None, mappings: dict[str, int]) -> str:
    def attrs(mapping: str | None) -> dict[str, str]:
        return {} if mapping is None else {"grid_mapping": mapping}

    ds = xr.Dataset(
        {
            "a": (("y", "x"), np.ones((2, 3)), attrs(a_mapping)),
            "b": (("y", "x"), np.zeros((2, 3)), attrs(b_mapping)),
        },
        coords={
            "y": [1.0, 0.0],
            "x": [0.0, 1.0, 2.0],
            "lat": (("y", "x"), np.full((2, 3), 50.0)),
            "lon": (("y", "x"), np.full((2, 3), 3.0)),
        },
    )
    for name, epsg in mappings.items():
        ds[name] = _mapping(epsg)
    ds.to_zarr(path, zarr_format=3, consolidated=False)
    return str(path)


def _epsg(var: xr.DataArray) -> int | None:
    crs = var.rio.crs
    return None if crs is None else int(crs.to_epsg())


#: (a's grid_mapping, b's grid_mapping, the mapping variables, a's CRS, b's CRS)
CASES = {
    "each its own": ("ca", "cb", {"ca": UTM, "cb": MERCATOR}, UTM, MERCATOR),
    "a names a missing mapping": ("nope", "cb", {"cb": MERCATOR}, None, MERCATOR),
    "both name missing mappings": ("nope", "gone", {"cb": MERCATOR}, None, None),
    "extended form": ("ca: x y", "cb: x y", {"ca": UTM, "cb": MERCATOR}, UTM, MERCATOR),
    "extended form, two mappings": (
        "ca: x y cb: lat lon",
        "cb: x y",
        {"ca": UTM, "cb": MERCATOR},
        UTM,
        MERCATOR,
    ),
    # b names none: its x and y are those the file puts in ca (rioxarray's one CRS for the dataset)
    "extended form, the grid's first": ("cb: lat lon ca: y x", None, {"ca": UTM, "cb": MERCATOR}, UTM, UTM),
    "extended form, mapping missing": ("gone: x y", "cb", {"cb": MERCATOR}, None, MERCATOR),
    "extended form, not the grid's": ("cb: lat lon", "cb", {"cb": MERCATOR}, None, MERCATOR),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_array_gets_the_crs_its_grid_mapping_names(tmp_path: Path, case: str) -> None:
    a_mapping, b_mapping, mappings, a_crs, b_crs = CASES[case]
    store = _store(tmp_path / "gm.zarr", a_mapping, b_mapping, mappings)
    ds = tp.open_zarr(store)
    assert (_epsg(ds.a), _epsg(ds.b)) == (a_crs, b_crs)
    for name, expected in (("a", a_crs), ("b", b_crs)):
        assert _epsg(tp.open_zarr(store, variables=name)) == expected
    np.testing.assert_array_equal(ds.a.values, np.ones((2, 3)))  # the values are untouched


def test_the_reference_reads_the_named_mapping(tmp_path: Path) -> None:
    """What the file says, read without terrapipe: the named variable's CF attributes."""
    store = _store(tmp_path / "gm.zarr", "ca: x y cb: lat lon", None, {"ca": UTM, "cb": MERCATOR})
    raw = xr.open_zarr(store, consolidated=False)
    assert pyproj.CRS.from_cf(raw["ca"].attrs).to_epsg() == UTM
    assert _epsg(tp.open_zarr(store).a) == UTM
