"""CF time axes in every calendar climate models write, through open_xarray, open_zarr, chip, sample_windows,
to_tensor, collate and stitch; the reference is xarray's own decoding (``CFDatetimeCoder(use_cftime=True)``).

CMIP6 and CORDEX models write ``noleap``/``365_day``, ``360_day`` (HadGEM), ``all_leap``, ``julian`` and
``proleptic_gregorian`` calendars; ERA5 writes ``hours since 1900-01-01`` (standard). xarray decodes the
non-standard ones to ``cftime`` objects. No day may be dropped, added or shifted: Feb 29 where the calendar
has it, Feb 30 in ``360_day``, none in ``noleap``. A chip's ``meta["time"]`` is the calendar's own date as
ISO text (``2000-02-30T00:00:00`` in ``360_day``); the calendar itself is on the xarray chip's coordinate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.chip
from terrapipe.core.errors import GridMismatchError

cftime = pytest.importorskip("cftime")
pytest.importorskip("netCDF4")

CALENDARS = ("noleap", "365_day", "360_day", "all_leap", "julian", "proleptic_gregorian", "standard")
#: Feb 27 .. Mar 2 of 2001 (not a leap year in the standard calendar) in each calendar, as written.
FEBRUARY_END = {
    "noleap": ["2001-02-27", "2001-02-28", "2001-03-01", "2001-03-02"],
    "365_day": ["2001-02-27", "2001-02-28", "2001-03-01", "2001-03-02"],
    "360_day": ["2001-02-27", "2001-02-28", "2001-02-29", "2001-02-30", "2001-03-01", "2001-03-02"],
    "all_leap": ["2001-02-27", "2001-02-28", "2001-02-29", "2001-03-01", "2001-03-02"],
    "julian": ["2001-02-27", "2001-02-28", "2001-03-01", "2001-03-02"],
    "proleptic_gregorian": ["2001-02-27", "2001-02-28", "2001-03-01", "2001-03-02"],
    "standard": ["2001-02-27", "2001-02-28", "2001-03-01", "2001-03-02"],
}
DAYS = 75  # Jan 1 .. mid-March 2001
CFTIME = xr.coders.CFDatetimeCoder(use_cftime=True)  # xarray's decoding to cftime dates, the reference


def _write(folder: Path, calendar: str, units: str = "days since 2001-01-01") -> Path:
    """A (time, lat, lon) daily cube as a climate model writes it (netCDF-4, float32, time as float64)."""
    values = np.arange(DAYS * 4 * 6, dtype="float32").reshape(DAYS, 4, 6)
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), values, {"units": "K"})},
        coords={
            "time": ("time", np.arange(DAYS, dtype="float64"), {"units": units, "calendar": calendar}),
            "lat": ("lat", [1.5, 0.5, -0.5, -1.5], {"units": "degrees_north"}),
            "lon": ("lon", np.arange(6) + 0.5, {"units": "degrees_east"}),
        },
    )
    path = folder / f"{calendar}.nc"
    ds.to_netcdf(path, engine="netcdf4", format="NETCDF4")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("calendars")
    return {calendar: _write(folder, calendar) for calendar in CALENDARS}


def _reference(path: Path) -> list[str]:
    with xr.open_dataset(path, decode_times=CFTIME) as ds:
        return [t.isoformat() for t in ds.time.values]


def _days(texts: Any) -> list[str]:
    return [str(t)[:10] for t in texts]


@pytest.mark.parametrize("calendar", CALENDARS)
def test_the_reference_has_each_calendar_s_february(files: dict[str, Path], calendar: str) -> None:
    days = _days(_reference(files[calendar]))
    start = days.index("2001-02-27")
    assert days[start : start + len(FEBRUARY_END[calendar])] == FEBRUARY_END[calendar]


@pytest.mark.parametrize("calendar", CALENDARS)
def test_every_time_step_is_one_chip_labelled_with_its_own_day(files: dict[str, Path], calendar: str) -> None:
    reference = _reference(files[calendar])
    cube = tp.open_xarray(files[calendar]).tas
    chips = list(tp.from_items([cube]).chip({"time": 1, "lat": 4, "lon": 6}, output="numpy"))
    assert [meta["time"] for _, meta in chips] == [(t,) for t in reference]
    for (values, _), step in zip(chips, range(DAYS), strict=True):
        np.testing.assert_array_equal(values, cube.values[step : step + 1])
    xchips = list(tp.from_items([cube]).chip({"time": 1, "lat": 2, "lon": 3}))
    assert len(xchips) == DAYS * 4
    labels = [chip.time.values[0] for chip in xchips[::4]]
    assert [_iso(t) for t in labels] == reference
    if calendar not in ("standard", "proleptic_gregorian"):  # xarray's datetime64 for these
        assert {t.calendar for t in labels} == {"noleap" if calendar == "365_day" else calendar}


def _iso(value: Any) -> str:
    """ISO text of a cftime date or a numpy datetime64."""
    return value.isoformat() if hasattr(value, "isoformat") else pd.Timestamp(value).isoformat()


@pytest.mark.parametrize("calendar", CALENDARS)
def test_windows_over_time_are_consecutive_days_of_the_calendar(
    files: dict[str, Path], calendar: str
) -> None:
    cube = tp.open_xarray(files[calendar]).tas
    reference = _reference(files[calendar])
    windows = list(tp.from_items([cube]).sample_windows({"time": 5, "lat": 2, "lon": 2}, n=20, seed=3))
    assert len(windows) == 20
    for window in windows:
        days = [_iso(t) for t in window.time.values]
        start = _days(reference).index(days[0][:10])
        assert _days(days) == _days(reference[start : start + 5])
        np.testing.assert_array_equal(
            window.values, cube.sel(lat=window.lat, lon=window.lon).values[start : start + 5]
        )


@pytest.mark.parametrize("calendar", ["360_day", "noleap", "all_leap"])
def test_samples_and_batches_carry_each_day(files: dict[str, Path], calendar: str) -> None:
    cube = tp.open_xarray(files[calendar]).tas.rio.write_crs("EPSG:4326")
    samples = list(tp.from_items([cube]).chip({"time": 2, "lat": 4, "lon": 6}).to_tensor())
    reference = _reference(files[calendar])
    assert len(samples) == DAYS // 2
    assert [s["meta"]["time"] for s in samples] == [
        tuple(reference[i : i + 2]) for i in range(0, DAYS - 1, 2)
    ]
    batch = tp.collate(samples[:3])
    assert [m["time"] for m in batch["meta"]] == [tuple(reference[i : i + 2]) for i in (0, 2, 4)]


@pytest.mark.parametrize("calendar", ["360_day", "noleap", "julian"])
def test_a_zarr_store_keeps_the_calendar(files: dict[str, Path], calendar: str, tmp_path: Path) -> None:
    store = tmp_path / f"{calendar}.zarr"
    with xr.open_dataset(files[calendar], decode_times=CFTIME) as ds:
        ds.to_zarr(store, mode="w")
    cube = tp.open_zarr(store, variables="tas")
    assert [t.isoformat() for t in cube.time.values] == _reference(files[calendar])
    chips = list(tp.from_items([cube]).chip({"time": 1, "lat": 4, "lon": 6}, output="numpy"))
    assert [meta["time"] for _, meta in chips] == [(t,) for t in _reference(files[calendar])]


@pytest.mark.parametrize(
    ("units", "first"),
    [
        ("hours since 1900-01-01 00:00:00.0", "1900-01-01T00:00:00"),  # ERA5 (int32 hours)
        ("days since 0001-01-01", "0001-01-01T00:00:00"),  # CMIP's early reference dates
        ("days since 1850-01-01", "1850-01-01T00:00:00"),
    ],
)
def test_reference_dates_far_back_keep_their_day(tmp_path: Path, units: str, first: str) -> None:
    path = tmp_path / "t.nc"
    times = xr.DataArray(np.array([0, 1, 2], "int32"), dims="time", attrs={"units": units})
    xr.Dataset(
        {"v": (("time", "lat", "lon"), np.zeros((3, 2, 2), "float32"))},
        coords={"time": times, "lat": [1.0, 0.0], "lon": [0.0, 1.0]},
    ).to_netcdf(path, engine="netcdf4")
    cube = tp.open_xarray(path).v
    chips = list(tp.from_items([cube]).chip({"time": 1, "lat": 2, "lon": 2}, output="numpy"))
    assert chips[0][1]["time"] == (first,)
    with xr.open_dataset(path, decode_times=CFTIME) as ds:
        assert [meta["time"][0] for _, meta in chips] == [t.isoformat() for t in ds.time.values]


def test_months_since_is_xarray_s_refusal_or_raw_numbers_never_a_guess(tmp_path: Path) -> None:
    """``months since`` (not CF-standard, written by some models): xarray refuses to decode it."""
    path = tmp_path / "months.nc"
    times = xr.DataArray(
        np.array([0, 1, 2], "int32"), dims="time", attrs={"units": "months since 2000-01-01"}
    )
    xr.Dataset(
        {"v": (("time", "lat", "lon"), np.zeros((3, 2, 2), "float32"))},
        coords={"time": times, "lat": [1.0, 0.0], "lon": [0.0, 1.0]},
    ).to_netcdf(path, engine="netcdf4")
    try:
        reference = xr.open_dataset(path)
    except ValueError:
        with pytest.raises(tp.ReadError, match="months since"):
            tp.open_xarray(path)
    else:
        with reference:
            opened = tp.open_xarray(path)
            np.testing.assert_array_equal(opened.time.values, reference.time.values)
    raw = tp.open_xarray(path, decode_times=False).v
    chips = list(tp.from_items([raw]).chip({"time": 1, "lat": 2, "lon": 2}, output="numpy"))
    assert [meta["time"] for _, meta in chips] == [("0",), ("1",), ("2",)]


# -- stitch: predictions of chips at different times are never merged into one layer


def _daily(calendar: str | None) -> xr.DataArray:
    if calendar is None:
        times: Any = np.array(["2000-02-28", "2000-02-29", "2000-03-01"], dtype="datetime64[ns]")
    else:
        times = cftime.num2date([0, 1, 2], "days since 2000-02-28", calendar=calendar)
    return xr.DataArray(
        np.arange(3 * 4 * 8, dtype="float32").reshape(3, 4, 8),
        dims=("time", "y", "x"),
        coords={"time": times, "y": np.arange(4.0)[::-1], "x": np.arange(8.0)},
    ).rio.write_crs("EPSG:32631")


@pytest.mark.parametrize("calendar", [None, "360_day"])
@pytest.mark.parametrize("output", ["xarray", "numpy"])
def test_stitching_chips_of_different_days_onto_a_time_template_is_refused(
    calendar: str | None, output: str
) -> None:
    cube = _daily(calendar)
    chips = list(tp.from_items([cube]).chip({"time": 1, "y": 4, "x": 4}, output=output))
    pairs = [(c.values, c) for c in chips] if output == "xarray" else [(a, m) for a, m in chips]
    with pytest.raises(GridMismatchError, match="different 'time'"):
        tp.chip.stitch(pairs, template=cube)


@pytest.mark.parametrize("output", ["xarray", "numpy"])
def test_stitching_one_day_at_a_time_or_time_kept_whole_is_exact(output: str) -> None:
    cube = _daily("360_day")
    chips = list(tp.from_items([cube]).chip({"time": 1, "y": 4, "x": 4}, output=output))
    pairs = [(c.values[0], c) for c in chips] if output == "xarray" else [(a[0], m) for a, m in chips]
    days = [_iso(c.time.values[0]) for c in chips] if output == "xarray" else [m["time"][0] for _, m in chips]
    for step in range(3):
        day = [pair for pair, text in zip(pairs, days, strict=True) if text == _iso(cube.time.values[step])]
        assert len(day) == 2
        out = tp.chip.stitch(day, template=cube.isel(time=step))
        np.testing.assert_array_equal(out.values, cube.values[step])
    whole = list(tp.from_items([cube]).chip({"y": 4, "x": 4}, output=output))
    pairs = [(c.values, c) for c in whole] if output == "xarray" else [(a, m) for a, m in whole]
    out = tp.chip.stitch(pairs, template=cube)
    np.testing.assert_array_equal(out.values, cube.values)
    assert out.dims == cube.dims


# -- time coordinates not named "time": ERA5 from the new CDS (valid_time), WRF (XTIME along Time)


def _era5_new_cds() -> xr.DataArray:
    times = pd.date_range("2024-02-28T22:00", periods=4, freq="h")
    ds = xr.Dataset(
        {
            "t2m": (
                ("valid_time", "latitude", "longitude"),
                np.arange(4 * 4 * 4, dtype="float32").reshape(4, 4, 4),
            )
        },
        coords={
            "valid_time": ("valid_time", times, {"standard_name": "time", "long_name": "time"}),
            "latitude": [1.5, 0.5, -0.5, -1.5],
            "longitude": [0.5, 1.5, 2.5, 3.5],
            "number": 0,
            "expver": ("valid_time", ["0001"] * 4),
        },
    )
    return ds.t2m.rio.write_crs("EPSG:4326")


def _wrf() -> xr.DataArray:
    times = pd.date_range("2024-02-28T22:00", periods=4, freq="h")
    return xr.DataArray(
        np.arange(4 * 4 * 4, dtype="float32").reshape(4, 4, 4),
        dims=("Time", "y", "x"),
        coords={
            "XTIME": ("Time", times, {"description": "minutes since 2024-02-28 00:00:00"}),
            "y": np.arange(4.0)[::-1],
            "x": np.arange(4.0),
        },
    ).rio.write_crs("EPSG:32631")


@pytest.mark.parametrize("make", [_era5_new_cds, _wrf], ids=["era5_valid_time", "wrf_xtime"])
def test_a_time_coordinate_by_another_name_labels_every_chip(make: Any) -> None:
    cube = make()
    time_dim, y_dim, x_dim = cube.dims
    expected = [pd.Timestamp(t).isoformat() for t in cube[time_dim if time_dim != "Time" else "XTIME"].values]
    size = {time_dim: 2, y_dim: 4, x_dim: 4}
    chips = list(tp.from_items([cube]).chip(size, output="numpy"))
    assert [meta["time"] for _, meta in chips] == [tuple(expected[0:2]), tuple(expected[2:4])]
    samples = list(tp.from_items([cube]).chip(size).to_tensor())
    assert [s["meta"]["time"] for s in samples] == [tuple(expected[0:2]), tuple(expected[2:4])]
    with pytest.raises(GridMismatchError, match="different"):
        tp.chip.stitch([(a[0], m) for a, m in chips], template=cube)
