"""netCDF files at a URL whose server answers other bytes than asked: a ReadError naming the file, or the file.

netCDF-3 (CDF-1, CDF-5: io/netcdf_classic) and netCDF-4 (h5netcdf) through terrapipe's HTTP file and
through the byte layer (``storage=``), from the hostile server (tests/servers/hostile_http.py): another
range than the one asked (``shift``), a body shorter or longer than its Content-Range, no length, a size
that changes at each request, a gzip-encoded range: each a ReadError naming the file. A server that
ignores Range (``full``; ``chunked`` where a size is stated) gives the file itself. All held when
written; they keep the netCDF paths on the checked reads. (``forge``, a forged answer for the next
range sent unasked, is read silently through terrapipe's HTTP file: routed to the lead, io/http_reads.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from tests.servers.hostile_http import HostileServer, start_hostile_server

pytestmark = [
    pytest.mark.timeout(120),
    # h5netcdf's File.close after its own failed open (no '_writable' yet): an unraisable, not ours
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

FILES = {
    "c1.nc": ("scipy", "NETCDF3_CLASSIC"),
    "c5.nc": ("netcdf4", "NETCDF3_64BIT_DATA"),
    "h4.nc": ("netcdf4", "NETCDF4"),
}
REFUSED = ["shift", "short", "long", "nolength", "badlength", "drift", "chunked-short", "gzip-range", "gzip"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, HostileServer]]:
    root = tmp_path_factory.mktemp("netcdf_hostile")
    rng = np.random.default_rng(1)
    ds = xr.Dataset(
        {"v": (("t", "x"), rng.normal(size=(40, 5000)).astype("f4")), "w": ("x", np.arange(5000.0))},
        attrs={"title": "h"},
    )
    for name, (engine, fmt) in FILES.items():
        ds.to_netcdf(root / name, engine=engine, format=fmt)
    server = start_hostile_server(root, trickle_interval=0.5, max_seconds=15, lifetime=300)
    try:
        yield root, server
    finally:
        server.stop()


def _options(storage: bool) -> dict[str, tp.Storage]:
    return {"storage": tp.Storage(timeout=5, retries=0)} if storage else {}


@pytest.mark.parametrize("storage", [False, True], ids=["open_http", "byte layer"])
@pytest.mark.parametrize("mode", REFUSED)
@pytest.mark.parametrize("name", sorted(FILES))
def test_other_bytes_than_asked_are_a_read_error_naming_the_file(
    hostile: tuple[Path, HostileServer], name: str, mode: str, storage: bool
) -> None:
    _, server = hostile
    with pytest.raises(tp.ReadError, match=rf"{mode}/{name}"):
        tp.open_xarray(server.url_for(mode, name), **_options(storage)).load()


@pytest.mark.parametrize("storage", [False, True], ids=["open_http", "byte layer"])
@pytest.mark.parametrize("mode", ["plain", "full", "chunked"])
@pytest.mark.parametrize("name", sorted(FILES))
def test_a_server_ignoring_ranges_gives_the_file_or_a_read_error(
    hostile: tuple[Path, HostileServer], name: str, mode: str, storage: bool
) -> None:
    root, server = hostile
    local = tp.open_xarray(str(root / name)).load()
    if mode == "chunked" and not storage:  # terrapipe's HTTP file needs a stated size
        with pytest.raises(tp.ReadError, match=rf"{mode}/{name}.*states no size"):
            tp.open_xarray(server.url_for(mode, name))
        return
    xr.testing.assert_identical(local, tp.open_xarray(server.url_for(mode, name), **_options(storage)).load())
