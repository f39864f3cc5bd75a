"""Cut chips out of region data: xarray objects identical to ``obj.isel(window)``, or arrays + GeoMeta.

:class:`ItemCutter` holds what is constant for one source element (its plan,
static variables, indexes, CRS and transform) and builds one chip per window
from the region arrays a :class:`~terrapipe.chip.reader.BlockReader` served.

Building an xarray object costs far more than slicing an array: ``isel`` on
a DataArray takes about 100 µs and even ``xr.DataArray(..., fastpath=True)``
about 15 µs, as much as decoding a 64² chip. So chips are assembled directly
from their parts (the direct constructors of :mod:`terrapipe._compat`): a ``Variable`` over a
view of the region with its own copies of the attributes and encoding, index
coordinates cached per window start, static coordinates shared with the
source as ``isel`` shares them, and view keys cached per offset inside the
region. That takes a few microseconds per chip and is checked in the tests to
be identical to ``obj.isel(window)`` and to the public constructors. Inputs
with indexes other than one-dimensional pandas indexes on the sized
dimensions use a generic path built on ``isel``.

Chip data are read-only and never share memory with another chip, nor with
a block or region that overlapping chips, the block cache, a later pass or
the source keep (nor with a user's own in-memory array), so
``torch.as_tensor(chip.values)`` (torch only warns for a read-only array)
followed by an in-place op changes that chip alone. A chip is a view of its
region only where the reader says the region's memory is that region's
alone (:class:`~terrapipe.chip.region.Region`: decoded for it, kept by no
one) and its window overlaps no other window cut from it (see
:meth:`ItemCutter.prepare`); everywhere else it is a copy of its window.
Writing into a chip itself raises; copy it (``chip.copy()``) to modify it.
Static variables (no sized dimension) and coordinates are shared with the
source, as ``isel`` shares them.

Examples
--------
>>> import numpy as np, xarray as xr
>>> from terrapipe.chip.plan import plan_windows
>>> da = xr.DataArray(np.arange(16).reshape(4, 4), dims=("y", "x"), coords={"y": [0, 1, 2, 3], "x": [0, 1, 2, 3]})
>>> plan = plan_windows({"y": 4, "x": 4}, {"y": 2, "x": 2})
>>> cutter = ItemCutter(da, plan, arrays_for(da, plan), boundary="drop")
>>> chip = cutter.cut([da.values], np.array([0, 0]), np.array([2, 2]))
>>> chip.equals(da.isel(y=slice(2, 4), x=slice(2, 4)))
True
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from operator import sub
from typing import Any, Literal

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import xarray as xr
from affine import Affine
from xarray.indexes import Index, PandasIndex

from terrapipe._compat import (
    calculate_dimensions,
    coord_names_of,
    dataarray_from,
    dataset_from,
    direct_construction_ok,
    own_attrs,
    own_encoding,
    variable_in_memory,
    variable_like,
    variables_of,
)
from terrapipe.chip.layout import ArraySpec, describe_arrays
from terrapipe.chip.plan import Boundary, WindowPlan
from terrapipe.chip.region import Region, exclusive_of
from terrapipe.core.coords import cached_transform, gdal_transform, time_name, transform_from_coords, xy_dims
from terrapipe.core.crs import same_crs
from terrapipe.core.errors import GridMismatchError, InvalidArgumentError
from terrapipe.core.redact import redact_url
from terrapipe.core.sample import GeoMeta, geo_meta, iso_times

__all__ = ["ItemCutter", "Output", "arrays_for", "crs_and_transform"]

Output = Literal["xarray", "numpy"]


def arrays_for(
    obj: xr.DataArray | xr.Dataset, plan: WindowPlan, *, block_bytes: int = 2**22
) -> list[ArraySpec]:
    """Describe the arrays of ``obj`` for ``plan`` (a shortcut used in examples and tests)."""
    window = {ax.dim: ax.window for ax in plan.axes}
    arrays, _ = describe_arrays(obj, plan.dims, window=window, stride=window, block_bytes=block_bytes)
    return arrays


def crs_and_transform(
    obj: xr.DataArray | xr.Dataset,
) -> tuple[str, Affine | None, Hashable | None, Hashable | None]:
    """Return ``(crs, transform, x_dim, y_dim)`` of an object (``""`` and ``None`` where unknown).

    The CRS comes from rioxarray (``obj.rio.crs``) as an authority code when
    it has one, else WKT. The transform is derived from the x/y coordinates
    (:func:`terrapipe.core.coords.transform_from_coords`); objects without x/y dimensions have none.
    """
    import rioxarray  # noqa: F401  (registers .rio)

    x_dim, y_dim = xy_dims(obj)
    crs = ""
    try:
        rio_crs = obj.rio.crs
    except Exception:  # rioxarray refuses odd inputs (and a Dataset of several grid mappings)
        rio_crs = _agreed_crs(obj)
    if rio_crs is not None:
        auth = rio_crs.to_authority()
        crs = f"{auth[0]}:{auth[1]}" if auth else rio_crs.to_wkt()
    transform = transform_from_coords(obj, x_dim, y_dim) if x_dim is not None and y_dim is not None else None
    return crs, transform, x_dim, y_dim


def _agreed_crs(obj: xr.DataArray | xr.Dataset) -> Any:
    """Return the CRS every data variable of a Dataset agrees on (``None``: none, or they differ).

    rioxarray's ``ds.rio.crs`` refuses such a Dataset ("Multiple grid
    mappings exist") even where the mappings spell one CRS two ways.
    """
    if not isinstance(obj, xr.Dataset):
        return None
    found = []
    for var in obj.data_vars.values():
        try:
            crs = var.rio.crs
        except Exception:  # this variable's mapping is unreadable: no agreement to speak of
            return None
        if crs is None:
            return None
        found.append(crs)
    if not found or not all(c == found[0] or same_crs(found[0], c) for c in found[1:]):
        return None
    return found[0]


class ItemCutter:
    """Build the chips of one source element (see the module doc).

    Parameters
    ----------
    obj
        The source element.
    plan
        Its window plan.
    arrays
        Its arrays (data variables, then coordinates on sized dimensions), in
        the order the region arrays come in.
    boundary
        The plan's boundary mode (``"pad"`` pads windows past the end).
    pad_value
        Fill value for padded data; default: the array's nodata, else NaN for
        floats and 0 for integers.
    output
        ``"xarray"`` (same type as ``obj``) or ``"numpy"`` (``(array, GeoMeta)``,
        or ``(dict of arrays, GeoMeta)`` for a Dataset).
    """

    def __init__(
        self,
        obj: xr.DataArray | xr.Dataset,
        plan: WindowPlan,
        arrays: Sequence[ArraySpec],
        *,
        boundary: Boundary = "drop",
        pad_value: float | int | None = None,
        output: Output = "xarray",
    ) -> None:
        self.obj = obj
        self.plan = plan
        self.arrays = list(arrays)
        self.output = output
        self.is_dataarray = isinstance(obj, xr.DataArray)
        self.dims = plan.dims
        self.window = np.array([ax.window for ax in plan.axes], dtype=np.int64)
        self.sizes = np.array([ax.size for ax in plan.axes], dtype=np.int64)
        self.may_pad = boundary != "drop" and bool(
            any(ax.n_windows and int(ax.starts[-1]) + ax.window > ax.size for ax in plan.axes)
        )
        self.pad_values = [self._pad_value(spec, pad_value) for spec in self.arrays]
        self._window_list = [int(w) for w in self.window]
        self._full_keys = [tuple([slice(None)] * spec.variable.ndim) for spec in self.arrays]
        self._placed_axes = [
            [(k, axis) for k, axis in enumerate(spec.axes) if axis is not None] for spec in self.arrays
        ]
        self.data_arrays = [i for i, spec in enumerate(self.arrays) if not spec.is_coord]
        # no two windows of the plan overlap (along an axis whose windows are apart, windows that
        # differ there are apart): a chip cut once from a region of its own may be a view of it
        self.windows_apart = all(bool(np.all(np.diff(ax.starts) >= ax.window)) for ax in plan.axes)
        self._view_keys: dict[tuple[int, ...], list[tuple[slice, ...]]] = {}
        self._index_cache: dict[tuple[int, int], tuple[Index, xr.Variable]] = {}
        self._xindexes: dict[Hashable, Index] = dict(obj.xindexes)
        self._statics = self._static_variables()
        self._static_indexes = {name: idx for name, idx in self._xindexes.items() if name in self._statics}
        self._indexed_axes = [(k, dim) for k, dim in enumerate(self.dims) if dim in self._xindexes]
        self._coord_order = list(variables_of(obj))
        self._fast = self._fast_path_ok()
        self._direct = self._fast and output == "xarray" and direct_construction_ok()
        self._data_template = obj.variable if isinstance(obj, xr.DataArray) else None
        if self._direct:
            self._coordinate_parts()
        self._ds_names = set(coord_names_of(obj)) if isinstance(obj, xr.Dataset) else set()
        self._ds_dims: dict[Hashable, int] | None = None
        if not self._fast and self.may_pad and output == "xarray":
            msg = (
                "boundary='pad' needs one-dimensional pandas indexes (or none) on the window dimensions "
                f"{self.dims!r} to extend their coordinates; use boundary='shift' or 'drop'"
            )
            raise InvalidArgumentError(msg)
        if output == "numpy":
            _refuse_grid_mappings_that_differ(obj)
        crs, transform, x_dim, y_dim = crs_and_transform(obj) if output == "numpy" else ("", None, None, None)
        # no transform (no x/y coordinates or GeoTransform: a curvilinear grid, 2-D lat/lon): the chips
        # have no place, so no CRS either; the identity transform in a real CRS placed them by their indexes
        self.crs = crs if transform is not None else ""
        self.transform = transform
        self._x_axis = self.dims.index(x_dim) if x_dim in self.dims else None
        self._y_axis = self.dims.index(y_dim) if y_dim in self.dims else None
        if output == "numpy" and transform is None and y_dim is not None and _refused_transform(obj):
            msg = (
                f"chip: an element of sizes {dict(obj.sizes)} has the GeoTransform {_stated_transform(obj)!r}, "
                "which is not six finite numbers with a pixel area, and no x/y coordinates to place it by, so "
                "its chips would have no place on the map; fix its georeferencing (da.rio.write_transform(...))"
            )
            raise InvalidArgumentError(msg)
        if output == "numpy" and transform is None and x_dim in obj.coords and y_dim in obj.coords:
            if min(obj.sizes[x_dim], obj.sizes[y_dim]) > 1:  # coordinates uneven or not finite: say which
                try:
                    transform_from_coords(obj, x_dim, y_dim, strict=True)
                except InvalidArgumentError as err:
                    raise InvalidArgumentError(f"chip: an element of sizes {dict(obj.sizes)}: {err}") from err
            msg = (
                f"chip: an element of sizes {dict(obj.sizes)} is one pixel wide or high and has no GeoTransform, "
                "so its chips' pixel size is unknown; write one with da.rio.write_transform(...)"
            )
            raise InvalidArgumentError(msg)
        source = obj.encoding.get("source")
        self.source_ids: tuple[str, ...] = (redact_url(str(source)),) if source else ()
        time_coord = time_name(obj)  # "time", else CF's time (ERA5's valid_time, WRF's XTIME along Time)
        self.time = _times(obj, time_coord) if output == "numpy" else None
        time_dims = obj.coords[time_coord].dims if time_coord is not None else ()
        self._time_axis = self.dims.index(time_dims[0]) if time_dims and time_dims[0] in self.dims else None
        spatial = tuple(int(obj.sizes[d]) if d is not None else 1 for d in (y_dim, x_dim))
        self._meta_shape: tuple[int, int] = (
            self._window_list[self._y_axis] if self._y_axis is not None else spatial[0],
            self._window_list[self._x_axis] if self._x_axis is not None else spatial[1],
        )
        t = transform if transform is not None else Affine.identity()
        self._coeffs = tuple(float(v) for v in (t.a, t.b, t.c, t.d, t.e, t.f))
        if output == "numpy" and transform is not None:
            self._check_georeferencing(obj)
        self._x_parts: dict[int, tuple[float, float, float]] = {}
        self._y_parts: dict[int, tuple[float, float, float]] = {}
        # numpy chips come with y and x as their last two axes, in that order (the GeoMeta's rows and
        # columns): an array stored (lon, lat) or (lon, band, lat) is given transposed (a view)
        self._yx_last = [
            _yx_last(spec.variable.dims, y_dim, x_dim) if output == "numpy" else None for spec in self.arrays
        ]
        self._window_gt = self._window_transform_setup() if output == "xarray" else None
        self._gt_cache: dict[tuple[int, int], dict[Hashable, xr.Variable]] = {}

    # -- set-up -----------------------------------------------------------
    def _extent(self, axis: int | None, spatial: int) -> int:
        """Pixels from the element's first row/column to the far edge of its last window along ``axis``."""
        if axis is None:
            return spatial
        ax = self.plan.axes[axis]
        last = int(ax.starts[-1]) + ax.window if ax.n_windows else 0
        return max(int(ax.size), last)

    def _check_georeferencing(self, obj: xr.DataArray | xr.Dataset) -> None:
        """Refuse a transform whose chips would carry NaN/inf georeferencing (what :func:`geo_meta` refuses).

        Checked once per element over the whole extent its windows cover
        (padded ones included): every window's transform and bounds lie
        between those corners, so the per-window metadata built in
        :meth:`meta` without :func:`geo_meta` is finite too.
        """
        shape = (
            self._extent(self._y_axis, self._meta_shape[0]),
            self._extent(self._x_axis, self._meta_shape[1]),
        )
        try:
            geo_meta(self.crs, self._coeffs, shape)
        except InvalidArgumentError as err:
            raise InvalidArgumentError(f"chip: an element of sizes {dict(obj.sizes)}: {err}") from err

    def _not_finite(self, what: str, values: tuple[float, ...]) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"chip: a window's {what} {values} is not finite (transform {self._coeffs}); check the source's "
            "georeferencing (its GeoTransform or x/y coordinates)"
        )

    @staticmethod
    def _pad_value(spec: ArraySpec, pad_value: float | int | None) -> Any:
        dtype = spec.variable.dtype
        value: Any = pad_value
        if value is None and not spec.is_coord:
            value = spec.nodata
        if value is None:
            value = float("nan") if np.issubdtype(dtype, np.inexact) else 0
        if isinstance(value, float) and math.isnan(value) and not np.issubdtype(dtype, np.inexact):
            if spec.is_coord:
                return 0
            msg = (
                f"cannot pad {spec.name!r} ({dtype}) with NaN; pass an integer pad_value= or give the "
                "array a nodata value"
            )
            raise InvalidArgumentError(msg)
        return value

    def _static_variables(self) -> dict[Hashable, xr.Variable]:
        """Variables that no window dimension touches: loaded once, shared by every chip."""
        sized = set(self.dims)
        cut = {spec.name for spec in self.arrays if spec.is_coord}
        out: dict[Hashable, xr.Variable] = {}
        obj = self.obj
        variables = variables_of(obj)
        for name, var in variables.items():
            if name in cut or (name in obj.xindexes and set(var.dims) & sized):
                continue
            if isinstance(obj, xr.Dataset) and name in obj.data_vars and set(var.dims) & sized:
                continue
            out[name] = var if variable_in_memory(var) else var.compute()
        return out

    def _coordinate_parts(self) -> None:
        """Sort the variables of a chip by how :meth:`_xarray_direct` makes them.

        Static variables are shared (as ``isel`` shares them), index
        coordinates of window dimensions come from the window's index (cached
        per window start), and arrays on window dimensions wrap the window's
        view. A DataArray's own data variable is not among them.
        """
        cut = {spec.name: i for i, spec in enumerate(self.arrays) if spec.is_coord or not self.is_dataarray}
        axes = {dim: k for k, dim in self._indexed_axes}
        self._variables_proto: dict[Hashable, Any] = {
            name: self._statics.get(name) for name in self._coord_order
        }
        statics = [name for name in self._coord_order if name in self._statics]
        self._index_parts = [(name, axes[name]) for name in self._coord_order if name in axes]
        self._cut_parts = [(name, cut[name]) for name in self._coord_order if name in cut]
        placed = len(statics) + len(self._index_parts) + len(self._cut_parts)
        if placed != len(self._variables_proto):  # not expected: the generic path handles it
            self._direct = False

    def _fast_path_ok(self) -> bool:
        indexes = self.obj.xindexes
        for dim in self.dims:
            names = [name for name, idx in indexes.items() if dim in indexes.get_all_dims(name)]
            if not names:
                continue
            index = indexes[dim]
            if names != [dim] or type(index) is not PandasIndex or isinstance(index.index, pd.MultiIndex):
                return False
        return True

    # -- cutting ------------------------------------------------------------
    def prepare(self, regions: Sequence[np.ndarray], *, cut_once: bool = False) -> Region:
        """Mark a group's region arrays read-only, and say which ones its chips may be views of.

        An array may be shared by its chips (each a view of its own window)
        only where the reader says its memory is the region's alone
        (``regions`` a :class:`~terrapipe.chip.region.Region` with that array
        ``exclusive``), the caller cuts each window of the region once
        (``cut_once``: the chipper's pass; a slicer or sampler that may cut a
        window twice does not say so) and no two windows of the plan overlap
        (:attr:`windows_apart`). Every other chip is a copy of its window
        (:meth:`data_views`).
        """
        shared = cut_once and self.windows_apart
        out = []
        for region in regions:
            view = region.view()
            view.flags.writeable = False
            out.append(view)
        return _Prepared(out, [shared and alone for alone in exclusive_of(regions)])

    def data_views(
        self, regions: Sequence[np.ndarray], region_start: Sequence[int], start: Sequence[int]
    ) -> tuple[list[np.ndarray], bool]:
        """Return each array's window (read-only, padded where needed) and whether any padding happened.

        ``regions`` come from :meth:`prepare`; ``region_start`` and ``start``
        are the pixel offsets of the region and of the window along the plan
        axes. A window is a view of a region array :meth:`prepare` marked
        ``exclusive`` (no one else sees that memory), else a copy: a region
        that other windows, the block cache, a later pass or the user's own
        array keep must never change when a consumer writes into a chip
        through ``torch.as_tensor`` (torch only warns for a read-only array).
        """
        offset = tuple(map(sub, start, region_start))
        keys = self._view_keys.get(offset)
        if keys is None:
            keys = self._keys_at(offset)
        # only what prepare() allowed: a reader's Region says whose its memory is, not how it is cut
        shared = regions.exclusive if isinstance(regions, _Prepared) else [False] * len(regions)
        out = [region[key] for region, key in zip(regions, keys, strict=True)]
        if not self.may_pad:
            return [view if alone else _owned(view) for view, alone in zip(out, shared, strict=True)], False
        padded = False
        window = self._window_list
        for i, view in enumerate(out):
            shape = list(view.shape)
            for k, axis in self._placed_axes[i]:
                shape[axis] = window[k]
            if tuple(shape) != view.shape:
                padded = True
                filled = np.full(shape, self.pad_values[i], dtype=view.dtype)
                filled[tuple(slice(0, n) for n in view.shape)] = view
                filled.flags.writeable = False
                out[i] = filled
            elif not shared[i]:
                out[i] = _owned(view)
        return out, padded

    def _keys_at(self, offset: tuple[int, ...]) -> list[tuple[slice, ...]]:
        """Index keys of each array's window at ``offset`` inside its region (cached: offsets repeat per group)."""
        window = self._window_list
        keys = []
        for full, placed in zip(self._full_keys, self._placed_axes, strict=True):
            key = list(full)
            for k, axis in placed:
                key[axis] = slice(offset[k], offset[k] + window[k])
            keys.append(tuple(key))
        if len(self._view_keys) > 65536:
            self._view_keys.clear()
        self._view_keys[offset] = keys
        return keys

    def missing_fraction(self, views: Sequence[np.ndarray], start: Sequence[int]) -> float:
        """Fraction of the window's data values that are nodata, NaN or padding."""
        missing = 0
        total = 0
        valid = np.minimum(self.sizes - start, self.window).clip(min=0)
        for i in self.data_arrays:
            spec, view = self.arrays[i], views[i]
            total += view.size
            inside = view
            if self.may_pad:
                key = [slice(None)] * view.ndim
                for k, axis in enumerate(spec.axes):
                    if axis is not None:
                        key[axis] = slice(0, int(valid[k]))
                inside = view[tuple(key)]
                missing += view.size - inside.size
            nodata = spec.nodata
            if nodata is None:
                continue
            if isinstance(nodata, float) and math.isnan(nodata):
                if np.issubdtype(inside.dtype, np.inexact):
                    missing += int(np.count_nonzero(np.isnan(inside)))
            else:
                missing += int(np.count_nonzero(inside == nodata))
        return missing / total if total else 0.0

    def cut(self, regions: Sequence[np.ndarray], region_start: Sequence[int], start: Sequence[int]) -> Any:
        """Build the chip of the window starting at ``start`` from its group's region arrays."""
        views, _ = self.data_views(self.prepare(regions), region_start, start)
        return self.build(views, start)

    def build(self, views: Sequence[np.ndarray], start: Sequence[int]) -> Any:
        """Build the output element from window views (from :meth:`data_views`)."""
        if self.output == "numpy":
            return self._numpy(views, start)
        if self._direct:
            chip = self._xarray_direct(views, start)
        elif self._fast:
            chip = self._xarray_fast(views, start)
        else:
            chip = self._xarray_generic(views, start)
        return chip if self._window_gt is None else self._placed(chip, start)

    def _window_transform_setup(
        self,
    ) -> tuple[tuple[tuple[Hashable, Affine], ...], int | None, int | None] | None:
        """``((grid-mapping name, transform), ...), x axis, y axis)`` when chips must carry their own ``GeoTransform``.

        An array placed by the ``GeoTransform`` of its grid-mapping coordinate, with
        no x/y coordinates (rioxarray writes it so for a bare numpy array), keeps
        that coordinate in every chip as it is: each chip would say it is at the
        array's origin. Such chips get the window's ``GeoTransform`` instead.
        """
        obj = self.obj
        x_dim, y_dim = xy_dims(obj)
        if x_dim is None or y_dim is None or x_dim in obj.coords or y_dim in obj.coords:
            return None
        if x_dim not in self.dims and y_dim not in self.dims:
            return None
        stated = _stated_transform(obj)
        if not stated or cached_transform(obj) is None:
            return None
        # every grid-mapping coordinate moves by its own transform: a Dataset's variables may differ
        placements = tuple(
            (name, transform)
            for name in obj.coords
            if (transform := gdal_transform(obj.coords[name].attrs.get("GeoTransform"))) is not None
        )
        if not placements:
            return None
        x_axis = self.dims.index(x_dim) if x_dim in self.dims else None
        y_axis = self.dims.index(y_dim) if y_dim in self.dims else None
        return placements, x_axis, y_axis

    def _placed(self, chip: Any, start: Sequence[int]) -> Any:
        """Return ``chip`` with its grid-mapping coordinate's ``GeoTransform`` moved to its window."""
        assert self._window_gt is not None
        placements, x_axis, y_axis = self._window_gt
        xoff = int(start[x_axis]) if x_axis is not None else 0
        yoff = int(start[y_axis]) if y_axis is not None else 0
        variables = self._gt_cache.get((xoff, yoff))
        if variables is None:
            variables = {}
            for name, t in placements:
                moved = t * Affine.translation(xoff, yoff)
                source = self.obj.coords[name].variable
                attrs = dict(source.attrs)
                attrs["GeoTransform"] = " ".join(repr(float(v)) for v in moved.to_gdal())
                variables[name] = xr.Variable(source.dims, source.data, attrs, source.encoding)
            if len(self._gt_cache) > 4096:
                self._gt_cache.clear()
            self._gt_cache[(xoff, yoff)] = variables
        return chip.assign_coords(variables)

    # -- numpy + GeoMeta --------------------------------------------------
    def meta(self, start: Sequence[int]) -> GeoMeta:
        """Return the :class:`GeoMeta` of the window starting at ``start``."""
        xoff = start[self._x_axis] if self._x_axis is not None else 0
        yoff = start[self._y_axis] if self._y_axis is not None else 0
        time = self.time
        if self._time_axis is not None and isinstance(time, tuple):
            first = start[self._time_axis]
            time = time[first : first + self._window_list[self._time_axis]]
        a, b, c, d, e, f = self._coeffs
        if b != 0.0 or d != 0.0:
            transform = (a, b, c + a * xoff + b * yoff, d, e, f + d * xoff + e * yoff)
            return geo_meta(self.crs, transform, self._meta_shape, time=time, source_ids=self.source_ids)
        # rectilinear: x and y parts are separable, computed once per window start
        xs = self._x_parts.get(xoff)
        if xs is None:
            left = c + a * xoff
            right = left + a * self._meta_shape[1]
            if not math.isfinite(left + right) and not (math.isfinite(left) and math.isfinite(right)):
                raise self._not_finite("x edges", (left, right))
            xs = self._x_parts[xoff] = (left, min(left, right), max(left, right))
            if len(self._x_parts) > 65536:
                self._x_parts.clear()
        ys = self._y_parts.get(yoff)
        if ys is None:
            top = f + e * yoff
            bottom = top + e * self._meta_shape[0]
            if not math.isfinite(top + bottom) and not (math.isfinite(top) and math.isfinite(bottom)):
                raise self._not_finite("y edges", (top, bottom))
            ys = self._y_parts[yoff] = (top, min(top, bottom), max(top, bottom))
            if len(self._y_parts) > 65536:
                self._y_parts.clear()
        meta: GeoMeta = {
            "crs": self.crs,
            "transform": (a, b, xs[0], d, e, ys[0]),
            "bounds": (xs[1], ys[1], xs[2], ys[2]),
            "shape": self._meta_shape,
            "time": time,
            "source_ids": self.source_ids,
        }
        return meta

    def _numpy(self, views: Sequence[np.ndarray], start: Sequence[int]) -> tuple[Any, GeoMeta]:
        order = self._yx_last
        if self.is_dataarray:
            return (views[0] if order[0] is None else views[0].transpose(order[0])), self.meta(start)
        data = {
            self.arrays[i].name: views[i] if order[i] is None else views[i].transpose(order[i])
            for i in self.data_arrays
        }
        for name, var in self._statics.items():
            if name in self.obj.data_vars:
                data[name] = var.values
        return data, self.meta(start)

    # -- xarray --------------------------------------------------------------
    def _index(self, k: int, start: int) -> tuple[Index, xr.Variable]:
        key = (k, start)
        hit = self._index_cache.get(key)
        if hit is not None:
            return hit
        dim = self.dims[k]
        index = self._xindexes[dim]
        assert isinstance(index, PandasIndex)
        window, size = int(self.window[k]), int(self.sizes[k])
        coord = variables_of(self.obj)[dim]
        if start + window <= size:
            new_index = index.isel({dim: slice(start, start + window)})
            assert isinstance(new_index, PandasIndex)
        else:
            values = _extend(np.asarray(index.index), start, window, dim)
            new_index = PandasIndex(pd.Index(values), dim, coord_dtype=values.dtype)
        variable = new_index.create_variables({dim: coord})[dim]
        if len(self._index_cache) > 4096:
            self._index_cache.clear()
        self._index_cache[key] = (new_index, variable)
        return new_index, variable

    def _window_variables(
        self, views: Sequence[np.ndarray], start: Sequence[int]
    ) -> tuple[dict[Hashable, xr.Variable], dict[Hashable, Index], Hashable | None]:
        variables: dict[Hashable, xr.Variable] = dict(self._statics)
        indexes: dict[Hashable, Index] = dict(self._static_indexes)
        for k, dim in self._indexed_axes:
            index, variable = self._index(k, start[k])
            variables[dim] = variable
            indexes[dim] = index
        data_name: Hashable | None = None
        for spec, view in zip(self.arrays, views, strict=True):
            var = spec.variable
            new = xr.Variable(var.dims, view, own_attrs(var), own_encoding(var), fastpath=True)
            if self.is_dataarray and not spec.is_coord:
                data_name = spec.name
                variables[_DATA] = new
            else:
                variables[spec.name] = new
        return variables, indexes, data_name

    def _xarray_direct(self, views: Sequence[np.ndarray], start: Sequence[int]) -> Any:
        """Build the chip from its parts without xarray's validation (see :mod:`terrapipe._compat`)."""
        # static variables are shared by every chip, as ``isel`` shares them with the source
        variables = self._variables_proto.copy()
        indexes = self._static_indexes.copy()
        cache = self._index_cache
        for name, k in self._index_parts:
            hit = cache.get((k, start[k]))
            indexes[name], variables[name] = hit if hit is not None else self._index(k, start[k])
        arrays = self.arrays
        for name, i in self._cut_parts:
            variables[name] = variable_like(arrays[i].variable, views[i])
        if self._data_template is not None:
            data = variable_like(self._data_template, views[0])
            return dataarray_from(data, variables, self.obj.name, indexes)
        obj = self.obj
        if self._ds_dims is None:
            self._ds_dims = dict(calculate_dimensions(variables))
        attrs, encoding = own_attrs(obj), own_encoding(obj)
        return dataset_from(
            variables,
            set(self._ds_names),
            dict(self._ds_dims),
            dict(attrs) if attrs is not None else None,
            indexes,
            dict(encoding) if encoding is not None else None,
        )

    def _xarray_fast(self, views: Sequence[np.ndarray], start: Sequence[int]) -> Any:
        variables, indexes, _ = self._window_variables(views, start)
        obj = self.obj
        if isinstance(obj, xr.DataArray):
            data = variables.pop(_DATA)
            coords = {name: variables[name] for name in self._coord_order}
            return xr.DataArray(data, coords=coords, indexes=indexes, name=obj.name, fastpath=True)
        ordered = {name: variables[name] for name in self._coord_order}
        attrs, encoding = own_attrs(obj), own_encoding(obj)
        return dataset_from(
            ordered,
            set(coord_names_of(obj)),
            None,
            dict(attrs) if attrs is not None else None,
            indexes,
            dict(encoding) if encoding is not None else None,
        )

    def _xarray_generic(self, views: Sequence[np.ndarray], start: Sequence[int]) -> Any:
        window = {
            dim: slice(int(s), int(s) + int(w))
            for dim, s, w in zip(self.dims, start, self.window, strict=True)
        }
        lazy = self.obj.isel(window)
        if isinstance(lazy, xr.DataArray):
            out = lazy.copy(data=views[0])
            coords = {
                spec.name: xr.Variable(spec.variable.dims, view, spec.variable.attrs)
                for spec, view in zip(self.arrays, views, strict=True)
                if spec.is_coord
            }
            return out.assign_coords(coords) if coords else out
        data: dict[Hashable, Any] = {}
        coords_ds: dict[Hashable, Any] = {}
        for spec, view in zip(self.arrays, views, strict=True):
            if spec.is_coord:
                coords_ds[spec.name] = xr.Variable(spec.variable.dims, view, spec.variable.attrs)
            else:
                data[spec.name] = view
        for name in lazy.data_vars:
            if name not in data:
                data[name] = self._statics[name].values
        out_ds = lazy.copy(data=data)
        return out_ds.assign_coords(coords_ds) if coords_ds else out_ds


