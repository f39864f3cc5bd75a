"""A COG replaced at its URL between two ``stack_stac`` calls is read anew by the second call.

The byte layer keeps a remote file's first blocks per process and reader
threads cache handles per file; for ``stack_stac`` a file had no version,
so a second cube of the same item, after the file was replaced at the
server (an upload to the same key), was read from the old kept blocks and
handles: the old pixels, silently (the same class as d2340d8 for
``open_raster``). Each cube now asks, at the first read of each remote
asset, for the file now at the URL (one request where the process already
holds it; none more for a first read) and reads that version; a cube on
another grid (odc-stac's reader, GDAL's own cache) the same.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terrapipe.stac import stack_items

ORIGIN = (600000.0, 5000320.0)


def write(path: Path, offset: int) -> np.ndarray:
    values = ((np.arange(32 * 32).reshape(1, 32, 32) * 7 + offset) % 65521 + 1).astype("uint16")
    profile = {
        "driver": "GTiff",
        "height": 32,
        "width": 32,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32631",
    }
    with rasterio.open(path, "w", transform=from_origin(*ORIGIN, 10, 10), nodata=0, **profile) as dst:
        dst.write(values)
    return values


def item(url: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "replaced",
        "geometry": None,
        "properties": {
            "datetime": "2024-01-01T00:00:00Z",
            "proj:code": "EPSG:32631",
            "proj:shape": [32, 32],
            "proj:transform": [10, 0, ORIGIN[0], 0, -10, ORIGIN[1]],
        },
        "links": [],
        "assets": {
            "data": {
                "href": url,
                "type": "image/tiff; application=geotiff",
                "raster:bands": [{"data_type": "uint16", "nodata": 0}],
            }
        },
    }


@pytest.mark.parametrize("same_times", [False, True], ids=["new-etag", "same-size-and-mtime"])
def test_a_second_cube_reads_the_file_now_at_the_url(
    range_server_session: Any, tmp_path: Path, same_times: bool
) -> None:
    root = Path(range_server_session.root)
    name = f"stack-replaced-{same_times}.tif"
    old = write(root / name, 0)
    new = write(tmp_path / "new.tif", 1000)
    url = f"{range_server_session.url}/{name}"
    np.testing.assert_array_equal(stack_items([item(url)]).isel(time=0).values, old)
    stat = (root / name).stat()
    shutil.copy(tmp_path / "new.tif", root / f"{name}.new")
    os.replace(root / f"{name}.new", root / name)  # as an upload does: another object at the same name
    if same_times:
        os.utime(root / name, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    np.testing.assert_array_equal(stack_items([item(url)]).isel(time=0).values, new)


@pytest.mark.parametrize(
    "options", [{"resolution": 20}, {"crs": "EPSG:4326", "resolution": 0.0002}], ids=["coarser", "4326"]
)
def test_a_second_cube_on_another_grid_reads_the_file_now_at_the_url(
    range_server_session: Any, tmp_path: Path, options: dict[str, Any]
) -> None:
    """The same through odc-stac's reader (a cube not on the items' own grid): GDAL's cache of the file."""
    root = Path(range_server_session.root)
    name = f"stack-replaced-odc-{options['resolution']}.tif"
    write(root / name, 0)
    write(tmp_path / "new.tif", 1000)
    url = f"{range_server_session.url}/{name}"
    before = stack_items([item(url)], **options).values
    shutil.copy(tmp_path / "new.tif", root / f"{name}.new")
    os.replace(root / f"{name}.new", root / name)
    after = stack_items([item(url)], **options).values
    fresh = stack_items([item(url)], **options).values  # a third cube: the same new file, read again
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, fresh)
    assert after.max() > 1000
