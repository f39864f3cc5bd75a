"""``mosaic``: reduce a cube along a dimension (usually time), skipping nodata.

:func:`mosaic_array` reduces one DataArray; the :class:`Mosaic` stage maps
it over a pipe of cubes. Pixels equal to the cube's nodata (``attrs["nodata"]``
/ ``_FillValue``, NaN for floats) never win: ``"first"`` takes the first valid
value along the dimension (the usual way to fill clouds or swath gaps from
the next scene), ``"last"`` the last, ``"max"``/``"min"``/``"median"``/
``"mean"`` reduce over the valid values only. A pixel with no valid value
gets nodata. Integer cubes stay integer: their ``median``/``mean`` are
computed exactly in integers and rounded half to even, whatever the dtype
(float64 holds integers only up to 2**53, float32 up to 2**24, so an int64,
uint64, int32 or uint32 cube through floats would change values), and a
nodata given as a float (``0.0``) is compared and filled as the cube's own
integer. Nodata and CRS are kept, and the result stays lazy when the input is.

Examples
--------
>>> import numpy as np, xarray as xr
>>> cube = xr.DataArray(np.array([[0, 5, 0], [7, 6, 0]], dtype="uint16"), dims=("time", "x"),
...                     attrs={"nodata": 0})
>>> mosaic_array(cube, method="first").values.tolist()
[7, 5, 0]
>>> mosaic_array(cube, method="max").values.tolist(), mosaic_array(cube, method="median").dtype.name
([7, 6, 0], 'uint16')
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import xarray as xr

from terrapipe.core.checks import check_name
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.stac.keywords import renamed_source

__all__ = ["METHODS", "Mosaic", "MosaicMethod", "mosaic_array"]

MosaicMethod = Literal["first", "last", "max", "min", "median", "mean"]
METHODS: tuple[str, ...] = ("first", "last", "max", "min", "median", "mean")


def _where(cond: Any, x: Any, y: Any, **kwargs: Any) -> xr.DataArray:
    result: xr.DataArray = xr.where(cond, x, y, **kwargs)  # type: ignore[no-untyped-call]
    return result


def _nodata(cube: xr.DataArray) -> Any:
    for key in ("nodata", "_FillValue"):
        if cube.attrs.get(key) is not None:
            return cube.attrs[key]
    return cube.encoding.get("_FillValue")


def _integer_nodata(nodata: Any, dtype: np.dtype[Any]) -> tuple[Any, bool]:
    """``(nodata as a scalar of the integer dtype, whether any value can equal it)``.

    A nodata that is no value of the dtype (``0.5``, ``-1`` for ``uint8``,
    NaN) matches no pixel; ``0`` of the dtype then stands in as the fill
    (never used: every pixel is valid). Comparing and filling with the
    dtype's own scalar keeps int64/uint64 values exact (a float nodata would
    turn the cube into float64 on the way).
    """
    info = np.iinfo(dtype)
    try:
        number = float(nodata)
        whole = math.isfinite(number) and number.is_integer()
        exact = int(nodata) if isinstance(nodata, int | np.integer) else int(number) if whole else None
    except (TypeError, ValueError, OverflowError):
        exact = None
    if exact is None or not info.min <= exact <= info.max:
        return np.zeros((), dtype)[()], False
    return np.array(exact, dtype)[()], True


def _valid(cube: xr.DataArray, nodata: Any) -> xr.DataArray:
    is_float = np.issubdtype(cube.dtype, np.floating)
    valid = cube.notnull() if is_float else xr.ones_like(cube, dtype=bool)
    if nodata is None or (isinstance(nodata, float) and math.isnan(nodata)):
        return valid
    if np.issubdtype(cube.dtype, np.integer):
        nodata, matches = _integer_nodata(nodata, cube.dtype)
        if not matches:
            return valid
    elif (
        is_float
    ):  # in the cube's own type, as GDAL compares: float32(-9999.1) is the nodata of a float32 band
        with np.errstate(over="ignore"):
            own = np.asarray(nodata, dtype=cube.dtype)[()]
        if np.isfinite(own) or not np.isfinite(float(nodata)):
            nodata = own
    masked: xr.DataArray = valid & (cube != nodata)
    return masked


def _integer_mean(values: np.ndarray[Any, Any], valid: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Mean of the valid integers along the last axis, exact, rounded half to even (0 where none is valid).

    Each value splits into a high and a low 32-bit part summed in int64
    (exact for fewer than 2**30 values along the axis); the quotient and
    remainder by the count are taken part by part, so no sum overflows and
    no float rounds.
    """
    if values.dtype == np.uint64:
        high = (values >> np.uint64(32)).astype(np.int64)
        low = (values & np.uint64(0xFFFFFFFF)).astype(np.int64)
    else:
        wide = values.astype(np.int64)
        high, low = wide >> 32, wide & 0xFFFFFFFF
    count = np.maximum(valid.sum(axis=-1, dtype=np.int64), 1)
    q_high, r_high = np.divmod(np.where(valid, high, 0).sum(axis=-1), count)
    q_low, rest = np.divmod(r_high * 2**32 + np.where(valid, low, 0).sum(axis=-1), count)
    up = (2 * rest > count) | ((2 * rest == count) & (q_low % 2 == 1))
    if values.dtype == np.uint64:
        total = (q_high.astype(np.uint64) << np.uint64(32)) + q_low.astype(np.uint64) + up.astype(np.uint64)
    else:
        total = q_high * 2**32 + q_low + up.astype(np.int64)
    result: np.ndarray[Any, Any] = total.astype(values.dtype)
    return result


