"""A local HDF5 file with a dataset netCDF-C cannot read (16/128-bit float, LZF) reads, never crashing the process.

h5py writes ``float16`` datasets (common in machine-learning files) and
``longdouble`` ones; netCDF-C has neither type. ``open_xarray`` reads a local
netCDF-4/HDF5 file with netCDF4's engine, and xarray + netCDF4 (the
reference) kill the process with a segmentation fault at the open. The same
file at a URL read right (h5netcdf). A dataset compressed with h5py's LZF
filter was a bare ``RuntimeError`` ("undefined filter") at every read, locally
only. Promise: ``open_xarray`` of such a file
(engine guessed, or ``engine="netcdf"``) reads it as it does at the URL, the
values h5py reads; asked for ``engine="netcdf4"`` by name, a ``ReadError``
naming the dataset and the engine that reads it. Each open runs in a child
process with a time limit: the failure was the child's death.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.servers.http_range import RangeServer

h5py = pytest.importorskip("h5py")
pytest.importorskip("h5netcdf")

DTYPES = ["<f2", ">f2", "longdouble", "lzf"]  # "lzf": float64 compressed with h5py's LZF filter

_CHILD = """
import json, sys
import terrapipe as tp
from terrapipe.core.errors import ReadError
for source, engine in json.loads(sys.argv[1]):
    try:
        ds = tp.open_xarray(source, engine=engine or None)
        out = {n: [str(v.dtype), [float(x) for x in v.values.ravel()]] for n, v in ds.data_vars.items()}
        print(json.dumps({"read": out}), flush=True)
    except ReadError as err:
        print(json.dumps({"refused": str(err)}), flush=True)
"""


def _child(opens: list[tuple[str, str]]) -> list[dict[str, object]]:
    """Open each ``(source, engine)`` in one child process (one start: seconds); its answers in order."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(opens)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    answers = [json.loads(line) for line in done.stdout.strip().splitlines() if line.startswith("{")]
    assert done.returncode == 0, (
        f"the process died ({done.returncode}) at {opens[len(answers)]}: {done.stderr[-2000:]}"
    )
    return answers


@pytest.fixture(scope="module")
def files(http_root: Path, range_server_session: RangeServer) -> dict[str, tuple[str, str]]:
    root = http_root / "z_hdf5_floats"
    root.mkdir(exist_ok=True)
    found = {}
    for dtype in DTYPES:
        path = root / f"half_{dtype.replace('<', 'le').replace('>', 'be')}.h5"
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(3.0)
            values = np.arange(6).reshape(2, 3) / 4
            if dtype == "lzf":
                f.create_dataset("half", data=values, compression="lzf")
            else:
                f["half"] = values.astype(dtype)
        found[dtype] = (str(path), range_server_session.url_for(path))
    return found


def _h5py_values(path: str) -> dict[str, list[float]]:
    with h5py.File(path, "r") as f:
        return {name: [float(x) for x in np.asarray(f[name]).ravel()] for name in ("x", "half")}


@pytest.fixture(scope="module")
def answers(files: dict[str, tuple[str, str]]) -> dict[tuple[str, str, str], dict[str, object]]:
    """``{(dtype, where, engine): answer}`` for every open the tests look at, from one child process."""
    keys = [(d, w, e) for d in DTYPES for w in ("local", "url") for e in ("", "netcdf")]
    keys += [("<f2", "local", "netcdf4"), ("lzf", "local", "netcdf4")]
    opens = [(files[d][0] if w == "local" else files[d][1], e) for d, w, e in keys]
    return dict(zip(keys, _child(opens), strict=True))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("engine", ["", "netcdf"])
def test_the_file_reads_locally_as_h5py_reads_it(
    files: dict[str, tuple[str, str]],
    answers: dict[tuple[str, str, str], dict[str, object]],
    dtype: str,
    engine: str,
) -> None:
    got = answers[(dtype, "local", engine)]
    assert "read" in got, got
    read = got["read"]
    assert isinstance(read, dict)
    assert {n: v[1] for n, v in read.items()} == _h5py_values(files[dtype][0])
    assert read["half"][0] == str(np.dtype("f8" if dtype == "lzf" else dtype).newbyteorder("="))


@pytest.mark.parametrize("dtype", DTYPES)
def test_locally_and_at_the_url_alike(
    answers: dict[tuple[str, str, str], dict[str, object]], dtype: str
) -> None:
    for engine in ("", "netcdf"):
        assert answers[(dtype, "local", engine)] == answers[(dtype, "url", engine)]


def test_netcdf4_asked_by_name_is_refused_naming_the_dataset(
    answers: dict[tuple[str, str, str], dict[str, object]],
) -> None:
    for dtype, why in (("<f2", "16-bit float"), ("lzf", "LZF")):
        got = answers[(dtype, "local", "netcdf4")]
        assert "refused" in got, got
        text = str(got["refused"])
        assert "'half'" in text
        assert why in text
        assert "engine='h5netcdf'" in text
