"""``meta_of``: the :class:`~terrapipe.core.sample.GeoMeta` of an xarray chip.

- ``crs``: ``"EPSG:32631"`` when the CRS has an authority code, else WKT;
- ``transform``: derived from the ``x``/``y`` coordinates (pixel centres);
- ``shape``, ``bounds``: of the ``y``/``x`` grid;
- ``time``: the ``time`` coordinate as ISO 8601 (a string for a scalar, a
  tuple for a time dimension), else ``None``; a ``zip_grids`` chip whose
  variables have times of their own (``"<variable>_time"`` coordinates) gives
  the tuple of every distinct time (:func:`terrapipe.fuse.zip.chip_times`);
- ``source_ids``: in order, ``attrs["source_ids"]``, the values of an
  ``id`` coordinate (STAC item ids of a stack), and each variable's
  ``encoding["source"]`` (the file or URL it was read from, credentials
  redacted: a sample's metadata is logged and cached), without repeats.

Examples
--------
>>> import numpy as np, xarray as xr
>>> chip = xr.DataArray(np.zeros((1, 2, 2)), dims=("band", "y", "x"),
...                     coords={"y": [15.0, 5.0], "x": [5.0, 15.0], "time": np.datetime64("2024-06-19T10:30")},
...                     ).rio.write_crs("EPSG:32631")
>>> chip.encoding["source"] = "s2/B04.tif"
>>> meta = meta_of(chip)
>>> meta["crs"], meta["transform"], meta["time"], meta["source_ids"]
('EPSG:32631', (10.0, 0.0, 0.0, 0.0, -10.0, 20.0), '2024-06-19T10:30:00', ('s2/B04.tif',))
"""

from __future__ import annotations

import xarray as xr

from terrapipe.core.sample import GeoMeta, geo_meta, iso_times
from terrapipe.fuse.grid import grid_and_crs_text
from terrapipe.fuse.provenance import source_ids_of
from terrapipe.fuse.zip import chip_times

__all__ = ["iso_times", "meta_of", "source_ids_of"]


def meta_of(obj: xr.DataArray | xr.Dataset) -> GeoMeta:
    """Return the :class:`~terrapipe.core.sample.GeoMeta` of an xarray chip.

    Parameters
    ----------
    obj
        A chip with x/y dimensions and a CRS.

    Returns
    -------
    GeoMeta
        crs, transform, bounds, shape, time, source ids.

    Raises
    ------
    InvalidArgumentError
        For a chip without CRS or x/y dimensions.
    """
    grid, crs = grid_and_crs_text(obj)  # the CRS converted once (crs_text(grid.crs) converts it again)
    time = chip_times(obj)
    return geo_meta(
        crs,
        grid.affine,
        (int(grid.shape.y), int(grid.shape.x)),
        time=time,
        source_ids=source_ids_of(obj),
    )
