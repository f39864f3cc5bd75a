"""A remote raster that has some of what a side-car adds, and a side-car that adds the rest.

ab83466 reads side-cars next to a remote raster by default, but asks for each only where the file
"lacks what it adds" (``io/sidecars.room_for``): ``.aux.xml`` only where *no* band has a nodata
value, a scale *or* an offset; ``.msk`` only where no band has a mask (nodata counts as one). GDAL
reads a local file's side-cars whatever the file holds: a GeoTIFF with scale/offset tags and an
``.aux.xml`` holding its nodata (what ArcGIS and ``gdal_edit -a_nodata`` on a read-only file write)
reads with that nodata from disk; at a URL its ``.aux.xml`` is never asked for, so nodata pixels are
read as data, silently. Same for a file with nodata whose ``.aux.xml`` adds the scale/offset, and a
file with nodata beside an external ``.msk`` (GDAL takes the ``.msk`` over nodata). The module's
promise is "what a local read gives is what the remote read gives" (the default, ``sidecars=None``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrapipe as tp

PROFILE = {
    "driver": "GTiff", "width": 8, "height": 6, "count": 1, "crs": "EPSG:32631",
    "transform": Affine(10, 0, 500000, 0, -10, 4000000),
}  # fmt: skip
VALUES = np.arange(48, dtype="uint16").reshape(1, 6, 8)


def _scaled_with_aux_nodata(folder: Path) -> Path:
    """Scale/offset in the TIFF, nodata (5) in the .aux.xml."""
    path = folder / "scaled.tif"
    with rasterio.open(path, "w", dtype="uint16", **PROFILE) as dst:
        dst.write(VALUES)
        dst.scales, dst.offsets = (2.75e-05,), (-0.2,)
    Path(f"{path}.aux.xml").write_text(
        "<PAMDataset><PAMRasterBand band='1'><NoDataValue>5</NoDataValue></PAMRasterBand></PAMDataset>"
    )
    return path


def _nodata_with_aux_scale(folder: Path) -> Path:
    """Nodata (0) in the TIFF, scale/offset in the .aux.xml."""
    path = folder / "nodata.tif"
    with rasterio.open(path, "w", dtype="uint16", nodata=0, **PROFILE) as dst:
        dst.write(VALUES)
    Path(f"{path}.aux.xml").write_text(
        "<PAMDataset><PAMRasterBand band='1'><Offset>-0.2</Offset><Scale>2.75e-05</Scale>"
        "</PAMRasterBand></PAMDataset>"
    )
    return path


def _nodata_with_msk(folder: Path) -> Path:
    """Nodata (0) in the TIFF and an external .msk masking another corner."""
    path = folder / "masked.tif"
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False),
        rasterio.open(path, "w", dtype="uint16", nodata=0, **PROFILE) as dst,
    ):
        dst.write(VALUES + 1)
        mask = np.full((6, 8), 255, "uint8")
        mask[4:, 5:] = 0
        dst.write_mask(mask)
    assert Path(f"{path}.msk").exists()
    return path


CASES = {
    "scale_in_file_nodata_in_aux": _scaled_with_aux_nodata,
    "nodata_in_file_scale_in_aux": _nodata_with_aux_scale,
    "nodata_in_file_mask_in_msk": _nodata_with_msk,
}


def _describe(path: str | Path) -> dict[str, Any]:
    da = tp.open_raster(path)
    masked = tp.open_raster(path, masked=True)
    return {
        "nodata": da.rio.nodata,
        "scale": da.attrs.get("scale_factor"),
        "offset": da.attrs.get("add_offset"),
        "values": da.values.tolist(),
        "invalid": np.isnan(masked.values).sum().item(),
    }


@pytest.mark.parametrize("case", list(CASES))
def test_a_sidecar_adding_what_the_file_lacks_reads_as_locally(case: str, range_server_session: Any) -> None:
    folder = range_server_session.root / uuid.uuid4().hex[:8]
    folder.mkdir()
    path = CASES[case](folder)
    local = _describe(path)
    with rasterio.open(range_server_session.url_for(path)) as src:  # rasterio over HTTP: as locally
        assert (src.nodata, src.scales[0]) == (rasterio.open(path).nodata, rasterio.open(path).scales[0])
    assert _describe(range_server_session.url_for(path)) == local


@pytest.mark.parametrize("case", list(CASES))
def test_with_sidecars_true_the_remote_read_is_the_local_one(case: str, range_server_session: Any) -> None:
    """A control: GDAL's own probes (``sidecars=True``) read the same as from disk."""
    folder = range_server_session.root / uuid.uuid4().hex[:8]
    folder.mkdir()
    path = CASES[case](folder)
    local = _describe(path)
    url = range_server_session.url_for(path)
    remote = tp.open_raster(url, storage=tp.Storage(sidecars=True))
    masked = tp.open_raster(url, masked=True, storage=tp.Storage(sidecars=True))
    assert remote.rio.nodata == local["nodata"]
    assert remote.attrs.get("scale_factor") == local["scale"]
    assert np.isnan(masked.values).sum().item() == local["invalid"]
