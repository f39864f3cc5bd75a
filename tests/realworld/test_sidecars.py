"""Rasters published with GDAL sidecar files, read from disk and from the HTTP range server.

Web folders of GIS portals serve GeoTIFFs with the files GDAL and ArcGIS write next to them: ``.aux.xml``
(PAM: nodata, scale/offset a format or a read-only file could not hold), ``.msk`` (an external mask, GDAL's
``GDAL_TIFF_INTERNAL_MASK=NO``) and ``.ovr`` (external overviews, ``gdaladdo`` on a read-only file; rasterio's
``red.tif`` has one). rasterio reads them locally and over HTTP alike. terrapipe must read the same file the
same way wherever it is: a nodata or mask dropped over HTTP turns nodata pixels into data, silently.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrapipe as tp
from tests.conformance.files.corpus import DATA

PROFILE = {
    "driver": "GTiff", "width": 8, "height": 6, "count": 1, "crs": "EPSG:32631",
    "transform": Affine(10, 0, 500000, 0, -10, 4000000),
}  # fmt: skip


def _aux(folder: Path) -> Path:
    path = folder / "aux.tif"
    with rasterio.open(path, "w", dtype="uint16", **PROFILE) as dst:
        dst.write(np.arange(48, dtype="uint16").reshape(1, 6, 8))
    Path(f"{path}.aux.xml").write_text(
        "<PAMDataset><PAMRasterBand band='1'><NoDataValue>0</NoDataValue>"
        "<Offset>-0.2</Offset><Scale>2.75e-05</Scale></PAMRasterBand></PAMDataset>"
    )
    return path


def _msk(folder: Path) -> Path:
    path = folder / "msk.tif"
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False),
        rasterio.open(path, "w", dtype="uint8", **PROFILE) as dst,
    ):
        dst.write(np.full((1, 6, 8), 7, "uint8"))
        mask = np.full((6, 8), 255, "uint8")
        mask[:2, :3] = 0
        dst.write_mask(mask)
    assert Path(f"{path}.msk").exists()
    return path


def _ovr(folder: Path) -> Path:
    path = folder / "red.tif"
    shutil.copy(DATA / "rasterio/red.tif", path)
    shutil.copy(DATA / "rasterio/red.tif.ovr", f"{path}.ovr")
    return path


SIDECARS = {"aux.xml": _aux, "msk": _msk, "ovr": _ovr}


def _describe(path: str | Path, storage: tp.Storage | None = None) -> dict[str, Any]:
    da = tp.open_raster(path, storage=storage)
    masked = tp.open_raster(path, masked=True, storage=storage)
    out = {
        "nodata": da.rio.nodata,
        "scale": da.attrs.get("scale_factor"),
        "offset": da.attrs.get("add_offset"),
        "values": da.values.tolist(),
        "invalid": np.isnan(masked.values).sum().item(),
    }
    level = 0
    while True:  # the overviews terrapipe reads (none past the last one: a ReadError)
        try:
            out[f"overview {level}"] = tp.open_raster(
                path, overview_level=level, storage=storage
            ).values.tolist()
        except tp.ReadError:
            break
        level += 1
    return out


def _requests(server: Any, folder: Path) -> tuple[int, list[str]]:
    """How many requests the server got since it was cleared, and the paths under ``folder`` asked for."""
    log = server.stats()["log"]
    return len(log), sorted(
        {entry["path"].rsplit("/", 1)[-1] for entry in log if folder.name in entry["path"]}
    )


def _served(server: Any, make: Any) -> tuple[Path, str]:
    folder = server.root / uuid.uuid4().hex[:8]
    folder.mkdir()
    path = make(folder)
    return path, server.url_for(path)


@pytest.mark.parametrize("sidecars", [None, True])
@pytest.mark.parametrize("sidecar", list(SIDECARS))
def test_a_file_with_sidecars_reads_as_locally(
    sidecar: str, sidecars: bool | None, range_server_session: Any
) -> None:
    """By default (and with ``sidecars=True``): the .aux.xml's nodata/scale/offset, the .msk mask, the .ovr overviews."""
    path, url = _served(range_server_session, SIDECARS[sidecar])
    local = _describe(path)
    assert local["invalid"] > 0 or sidecar == "ovr"  # the case holds pixels a sidecar masks
    assert "overview 0" in local or sidecar != "ovr"
    with rasterio.open(url) as src:  # the reference library reads the sidecars over HTTP too
        assert src.nodata == local["nodata"] or sidecar != "aux.xml"
    assert _describe(url, None if sidecars is None else tp.Storage(sidecars=True)) == local
    assert _describe(url, tp.Storage()) == local  # a storage with the default: the same


@pytest.mark.parametrize("sidecar", list(SIDECARS))
def test_sidecars_false_reads_the_file_alone(sidecar: str, range_server_session: Any) -> None:
    path, url = _served(range_server_session, SIDECARS[sidecar])
    with range_server_session.cleared() as server:
        remote = _describe(url, tp.Storage(sidecars=False))
        _, names = _requests(server, path.parent)
    assert names == [path.name]  # no side-car asked for
    local = _describe(path)
    assert remote["values"] == local["values"]
    assert remote != local  # what the side-car adds is missing, as asked


def test_what_the_default_asks_for(range_server_session: Any, tmp_path: Path) -> None:
    """Requests per open (the range server's log): three side-car look-ups by default, whatever the file has room for."""
    cog = tmp_path / "cog.tif"
    with rasterio.open(
        cog,
        "w",
        dtype="uint16",
        nodata=0,
        **{**PROFILE, "driver": "COG", "width": 1024, "height": 1024, "blocksize": 256},
    ) as dst:
        dst.write(np.arange(1024 * 1024, dtype="uint32").astype("uint16").reshape(1, 1024, 1024))
    bare = tmp_path / "bare.tif"
    with rasterio.open(bare, "w", dtype="uint16", **PROFILE) as dst:
        dst.write(np.arange(48, dtype="uint16").reshape(1, 6, 8))
    counts = {}
    for source in (cog, bare):
        path, url = _served(
            range_server_session, lambda folder, source=source: Path(shutil.copy(source, folder))
        )
        for sidecars in (False, None, True):
            with range_server_session.cleared() as server:
                _ = tp.open_raster(url, storage=tp.Storage(sidecars=sidecars)).values
                count, names = _requests(server, path.parent)
            counts[(path.name, sidecars)] = count
            if sidecars is False:
                assert names == [path.name]
    # .aux.xml, .msk, .ovr: one ranged GET each, asked at once while the file opens (a COG with overviews
    # needs no .ovr, but its look-up is under way before the file shows it: one request, no round trip)
    assert counts[("cog.tif", None)] == counts[("cog.tif", False)] + 3
    assert counts[("bare.tif", None)] == counts[("bare.tif", False)] + 3
    assert counts[("cog.tif", True)] > counts[("cog.tif", None)]  # GDAL's own probes: every name it knows
    print(counts)


def test_sidecars_are_not_asked_for_at_a_url_with_a_query(range_server_session: Any) -> None:
    """A signed URL signs the file only: GDAL would append '.aux.xml' to the signature (the server's answer: the file)."""
    path, url = _served(range_server_session, _aux)
    for storage in (None, tp.Storage(sidecars=True)):
        with range_server_session.cleared() as server:
            da = tp.open_raster(url + "?sig=abc", storage=storage)
            values = da.values.tolist()
            _, names = _requests(server, path.parent)
        assert names == [path.name]
        assert da.rio.nodata is None  # not read: the .aux.xml is not signed by this URL
        assert values == _describe(path)["values"]
