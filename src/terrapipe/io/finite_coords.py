"""Spatial coordinates must be finite: a store with NaN or infinite ``x``/``y`` is refused.

A Zarr or netCDF store whose ``x``/``y`` (or ``lon``/``lat``) coordinates hold
NaN or infinity, or whose ``spatial_ref`` records such a ``GeoTransform``,
would give chips with NaN coordinates and boxes and labels nowhere on the map.
:func:`check_coordinates_finite` refuses it with a
:class:`~terrapipe.core.errors.ReadError` naming the file; readers call it on
what they open (:func:`~terrapipe.io.xarray_open.open_xarray` does). Its own
module so that every reader can import it.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import xarray as xr

from terrapipe.io.read_errors import read_error

__all__ = ["SPATIAL_COORDS", "check_coordinates_finite"]

DatasetOrArray = TypeVar("DatasetOrArray", xr.Dataset, xr.DataArray)

#: Dimension coordinates that place data on the map (compared in lower case).
SPATIAL_COORDS = frozenset({"x", "y", "lon", "lat", "longitude", "latitude", "easting", "northing"})


def check_coordinates_finite(obj: DatasetOrArray, href: str) -> DatasetOrArray:
    """Refuse a Dataset or DataArray whose spatial coordinates or geotransform are not finite.

    A store whose ``x``/``y`` (or ``lon``/``lat``) coordinates hold NaN or
    infinity, or whose ``spatial_ref`` records a ``GeoTransform`` with them,
    would give chips with NaN coordinates; the dimension coordinates are in
    memory once opened, so the check reads nothing.

    Returns
    -------
    The object, unchanged.

    Raises
    ------
    ReadError
        Naming the file and the coordinate.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> good = xr.Dataset(coords={"x": [0.5, 1.5], "y": [1.5, 0.5]})
    >>> check_coordinates_finite(good, "a.zarr") is good
    True
    >>> check_coordinates_finite(good.assign_coords(x=[0.5, np.nan]), "a.zarr")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.ReadError: cannot use 'a.zarr': its coordinate 'x' holds 1 NaN or infinite value(s) ...
    """
    hint = "fix the coordinates in the store (or drop and re-assign them) before reading it"
    for name, coord in obj.coords.items():
        if str(name).lower() not in SPATIAL_COORDS or name not in obj.dims or coord.dtype.kind not in "fiuc":
            continue
        values = np.asarray(coord.values)
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            cause = f"its coordinate {name!r} holds {bad} NaN or infinite value(s) of {values.size}"
            raise read_error(href, "cannot use", cause=cause, hint=hint)
    for name, coord in obj.coords.items():
        transform = coord.attrs.get("GeoTransform") if hasattr(coord, "attrs") else None
        if isinstance(transform, str):
            try:
                numbers = [float(v) for v in transform.split()]
            except ValueError:
                numbers = [float("nan")]
            if not all(np.isfinite(numbers)):
                cause = f"the GeoTransform of its {name!r} coordinate is not finite ({transform!r})"
                raise read_error(href, "cannot use", cause=cause, hint=hint)
    return obj
