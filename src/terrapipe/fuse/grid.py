"""The grid of a chip (crs + transform + shape) as an odc-geo ``GeoBox``, and grid comparisons.

Pure functions: they read coordinates and attributes, never pixels. A chip's
transform is derived from its ``x``/``y`` coordinates (pixel centres), which
stay right after ``isel``; the pixel size of a dimension of length 1 comes
from rioxarray's cached ``GeoTransform``.

Examples
--------
>>> import numpy as np, xarray as xr, rioxarray
>>> chip = xr.DataArray(np.zeros((1, 2, 3)), dims=("band", "y", "x"),
...                     coords={"y": [95.0, 85.0], "x": [5.0, 15.0, 25.0]}).rio.write_crs("EPSG:32631")
>>> grid = grid_of(chip)
>>> grid.shape.yx, tuple(grid.affine)[:6], crs_text(grid.crs)
((2, 3), (10.0, 0.0, 0.0, 0.0, -10.0, 100.0), 'EPSG:32631')
>>> grid_bounds(grid.affine, (2, 3))
(0.0, 80.0, 30.0, 100.0)
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from terrapipe.core.coords import transform_from_coords, xy_dims
from terrapipe.core.crs import crs_input_text, same_crs
from terrapipe.core.errors import GridMismatchError, InvalidArgumentError
from terrapipe.core.redact import redact_url

__all__ = [
    "crs_text",
    "describe_grid",
    "grid_and_crs_text",
    "grid_bounds",
    "grid_mismatch",
    "grid_of",
    "pixels_of",
    "spatial_dims",
    "transform_of",
]


@lru_cache(maxsize=256)
def _crs_text_of(text: str) -> str:
    from pyproj import CRS

    crs = CRS.from_user_input(text)
    authority = crs.to_authority()
    return f"{authority[0]}:{authority[1]}" if authority else crs.to_wkt()


def crs_text(crs: Any) -> str:
    """Return a CRS as ``"AUTHORITY:CODE"`` when it has one, else as WKT.

    Parameters
    ----------
    crs
        Anything pyproj understands (a rasterio, odc-geo or pyproj CRS, a
        string, an EPSG int).

    Returns
    -------
    str
        E.g. ``"EPSG:32631"``; results are cached per input text.

    Raises
    ------
    InvalidArgumentError
        For ``None`` or something that is not a CRS.

    Examples
    --------
    >>> crs_text(4326), crs_text("+proj=utm +zone=31 +datum=WGS84 +units=m +no_defs")
    ('EPSG:4326', 'EPSG:32631')
    """
    if crs is None:
        raise InvalidArgumentError("no CRS given (None)")
    try:
        return _crs_text_of(crs_input_text(crs))
    except Exception as err:  # pyproj raises CRSError and friends
        raise InvalidArgumentError(f"not a usable CRS: {crs!r} ({err})") from err


def spatial_dims(obj: xr.DataArray | xr.Dataset) -> tuple[Hashable, Hashable]:
    """Return the names of the ``(y, x)`` dimensions of a chip.

    Raises
    ------
    InvalidArgumentError
        When it has no x/y (lat/lon) dimensions.

    Examples
    --------
    >>> spatial_dims(xr.DataArray(np.zeros((2, 2)), dims=("lat", "lon")))
    ('lat', 'lon')
    """
    x_dim, y_dim = xy_dims(obj)
    if y_dim is None or x_dim is None:
        msg = f"a chip needs y and x dimensions (or lat/lon), got dims {tuple(obj.dims)!r}"
        raise InvalidArgumentError(msg)
    return y_dim, x_dim


def transform_of(obj: xr.DataArray | xr.Dataset) -> Affine:
    """Return the affine transform of a chip (pixel ``(col, row)`` to map ``(x, y)``).

    Derived from the x/y coordinates (pixel centres); a rotated grid, or a
    chip without coordinates, uses rioxarray's cached ``GeoTransform``; where
    the coordinates are a window of that transform's grid, its exact numbers
    are kept (:func:`terrapipe.core.coords.transform_from_coords` with
    ``strict=True``).

    Raises
    ------
    InvalidArgumentError
        When neither coordinates nor a cached transform say where the chip
        is, or its coordinates are not finite.

    Examples
    --------
    >>> da = xr.DataArray(np.zeros((2, 1)), dims=("y", "x"), coords={"y": [15.0, 5.0], "x": [5.0]})
    >>> transform_of(da.rio.write_transform(Affine(10, 0, 0, 0, -10, 20)))[:6]
    (10.0, 0.0, 0.0, 0.0, -10.0, 20.0)
    """
    y_dim, x_dim = spatial_dims(obj)
    return transform_from_coords(obj, x_dim, y_dim, strict=True)


def _crs_of(obj: xr.DataArray | xr.Dataset) -> Any:
    import rioxarray  # noqa: F401  (registers .rio)

    if isinstance(obj, xr.Dataset):
        for var in obj.data_vars.values():
            crs = var.rio.crs
            if crs is not None:
                return crs
    return obj.rio.crs


def _georeferencing(var: xr.Variable) -> tuple[Any, Any]:
    """Return what places one variable: its grid-mapping name and its ``crs`` attribute (rioxarray reads both)."""
    return var.encoding.get("grid_mapping", var.attrs.get("grid_mapping")), var.attrs.get("crs")


def _check_one_grid(ds: xr.Dataset, y_dim: Hashable, x_dim: Hashable, shape: tuple[int, int]) -> None:
    """Refuse a Dataset whose variables are placed by different CRSs or transforms (each its own grid mapping).

    Variables that share one grid mapping (the usual Dataset, a chip of one
    file) cannot disagree and cost nothing more; where there are several,
    each one's CRS and transform are compared. A variable without a CRS
    takes the Dataset's, as before.
    """
    groups: dict[tuple[str, str], list[Hashable]] = {}
    for name, var in ds.data_vars.variables.items():  # Variables: no DataArray built per variable
        key = tuple(map(repr, _georeferencing(var)))
        groups.setdefault((key[0], key[1]), []).append(name)
    if len(groups) < 2:
        return
    placed: list[tuple[list[Hashable], str, Affine | None]] = []
    for names in groups.values():
        array = ds[names[0]]
        crs = array.rio.crs
        if crs is None:
            continue
        transform = None
        if y_dim in array.dims and x_dim in array.dims:
            try:
                transform = transform_from_coords(array, x_dim, y_dim, strict=True)
            except InvalidArgumentError:  # the Dataset's own transform says what is wrong
                transform = None
        placed.append((names, crs_text(crs), transform))
    for names, crs, transform in placed[1:]:
        first_names, first_crs, first_transform = placed[0]
        how = None
        if crs != first_crs and not same_crs(crs, first_crs):
            how = f"their CRSs differ ({first_crs} vs {crs})"
        elif transform is not None and first_transform is not None:
            how = grid_mismatch(GeoBox(shape, first_transform, first_crs), GeoBox(shape, transform, crs))
        if how is not None:
            msg = (
                f"the Dataset's variables are not on one grid: {_listed(first_names)} and {_listed(names)} "
                f"have their own grid mappings, and {how}; select one variable "
                f"(ds[{first_names[0]!r}]), or the variables that agree (ds[[...]]), "
                "or bring them onto one grid first (align_to each)"
            )
            raise GridMismatchError(msg)


def _listed(names: list[Hashable]) -> str:
    return ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def grid_of(obj: xr.DataArray | xr.Dataset) -> GeoBox:
    """Return the grid of an xarray chip as an odc-geo ``GeoBox`` (crs + affine + shape).

    Parameters
    ----------
    obj
        A DataArray or Dataset with x/y dimensions and a CRS (rioxarray's
        ``spatial_ref`` coordinate, as ``open_raster`` and ``chip`` write it).

    Returns
    -------
    odc.geo.geobox.GeoBox
        The grid.

    Raises
    ------
    InvalidArgumentError
        For an object without CRS or without x/y dimensions and coordinates.
    GridMismatchError
        For a Dataset whose variables have their own grid mappings (as
        ``open_zarr`` gives arrays that declare their own CRS) and disagree on
        the CRS or transform: select one variable.
    """
    return _grid_and_text(obj)[0]


def _grid_and_text(obj: xr.DataArray | xr.Dataset) -> tuple[GeoBox, str]:
    if not isinstance(obj, xr.DataArray | xr.Dataset):
        raise InvalidArgumentError(
            f"expected an xarray chip (DataArray or Dataset), got {type(obj).__name__}"
        )
    y_dim, x_dim = spatial_dims(obj)
    crs = _crs_of(obj)
    if crs is None:
        msg = (
            f"the chip (dims {tuple(obj.dims)!r}, source {redact_url(str(obj.encoding.get('source', '?')))!r}) "
            "has no CRS; "
            "set one with chip.rio.write_crs('EPSG:...')"
        )
        raise InvalidArgumentError(msg)
    shape = (int(obj.sizes[y_dim]), int(obj.sizes[x_dim]))
    if isinstance(obj, xr.Dataset):
        _check_one_grid(obj, y_dim, x_dim, shape)
    text = crs_text(crs)
    return GeoBox(shape, transform_of(obj), text), text


def grid_and_crs_text(obj: xr.DataArray | xr.Dataset) -> tuple[GeoBox, str]:
    """Return :func:`grid_of` a chip and :func:`crs_text` of its CRS, converting the CRS once.

    ``crs_text(grid_of(obj).crs)`` converts the CRS a second time (a CRS
    object is written out as WKT before its text is looked up); a chip's
    metadata needs both, so this returns the text the grid was built from,
    which is the same.

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> chip = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"),
    ...                     coords={"y": [15.0, 5.0], "x": [5.0, 15.0]}).rio.write_crs(32631)
    >>> grid, text = grid_and_crs_text(chip)
    >>> text, text == crs_text(grid.crs)
    ('EPSG:32631', True)
    """
    return _grid_and_text(obj)


def grid_bounds(
    transform: Affine | Sequence[float], shape: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Return ``(left, bottom, right, top)`` of a grid, for any affine transform.

    Examples
    --------
    >>> grid_bounds((10, 0, 100, 0, 10, 200), (2, 3))
    (100.0, 200.0, 130.0, 220.0)
    """
    a, b, c, d, e, f = (float(v) for v in tuple(transform)[:6])
    height, width = shape
    corners = ((0, 0), (width, 0), (0, height), (width, height))
    xs = [a * col + b * row + c for col, row in corners]
    ys = [d * col + e * row + f for col, row in corners]
    return min(xs), min(ys), max(xs), max(ys)