_DATA = object()


class _Prepared(Region):
    """A region's read-only arrays from :meth:`ItemCutter.prepare`: ``exclusive`` says which its chips may view."""

    __slots__ = ()


def _owned(view: np.ndarray) -> np.ndarray:
    """Return a read-only copy of a window of a region (the chip's own memory; see the module doc)."""
    out = view.copy()
    out.flags.writeable = False
    return out


def _yx_last(
    dims: Sequence[Hashable], y_dim: Hashable | None, x_dim: Hashable | None
) -> tuple[int, ...] | None:
    """Return the axis order that puts ``y_dim`` and ``x_dim`` last, in that order (``None``: they are already).

    Examples
    --------
    >>> _yx_last(("lon", "band", "lat"), "lat", "lon"), _yx_last(("band", "y", "x"), "y", "x")
    ((1, 2, 0), None)
    """
    if y_dim is None or x_dim is None or y_dim not in dims or x_dim not in dims:
        return None
    dims = list(dims)
    if dims[-2:] == [y_dim, x_dim]:
        return None
    rest = [k for k, dim in enumerate(dims) if dim not in (y_dim, x_dim)]
    return (*rest, dims.index(y_dim), dims.index(x_dim))


def _extend(values: np.ndarray, start: int, window: int, dim: Hashable) -> np.ndarray:
    """Coordinates of a window that reaches past the end: the known part, then linearly extrapolated."""
    size = values.size
    if size < 2 or not (np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.datetime64)):
        msg = (
            f"boundary='pad' cannot extend the coordinate of {dim!r} past its end (it needs at least two "
            "numeric or datetime values); use boundary='shift' or 'drop'"
        )
        raise InvalidArgumentError(msg)
    positions = np.arange(start, start + window)
    inside = positions[positions < size]
    beyond = positions[positions >= size] - (size - 1)
    if np.issubdtype(values.dtype, np.inexact) and not np.issubdtype(values.dtype, np.complexfloating):
        extra = _float_line(values, beyond)
    elif np.issubdtype(values.dtype, np.integer):
        extra = _integer_steps(values, beyond, dim)
    else:
        extra = values[-1] + (values[-1] - values[-2]) * beyond
    return np.concatenate([values[inside], extra.astype(values.dtype)])


