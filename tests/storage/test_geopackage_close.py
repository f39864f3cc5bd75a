"""Closing a GeoPackage raster read from a bucket or over HTTP asks nothing of anyone (#19).

GDAL's SQLite layer stats ``<name>-wal`` when it *closes* a file opened read-only
(to clean up a stale WAL), unless the name starts with ``/vsicurl/``,
``/vsitar/`` or ``/vsizip/`` (``OGRSQLiteBaseDataSource::CloseDB``). A reader
thread keeps its handles open and closes them later: when the LRU evicts one,
when ``close_thread_handles`` runs, when the process ends.

- On ``s3://`` the close ran outside the storage's environment: GDAL had no
  credentials and asked the instance-metadata server 169.254.169.254 for a role
  (on EC2: the instance's own; elsewhere 'URL rejected' on stderr). Handles are
  now closed inside their source's environment.
- Over HTTP the name was ``/vsicurl?...&url=<URL>``: a ``HEAD`` of ``<URL>-wal``
  at every close, and GDAL's warning "HTTP response code on <URL>-wal: 0" where
  the server had gone by then. A GeoPackage at any HTTP URL is now opened as
  ``/vsicurl/<URL>``, which GDAL's close leaves alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from terrapipe.io import raster_array
from terrapipe.io.raster import open_raster
from terrapipe.io.raster_array import close_thread_handles
from tests.servers.http_range import start_range_server
from tests.servers.object_stores import S3_KEY_ID, S3_SECRET
from tests.storage.conftest import Bucket

_REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpkg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    from tests.io.test_io_raster_signed_urls import write_gpkg

    path = tmp_path_factory.mktemp("gpkg-close") / "tiles.gpkg"
    return path, write_gpkg(path)


def _asked_a_role(err: str) -> bool:
    return "169.254.169.254" in err or "URL rejected" in err


def test_evicting_a_bucket_geopackage_handle_asks_no_metadata_server(
    s3_bucket: Bucket, gpkg: tuple[Path, np.ndarray], capfd: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """The LRU of a reader thread's handles closes the oldest one while another file is read."""
    path, expected = gpkg
    urls = [f"{s3_bucket.root}/evict/{i}.gpkg" for i in range(2)]
    for i in range(2):
        s3_bucket.put(f"evict/{i}.gpkg", path.read_bytes())
    close_thread_handles()
    monkeypatch.setattr(raster_array, "MAX_HANDLES_PER_THREAD", 1)
    monkeypatch.setenv("CPL_DEBUG", "ON")  # GDAL's debug lines name each request it makes
    capfd.readouterr()
    for url in urls:  # the second open evicts the first handle
        np.testing.assert_array_equal(open_raster(url, storage=s3_bucket.storage).values, expected)
    assert raster_array.open_handle_count() == 1
    close_thread_handles()
    assert not _asked_a_role(capfd.readouterr().err)


def _exit_script(bucket: Bucket, tmp_path: Path, workers: bool) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "read.py"
    url = bucket.root + "/exit/tiles.gpkg"
    script.write_text(
        "import terrapipe as tp\n"
        f"storage = tp.Storage(s3_endpoint={bucket.server.endpoint!r}, key_id={S3_KEY_ID!r}, "
        f"secret={S3_SECRET!r}, region='us-east-1')\n"
        f"print(tp.open_raster({url!r}, storage=storage).values.sum())\n"
        + (
            f"chips = tp.from_items([{url!r}]).read_raster(storage=storage).chip({{'x': 32, 'y': 32}}, workers=2)\n"
            "print(len(list(chips)))\n"
            if workers
            else ""
        )
    )
    env = {**os.environ, "CPL_DEBUG": "ON", "PYTHONPATH": str(_REPO / "src")}
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )


def test_a_process_that_read_a_bucket_geopackage_exits_without_asking_a_role(
    s3_bucket: Bucket, gpkg: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """What a script does: read, and exit with the main thread's handle still open (closed at exit, in its env)."""
    s3_bucket.put("exit/tiles.gpkg", gpkg[0].read_bytes())
    done = _exit_script(s3_bucket, tmp_path, workers=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[0] == str(int(gpkg[1].sum()))
    assert not _asked_a_role(done.stderr), done.stderr[-3000:]


def test_a_process_whose_reader_threads_read_a_bucket_geopackage_exits_without_asking_a_role(
    s3_bucket: Bucket, gpkg: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    s3_bucket.put("exit/tiles.gpkg", gpkg[0].read_bytes())
    done = _exit_script(s3_bucket, tmp_path, workers=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not _asked_a_role(done.stderr), done.stderr[-3000:]


def test_closing_an_http_geopackage_asks_for_no_wal_file(
    gpkg: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """Closed while the server is up: no request for '<URL>-wal'; after it has gone: no warning."""
    path, expected = gpkg
    (tmp_path / "tiles.gpkg").write_bytes(path.read_bytes())
    server = start_range_server(tmp_path)
    try:
        url = server.url_for(tmp_path / "tiles.gpkg")
        close_thread_handles()
        np.testing.assert_array_equal(open_raster(url).values, expected)
        close_thread_handles()
        asked = [entry["path"] for entry in server.stats()["log"]]
        assert asked
        assert [p for p in asked if not p.endswith("/tiles.gpkg")] == []  # no '/tiles.gpkg-wal'
        np.testing.assert_array_equal(open_raster(url).values, expected)  # a handle kept open...
    finally:
        server.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ... closed once the server has gone: GDAL warned "...-wal: 0"
        close_thread_handles()
