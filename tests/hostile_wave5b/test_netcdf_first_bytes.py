"""open_xarray picks the netCDF engine by the file's first bytes (f1d33e2): files whose first bytes lie.

An HTML sign-in page saved as ``.nc``, ``CDF\\x01`` or the HDF5 signature followed by garbage, a
``CDF\\x05`` head with garbage, an empty file: each is a ReadError naming the file, locally and at a URL
(never a bare scipy/h5py/netCDF4 exception); whole netCDF-3 and netCDF-4 files read right both ways.
All hold.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from tests.servers.process import start_serving, stop_process

SCRIPT = Path(__file__).with_name("_sidecar_server.py")
LIARS = {
    "page.nc": b"<html><body>Sign in</body></html>" * 10,
    "cdf.nc": b"CDF\x01" + bytes(range(256)) * 2,
    "hdf.nc": b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 3,
    "cdf5.nc": b"CDF\x05" + bytes(range(256)) * 2,
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("first_bytes")
    for name, data in LIARS.items():
        (root / name).write_bytes(data)
    (root / "empty.nc").write_bytes(b"")
    ds = xr.Dataset({"v": ("x", np.arange(5.0))})
    ds.to_netcdf(root / "good3.nc", format="NETCDF3_CLASSIC", engine="scipy")
    ds.to_netcdf(root / "good4.nc", format="NETCDF4", engine="netcdf4")
    cmd = [sys.executable, str(SCRIPT), "--root", str(root)]

    def ping(server: tuple[str, subprocess.Popen[bytes]]) -> None:
        import urllib.request

        urllib.request.urlopen(server[0] + "/_log", timeout=5).close()

    url, process = start_serving(cmd, lambda url, process: (url, process), ping, "file server", 20)
    try:
        yield root, url
    finally:
        stop_process(process, timeout=2)


@pytest.mark.parametrize(
    ("name", "where"), [(n, w) for n in LIARS for w in ("local", "url")] + [("empty.nc", "local")]
)  # an empty file at a URL: the test server cannot range it
def test_a_file_whose_first_bytes_lie_is_a_read_error_naming_it(
    served: tuple[Path, str], name: str, where: str
) -> None:
    root, url = served
    source = str(root / name) if where == "local" else f"{url}/{name}"
    with pytest.raises(tp.ReadError, match=name.replace(".", r"\.")):
        tp.open_xarray(source, storage=tp.Storage(timeout=5, retries=0) if where == "url" else None)


@pytest.mark.parametrize("where", ["local", "url"])
@pytest.mark.parametrize("name", ["good3.nc", "good4.nc"])
def test_whole_netcdf_files_read_right(served: tuple[Path, str], name: str, where: str) -> None:
    root, url = served
    source = str(root / name) if where == "local" else f"{url}/{name}"
    ds = tp.open_xarray(source, storage=tp.Storage(timeout=5, retries=0) if where == "url" else None)
    assert ds["v"].values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