def _integer_steps(values: np.ndarray, beyond: np.ndarray, dim: Hashable) -> np.ndarray:
    """Integer coordinates ``beyond`` pixels past the last, stepped exactly; refused where the dtype cannot hold them.

    Stepping in the dtype itself wrapped silently: an unsigned axis counting
    down to 0 (row numbers, whole metres stored ``uint16``) went on at 65436.

    Examples
    --------
    >>> _integer_steps(np.array([200, 100, 0], "int16"), np.array([1, 2]), "y").tolist()
    [-100, -200]
    >>> _integer_steps(np.array([200, 100, 0], "uint16"), np.array([1]), "y")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: boundary='pad' cannot extend the coordinate of 'y' (uint16, ... 100, 0) past its end: its next values (-100 ... -100) do not fit uint16; use boundary='shift' or 'drop', or store the coordinate as a signed or float type
    """
    last, step = int(values[-1]), int(values[-1]) - int(values[-2])
    extra = [last + step * int(b) for b in beyond.tolist()]
    info = np.iinfo(values.dtype)
    if extra and (min(extra) < info.min or max(extra) > info.max):
        msg = (
            f"boundary='pad' cannot extend the coordinate of {dim!r} ({values.dtype}, ... {int(values[-2])}, "
            f"{last}) past its end: its next values ({extra[0]} ... {extra[-1]}) do not fit {values.dtype}; use "
            "boundary='shift' or 'drop', or store the coordinate as a signed or float type"
        )
        raise InvalidArgumentError(msg)
    return np.array(extra, dtype=values.dtype)


