"""Where an xarray object sits on the map, from its coordinates: x/y dimension names and the affine transform.

Pure functions: they read coordinates and attributes, never pixels. The x
and y dimensions are found as CF says (a coordinate's ``axis``,
``standard_name`` or ``units``), else by name. The transform of a regular
grid is derived from its ``x``/``y`` coordinates (pixel centres), which stay
right after ``isel``; coordinates that are not evenly spaced (a Gaussian
grid, a transect) have none. A dimension of length 1 takes its pixel size
from rioxarray's cached ``GeoTransform``, and a rotated grid uses that
cached transform as a whole. ``chip`` (its chips' GeoMeta, ``stitch``) and
``fuse`` (a chip's grid) both use these.

Examples
--------
>>> import numpy as np, xarray as xr
>>> da = xr.DataArray(np.zeros((2, 3)), dims=("y", "x"), coords={"y": [15.0, 5.0], "x": [5.0, 15.0, 25.0]})
>>> xy_dims(da)
('x', 'y')
>>> tuple(transform_from_coords(da, "x", "y"))[:6]
(10.0, 0.0, 0.0, 0.0, -10.0, 20.0)
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Literal, overload

import numpy as np
from affine import Affine

from terrapipe.core.errors import InvalidArgumentError

__all__ = [
    "X_NAMES",
    "Y_NAMES",
    "cached_transform",
    "evenly_spaced",
    "gdal_transform",
    "time_name",
    "transform_from_coords",
    "xy_dims",
]

#: Names of the x and y dimensions (those of rioxarray, odc-geo, CF, GDAL's Zarr driver and CF rotated-pole
#: grids), where no coordinate attribute says which axis a dimension is.
X_NAMES = ("x", "lon", "longitude", "X", "rlon")
Y_NAMES = ("y", "lat", "latitude", "Y", "rlat")

# CF 1.11 sections 4.1, 4.2 and 5.6: a coordinate is an x or y axis by its ``axis``, its ``standard_name`` or
# (longitude/latitude) its ``units``.
_STANDARD_NAMES = {
    "X": frozenset(
        {"projection_x_coordinate", "projection_x_angular_coordinate", "grid_longitude", "longitude"}
    ),
    "Y": frozenset(
        {"projection_y_coordinate", "projection_y_angular_coordinate", "grid_latitude", "latitude"}
    ),
}
_UNITS = {
    "X": frozenset({"degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"}),
    "Y": frozenset({"degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"}),
}


def _stated_axis(attrs: Any) -> str | None:
    """``"X"``/``"Y"`` as a coordinate's CF attributes say (``axis`` first), else ``None``."""
    axis = attrs.get("axis")
    if isinstance(axis, str) and axis.upper() in ("X", "Y"):
        return axis.upper()
    if axis is not None:  # "T", "Z": said, and not a spatial axis
        return None
    for key, table in (("standard_name", _STANDARD_NAMES), ("units", _UNITS)):
        value = attrs.get(key)
        if isinstance(value, str):
            text = value.strip() if key == "standard_name" else value.strip().lower()
            for which, names in table.items():
                if text in names:
                    return which
    return None


