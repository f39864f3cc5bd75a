"""Where an xarray object sits on the map, from its coordinates: x/y dimension names and the affine transform.

Pure functions: they read coordinates and attributes, never pixels. The
transform of a regular grid is derived from its ``x``/``y`` coordinates
(pixel centres), which stay right after ``isel``; a dimension of length 1
takes its pixel size from rioxarray's cached ``GeoTransform``, and a rotated
grid uses that cached transform as a whole. ``chip`` (its chips' GeoMeta,
``stitch``) and ``fuse`` (a chip's grid) both use these.

Examples
--------
>>> import numpy as np, xarray as xr
>>> da = xr.DataArray(np.zeros((2, 3)), dims=("y", "x"), coords={"y": [15.0, 5.0], "x": [5.0, 15.0, 25.0]})
>>> xy_dims(da.dims)
('x', 'y')
>>> tuple(transform_from_coords(da, "x", "y"))[:6]
(10.0, 0.0, 0.0, 0.0, -10.0, 20.0)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, Literal, overload

import numpy as np
from affine import Affine

from terrapipe.core.errors import InvalidArgumentError

__all__ = ["X_NAMES", "Y_NAMES", "cached_transform", "transform_from_coords", "xy_dims"]

#: Names of the x and y dimensions, in the order they are looked for.
X_NAMES = ("x", "lon", "longitude")
Y_NAMES = ("y", "lat", "latitude")


def xy_dims(dims: Iterable[Hashable]) -> tuple[Hashable | None, Hashable | None]:
    """Return the ``(x, y)`` dimension names among ``dims`` (:data:`X_NAMES`, :data:`Y_NAMES`), ``None`` where absent.

    Examples
    --------
    >>> xy_dims(("band", "lat", "lon")), xy_dims(("time",))
    (('lon', 'lat'), (None, None))
    """
    names = tuple(dims)
    x_dim = next((d for d in X_NAMES if d in names), None)
    y_dim = next((d for d in Y_NAMES if d in names), None)
    return x_dim, y_dim


def cached_transform(obj: Any) -> Affine | None:
    """Return the ``GeoTransform`` rioxarray keeps on the grid-mapping coordinate of an xarray object, if any.

    A Dataset's grid mapping may be named by its variables' encoding only. A
    ``GeoTransform`` that is not six finite numbers, or whose pixels have no
    area (a zero or NaN pixel size), places nothing: it is ``None`` as if
    absent, so the coordinates decide (a NaN transform was returned before,
    and a degenerate one made a strict caller's inversion raise affine's own
    error).

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> da = xr.DataArray(np.zeros((2, 2)), dims=("y", "x")).rio.write_transform(Affine(10, 0, 0, 0, -10, 20))
    >>> tuple(cached_transform(da))[:6]
    (10.0, 0.0, 0.0, 0.0, -10.0, 20.0)
    >>> cached_transform(da.assign_coords(spatial_ref=da.spatial_ref.assign_attrs(GeoTransform="0 nan 0 20 0 -10")))
    """
    name = obj.encoding.get("grid_mapping", "spatial_ref")
    data_vars = getattr(obj, "data_vars", None)  # a Dataset
    if data_vars is not None and name not in obj.coords:
        for var in data_vars.values():
            name = var.encoding.get("grid_mapping", name)
    if name not in obj.coords:
        return None
    text = obj.coords[name].attrs.get("GeoTransform")
    if not text:
        return None
    try:
        c, a, b, f, d, e = (float(v) for v in str(text).split())
    except ValueError:
        return None
    if not np.isfinite((a, b, c, d, e, f)).all() or a * e - b * d == 0.0:
        return None
    return Affine(a, b, c, d, e, f)


@overload
def transform_from_coords(obj: Any, x_dim: Hashable, y_dim: Hashable, *, strict: Literal[True]) -> Affine: ...


@overload
def transform_from_coords(
    obj: Any, x_dim: Hashable, y_dim: Hashable, *, strict: bool = False
) -> Affine | None: ...


def transform_from_coords(
    obj: Any, x_dim: Hashable, y_dim: Hashable, *, strict: bool = False
) -> Affine | None:
    """Return the affine transform of an xarray object's regular x/y grid (pixel ``(col, row)`` to map ``(x, y)``).

    Derived from the ``x_dim``/``y_dim`` coordinates (pixel centres). A
    rotated grid, or an object without those coordinates, has rioxarray's
    cached ``GeoTransform`` (:func:`cached_transform`); a dimension of length
    1 takes its pixel size from it.

    Parameters
    ----------
    obj
        A DataArray or Dataset.
    x_dim, y_dim
        Its x and y dimensions.
    strict
        ``False``: return ``None`` (or the cached transform) where the
        coordinates do not say. ``True``: raise instead, refuse coordinates
        that are not finite, and where the coordinates are a window of the
        cached transform's grid keep that transform's exact numbers (pixel
        sizes from coordinate differences carry rounding errors).

    Returns
    -------
    affine.Affine or None
        The transform; ``None`` only with ``strict=False``.

    Raises
    ------
    InvalidArgumentError
        With ``strict=True``: no coordinates and no cached transform, empty
        coordinates, one pixel wide or high without a cached transform, or
        coordinates that are not finite.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> one = xr.DataArray(np.zeros((2, 1)), dims=("y", "x"), coords={"y": [15.0, 5.0], "x": [5.0]})
    >>> transform_from_coords(one, "x", "y") is None
    True
    >>> transform_from_coords(one, "x", "y", strict=True)
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: a chip one pixel wide or high needs rioxarray's GeoTransform to know its pixel size
    """
    cached = cached_transform(obj)
    if cached is not None and not cached.is_rectilinear:
        return cached
    if x_dim not in obj.coords or y_dim not in obj.coords:
        if strict and cached is None:
            msg = f"a chip without {x_dim!r}/{y_dim!r} coordinates has no transform; write one with rio.write_transform"
            raise InvalidArgumentError(msg)
        return cached
    xs = np.asarray(obj[x_dim].values, dtype=np.float64)
    ys = np.asarray(obj[y_dim].values, dtype=np.float64)
    if xs.ndim != 1 or ys.ndim != 1 or xs.size == 0 or ys.size == 0:
        if strict:
            raise InvalidArgumentError(f"a chip of shape {dict(obj.sizes)!r} is empty; it has no grid")
        return cached
    a = float(xs[1] - xs[0]) if xs.size > 1 else (cached.a if cached is not None else None)
    e = float(ys[1] - ys[0]) if ys.size > 1 else (cached.e if cached is not None else None)
    if a is None or e is None:
        if strict:
            msg = "a chip one pixel wide or high needs rioxarray's GeoTransform to know its pixel size"
            raise InvalidArgumentError(msg)
        return None
    derived = Affine(a, 0.0, float(xs[0]) - a / 2, 0.0, e, float(ys[0]) - e / 2)
    if not strict:
        return derived
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()) or not np.isfinite(tuple(derived)[:6]).all():
        msg = (
            f"the chip's {x_dim!r}/{y_dim!r} coordinates are not all finite (NaN or inf), so it has no grid; "
            "check how the chip was made (its source's georeferencing)"
        )
        raise InvalidArgumentError(msg)
    if cached is not None:
        # A window of the file the GeoTransform describes: keep the file's exact numbers.
        col, row = ~cached @ (derived.c, derived.f)
        near_col, near_row = round(col), round(row)
        same_size = np.isclose(cached.a, a, rtol=1e-9, atol=0) and np.isclose(cached.e, e, rtol=1e-9, atol=0)
        if same_size and abs(col - near_col) < 1e-6 and abs(row - near_row) < 1e-6:
            return cached @ Affine.translation(near_col, near_row)
    return derived