def _float_line(values: np.ndarray, beyond: np.ndarray) -> np.ndarray:
    """Float coordinates ``beyond`` pixels past the last, stepped in float64 and cast by the caller.

    The step of an even axis is the line through its ends, not its last two
    values: those differ from the step by the dtype's rounding (1e-4 of a
    0.1-degree step in float32 near 180 degrees), and continued over a pad of
    hundreds of pixels that puts the padded coordinates off the grid (``stitch``
    then refused the chip). An uneven axis (last step off the mean by more than
    a thousandth) keeps its last step.

    Examples
    --------
    >>> lon = (np.arange(3550) * 0.1 - 179.95).astype("float32")
    >>> bool(abs(float(_float_line(lon, np.array([400]))[0]) - (3949 * 0.1 - 179.95)) < 1e-4)
    True
    >>> _float_line(np.array([0.0, 1.0, 3.0]), np.array([1, 2])).tolist()
    [5.0, 7.0]
    """
    numbers = values.astype(np.float64)
    last = float(numbers[-1] - numbers[-2])
    mean = float(numbers[-1] - numbers[0]) / (numbers.size - 1)
    step = mean if math.isfinite(mean) and abs(mean - last) <= 1e-3 * abs(mean) else last
    out: np.ndarray = numbers[-1] + step * beyond.astype(np.float64)
    return out


