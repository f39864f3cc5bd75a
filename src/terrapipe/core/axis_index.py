"""A cheap index for a raster's ``x`` and ``y`` coordinates: a window of it costs no pandas index.

:class:`AxisIndex` is the xarray index ``read_raster`` gives its ``x`` and
``y`` dimension coordinates. It holds the axis' pixel-centre values as one
read-only float64 array, computed once when the file is opened with the
formula ``read_raster`` always used (``origin + (i + 0.5) * pixel size``), and
a window of it (``isel`` by a slice, what every window read does) is a view of
that array: the values a user sees are today's, bit for bit, at any offset.

Why: ``DataArray.isel`` on a pandas-indexed coordinate builds a new
``pandas.Index`` and an ``IndexVariable`` around it for ``x`` and ``y`` at every
window, about 20 us of CPU per window read (more when interleaved with GDAL's
decoding), 2-3% of a cold 256² window: what kept ``read_raster`` windows
under 0.9x rasterio (docs/benchmarks/layers.md). xarray's own ``RangeIndex``
computes ``start + i * step`` with a start moved by every slice, which differs
from those values by an ulp here and there; rasterix's ``RasterIndex`` is the
same idea for an affine transform.

Everything else is pandas', as before: label selection (``sel``, with
``method``/``tolerance``), alignment and reindexing between two such indexes,
``concat``, ``roll`` and ``da.indexes`` go through a
:class:`xarray.indexes.PandasIndex` built (once per index, on first use) from
the same values, so they answer what they answered before; a window chosen by
an integer array, or a result of a join, is a ``PandasIndex`` again.

One difference remains: xarray aligns indexes of different types only where
their coordinates are equal. Adding or aligning a ``read_raster`` array (or a
window of it) and a pandas-indexed array whose ``x``/``y`` coordinates differ
raises xarray's ``AlignmentError`` ("conflicting indexes") where pandas
indexes on both sides were joined; :func:`with_pandas_indexes` turns the
indexes into pandas ones first (an ``xr.align`` of two ``read_raster`` arrays,
or of two equal grids, is as before).

Examples
--------
>>> import numpy as np, xarray as xr
>>> index = AxisIndex.from_grid(500000.0, 10.0, 5, "x")
>>> da = xr.DataArray(np.arange(5), dims="x", coords=xr.Coordinates.from_xindex(index))
>>> da.x.values
array([500005., 500015., 500025., 500035., 500045.])
>>> type(da.isel(x=slice(1, 3)).xindexes["x"]).__name__, da.isel(x=slice(1, 3)).x.values
('AxisIndex', array([500015., 500025.]))
>>> int(da.sel(x=500031.0, method="nearest"))
3
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray
from xarray import Index
from xarray.indexes import PandasIndex

__all__ = ["AxisIndex", "axis_values", "with_pandas_indexes"]

T = TypeVar("T", bound=xr.DataArray | xr.Dataset)


def axis_values(origin: float, pixel_size: float, size: int) -> NDArray[np.float64]:
    """Return the pixel-centre coordinates of one raster axis: ``origin + (i + 0.5) * pixel_size``.

    The formula ``read_raster`` has always used (``transform.c``/``transform.a``
    for x, ``transform.f``/``transform.e`` for y); the array is read-only.

    Examples
    --------
    >>> axis_values(0.0, -10.0, 3)
    array([ -5., -15., -25.])
    """
    values: NDArray[np.float64] = np.asarray(origin + (np.arange(size) + 0.5) * pixel_size, dtype=np.float64)
    values.flags.writeable = False
    return values


def _as_pandas(index: Index) -> Any:
    return index.pandas_index() if isinstance(index, AxisIndex) else index


class AxisIndex(Index):
    """A 1-D xarray index over fixed float coordinate values whose slices are views (no pandas index).

    Parameters
    ----------
    values
        The coordinate values (1-D; kept as a read-only array, not copied
        when already one).
    dim
        The dimension.
    name
        The coordinate's name (default: ``dim``).
    """

    def __init__(self, values: NDArray[Any], dim: Hashable, name: Hashable | None = None) -> None:
        if values.flags.writeable:
            values = values.copy()
            values.flags.writeable = False
        self.values = values
        self.dim = dim
        self.name = dim if name is None else name
        self._pandas: PandasIndex | None = None

    @classmethod
    def from_grid(cls, origin: float, pixel_size: float, size: int, dim: Hashable) -> AxisIndex:
        """Return the index of a raster axis (see :func:`axis_values`)."""
        return cls(axis_values(origin, pixel_size, size), dim)

    @classmethod
    def from_variables(cls, variables: Mapping[Any, xr.Variable], *, options: Mapping[str, Any]) -> AxisIndex:
        """Build the index from one 1-D variable (``set_xindex("x", AxisIndex)``)."""
        if len(variables) != 1:
            raise ValueError(f"AxisIndex takes one variable, got {len(variables)}")
        name, var = next(iter(variables.items()))
        if var.ndim != 1:
            raise ValueError(f"AxisIndex takes a 1-dimensional variable, {name!r} has {var.ndim} dimensions")
        return cls(np.asarray(var.values), var.dims[0], name)

    # -- the cheap part: windows --------------------------------------------
    def isel(self, indexers: Mapping[Any, int | slice | np.ndarray[Any, Any] | xr.Variable]) -> Index | None:
        """Index a window: by a slice, an AxisIndex over a view of the values; else as the pandas index does."""
        key = indexers[self.dim]
        if type(key) is slice:
            if key == slice(None):
                return self
            return type(self)(self.values[key], self.dim, self.name)
        return self.pandas_index().isel(indexers)

    def create_variables(
        self, variables: Mapping[Any, xr.Variable] | None = None
    ) -> dict[Hashable, xr.Variable]:
        """Return the coordinate variable: the read-only values, with the attributes and encoding of ``variables``."""
        attrs = encoding = None
        if variables is not None:
            var = variables.get(self.name)
            if var is not None:
                attrs, encoding = var.attrs, var.encoding
        return {self.name: xr.Variable((self.dim,), self.values, attrs, encoding, fastpath=True)}

    # -- the rest: pandas', on the same values -------------------------------
    def pandas_index(self) -> PandasIndex:
        """Return the :class:`~xarray.indexes.PandasIndex` of the same values (built once)."""
        index = self._pandas
        if index is None:
            index = PandasIndex(
                pd.Index(self.values, name=self.name), self.dim, coord_dtype=self.values.dtype
            )
            self._pandas = index
        return index

    def to_pandas_index(self) -> pd.Index:
        """Return the ``pandas.Index`` of the values (``da.indexes[...]``)."""
        return self.pandas_index().index

    def sel(self, labels: dict[Any, Any], method: Any = None, tolerance: Any = None) -> Any:
        """Select by label as a ``PandasIndex`` of the same values does."""
        return self.pandas_index().sel(labels, method=method, tolerance=tolerance)

    def equals(self, other: Index, *, exclude: frozenset[Hashable] | None = None) -> bool:
        """Whether ``other`` has the same dimension and values (a pandas index: as ``PandasIndex.equals``)."""
        if isinstance(other, AxisIndex):
            return self.dim == other.dim and (
                self.values is other.values or np.array_equal(self.values, other.values, equal_nan=True)
            )
        return bool(self.pandas_index().equals(other))

    def join(self, other: Index, how: Any = "inner") -> Any:
        """Join as pandas does; the result is a ``PandasIndex``."""
        return self.pandas_index().join(_as_pandas(other), how=how)

    def reindex_like(self, other: Index, method: Any = None, tolerance: Any = None) -> dict[Hashable, Any]:
        """Return the positions of ``other``'s labels, as pandas finds them."""
        return self.pandas_index().reindex_like(_as_pandas(other), method=method, tolerance=tolerance)

    @classmethod
    def concat(
        cls, indexes: Sequence[Any], dim: Hashable, positions: Iterable[Iterable[int]] | None = None
    ) -> Any:
        """Concatenate as ``PandasIndex`` does (the result is one)."""
        return PandasIndex.concat([_as_pandas(i) for i in indexes], dim, positions)

    def roll(self, shifts: Mapping[Any, int]) -> Any:
        """Roll as a ``PandasIndex`` does (the result is one)."""
        return self.pandas_index().roll(shifts)

    def rename(self, name_dict: Mapping[Any, Hashable], dims_dict: Mapping[Any, Hashable]) -> AxisIndex:
        """Return the index under new coordinate and dimension names."""
        if self.name not in name_dict and self.dim not in dims_dict:
            return self
        return type(self)(self.values, dims_dict.get(self.dim, self.dim), name_dict.get(self.name, self.name))

    def _copy(self, deep: bool = True, memo: dict[int, Any] | None = None) -> AxisIndex:
        return type(self)(self.values.copy() if deep else self.values, self.dim, self.name)

    def __getitem__(self, indexer: Any) -> Any:
        if type(indexer) is slice:
            return type(self)(self.values[indexer], self.dim, self.name)
        return self.pandas_index()[indexer]

    def __getstate__(self) -> dict[str, Any]:
        return {"values": self.values, "dim": self.dim, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        values = np.asarray(state["values"])
        values.flags.writeable = False  # unpickled, it is writeable (and the coordinate variable's array too)
        self.values = values
        self.dim = state["dim"]
        self.name = state["name"]
        self._pandas = None

    def __repr__(self) -> str:
        return f"AxisIndex({self.dim!r}, size={self.values.size})"

    def _repr_inline_(self, max_width: int) -> str:
        return "AxisIndex"


def with_pandas_indexes(obj: T) -> T:
    """Return ``obj`` with each :class:`AxisIndex` replaced by the pandas index of the same values.

    The values and everything else stay as they are; an object without one is
    returned as is.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> index = AxisIndex.from_grid(0.0, 1.0, 3, "x")
    >>> da = xr.DataArray(np.arange(3), dims="x", coords=xr.Coordinates.from_xindex(index))
    >>> type(with_pandas_indexes(da).xindexes["x"]).__name__
    'PandasIndex'
    """
    pandas = {
        name: index.pandas_index() for name, index in obj.xindexes.items() if isinstance(index, AxisIndex)
    }
    if not pandas:
        return obj
    variables: dict[Hashable, xr.Variable] = {}
    for name, index in pandas.items():
        variables.update(index.create_variables({name: obj[name].variable}))
    return cast(T, obj.assign_coords(xr.Coordinates(variables, indexes=pandas)))
