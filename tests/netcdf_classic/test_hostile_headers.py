"""netCDF-3 headers that lie: on disk and at a URL, the same values or the same ReadError naming the file.

Each file is written byte by byte (classic_bytes.py) and opened by ``open_xarray`` on disk (scipy's
engine, or netCDF4's) and at a URL (io/netcdf_classic). Before, on disk scipy read whatever bytes a
misplaced offset named (inside the header, over another variable, over the records) where netCDF-C
refuses the file; a variable or dimension named twice was silently one of the two on disk; scipy's own
writer put a scalar variable on the second record of the record variables (``[1, 2, 3]`` read back
``[1, 77, 3]``, scipy/scipy#10937) and open_xarray read it so both ways; a record variable of 0 records
beside a huge dimension was a bare MemoryError at a URL; a CDF-1 header naming CDF-5's types read on
disk (netCDF4's engine) and not at the URL; a name in UTF-8 read 'tempÃ©rature' (scipy's latin1).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from tests.netcdf_classic.classic_bytes import classic_file, var

pytestmark = pytest.mark.filterwarnings("ignore:Cannot close a netcdf_file opened with mmap:RuntimeWarning")

DIMS = [("t", 0), ("x", 4), ("y", 3)]


@pytest.fixture
def server(range_server_session: Any) -> Iterator[Any]:
    with range_server_session.cleared() as cleared:
        yield cleared


def _put(root: Path, stem: str, data: bytes) -> Path:
    path = root / f"{stem}-{uuid.uuid4().hex[:8]}.nc"
    path.write_bytes(data)
    return path


def _refused_everywhere(server: Any, path: Path, match: str) -> None:
    for href, engines in (
        (str(path), ({}, {"engine": "netcdf4"}, {"engine": "scipy"})),
        (server.url_for(path), ({},)),
    ):
        for engine in engines:
            with pytest.raises(tp.ReadError, match=rf"{path.name}.*{match}"):
                tp.open_xarray(href, **engine).load()


def _same_everywhere(server: Any, path: Path) -> xr.Dataset:
    local = tp.open_xarray(str(path)).load()
    remote = tp.open_xarray(server.url_for(path)).load()
    xr.testing.assert_identical(local, remote)
    for name, variable in local.variables.items():
        assert remote[name].dtype == variable.dtype, name
    return local


def _begins(data: bytes) -> dict[str, int]:
    with netCDF4.Dataset("mem.nc", memory=data) as nc:  # the layout netCDF-C computes for a good file
        assert nc.data_model.startswith("NETCDF3")
    from terrapipe.io.netcdf_classic import parse_classic

    return {name: v.begin for name, v in parse_classic(data).variables.items()}


GOOD = [var("a", [1], 6), var("r", [0, 1], 3), var("s", [0], 1)]


@pytest.mark.parametrize(
    ("lie", "match"),
    [
        ("fixed in the header", "inside the header"),
        ("fixed over fixed", "inside the values of 'a'"),
        ("fixed over the records", "inside the records of 'r'|inside the values of 'b'"),
        ("record over record", "not right after 'r'"),
        ("records swapped", "not right after 'r'"),
        ("record gap", "not right after 'r'"),
        ("records over fixed", "inside the values of 'a'"),
    ],
)
def test_values_placed_over_other_values_are_refused_as_netcdf_c_refuses_them(
    server: Any, http_root: Path, lie: str, match: str
) -> None:
    with_b = [GOOD[0], var("b", [2], 4), *GOOD[1:]]
    begins = _begins(classic_file(1, 3, DIMS, None, GOOD)) | {
        f"{k}+b": v for k, v in _begins(classic_file(1, 3, DIMS, None, with_b)).items()
    }
    a, r, s = begins["a"], begins["r"], begins["s"]
    variables = {
        "fixed in the header": [var("a", [1], 6, begin=8), *GOOD[1:]],
        "fixed over fixed": [GOOD[0], var("b", [2], 4, begin=begins["a+b"] + 8), *GOOD[1:]],
        "fixed over the records": [GOOD[0], var("b", [2], 4, begin=begins["r+b"] + 4), *GOOD[1:]],
        "record over record": [*GOOD[:2], var("s", [0], 1, begin=r + 2)],
        "records swapped": [GOOD[0], var("r", [0, 1], 3, begin=s), var("s", [0], 1, begin=r)],
        "record gap": [*GOOD[:2], var("s", [0], 1, begin=s + 4)],
        "records over fixed": [GOOD[0], var("r", [0, 1], 3, begin=a + 4), var("s", [0], 1, begin=a + 12)],
    }[lie]
    path = _put(http_root, "lie", classic_file(1, 3, DIMS, None, variables))
    if (
        lie == "record gap"
    ):  # netCDF-C reads a record variable at its offset, scipy right after the one before
        by_offset = xr.open_dataset(path, engine="netcdf4").load()["s"].values
        assert not np.array_equal(by_offset, xr.open_dataset(path, engine="scipy").load()["s"].values)
    else:
        with pytest.raises(OSError, match="Unknown file format"):  # the format's own library refuses it
            netCDF4.Dataset(path).close()
    _refused_everywhere(server, path, match)


@pytest.mark.parametrize("records", [0, 1, 2, 3])
def test_scipy_s_scalar_on_the_second_record_is_refused_and_a_good_layout_reads(
    server: Any, http_root: Path, records: int
) -> None:
    """xarray's ``to_netcdf(engine="scipy")``: a scalar (a CRS variable) and an unlimited dimension."""
    path = http_root / f"scipy-scalar-{records}-{uuid.uuid4().hex[:8]}.nc"
    values = np.arange(1, records + 1, dtype="i4")
    xr.Dataset({"crs": ((), np.int32(77)), "v": ("t", values)}).to_netcdf(
        path, engine="scipy", unlimited_dims=["t"]
    )
    if records >= 2:  # written over: scipy reads [1, 77, 3]
        assert xr.open_dataset(path, engine="scipy", mmap=False)["v"].values[1] == 77
        _refused_everywhere(server, path, "values of 'crs' begin at byte .* inside the records of 'v'")
    else:  # nothing overlaps (netCDF-C refuses the order, scipy and terrapipe read it)
        got = _same_everywhere(server, path)
        assert got["v"].values.tolist() == values.tolist()
        assert int(got["crs"]) == 77