def _refuse_grid_mappings_that_differ(obj: xr.DataArray | xr.Dataset) -> None:
    """Refuse a Dataset whose variables' grid mappings differ in CRS or ``GeoTransform``.

    A numpy chip carries one :class:`GeoMeta` for all its variables; taking one
    variable's grid for the others would place them wrong, silently.
    """
    if not isinstance(obj, xr.Dataset):
        return
    names = {var.encoding.get("grid_mapping") for var in obj.data_vars.values()} & set(obj.coords)
    grids = []
    for name in sorted(names, key=str):
        attrs = obj.coords[name].attrs
        grids.append((name, _mapping_crs(attrs), gdal_transform(attrs.get("GeoTransform"))))
    for name, crs, transform in grids[1:]:
        first, first_crs, first_transform = grids[0]
        if not same_crs(first_crs, crs) or not _same_transform(first_transform, transform):
            msg = (
                f"chip: the variables of a Dataset of sizes {dict(obj.sizes)} have grid mappings "
                f"{first!r} and {name!r} on different grids (CRS or GeoTransform), and a numpy chip has "
                "one GeoMeta for all of them; chip the variables that share a grid (ds[[...]]) one by one, "
                "or align_to one grid first"
            )
            raise GridMismatchError(msg)


def _mapping_crs(attrs: Any) -> Any:
    """Return a grid mapping's CRS: ``crs_wkt``/``spatial_ref``, else its CF parameters (as rioxarray reads them).

    A mapping written as parameters only (``grid_mapping_name`` and its
    projection parameters: CDO, NCO, model writers) is read by pyproj; one
    that cannot be read is its attributes' text, so two unreadable mappings
    are the same only where they are written the same.
    """
    text = attrs.get("crs_wkt") or attrs.get("spatial_ref")
    if text or "grid_mapping_name" not in attrs:
        return text
    from pyproj import CRS

    try:
        return CRS.from_cf(dict(attrs))
    except Exception:  # pyproj refuses parameters it cannot place
        return repr(sorted((str(k), repr(v)) for k, v in attrs.items()))


