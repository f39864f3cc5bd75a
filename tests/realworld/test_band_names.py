"""Band names of multi-band GeoTIFFs as exporters write them, selected by ``open_raster(bands=[name])``.

Google Earth Engine, ``gdal_merge``/``gdalbuildvrt -separate`` and xarray/rioxarray exports write each band's
name as its GDAL description (``B2``, ``B3``, ...). A stack of two dates of one sensor gets the same names twice
(``B2``, ``B2``): a name is then ambiguous, and picking one of the bands silently reads the other date's pixels
half the time. The STAC side refuses a tie by name (``docs/conformance.md``); so must a file's descriptions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import terrapipe as tp


def _write(path: Path, names: list[str | None]) -> Path:
    count = len(names)
    with rasterio.open(
        path, "w", driver="GTiff", width=4, height=3, count=count, dtype="uint8", crs="EPSG:32631",
        transform=from_origin(500000, 4000030, 10, 10),
    ) as dst:  # fmt: skip
        dst.write(np.arange(1, count + 1, dtype="uint8")[:, None, None] * np.ones((count, 3, 4), "uint8"))
        for index, name in enumerate(names, start=1):
            if name is not None:
                dst.set_band_description(index, name)
    return path


@pytest.mark.parametrize(
    ("names", "wanted", "bands"),
    [
        (["B2", "B3", "B4", "B8"], ["B4", "B2"], [3, 1]),
        (["B2", None, "B4"], ["B4"], [3]),  # a band without a name
        (["3", "2", "1"], ["1"], [3]),  # names that look like indexes: a string is a name
    ],
)
def test_a_band_name_reads_its_own_band(
    tmp_path: Path, names: list[str | None], wanted: list[str], bands: list[int]
) -> None:
    da = tp.open_raster(_write(tmp_path / "named.tif", names), bands=wanted)
    assert da.values[:, 0, 0].tolist() == bands  # pixel value = 1-based band index
    assert da.band.values.tolist() == bands


def test_a_name_two_bands_share_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "two-dates.tif", ["B2", "B2", "B4"])
    with pytest.raises(tp.TerrapipeError, match="B2"):
        tp.open_raster(path, bands=["B2"])
    assert tp.open_raster(path, bands=["B4"]).values[0, 0, 0] == 3  # an unshared name still reads
