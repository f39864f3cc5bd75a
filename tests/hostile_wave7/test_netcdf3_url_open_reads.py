"""open_xarray of a netCDF-3 file at a URL downloads the whole file at the open (io/xarray_open, the lead's).

A netCDF-3 file over HTTP or on a bucket is read by scipy's engine from a file object (f1d33e2), and
scipy reads every variable's values at the open when it cannot memory-map: a "lazy" open of a 95 MB file
sent 95 MB before any value was asked for (and held them), so a multi-GB file (CMIP, reanalysis archives
in CDF-2/CDF-5) cannot be opened to read one window. Every remote response is capped, but not their sum.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from tests.hostile_wave7.serving import files_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    root = tmp_path_factory.mktemp("nc3_url")
    values = np.arange(40 * 100 * 100, dtype="f4").reshape(40, 100, 100)
    path = root / "big.nc"
    xr.Dataset({"v": (("t", "y", "x"), values)}).to_netcdf(path, format="NETCDF3_64BIT", engine="scipy")
    with files_server(root) as url:
        yield url, path.stat().st_size


def _sent(url: str) -> int:
    with urllib.request.urlopen(url + "/_log", timeout=5) as answer:
        return sum(int(entry.get("sent", 0)) for entry in json.loads(answer.read()))


def test_a_lazy_open_at_a_url_reads_the_header_not_the_file(served: tuple[str, int]) -> None:
    url, size = served
    before = _sent(url)
    ds = tp.open_xarray(url + "/big.nc")
    assert _sent(url) - before < size // 4
    np.testing.assert_array_equal(ds["v"][3, :2, :2].values, [[30000.0, 30001.0], [30100.0, 30101.0]])


def test_the_values_at_a_url_are_the_file_s(served: tuple[str, int]) -> None:
    """Whatever it reads when, the values are right (holds)."""
    url, _size = served
    ds = tp.open_xarray(url + "/big.nc")
    np.testing.assert_array_equal(ds["v"][3, :2, :2].values, [[30000.0, 30001.0], [30100.0, 30101.0]])