def _same_transform(a: Affine | None, b: Affine | None) -> bool:
    """Whether two GeoTransforms place the pixels alike (GDAL's ``%.16g`` and Python's ``repr`` of one grid).

    Each coefficient within ``1e-9`` of a pixel (or of its own size); a
    pixel's shift is another grid.

    Examples
    --------
    >>> _same_transform(Affine(1 / 6, 0, 5, 0, -1 / 6, 45), Affine(0.1666666666666667, 0, 5, 0, -0.1666666666666667, 45))
    True
    >>> _same_transform(Affine(10, 0, 500000, 0, -10, 0), Affine(10, 0, 500010, 0, -10, 0))
    False
    """
    if a is None or b is None:
        return a is None and b is None
    first, second = np.asarray(tuple(a)[:6], dtype=float), np.asarray(tuple(b)[:6], dtype=float)
    pixel = float(np.max(np.abs(first[[0, 1, 3, 4]])))
    return bool(np.allclose(first, second, rtol=1e-12, atol=1e-9 * pixel))


def _refused_transform(obj: xr.DataArray | xr.Dataset) -> bool:
    """Whether ``obj`` states a ``GeoTransform`` that :func:`cached_transform` refuses (not finite, no pixel area)."""
    return bool(_stated_transform(obj)) and cached_transform(obj) is None


def _stated_transform(obj: xr.DataArray | xr.Dataset) -> str:
    """Return the ``GeoTransform`` text on an object's grid-mapping coordinate (``""`` without one).

    Examples
    --------
    >>> da = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), coords={"spatial_ref": ((), 0, {"GeoTransform": "0 nan 0 9 0 -1"})})
    >>> _stated_transform(da), _stated_transform(da.drop_vars("spatial_ref"))
    ('0 nan 0 9 0 -1', '')
    """
    names = [obj.encoding.get("grid_mapping", "spatial_ref")]
    if isinstance(obj, xr.Dataset):
        names += [
            var.encoding["grid_mapping"] for var in obj.data_vars.values() if "grid_mapping" in var.encoding
        ]
    for name in names:
        if name in obj.coords:
            return str(obj.coords[name].attrs.get("GeoTransform") or "")
    return ""


def _times(obj: xr.DataArray | xr.Dataset, name: Hashable | None) -> str | tuple[str, ...] | None:
    """Return the chip's time coordinate ``name`` as ISO 8601, as ``to_tensor`` writes it (one text for both)."""
    if name is None:
        return None
    return iso_times(obj.coords[name].values)
