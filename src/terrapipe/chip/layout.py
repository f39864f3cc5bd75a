"""Storage block layout of xarray objects: which regions decode as one unit.

For each array (data variable, or coordinate that spans a sized dimension)
this module finds, along every sized dimension, the edges of the blocks that
are read as a whole:

1. ``variable.encoding["preferred_chunks"]``: xarray's convention for the
   storage chunks, set by the Zarr backend (Zarr chunks or shards), by
   rioxarray (COG tiles) and by terrapipe's readers;
2. the dask chunks when the array is a dask array; with both, only the edges
   the two layouts share (a dask chunk decodes every storage chunk it touches,
   so the unit decoded once is made of whole chunks of both layouts);
3. nothing: arrays already in memory are cut as views without any reading,
   and lazily-indexed arrays with no known layout get blocks sized from a
   byte budget (:func:`auto_edges`).

It also finds each array's nodata value (:func:`nodata_of`).

Examples
--------
>>> import numpy as np, xarray as xr
>>> da = xr.DataArray(np.zeros((4, 10)), dims=("y", "x"))
>>> da.encoding["preferred_chunks"] = {"y": 2, "x": 4}
>>> {d: e.tolist() for d, e in storage_edges(da.variable).items()}
{'y': [0, 2, 4], 'x': [0, 4, 8, 10]}
>>> read_mode(da.variable)
'memory'
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import xarray as xr

from terrapipe._compat import variable_in_memory
from terrapipe.chip.dask_source import dask_blocks, plain_source
from terrapipe.chip.plan import IntArray, block_edges, common_edges
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.redact import redact_url
from terrapipe.io.raster_array import direct_blocks
from terrapipe.io.zarr_direct import direct_zarr

__all__ = [
    "ArraySpec",
    "ReadMode",
    "auto_edges",
    "describe_arrays",
    "nodata_of",
    "read_mode",
    "storage_edges",
]

ReadMode = Literal["memory", "dask", "lazy"]


def read_mode(variable: xr.Variable) -> ReadMode:
    """Return how a variable's data is read: already in ``memory``, a ``dask`` array, or ``lazy`` backend."""
    if variable.chunks is not None:
        return "dask"
    if variable_in_memory(variable):
        return "memory"
    return "lazy"


def storage_edges(variable: xr.Variable) -> dict[Hashable, IntArray]:
    """Return the block edges known for a variable, per dimension (dims with no known layout are absent).

    Examples
    --------
    >>> import dask.array
    >>> var = xr.Variable(("x",), dask.array.zeros(10, chunks=3))
    >>> var.encoding["preferred_chunks"] = {"x": 6}
    >>> {d: e.tolist() for d, e in storage_edges(var).items()}
    {'x': [0, 6, 10]}

    Lengths per block that do not add up to the dimension's size were kept
    in ``encoding`` through an ``isel`` of the whole; they are ignored:

    >>> var.encoding["preferred_chunks"] = {"x": (4, 4, 4)}
    >>> {d: e.tolist() for d, e in storage_edges(var).items()}
    {'x': [0, 3, 6, 9, 10]}
    """
    out: dict[Hashable, IntArray] = {}
    sizes = dict(zip(variable.dims, variable.shape, strict=True))
    preferred = variable.encoding.get("preferred_chunks") or {}
    if not preferred and isinstance(variable.encoding.get("chunks"), tuple | list):
        chunks = variable.encoding["chunks"]
        if len(chunks) == variable.ndim:
            preferred = dict(zip(variable.dims, chunks, strict=True))
    for dim, chunk in preferred.items():
        if dim not in sizes:
            continue
        if not isinstance(chunk, int):
            chunk = tuple(int(v) for v in chunk)
            if sum(chunk) != sizes[dim]:
                continue  # stale: xarray keeps the encoding through isel/slicing, the lengths are the whole's
        out[dim] = block_edges(chunk, sizes[dim])
    if variable.chunks is not None:
        for dim, lengths in zip(variable.dims, variable.chunks, strict=True):
            dask_edges = block_edges(tuple(int(v) for v in lengths), sizes[dim])
            out[dim] = common_edges(out[dim], dask_edges) if dim in out else dask_edges
    return out