def xy_dims(dims: Any) -> tuple[Hashable | None, Hashable | None]:
    """Return the ``(x, y)`` dimension names of an xarray object (or among dimension names), ``None`` where absent.

    Given an object, a dimension whose coordinate's CF attributes say its axis
    (``axis="X"``/``"Y"``; ``standard_name`` ``projection_x_coordinate``,
    ``grid_longitude``, ``longitude`` and their y twins; ``units``
    ``degrees_east``/``degrees_north``) is that axis, whatever its name. Where
    no dimension's attributes name an axis, names decide (:data:`X_NAMES`,
    :data:`Y_NAMES`; dimension names alone are judged so too).

    Parameters
    ----------
    dims
        A DataArray or Dataset, or its dimension names.

    Raises
    ------
    InvalidArgumentError
        Where two dimensions could each be the x (or the y) axis: which one
        is meant is not guessed.

    Examples
    --------
    >>> xy_dims(("band", "lat", "lon")), xy_dims(("time",)), xy_dims(("Y", "X"))
    (('lon', 'lat'), (None, None), ('X', 'Y'))
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.zeros((2, 3)), dims=("j", "i"),
    ...                   coords={"j": ("j", [0.0, 1.0], {"axis": "Y"}), "i": ("i", [0.0, 1, 2], {"axis": "X"})})
    >>> xy_dims(da)
    ('i', 'j')
    >>> xy_dims(("x", "lon", "y"))
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: dimensions 'x' and 'lon' could each be the x axis; keep one (drop or rename the other, e.g. da.rename(lon='lon_index')) or give the one meant the CF attribute axis='X'
    """
    coords = getattr(dims, "coords", None)
    names = tuple(dims.dims if hasattr(dims, "dims") else dims)
    stated: dict[Hashable, str] = {}
    if coords is not None:
        variables = getattr(coords, "variables", coords)  # Variables: no DataArray built per lookup
        for name in names:
            if name in variables:
                which = _stated_axis(variables[name].attrs)
                if which is not None:
                    stated[name] = which
    found: list[Hashable | None] = []
    for which, known in (("X", X_NAMES), ("Y", Y_NAMES)):
        by_attrs = [d for d in names if stated.get(d) == which]
        candidates = by_attrs or [d for d in names if d in known and d not in stated]
        if len(candidates) > 1:
            first, second = candidates[:2]
            msg = (
                f"dimensions {first!r} and {second!r} could each be the {which.lower()} axis; keep one (drop or "
                f"rename the other, e.g. da.rename({second}='{second}_index')) or give the one meant the CF "
                f"attribute axis='{which}'"
            )
            raise InvalidArgumentError(msg)
        found.append(candidates[0] if candidates else None)
    return found[0], found[1]


def _is_time(variable: Any) -> bool:
    """Whether a coordinate holds times: datetime64 values, or cftime dates (``object`` with a ``calendar``)."""
    if variable.dtype.kind == "M":
        return True
    if variable.dtype.kind != "O" or variable.size == 0:
        return False
    first = variable.values.ravel()[0]
    return hasattr(first, "calendar") and hasattr(first, "isoformat")


def time_name(obj: Any) -> Hashable | None:
    """Return the name of an xarray object's time coordinate (what a chip's ``meta["time"]`` holds), if any.

    ``time`` where there is one; else the coordinate that CF's attributes
    call time (``axis="T"`` or ``standard_name="time"``, decoded to dates:
    ERA5 from the new CDS names it ``valid_time``); else the one coordinate holding dates
    (datetime64 or cftime: WRF's ``XTIME`` along ``Time``). Only scalar and
    1-D coordinates count; several candidates and no way to choose:
    ``None``, as for none.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> era5 = xr.Dataset(coords={"valid_time": ("valid_time", np.array(["2024-01-01"], "datetime64[ns]"),
    ...                                          {"standard_name": "time"}), "number": 0})
    >>> time_name(era5), time_name(xr.Dataset(coords={"time": [0, 1]})), time_name(xr.Dataset(coords={"n": 0}))
    ('valid_time', 'time', None)
    """
    coords = obj.coords
    if "time" in coords:
        return "time"
    variables = getattr(coords, "variables", coords)
    stated: list[Hashable] = [
        name
        for name, var in variables.items()
        if var.ndim <= 1
        and (var.attrs.get("axis") == "T" or var.attrs.get("standard_name") == "time")
        and _is_time(var)  # decoded: raw numbers (decode_times=False) are no dates
    ]
    if len(stated) == 1:
        return stated[0]
    if stated:
        return None
    dated: list[Hashable] = [name for name, var in variables.items() if var.ndim <= 1 and _is_time(var)]
    return dated[0] if len(dated) == 1 else None


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
    return gdal_transform(obj.coords[name].attrs.get("GeoTransform"))