def describe_grid(grid: GeoBox) -> str:
    """Describe a grid in one line, for error messages.

    Examples
    --------
    >>> describe_grid(GeoBox((2, 3), Affine(10, 0, 0, 0, -10, 20), "EPSG:32631"))
    'EPSG:32631 shape (2, 3) transform (10, 0, 0, 0, -10, 20)'
    """
    coeffs = ", ".join(f"{v:.10g}" for v in tuple(grid.affine)[:6])
    return f"{crs_text(grid.crs)} shape {tuple(grid.shape.yx)} transform ({coeffs})"


def grid_mismatch(a: GeoBox, b: GeoBox, *, tolerance: float = 1e-3) -> str | None:
    """Say how two grids differ, or return ``None`` when they agree.

    Parameters
    ----------
    a, b
        The grids. Their CRSs agree when :func:`~terrapipe.core.crs.same_crs`
        says so (``EPSG:4326`` and ``OGC:CRS84`` differ only in axis order,
        which our x/y grids do not use).
    tolerance
        How far the grids' corners may lie apart, as a fraction of ``a``'s pixel size.

    Returns
    -------
    str or None
        ``"crs"``, ``"shape"`` or ``"transform"`` with the values, or ``None``.

    Examples
    --------
    >>> g = GeoBox((2, 3), Affine(10, 0, 0, 0, -10, 20), "EPSG:32631")
    >>> grid_mismatch(g, GeoBox((2, 3), Affine(10, 0, 0.001, 0, -10, 20), "EPSG:32631")) is None
    True
    >>> grid_mismatch(g, GeoBox((2, 3), Affine(10, 0, 5, 0, -10, 20), "EPSG:32631"))
    'transform differs: corners up to 5 map units apart (tolerance 0.01)'
    """
    first, second = crs_text(a.crs), crs_text(b.crs)
    if first != second and not same_crs(first, second):  # EPSG:4326 and OGC:CRS84 are one (x east)
        return f"crs differs ({first} vs {second})"
    if tuple(a.shape.yx) != tuple(b.shape.yx):
        return f"shape differs ({tuple(a.shape.yx)} vs {tuple(b.shape.yx)})"
    for grid in (a, b):  # NaN compares as "close" to anything
        if not all(np.isfinite(tuple(grid.affine)[:6])):
            return f"transform is not finite ({', '.join(f'{v:.10g}' for v in tuple(grid.affine)[:6])})"
    pixel = max(abs(a.affine.a), abs(a.affine.b), abs(a.affine.d), abs(a.affine.e))
    height, width = a.shape.yx
    corners = ((0, 0), (width, 0), (0, height), (width, height))
    diff = max(float(np.hypot(*np.subtract(a.affine @ corner, b.affine @ corner))) for corner in corners)
    if diff > tolerance * pixel:
        return (
            f"transform differs: corners up to {diff:.6g} map units apart (tolerance {tolerance * pixel:.6g})"
        )
    return None


