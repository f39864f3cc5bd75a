"""``align_array`` onto a chip of a lon/lat raster (rasterio's ``world.byte.tif``, EPSG:4326).

``open_raster`` and ``stack_stac`` name the axes of a lon/lat raster ``y``/``x``, as of any other CRS; so do
the chips cut from it, and the ``align_to`` stage. ``align_array`` documents ``(band, y, x)`` on the chip's
grid, so the result can be added to, compared with or merged into the chip.
"""

from __future__ import annotations

import numpy as np

import terrapipe as tp
import terrapipe.fuse
from terrapipe.fuse import align_array
from tests.conformance.files.corpus import DATA

WORLD = DATA / "rasterio/world.byte.tif"


def _chip() -> object:
    return tp.open_raster(WORLD).isel(y=slice(100, 116), x=slice(200, 232))


def test_align_to_stage_on_a_lonlat_chip_gives_the_chip_s_pixels() -> None:
    chip = _chip()
    out = next(iter(tp.from_items([chip]).align_to(str(WORLD), resampling="nearest", name="world")))
    assert out["world"].dims == ("y", "x")
    np.testing.assert_array_equal(out["world"].values, chip.isel(band=0).values)  # type: ignore[attr-defined]


def test_align_array_on_a_lonlat_chip_has_the_chip_s_dims() -> None:
    chip = _chip()
    aligned = align_array(WORLD, chip, resampling="nearest")
    assert aligned.dims == chip.dims  # type: ignore[attr-defined]
    assert (chip - aligned).shape == chip.shape  # type: ignore[operator, attr-defined]
    np.testing.assert_array_equal(aligned.values, chip.values)  # type: ignore[attr-defined]