def gdal_transform(text: Any) -> Affine | None:
    """Return the transform of a GDAL ``GeoTransform`` text, ``None`` where it places nothing.

    Six finite numbers whose pixels have an area make a transform; anything else
    (absent, not numbers, NaN, a zero pixel size) is ``None``.

    Examples
    --------
    >>> tuple(gdal_transform("500000.0 10.0 0.0 4000000.0 0.0 -10.0"))[:6]
    (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
    >>> gdal_transform("0 nan 0 20 0 -10") is None, gdal_transform(None) is None
    (True, True)
    """
    if not text:
        return None
    try:
        c, a, b, f, d, e = (float(v) for v in str(text).split())
    except ValueError:
        return None
    if not np.isfinite((a, b, c, d, e, f)).all() or a * e - b * d == 0.0:
        return None
    return Affine(a, b, c, d, e, f)


def _regular_axis(
    values: np.ndarray[Any, Any], dtype: Any, cached_step: float | None
) -> tuple[float, float, bool] | None:
    """``(step, first centre, evenly spaced)`` of one axis's coordinates; ``None`` for one value and no step.

    The step is the first two values' difference, as rioxarray and odc-geo
    take it, where every other value lies on that line (to 1e-9 of a pixel);
    else the step and first centre of the line through the first and last
    values. The values are evenly spaced when none lies further from that
    line than 1/1000 of a pixel, or than one unit in the last place of float32
    where the coordinates are float32 values (float32 coordinates of a
    10980-pixel UTM axis are up to 3 cm off their 10 m grid), and, where
    only that unit let them in, no step differs from the line's by more than
    one unit (a missing or repeated row differs by a whole step); integer and
    whole-number coordinates are exact (a float32 term there let a 1 m grid
    at a UTM northing miss or swap a row). Values that are not finite, or
    whose line is not, are left to the caller.
    """
    size = values.size
    if size == 1:
        return None if cached_step is None else (float(cached_step), float(values[0]), True)
    step = float(values[1] - values[0])
    first = float(values[0])
    if size == 2 or step == 0.0:
        return step, first, step != 0.0
    index = np.arange(size, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        residual = float(np.abs(values - (first + step * index)).max())
    if residual <= 1e-9 * abs(step):  # NaN (values not finite) is not: the line below is not finite either
        return step, first, True
    with np.errstate(over="ignore", invalid="ignore"):
        line_step = float(values[-1] - values[0]) / (size - 1)
        line_first = float(np.mean(values - line_step * index))
        residual = float(np.abs(values - (line_first + line_step * index)).max())
    if not np.isfinite(
        (line_step, line_first, residual)
    ).all():  # past the float range: the caller's to refuse
        return step, first, True
    step, first = line_step, line_first
    largest = float(np.abs(values).max())
    kind, itemsize = np.dtype(dtype).kind, np.dtype(dtype).itemsize
    rounding = 2.0 * float(np.finfo(np.float64).eps) * largest if kind == "f" else 0.0  # integers: exact
    if kind == "f" and itemsize < 8:
        rounding = float(np.spacing(np.asarray(largest, dtype=dtype)))  # one unit in the last place
    elif kind == "f" and not (values == np.round(values)).all():  # whole numbers were not rounded
        with np.errstate(over="ignore"):  # values beyond float32's range are no float32 values
            if (
                values.astype(np.float32).astype(np.float64) == values
            ).all():  # float32 values held as float64
                rounding = float(np.spacing(np.float32(largest)))
    tolerance = max(1e-3 * abs(step), rounding)
    if residual > tolerance or step == 0.0:
        return step, first, False
    if rounding > 1e-3 * abs(step):
        # Only float32 rounding let these in: rounded values of a regular grid are each within half
        # a unit of it, so each step is within one unit (and the line's own step) of the line's. A
        # row missing, repeated or swapped where a step is 2 units (a float32 2 m grid at 8.5e6 m)
        # lies just one unit off the line through the ends, but its step is off by a whole step.
        with np.errstate(over="ignore", invalid="ignore"):
            worst = float(np.abs(np.diff(values) - step).max())
        return step, first, worst <= max(2e-3 * abs(step), rounding) + rounding / (size - 1)
    return step, first, True


def evenly_spaced(coord: Any) -> bool:
    """Whether a 1-D coordinate's values step evenly, as :func:`transform_from_coords` judges them.

    Fewer than three distinct values count as even (there is nothing to
    compare), values that are not finite too (the caller refuses them).

    Examples
    --------
    >>> import numpy as np
    >>> evenly_spaced(np.array([5.0, 15.0, 25.0])), evenly_spaced(np.array([5.0, 15.0, 45.0]))
    (True, False)
    """
    values = np.asarray(coord)
    axis = _regular_axis(np.asarray(values, dtype=np.float64).ravel(), values.dtype, None)
    return axis is None or axis[2]


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

    Derived from the ``x_dim``/``y_dim`` coordinates (pixel centres), which
    must be evenly spaced (to 1/1000 of a pixel, or the rounding of their own
    precision: float32 coordinates of a regular grid are); a Gaussian grid or
    a transect has no transform. A rotated grid, or an object without those coordinates, has rioxarray's
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
        coordinates, one pixel wide or high without a cached transform,
        coordinates that are not finite, or not evenly spaced (naming the
        dimension).

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
    x_var, y_var = obj.coords.variables[x_dim], obj.coords.variables[y_dim]
    xs = np.asarray(x_var.values, dtype=np.float64)
    ys = np.asarray(y_var.values, dtype=np.float64)
    if xs.ndim != 1 or ys.ndim != 1 or xs.size == 0 or ys.size == 0:
        if strict:
            raise InvalidArgumentError(f"a chip of shape {dict(obj.sizes)!r} is empty; it has no grid")
        return cached
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):  # a NaN (a decoded _FillValue) places nothing
        if strict:
            msg = (
                f"the chip's {x_dim!r}/{y_dim!r} coordinates are not all finite (NaN or inf), so it has no grid; "
                "check how the chip was made (its source's georeferencing)"
            )
            raise InvalidArgumentError(msg)
        return None
    x_axis = _regular_axis(xs, x_var.dtype, cached.a if cached is not None else None)
    y_axis = _regular_axis(ys, y_var.dtype, cached.e if cached is not None else None)
    if x_axis is None or y_axis is None:
        if strict:
            msg = "a chip one pixel wide or high needs rioxarray's GeoTransform to know its pixel size"
            raise InvalidArgumentError(msg)
        return None
    for dim, axis, values in ((x_dim, x_axis, xs), (y_dim, y_axis, ys)):
        if not axis[2]:
            if strict and axis[0] == 0.0 and np.ptp(values) == 0.0:
                msg = (
                    f"the {dim!r} coordinates are all {values[0]!r} (a step of 0), so they have no grid; "
                    f"give each pixel its own {dim!r} coordinate"
                )
                raise InvalidArgumentError(msg)
            if strict:
                steps = np.diff(values)
                msg = (
                    f"the {dim!r} coordinates are not evenly spaced (steps from {steps.min():.6g} to "
                    f"{steps.max():.6g}), so they have no regular grid (affine transform) and no stage that "
                    f"needs one can place them; interpolate onto evenly spaced {dim!r} coordinates first "
                    f"(e.g. da.interp({dim}=np.linspace(...)))"
                )
                raise InvalidArgumentError(msg)
            return None
    (a, x0, _), (e, y0, _) = x_axis, y_axis
    derived = Affine(a, 0.0, x0 - a / 2, 0.0, e, y0 - e / 2)
    if not strict:
        return derived
    finite = bool(np.isfinite(xs).all() and np.isfinite(ys).all()) and np.isfinite(tuple(derived)[:6]).all()
    if not finite:
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
