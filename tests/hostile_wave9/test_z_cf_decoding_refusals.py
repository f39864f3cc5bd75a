"""CF attributes xarray cannot decode are refused at the open, named as such, never as a damaged file or a bare error.

xarray refuses these files (the reference): time units it cannot parse
(``"days since the flood"``), a calendar it does not know, ``"months since"`` in
the standard calendar, times beyond 64-bit integers. open_xarray and read_zarr
said "the file is probably truncated or corrupt ... re-download the file", and
times beyond 64-bit integers escaped as a bare ``OverflowError``. A
``scale_factor`` or ``add_offset`` written as text opened and failed at every
read with a bare numpy ``UFuncTypeError``. Promise: a ``ReadError`` at the open
that names the file and the variable, says the file is not damaged and which
keyword opens the raw values; with that keyword, the raw values xarray reads.
Locally and at a URL, netCDF-4, netCDF-3 and Zarr alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import ReadError
from tests.servers.http_range import RangeServer

netcdf4 = pytest.importorskip("netCDF4")
zarr = pytest.importorskip("zarr")

TIMES: dict[str, tuple[dict[str, str], list[int]]] = {
    "units_not_a_date": ({"units": "days since the flood"}, [0, 1, 2]),
    "unknown_calendar": ({"units": "days since 2000-01-01", "calendar": "martian"}, [0, 1, 2]),
    "months_in_the_standard_calendar": ({"units": "months since 2000-01-01"}, [0, 1, 2]),
    "beyond_64_bit_nanoseconds": ({"units": "days since 2000-01-01"}, [0, 2**31 - 1, 5]),
}
FORMATS = ["NETCDF4", "NETCDF3_CLASSIC"]


def _netcdf(path: Path, fmt: str, time_attrs: dict[str, str] | None, times: list[int]) -> None:
    with netcdf4.Dataset(path, "w", format=fmt) as nc:
        nc.createDimension("t", 3)
        t = nc.createVariable("t", "i4", ("t",))
        t[:] = times
        for key, value in (time_attrs or {}).items():
            t.setncattr(key, value)
        v = nc.createVariable("v", "i2", ("t",))
        v.set_auto_maskandscale(False)
        v[:] = [1, 2, 3]
        if time_attrs is None:
            v.scale_factor = "ten"


def _zarr(path: Path, time_attrs: dict[str, str] | None, times: list[int]) -> None:
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    t = group.create_array("t", shape=(3,), dtype="i4", dimension_names=["t"])
    t[...] = times
    t.attrs.update(time_attrs or {})
    v = group.create_array("v", shape=(3,), dtype="i2", dimension_names=["t"])
    v[...] = [1, 2, 3]
    if time_attrs is None:
        v.attrs["scale_factor"] = "ten"


@pytest.fixture(scope="module")
def files(http_root: Path, range_server_session: RangeServer) -> dict[str, tuple[str, str]]:
    """``{case/format: (local path, URL)}``; the case ``text_scale_factor`` packs ``v`` with a text factor."""
    root = http_root / "z_cf_decoding"
    root.mkdir(exist_ok=True)
    found: dict[str, tuple[str, str]] = {}
    cases: dict[str, tuple[dict[str, str] | None, list[int]]] = {
        **TIMES,
        "text_scale_factor": (None, [0, 1, 2]),
    }
    for case, (attrs, times) in cases.items():
        for fmt in FORMATS:
            path = root / f"{case}_{fmt}.nc"
            _netcdf(path, fmt, attrs, times)
            found[f"{case}/{fmt}"] = (str(path), range_server_session.url_for(path))
        path = root / f"{case}.zarr"
        _zarr(path, attrs, times)
        found[f"{case}/zarr"] = (str(path), range_server_session.url_for(path))
    return found


def _reference(path: str, **kwargs: Any) -> xr.Dataset:
    if path.endswith(".zarr"):
        return xr.open_zarr(path, consolidated=False, **kwargs)
    return xr.open_dataset(path, engine="netcdf4", **kwargs)


def _check_message(err: ReadError, where: str) -> str:
    text = str(err)
    assert where in text
    assert "corrupt" not in text
    assert "re-download" not in text
    assert "not damaged" in text
    return text


@pytest.mark.parametrize("fmt", [*FORMATS, "zarr"])
@pytest.mark.parametrize("case", sorted(TIMES))
def test_times_xarray_cannot_decode_are_refused_as_such(
    files: dict[str, tuple[str, str]], case: str, fmt: str
) -> None:
    local, url = files[f"{case}/{fmt}"]
    with pytest.raises((ValueError, OverflowError)):  # the reference refuses it
        _reference(local).t.values  # noqa: B018
    sources = [local] if fmt == "zarr" else [local, url]  # a Zarr store over HTTP needs consolidated metadata
    for source in sources:
        with pytest.raises(ReadError) as caught:
            tp.open_xarray(source).t.values  # noqa: B018
        text = _check_message(caught.value, source.rsplit("/", 1)[-1])
        assert "decode_times=False" in text
        if case != "beyond_64_bit_nanoseconds":  # xarray names the variable where it decodes it
            assert "variable 't'" in text
        raw = tp.open_xarray(source, decode_times=False)
        np.testing.assert_array_equal(raw.t.values, _reference(local, decode_times=False).t.values)


@pytest.mark.parametrize("fmt", [*FORMATS, "zarr"])
def test_a_text_scale_factor_is_refused_at_the_open(files: dict[str, tuple[str, str]], fmt: str) -> None:
    local, url = files[f"text_scale_factor/{fmt}"]
    with pytest.raises(TypeError):  # the reference opens it, and fails at the read
        _reference(local).v.values  # noqa: B018
    for source in [local] if fmt == "zarr" else [local, url]:
        with pytest.raises(ReadError) as caught:
            tp.open_xarray(source)
        text = _check_message(caught.value, source.rsplit("/", 1)[-1])
        assert "'v'" in text
        assert "scale_factor 'ten'" in text
        if fmt != "zarr":
            raw = tp.open_xarray(source, mask_and_scale=False)
            np.testing.assert_array_equal(raw.v.values, _reference(local, mask_and_scale=False).v.values)


def test_read_zarr_skips_such_a_store_and_counts_it(files: dict[str, tuple[str, str]]) -> None:
    stores = [files["unknown_calendar/zarr"][0], files["text_scale_factor/zarr"][0]]
    pipe = tp.from_items(stores).read_zarr(on_error="skip")
    assert list(pipe) == []
    assert pipe.stats.skipped == 2


@pytest.fixture(scope="module")
def late_times(http_root: Path, range_server_session: RangeServer) -> dict[str, tuple[str, str]]:
    """A time variable that is no index (decoded at each read, not at the open), beyond 64-bit nanoseconds."""
    root = http_root / "z_cf_decoding_late"
    root.mkdir(exist_ok=True)
    values, attrs = [0, 2**31 - 1, 1], {"units": "days since 2000-01-01"}
    found: dict[str, tuple[str, str]] = {}
    for fmt in FORMATS:
        path = root / f"late_{fmt}.nc"
        with netcdf4.Dataset(path, "w", format=fmt) as nc:
            nc.createDimension("t", 3)
            nc.createVariable("t", "i4", ("t",))[:] = [0, 1, 2]
            when = nc.createVariable("when", "i4", ("t",))
            when[:] = values
            when.units = attrs["units"]
        found[fmt] = (str(path), range_server_session.url_for(path))
    group = zarr.open_group(str(root / "late.zarr"), mode="w", zarr_format=3)
    group.create_array("t", shape=(3,), dtype="i4", dimension_names=["t"])[...] = [0, 1, 2]
    when = group.create_array("when", shape=(3,), dtype="i4", dimension_names=["t"])
    when[...] = values
    when.attrs.update(attrs)
    found["zarr"] = (str(root / "late.zarr"), "")
    return found


@pytest.mark.parametrize("chunks", [None, {}], ids=["lazy", "dask"])
@pytest.mark.parametrize("fmt", [*FORMATS, "zarr"])
def test_times_decoded_at_a_read_fail_as_a_read_error(
    late_times: dict[str, tuple[str, str]], fmt: str, chunks: dict[str, int] | None
) -> None:
    """The reference opens it and fails at the read with a bare OverflowError; ours names the variable there."""
    local, url = late_times[fmt]
    reference = _reference(local)
    with pytest.raises(OverflowError):
        reference.when.values  # noqa: B018
    for source in [s for s in (local, url) if s]:
        ds = tp.open_xarray(source, chunks=chunks)
        with pytest.raises(ReadError) as caught:
            ds.when.values  # noqa: B018
        text = str(caught.value)
        assert "variable 'when'" in text
        assert "decode_times=False" in text
        assert "corrupt" not in text
        np.testing.assert_array_equal(ds.t.values, [0, 1, 2])  # the rest reads
