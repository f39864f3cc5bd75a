"""align_array with a reference without nodata: its zeros stay zeros, uncovered pixels get the fill.

The companion of tests/realworld/test_align_values.py (R's, the oceans of world.byte.tif): here the
chip reaches past the reference's edge, so both halves are checked against ``rasterio.warp.reproject``
of the same pixels: covered pixels hold the reference's values (0 included, any resampling),
uncovered ones the fill (the default 0, or ``nodata=``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from odc.geo.geobox import GeoBox

from terrapipe.fuse import align_array

GRID = GeoBox(
    (20, 20), Affine(10, 0, 500_105, 0, -10, 4_000_395), "EPSG:32631"
)  # its north half off the reference


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "classes.tif"
    classes = np.zeros((1, 30, 30), "uint8")
    classes[0, :, 15:] = 3
    classes[0, 10:20, :] = 0
    with rasterio.open(
        path, "w", driver="GTiff", width=30, height=30, count=1, dtype="uint8", crs="EPSG:32631",
        transform=Affine(10, 0, 500_000, 0, -10, 4_000_300),
    ) as dst:  # fmt: skip
        dst.write(classes)
    return path


@pytest.mark.parametrize("resampling", ["nearest", "bilinear", "cubic", "average"])
@pytest.mark.parametrize("nodata", [None, 255])
def test_zeros_kept_and_uncovered_pixels_filled(reference: Path, resampling: str, nodata: int | None) -> None:
    fill = 0 if nodata is None else nodata
    with rasterio.open(reference) as src:
        pixels = src.read()
        want = np.full((1, *GRID.shape), fill, "uint8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rasterio.warp.reproject(
                pixels, want, src_transform=src.transform, src_crs=src.crs, dst_transform=GRID.transform,
                dst_crs=GRID.crs, resampling=rasterio.enums.Resampling[resampling], init_dest_nodata=False,
            )  # fmt: skip
    got = align_array(reference, GRID, resampling=resampling, nodata=nodata).values
    np.testing.assert_array_equal(got, want)
    assert (got == 0).any()
    assert (got[:, :9, :] == fill).all()  # north of the reference: nothing lands there


def test_align_to_carries_its_output_revision_in_its_cache_key(reference: Path) -> None:
    import terrapipe as tp
    from terrapipe.cache.segment import describe_stage
    from terrapipe.fuse.align import OUTPUT_REVISION

    described = describe_stage(tp.from_items([]).align_to(str(reference), name="classes"))
    assert isinstance(described, dict)
    assert ["revision", OUTPUT_REVISION] in described["config"]["dict"]  # type: ignore[index]
    assert OUTPUT_REVISION >= 2  # entries written before zeros were kept are not served
