"""A local netCDF file changed between open_xarray and the read (io/xarray_open.py, io/stamped_file.py).

open_xarray reads a local netCDF-3 file with scipy's engine (f1d33e2: netCDF4's reads a truncated one as
zeros), which memory-maps it: a file truncated after the open (a download fetched again, ``rsync
--inplace``) killed the process with SIGBUS at the read; one rewritten in place gave its new bytes under
the old dataset, silently, and netCDF-4 files through netCDF4's engine too. Each read now checks that
the file is the one opened: else a ReadError naming it, 'open it again'.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp

SCRIPT = Path(__file__).with_name("_read_after_change.py")
VALUES = np.arange(200 * 500, dtype="float64").reshape(200, 500)
FORMATS = {"cdf1": "NETCDF3_CLASSIC", "cdf2": "NETCDF3_64BIT", "nc4": "NETCDF4"}
TRUNCATED = [(fmt, False) for fmt in FORMATS] + [("cdf1", True), ("nc4", True)]


def _write(folder: Path, fmt: str, tag: str = "") -> Path:
    path = folder / f"v_{fmt}{tag}.nc"
    engine = "netcdf4" if fmt == "nc4" else "scipy"
    xr.Dataset({"v": (("t", "x"), VALUES)}).to_netcdf(path, format=FORMATS[fmt], engine=engine)
    return path


@pytest.fixture(scope="module")
def truncated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What a subprocess read from each file truncated to half after its open (one process for all)."""
    folder = tmp_path_factory.mktemp("truncated")
    cases = [
        f"{_write(folder, fmt, '_dask' if chunked else '')}:{int(chunked)}" for fmt, chunked in TRUNCATED
    ]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *cases], capture_output=True, text=True, timeout=120, check=False
    )
    said = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    return {case: said.get(case, f"DIED rc {done.returncode}: {done.stderr[-400:]}") for case in cases}


@pytest.mark.parametrize(("fmt", "chunked"), TRUNCATED)
def test_a_file_truncated_after_the_open_is_a_read_error_naming_it(
    truncated: dict[str, str], fmt: str, chunked: bool
) -> None:
    case = next(
        c
        for c in truncated
        if Path(c.rsplit(":", 1)[0]).name.startswith(f"v_{fmt}") and c.endswith(f":{int(chunked)}")
    )
    said = truncated[case]
    assert said.startswith("ERROR ReadError"), said
    assert Path(case.rsplit(":", 1)[0]).name in said
    assert "open it again" in said


def _rewrite(path: Path) -> None:
    """The same size, other bytes in its data part (in place, as rsync --inplace writes)."""
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) - 4096)
        f.write(b"\x7f" * 4096)


def _rewrite_keeping_mtime(path: Path) -> None:
    """As _rewrite, then the modification time put back (cp -p, rsync --inplace -t): only ctime tells."""
    before = path.stat()
    _rewrite(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _replace(path: Path) -> None:
    other = path.with_suffix(".new")
    other.write_bytes(path.read_bytes())
    os.replace(other, path)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize(
    "change",
    [_rewrite, _rewrite_keeping_mtime, _replace, os.remove],
    ids=["rewritten", "rewritten_mtime_kept", "replaced", "removed"],
)
def test_a_file_changed_after_the_open_is_a_read_error_naming_it(
    tmp_path: Path, fmt: str, change: object
) -> None:
    path = _write(tmp_path, fmt)
    ds = tp.open_xarray(str(path))
    change(path)  # type: ignore[operator]
    with pytest.raises(tp.ReadError, match="open it again") as caught:
        ds["v"].values  # noqa: B018
    assert path.name in str(caught.value)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("chunks", [None, {}], ids=["lazy", "dask"])
def test_an_unchanged_file_reads_right(tmp_path: Path, fmt: str, chunks: object) -> None:
    """The same reads of a file left alone: its values, windows and all (holds)."""
    ds = tp.open_xarray(str(_write(tmp_path, fmt)), chunks=chunks)
    np.testing.assert_array_equal(ds["v"].values, VALUES)
    np.testing.assert_array_equal(ds["v"][5:9, ::7].values, VALUES[5:9, ::7])
    np.testing.assert_array_equal(ds["v"].isel(t=[3, 1], x=[0, 499]).values, VALUES[[3, 1]][:, [0, 499]])
    assert ds["v"].encoding["source"] == str(tmp_path / f"v_{fmt}.nc")