#: How close (in pixels) to a pixel edge a point is taken to lie on it.
_EDGE_SLACK = 1e-6


def pixels_of(grid: GeoBox, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``(col, row)`` of the pixel holding each point (half-open cells), the same on every chip.

    A point on the edge between two chips lies, in floating point, a hair
    inside both or outside both: each chip's inverse transform rounds its own
    way (chips cut from one grid at 0.1 m lost a line of points between
    them, at 0.7 m counted one twice). Positions within :data:`_EDGE_SLACK`
    of a whole pixel are taken as on it, so both chips put the point on the
    same side.

    Examples
    --------
    >>> left = GeoBox((8, 8), Affine(0.1, 0, 500000.3, 0, -0.1, 4000000.9), "EPSG:32631")
    >>> right = GeoBox((8, 8), left.affine * Affine.translation(8, 0), "EPSG:32631")
    >>> edge = np.array([[500000.3 + 8 * 0.1, 4000000.85]])
    >>> int(pixels_of(left, edge)[0][0]), int(pixels_of(right, edge)[0][0])
    (8, 0)
    """
    if not len(xy):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    inverse = ~grid.affine
    cols_f, rows_f = inverse * (xy[:, 0], xy[:, 1])
    out = []
    for values in (np.asarray(cols_f, dtype=np.float64), np.asarray(rows_f, dtype=np.float64)):
        whole = np.round(values)
        snapped = np.where(np.abs(values - whole) <= _EDGE_SLACK, whole, values)
        out.append(np.floor(snapped).astype(np.int64))
    return out[0], out[1]
