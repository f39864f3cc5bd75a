"""``mosaic``: reduce a cube along a dimension (usually time), skipping nodata.

:func:`mosaic_array` reduces one DataArray; the :class:`Mosaic` stage maps
it over a pipe of cubes. Pixels equal to the cube's nodata (``attrs["nodata"]``
/ ``_FillValue``, NaN for floats) never win: ``"first"`` takes the first valid
value along the dimension (the usual way to fill clouds or swath gaps from
the next scene), ``"last"`` the last, ``"max"``/``"min"``/``"median"``/
``"mean"`` reduce over the valid values only. A pixel with no valid value
gets nodata. Integer cubes stay integer (``median``/``mean`` are rounded),
nodata and CRS are kept, and the result stays lazy when the input is.

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


def _valid(cube: xr.DataArray, nodata: Any) -> xr.DataArray:
    is_float = np.issubdtype(cube.dtype, np.floating)
    valid = cube.notnull() if is_float else xr.ones_like(cube, dtype=bool)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        valid = valid & (cube != nodata)
    return valid


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
    fill = nodata if nodata is not None else (np.nan if is_float else 0)
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
            info = np.iinfo(cube.dtype) if np.issubdtype(cube.dtype, np.integer) else None
            neutral = (info.min if method == "max" else info.max) if info is not None else False
            out = getattr(cube.where(valid, neutral), method)(dim)
        out = _where(valid.any(dim), out, fill, keep_attrs=True)
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
