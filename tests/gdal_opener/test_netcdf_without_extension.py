"""A netCDF or HDF file at a URL without its extension is a ReadError through the opener, never a hang.

GDAL's netCDF driver maps a /vsi file with userfaultfd, on a thread of its own
that calls the opener (so needs the GIL); closing such a dataset joins that
thread while rasterio's close holds the GIL. A netCDF-3 file at a URL with no
``.nc`` ending, opened twice on one thread (the second open closes the stale
handle), hung the process for ever (CI at 34ef76f). The opener now refuses
such files by their first bytes, with a ReadError saying to give the URL its
extension or to use open_xarray. Run in a child process with a time limit, so
a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("netCDF4")

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import xarray as xr

    import terrapipe as tp
    from terrapipe.io.raster_array import forget_remote
    from tests.servers.http_range import start_range_server

    root, fmt = Path(sys.argv[1]), sys.argv[2]
    ds = xr.Dataset({"v": (("y", "x"), np.arange(48, dtype="float32").reshape(6, 8))},
                    coords={"y": np.arange(6.0)[::-1], "x": np.arange(8.0)})
    ds.to_netcdf(root / "grid", format=fmt, engine="netcdf4")
    with start_range_server(root) as server:
        url = server.url_for(root / "grid")
        for _ in range(2):
            try:
                tp.open_raster(url).values
                print("read")
            except tp.ReadError as err:
                print("ReadError:", err)
            forget_remote(url)
    print("done")
    """
)


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF4", "NETCDF4_CLASSIC"])
def test_a_netcdf_file_at_a_url_without_its_extension_is_refused_not_hung(fmt: str, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), fmt],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "done"
    refusals = [line for line in lines if line.startswith("ReadError:")]
    assert len(refusals) == 2, lines
    assert all("netCDF or HDF file" in line and "open_xarray" in line for line in refusals)
