"""Writing Cloud-Optimized GeoTIFFs the way real providers publish them.

One helper, :func:`write_cog`, writes a single- or multi-band array with
GDAL's ``COG`` driver: 256 x 256 internal tiles, DEFLATE compression with a
predictor, overviews down to one tile, and the header and overviews placed
before the full-resolution data (``LAYOUT=COG``).

Examples
--------
>>> import numpy as np
>>> import rasterio
>>> from affine import Affine
>>> from odc.geo.geobox import GeoBox
>>> from terrapipe.datasets.cog import write_cog
>>> gbox = GeoBox((512, 512), Affine(10, 0, 699960, 0, -10, 5100000), "EPSG:32631")
>>> path = write_cog("small.tif", np.ones(gbox.shape.yx, "uint16"), gbox, nodata=0)
>>> with rasterio.open(path) as src:
...     src.block_shapes, src.overviews(1), src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"]
([(256, 256)], [2], 'COG')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import rasterio
from numpy.typing import NDArray
from odc.geo.geobox import GeoBox

from terrapipe.core.errors import InvalidArgumentError

__all__ = ["BLOCKSIZE", "write_cog"]

#: Internal tile size of every COG of the sample world.
BLOCKSIZE = 256

_RESAMPLINGS = ("average", "nearest", "mode", "bilinear", "cubic")


def write_cog(
    path: str | Path,
    data: NDArray[np.generic],
    geobox: GeoBox,
    *,
    nodata: float | None = None,
    resampling: str = "average",
    descriptions: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Path:
    """Write ``data`` on ``geobox`` as a Cloud-Optimized GeoTIFF.

    Parameters
    ----------
    path
        Output file; its folder must exist.
    data
        ``(rows, cols)`` or ``(bands, rows, cols)`` array; its dtype is kept.
    geobox
        Grid of the data (CRS, transform and shape).
    nodata
        Value marking missing pixels, also ignored when computing overviews.
    resampling
        How overviews are computed: ``"average"`` for continuous values,
        ``"nearest"`` or ``"mode"`` for classes.
    descriptions
        One description per band (e.g. the band name).
    tags
        Dataset-level metadata tags.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InvalidArgumentError
        When the array does not fit the grid or ``resampling`` is unknown.
    """
    array = data[None] if data.ndim == 2 else data
    if array.ndim != 3 or array.shape[1:] != tuple(geobox.shape.yx):
        msg = f"data of shape {data.shape} does not fit a grid of shape {tuple(geobox.shape.yx)}"
        raise InvalidArgumentError(msg)
    if resampling not in _RESAMPLINGS:
        msg = f"invalid resampling: {resampling!r}; use one of {_RESAMPLINGS}"
        raise InvalidArgumentError(msg)
    floating = np.issubdtype(array.dtype, np.floating)
    profile = {
        "driver": "COG",
        "width": array.shape[2],
        "height": array.shape[1],
        "count": array.shape[0],
        "dtype": array.dtype.name,
        "crs": str(geobox.crs),
        "transform": geobox.affine,
        "nodata": nodata,
        "BLOCKSIZE": BLOCKSIZE,
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "FLOATING_POINT" if floating else "STANDARD",
        "OVERVIEWS": "AUTO",
        "RESAMPLING": resampling.upper(),
        "OVERVIEW_RESAMPLING": resampling.upper(),
        "BIGTIFF": "IF_SAFER",
    }
    out = Path(path)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(array)
        if descriptions is not None:
            for index, text in enumerate(descriptions, start=1):
                dst.set_band_description(index, text)
        if tags:
            dst.update_tags(**tags)
    return out