def _integer_median(values: np.ndarray[Any, Any], valid: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Median of the valid integers along the last axis, exact, rounded half to even (any value where none is valid).

    The two middle values' mean is ``(a >> 1) + (b >> 1) + (a & b & 1)``
    plus the rounding, which never leaves the dtype.
    """
    count = np.maximum(valid.sum(axis=-1, dtype=np.int64), 1)
    ordered = np.sort(np.where(valid, values, np.iinfo(values.dtype).max), axis=-1)
    a = np.take_along_axis(ordered, ((count - 1) // 2)[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(ordered, (count // 2)[..., None], axis=-1)[..., 0]
    one = np.ones((), values.dtype)[()]
    floor = (a >> one) + (b >> one) + (a & b & one)
    result: np.ndarray[Any, Any] = floor + ((a ^ b) & floor & one)
    return result


def _integer_reduce(cube: xr.DataArray, valid: xr.DataArray, dim: str, method: str) -> xr.DataArray:
    """Exact ``mean``/``median`` of an integer cube along ``dim`` (lazy where the cube is)."""
    if method == "mean" and cube.dtype.itemsize <= 4:  # the sum fits int64: one pass, in xarray's own ops
        count = valid.sum(dim, dtype=np.int64)
        total = cube.where(valid, np.zeros((), cube.dtype)[()]).sum(dim, dtype=np.int64)
        count = count.where(count > 0, 1)
        quotient, rest = total // count, total % count
        up = (2 * rest > count) | ((2 * rest == count) & (quotient % 2 == 1))
        mean: xr.DataArray = quotient + up.astype(np.int64)
        return mean
    if cube.chunks is not None:
        cube, valid = cube.chunk({dim: -1}), valid.chunk({dim: -1})
    function = _integer_mean if method == "mean" else _integer_median
    reduced: xr.DataArray = xr.apply_ufunc(
        function,
        cube,
        valid,
        input_core_dims=[[dim], [dim]],
        dask="parallelized",
        output_dtypes=[cube.dtype],
        keep_attrs=True,
    )
    return reduced


def mosaic_array(cube: xr.DataArray, *, dim: str = "time", method: MosaicMethod = "first") -> xr.DataArray:
    """Reduce ``cube`` along ``dim``, ignoring nodata (see the module doc).

    Parameters
    ----------
    cube
        The cube (e.g. from :func:`~terrapipe.stac.stack.stack_items`).
    dim
        Dimension to reduce.
    method
        ``"first"``, ``"last"``, ``"max"``, ``"min"``, ``"median"`` or ``"mean"``.
    source_dp
        The old name of ``source``: deprecated (a
        :class:`~terrapipe.core.errors.TerrapipeDeprecationWarning`), removed
        in the next release.

    Returns
    -------
    xarray.DataArray
        The cube without ``dim``; same dtype, attrs (nodata) and CRS.

    Raises
    ------
    InvalidArgumentError
        For a cube that is not a DataArray or not of a bool, int or float
        dtype, an unknown method, or a dimension the cube does not have or
        that has length 0.
    """
    if not isinstance(cube, xr.DataArray):
        hint = (
            "; pick a variable (ds['name']) or stack them (ds.to_dataarray('band'))"
            if isinstance(cube, xr.Dataset)
            else ""
        )
        raise InvalidArgumentError(f"mosaic takes an xarray.DataArray cube, got {type(cube).__name__}{hint}")
    dim = check_name(dim, "mosaic dim")
    if method not in METHODS:
        raise InvalidArgumentError(f"mosaic method must be one of {METHODS}, got {method!r}")
    if dim not in cube.dims:
        raise InvalidArgumentError(f"cannot mosaic along {dim!r}: the cube has dims {cube.dims}")
    if cube.sizes[dim] == 0:
        raise InvalidArgumentError(
            f"cannot mosaic along {dim!r}: the cube has no {dim} step (sizes {dict(cube.sizes)}); "
            "check that the search or stack found items"
        )
    if cube.dtype.kind not in "biuf":
        raise InvalidArgumentError(
            f"cannot mosaic a cube of dtype {cube.dtype}: mosaic takes bool, int or float values "
            "(complex, datetime, string and object cubes have no nodata rule); convert it first"
        )
    nodata = _nodata(cube)
    is_float = np.issubdtype(cube.dtype, np.floating)
    is_integer = np.issubdtype(cube.dtype, np.integer)
    fill = nodata if nodata is not None else (np.nan if is_float else 0)
    if is_integer:  # the cube's own scalar: a float fill would make the result float64 on the way
        fill = _integer_nodata(fill, cube.dtype)[0]
    valid = _valid(cube, nodata)
    if method in ("first", "last"):
        order = range(cube.sizes[dim]) if method == "first" else range(cube.sizes[dim] - 1, -1, -1)
        result: xr.DataArray | None = None
        taken: xr.DataArray | None = None
        for index in order:
            layer, ok = cube.isel({dim: index}), valid.isel({dim: index})
            if result is None or taken is None:
                result, taken = layer, ok
            else:
                result = _where(taken, result, layer, keep_attrs=True)
                taken = taken | ok
        assert result is not None
        assert taken is not None
        out = _where(taken, result, fill, keep_attrs=True)
    elif method in ("max", "min"):
        if is_float:
            out = getattr(cube.where(valid), method)(dim, skipna=True)
        else:
            info = np.iinfo(cube.dtype) if is_integer else None
            neutral = (info.min if method == "max" else info.max) if info is not None else False
            out = getattr(cube.where(valid, np.array(neutral, cube.dtype)[()]), method)(dim)
        out = _where(valid.any(dim), out, fill, keep_attrs=True)
    elif is_integer:
        out = _where(valid.any(dim), _integer_reduce(cube, valid, dim, method), fill, keep_attrs=True)
    else:
        any_valid = valid.any(dim)
        work = cube.astype(np.float64 if cube.dtype.itemsize > 4 else np.float32).where(valid)
        work = work.where(any_valid, 0.0)  # no all-NaN slices (numpy warns on them); replaced by fill below
        if method == "median" and work.chunks is not None:
            work = work.chunk({dim: -1})
        reduced = getattr(work, method)(dim, skipna=True)
        if not is_float:
            reduced = reduced.round()
        out = _where(any_valid, reduced, fill, keep_attrs=True)
    out = out.astype(cube.dtype).drop_vars(dim, errors="ignore")
    out.attrs = dict(cube.attrs)
    out.encoding = {k: v for k, v in cube.encoding.items() if k != "preferred_chunks"}
    preferred = cube.encoding.get("preferred_chunks")
    if isinstance(preferred, dict):
        out.encoding["preferred_chunks"] = {k: v for k, v in preferred.items() if k != dim}
    out.name = cube.name
    for name, coord in cube.coords.items():
        if dim not in coord.dims and name not in out.coords:
            out = out.assign_coords({name: coord})
    reduced_cube: xr.DataArray = out
    return reduced_cube


@register("mosaic")
class Mosaic(Stage[xr.DataArray]):
    """Mosaic each cube of the source pipe along ``dim`` (see :func:`mosaic_array`).

    Parameters
    ----------
    source
        Pipe of ``xarray.DataArray`` cubes.
    dim
        Dimension to reduce (``"time"``).
    method
        ``"first"``, ``"last"``, ``"max"``, ``"min"``, ``"median"`` or ``"mean"``.

    Raises
    ------
    InvalidArgumentError
        For an unknown method; when iterating, for an element that is not a
        DataArray or lacks ``dim``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, terrapipe as tp, terrapipe.stac
    >>> cube = xr.DataArray(np.array([[0, 2], [3, 4]], "uint8"), dims=("time", "x"), attrs={"nodata": 0})
    >>> [m.values.tolist() for m in tp.from_items([cube]).mosaic(method="first")]
    [[3, 2]]
    """

    stateless = True

    def __init__(
        self,
        source: IterDataPipe[xr.DataArray] | None = None,
        *,
        dim: str = "time",
        method: MosaicMethod = "first",
        source_dp: IterDataPipe[xr.DataArray] | None = None,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise InvalidArgumentError(f"mosaic method must be one of {METHODS}, got {method!r}")
        old = {} if source_dp is None else {"source_dp": source_dp}
        self.source = renamed_source("mosaic", source, old)
        self.dim = check_name(dim, "mosaic dim")
        self.method: MosaicMethod = method

    def __iter__(self) -> Iterator[xr.DataArray]:
        for cube in self.source:
            if not isinstance(cube, xr.DataArray):
                raise InvalidArgumentError(
                    f"mosaic takes xarray.DataArray elements, got {type(cube).__name__}"
                )
            self.stats.elements += 1
            yield mosaic_array(cube, dim=self.dim, method=self.method)

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]