@pytest.mark.parametrize(
    ("stem", "dims", "variables", "match"),
    [
        ("dup-var", [("x", 2)], [var("v", [0], 5), var("v", [0], 6)], "variable 'v' is named twice"),
        ("dup-dim", [("x", 2), ("x", 3)], [var("v", [1], 5)], "dimension 'x' is named twice"),
        ("int64-in-cdf1", [("x", 2)], [var("v", [0], 10)], "nc_type 10, not one of CDF-1's"),
        (
            "record-not-first",
            [("t", 0), ("x", 2)],
            [var("v", [1, 0], 5)],
            "record dimension other than first",
        ),
        ("dim-id", [("x", 2)], [var("v", [3], 5)], "dimension the header does not have"),
    ],
)
def test_a_header_that_contradicts_itself_is_refused_on_disk_as_at_a_url(
    server: Any, http_root: Path, stem: str, dims: Any, variables: Any, match: str
) -> None:
    path = _put(http_root, stem, classic_file(1, 2 if dims[0][1] == 0 else 0, dims, None, variables))
    _refused_everywhere(server, path, match)


def test_no_records_beside_a_huge_dimension_reads_empty(server: Any, http_root: Path) -> None:
    # 2**40: numpy refuses its 8 TiB of indices at once (a MemoryError, never a machine out of memory)
    data = classic_file(5, 0, [("t", 0), ("x", 2**40)], None, [var("v", [0, 1], 6), var("c", [], 4)])
    path = _put(http_root, "huge-empty", data)
    for href in (str(path), server.url_for(path)):
        ds = tp.open_xarray(href)
        assert ds["v"].shape == (0, 2**40)
        assert ds["v"][:, 5:9].values.shape == (0, 4)
    assert tp.open_xarray(server.url_for(path))["v"].values.shape == (0, 2**40)  # was a bare MemoryError


@pytest.mark.parametrize("version", [1, 2, 5])
def test_names_and_text_read_as_netcdf_c_reads_them(server: Any, http_root: Path, version: int) -> None:
    dims = [("t", 0), ("épaisseur", 2)]
    attrs = {"été": (2, "température".encode()), "nul": (2, b"a\x00b\x00")}
    variables = [
        var("température", [1], 5, attrs={"units": (2, "°C".encode())}),
        var("r", [0], 4),
        var(b"c\x00\x00", [1], 3),
    ]
    path = _put(http_root, f"utf8-v{version}", classic_file(version, 1, dims, attrs, variables))
    got = _same_everywhere(server, path)
    assert "température" in got.variables
    assert "épaisseur" in got.dims
    assert got.attrs["été"] == "température"
    assert got["température"].attrs["units"] == "°C"
    expected = xr.open_dataset(path, engine="netcdf4").load()
    assert sorted(map(str, got.variables)) == sorted(map(str, expected.variables))
    if version == 5:  # netCDF4 on disk: NULs dropped from text
        assert got.attrs["nul"] == expected.attrs["nul"] == "ab"


def test_a_name_not_utf8_reads_as_latin1_both_ways_in_cdf1_and_is_refused_in_cdf5(
    server: Any, http_root: Path
) -> None:
    variables = [var(b"temp\xe9", [0], 5)]
    path = _put(http_root, "latin1-v1", classic_file(1, 0, [(b"\xe9t\xe9", 2)], None, variables))
    assert "tempé" in _same_everywhere(server, path).variables
    path = _put(http_root, "latin1-v5", classic_file(5, 0, [(b"\xe9t\xe9", 2)], None, variables))
    with pytest.raises(tp.ReadError, match=rf"{path.name}"):
        tp.open_xarray(str(path))
    with pytest.raises(tp.ReadError, match=rf"{path.name}.*not UTF-8"):
        tp.open_xarray(server.url_for(path))


def test_two_record_dimensions_read_as_netcdf_c_and_scipy_read_them(server: Any, http_root: Path) -> None:
    dims = [("t", 0), ("u", 0), ("x", 2)]
    path = _put(
        http_root, "two-unlimited", classic_file(1, 2, dims, None, [var("v", [0, 2], 5), var("w", [1], 5)])
    )
    got = _same_everywhere(server, path)
    xr.testing.assert_identical(got, xr.open_dataset(path, engine="netcdf4").load())


@pytest.mark.parametrize("version", [1, 2, 5])
def test_odd_record_variables_and_every_type_read_the_same_both_ways(
    server: Any, http_root: Path, version: int
) -> None:
    types = range(1, 12) if version == 5 else range(1, 7)
    dims = [("t", 0), ("x", 3), ("y", 1)]
    variables = [var(f"v{t}", [0, 1] if t % 2 else [0, 2], t) for t in types]
    variables.append(var("b2", [0], 1))
    path = _put(http_root, f"odd-records-v{version}", classic_file(version, 5, dims, None, variables))
    got = _same_everywhere(server, path)
    xr.testing.assert_identical(got, xr.open_dataset(path, engine="netcdf4").load())
