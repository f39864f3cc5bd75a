"""Side-cars by default (ab83466) against servers the authors did not try.

A remote raster without nodata, mask or overviews gets up to three ``HEAD`` requests for its side-cars
(``io/sidecars.found_sidecars``). A server may never answer them (a firewall or proxy that drops
unknown paths), answer every path with ``200`` (an HTML fallback page), or redirect them to another
origin. The read must stay within ``Storage(deadline=)``, give the file's own values, and never carry
the origin's ``Authorization`` to another host.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrapipe as tp
from tests.servers.process import start_serving, stop_process

VALUES = np.arange(100, 148, dtype="uint16").reshape(1, 6, 8)
SCRIPT = Path(__file__).with_name("_sidecar_server.py")


@dataclass
class _Server:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process, timeout=2)

    def log(self) -> list[dict[str, str]]:
        with urllib.request.urlopen(self.url + "/_log", timeout=5) as answer:
            found: list[dict[str, str]] = json.loads(answer.read())
            return found


def _start(root: Path, mode: str, other: str = "") -> _Server:
    cmd = [sys.executable, str(SCRIPT), "--root", str(root), "--mode", mode, "--other", other]
    return start_serving(cmd, lambda url, process: _Server(url, process), _Server.log, "side-car server", 20)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sidecar_servers")
    profile = {"driver": "GTiff", "width": 8, "height": 6, "count": 1, "dtype": "uint16", "crs": "EPSG:32631"}
    with rasterio.open(folder / "a.tif", "w", transform=Affine(10, 0, 5e5, 0, -10, 4e6), **profile) as dst:
        dst.write(VALUES)  # no nodata, no mask, no overviews: room for every side-car
    with rasterio.open(
        folder / "nodata.tif", "w", transform=Affine(10, 0, 5e5, 0, -10, 4e6), **profile
    ) as dst:
        dst.write(VALUES)
    (folder / "nodata.tif.aux.xml").write_text(
        "<PAMDataset><PAMRasterBand band='1'><NoDataValue>100</NoDataValue></PAMRasterBand></PAMDataset>"
    )  # its nodata only in the side-car (gdal_edit -a_nodata on a read-only file, ArcGIS)
    return folder


@pytest.fixture
def server(request: pytest.FixtureRequest, root: Path) -> Iterator[tuple[_Server, _Server]]:
    other = _start(root, "plain")
    try:
        main = _start(root, request.param, other.url.replace("127.0.0.1", "localhost"))
        try:
            yield main, other
        finally:
            main.stop()
    finally:
        other.stop()


def _read(url: str, storage: tp.Storage, limit: float) -> tuple[dict[str, Any], float]:
    """Read ``url`` on a thread; what came back (values or error) and the seconds it took (``inf``: still running)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["values"] = np.asarray(tp.open_raster(url, storage=storage).values)
        except Exception as err:
            out["error"] = err

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    return out, (time.monotonic() - started if not thread.is_alive() else float("inf"))


@pytest.mark.parametrize("server", ["hang"], indirect=True)
def test_side_car_probes_stay_within_the_deadline(server: tuple[_Server, _Server]) -> None:
    main, _ = server
    storage = tp.Storage(timeout=3, deadline=2, retries=0)
    out, seconds = _read(main.url + "/a.tif", storage, limit=30)
    assert seconds < 6, f"open_raster took {seconds:.1f} s with Storage(deadline=2); got {list(out)}"


@pytest.mark.parametrize("server", ["html", "garbage"], indirect=True)
def test_a_server_answering_every_path_gives_the_file_s_values(server: tuple[_Server, _Server]) -> None:
    """An HTML fallback page, or the raster itself, for every side-car name: the file's own values (holds)."""
    main, _ = server
    out, _seconds = _read(main.url + "/a.tif", tp.Storage(timeout=5, retries=0), limit=60)
    assert "error" not in out, out.get("error")
    np.testing.assert_array_equal(out["values"], VALUES)


@pytest.mark.parametrize("server", ["redirect"], indirect=True)
def test_side_cars_redirected_elsewhere_never_carry_the_authorization(
    server: tuple[_Server, _Server],
) -> None:
    """A 302 of each side-car name to another origin: asked there without the origin's credential (holds)."""
    main, other = server
    storage = tp.Storage(timeout=5, retries=0, headers={"Authorization": "Bearer s3cret-h6"})
    out, _seconds = _read(main.url + "/a.tif", storage, limit=60)
    assert "error" not in out, out.get("error")
    np.testing.assert_array_equal(out["values"], VALUES)
    asked = other.log()
    assert asked, "the side-car redirects were not followed: nothing to check"
    assert all(entry["auth"] == "" for entry in asked), asked
    assert any(entry["auth"] == "Bearer s3cret-h6" for entry in main.log())


@pytest.mark.parametrize("server", ["slow3"], indirect=True)
def test_a_side_car_answered_late_is_never_dropped_silently(server: tuple[_Server, _Server]) -> None:
    """The .aux.xml (nodata 100) answers 3 s late with Storage(timeout=2): its nodata, or an error/warning."""
    import warnings

    main, _ = server
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            da = tp.open_raster(main.url + "/nodata.tif", storage=tp.Storage(timeout=2, retries=0))
        except tp.TerrapipeError:
            return  # refused: fine
    said = [w for w in caught if "side" in str(w.message).lower() or "aux" in str(w.message).lower()]
    nodata = da.attrs.get("nodata", da.attrs.get("_FillValue", da.rio.nodata))
    assert nodata == 100 or said, f"read without its side-car's nodata (attrs {dict(da.attrs)}), nothing said"


@pytest.mark.parametrize("server", ["plain"], indirect=True)
def test_a_side_car_answered_at_once_gives_its_nodata(server: tuple[_Server, _Server]) -> None:
    """The same file and .aux.xml from a server that answers at once: nodata 100 (holds)."""
    main, _ = server
    da = tp.open_raster(main.url + "/nodata.tif", storage=tp.Storage(timeout=2, retries=0))
    assert da.attrs.get("nodata", da.attrs.get("_FillValue", da.rio.nodata)) == 100