def auto_edges(size: int, window: int, stride: int, block_pixels: int) -> IntArray:
    """Block edges for a dimension with no known layout: multiples of the stride near ``block_pixels``.

    Examples
    --------
    >>> auto_edges(100, 10, 10, 35).tolist()
    [0, 30, 60, 90, 100]
    """
    length = max(stride, (block_pixels // stride) * stride, 1)
    return block_edges(length, size)


def nodata_of(variable: xr.Variable) -> float | int | None:
    """Return the value marking missing pixels: ``_FillValue`` / ``nodata`` / ``missing_value``, else NaN for floats.

    A ``_FillValue`` that xarray already decoded (moved to ``encoding``) has
    been replaced by NaN in the data, so float data then uses NaN.

    Examples
    --------
    >>> nodata_of(xr.Variable("x", np.zeros(3, "uint16"), attrs={"_FillValue": 0}))
    0
    >>> nodata_of(xr.Variable("x", np.zeros(3, "float32")))
    nan
    >>> nodata_of(xr.Variable("x", np.zeros(3, "uint8"))) is None
    True
    """
    for key in ("_FillValue", "nodata", "missing_value"):
        value = variable.attrs.get(key)
        if value is not None:
            return _scalar(value)
    if np.issubdtype(variable.dtype, np.floating) or np.issubdtype(variable.dtype, np.complexfloating):
        return float("nan")
    return None


def _scalar(value: Any) -> float | int:
    value = np.asarray(value).ravel()[0].item()
    if isinstance(value, float) and math.isnan(value):
        return float("nan")
    return value  # type: ignore[no-any-return]


@dataclass(eq=False)
class ArraySpec:
    """One array of a source element that windows cut: a data variable or a coordinate on a sized dim.

    Attributes
    ----------
    name
        Variable name (the DataArray's name, possibly ``None``, for its data).
    variable
        The (lazy) variable.
    is_coord
        Whether it is a non-index coordinate.
    axes
        For each plan axis, the axis of ``variable`` holding it, or ``None``.
    edges
        For each plan axis the variable has, its block edges.
    mode
        How it is read (:func:`read_mode`).
    nodata
        The value marking missing pixels, or ``None``.
    direct
        A fast block reader: the chunk decoder of local Zarr arrays
        (:func:`~terrapipe.io.zarr_direct.direct_zarr`), the chunk reader of
        dask graphs that are not plain reads
        (:class:`~terrapipe.chip.dask_source.DaskBlocks`), or ``None``.
    known
        The block edges known from the storage layout (:func:`storage_edges`).
    """

    name: Hashable
    variable: xr.Variable
    is_coord: bool
    axes: tuple[int | None, ...]
    edges: tuple[IntArray | None, ...]
    mode: ReadMode
    nodata: float | int | None
    direct: Any = None
    known: dict[Hashable, IntArray] = field(default_factory=dict)

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return int(self.variable.dtype.itemsize)

    def full_key(self) -> list[slice]:
        """Return a key that selects everything (to fill in the sized axes)."""
        return [slice(None)] * self.variable.ndim


def describe_arrays(
    obj: xr.DataArray | xr.Dataset,
    dims: Sequence[Hashable],
    *,
    window: Mapping[Hashable, int],
    stride: Mapping[Hashable, int],
    block_bytes: int,
    nodata: float | int | None = None,
) -> tuple[list[ArraySpec], dict[Hashable, IntArray]]:
    """Describe the arrays a chipper reads and the block edges its windows are grouped by.

    Parameters
    ----------
    obj
        The source element.
    dims
        The sized dimensions, in plan order.
    window, stride
        Window length and stride per sized dimension.
    block_bytes
        Target bytes of an automatic block (arrays with no known layout).
    nodata
        Override of every data variable's nodata value.

    Returns
    -------
    arrays, edges
        The arrays that span at least one sized dimension (data variables
        first), and the grouping edges per sized dimension (from the largest
        data variable that has the dimension).

    Raises
    ------
    InvalidArgumentError
        When a sized dimension is not a dimension of ``obj``.
    """
    missing = [d for d in dims if d not in obj.dims]
    if missing:
        msg = (
            f"window dimension(s) {missing!r} are not dimensions of the input (which has {tuple(obj.dims)!r})"
        )
        raise InvalidArgumentError(msg)
    dim_set = set(dims)
    coords: Any = obj.coords
    if isinstance(obj, xr.DataArray):
        data_vars: list[tuple[Hashable, xr.Variable]] = [(obj.name, obj.variable)]
    else:
        data_vars = [(name, obj[name].variable) for name in obj.data_vars]
    candidates = [(name, var, False) for name, var in data_vars]
    candidates += [
        (name, coords[name].variable, True)
        for name in coords
        if name not in obj.xindexes and coords[name].ndim
    ]
    arrays: list[ArraySpec] = []
    for name, var, is_coord in candidates:
        if not dim_set.intersection(var.dims):
            continue
        mode = read_mode(var)
        direct: Any = None
        if mode == "dask":
            # A plain store read is read from the store (as with chunks=None); any other graph
            # has its chunks computed per block from its own graph (see chip.dask_source).
            plain = plain_source(var)
            if plain is not None:
                var, mode = plain, read_mode(plain)
            else:
                direct = dask_blocks(var, _source_of(var))
        known = storage_edges(var)
        axes = tuple(var.dims.index(d) if d in var.dims else None for d in dims)
        edges: list[IntArray | None] = []
        for dim, axis in zip(dims, axes, strict=True):
            if axis is None:
                edges.append(None)
            elif dim in known:
                edges.append(known[dim])
            else:
                edges.append(None)  # filled below once the grouping edges are known
        value = nodata if (nodata is not None and not is_coord) else nodata_of(var)
        if mode == "lazy":
            direct = direct_zarr(var)
            if direct is None:  # a read_raster window: its RasterArray read without xarray's wrappers
                direct = direct_blocks(var)
        arrays.append(ArraySpec(name, var, is_coord, axes, tuple(edges), mode, value, direct, known))
    grouping = _grouping_edges(obj, dims, arrays, window=window, stride=stride, block_bytes=block_bytes)
    for spec in arrays:
        spec.edges = tuple(
            None if axis is None else (e if e is not None else grouping[dim])
            for dim, axis, e in zip(dims, spec.axes, spec.edges, strict=True)
        )
    return arrays, grouping


def _source_of(variable: xr.Variable) -> str:
    """Return the store a variable comes from, as errors show it (``scheme://host/path``), or ``""``."""
    source = variable.encoding.get("source")
    return repr(redact_url(str(source))) if source else ""


def _grouping_edges(
    obj: xr.DataArray | xr.Dataset,
    dims: Sequence[Hashable],
    arrays: Sequence[ArraySpec],
    *,
    window: Mapping[Hashable, int],
    stride: Mapping[Hashable, int],
    block_bytes: int,
) -> dict[Hashable, IntArray]:
    ranked = sorted(
        (a for a in arrays if not a.is_coord),
        key=lambda a: -int(np.prod(a.variable.shape, dtype=np.int64)) * a.itemsize,
    )
    out: dict[Hashable, IntArray] = {}
    for dim in dims:
        for spec in ranked:
            axis = spec.axes[list(dims).index(dim)]
            if axis is not None and spec.mode != "memory" and dim in spec.known:
                out[dim] = spec.known[dim]
                break
    if len(out) == len(dims):
        return out
    # No known layout along some dims: blocks of about ``block_bytes``.
    primary = ranked[0] if ranked else None
    other_px = 1
    itemsize = 8
    if primary is not None:
        itemsize = primary.itemsize
        other_px = int(
            np.prod(
                [n for ax, n in enumerate(primary.variable.shape) if ax not in primary.axes],
                dtype=np.int64,
            )
        )
    free = [d for d in dims if d not in out]
    pixels = max(1, block_bytes // max(1, itemsize * other_px))
    per_dim = max(1, round(pixels ** (1.0 / len(free))))
    sizes = dict(obj.sizes)
    for dim in free:
        out[dim] = auto_edges(int(sizes[dim]), int(window[dim]), int(stride[dim]), per_dim)
    return out
