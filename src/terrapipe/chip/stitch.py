"""``stitch``: per-chip predictions back into one georeferenced DataArray (the inverse of ``chip``).

Each prediction is an array or tensor ``[..., h, w]`` (leading dimensions such
as classes or bands are kept) paired with where it lies: the chip it was
computed from (an xarray chip from ``chip``) or its
:class:`~terrapipe.core.sample.GeoMeta` (from ``chip(output="numpy")`` or a
``Sample``). Predictions are placed on the grid of ``template`` (a DataArray,
or an odc-geo ``GeoBox``) and overlaps are resolved by:

- ``"mean"``: the average of every prediction covering the pixel (kept as a
  running mean, so identical values come back exactly);
- ``"center"``: the value from the prediction whose window centre is nearest
  to the pixel (ties go to the window with the smaller ``(row, col)``
  origin, so the result does not depend on the order of predictions).

On a lon/lat template, a prediction written one turn of the globe away (a
chip at -75 on a template written 0..360) is placed where that place is, a
prediction straddling the template's edge (a chip -2..2 on 0..360) on both of
its ends, and on a template wider than the globe (a repeated column) on every
copy of its place.
Parts of a window outside the template (padded chips) are ignored, and so
are predictions wholly outside it (a template that is a crop of the area
chipped); pixels no prediction covers get ``fill_value``. Predictions of
which none lies on the template (chips of another tile: the wrong template)
are a :class:`~terrapipe.core.errors.GridMismatchError`, never a result of
``fill_value`` alone. Predictions are placed along y and x
only: where the template has another axis longer than one (``time``,
``member``, ``level``) and the predictions come from chips at different
places along it (xarray chips' coordinates, or a GeoMeta's ``time``), they
would be merged into one layer (a mean over dates), so that is a
:class:`~terrapipe.core.errors.GridMismatchError`: stitch each step on its
own (``template.isel(time=i)``) or chip with that axis kept whole. The
result carries the template's coordinates and CRS, so
``out.rio.to_raster("pred.tif", driver="COG")`` writes a Cloud-Optimized
GeoTIFF.

Examples
--------
>>> import numpy as np, xarray as xr
>>> import terrapipe as tp
>>> import terrapipe.chip
>>> image = xr.DataArray(np.arange(50.0).reshape(5, 10), dims=("y", "x"),
...                      coords={"y": np.arange(5.0), "x": np.arange(10.0)})
>>> chips = tp.from_items([image]).chip({"y": 3, "x": 4}, overlap={"x": 1}, boundary="shift")
>>> out = stitch(((c.values, c) for c in chips), template=image)
>>> bool(out.equals(image))
True
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr
from affine import Affine

from terrapipe.core.checks import check_number, check_numeric_dtype
from terrapipe.core.coords import evenly_spaced, time_name, transform_from_coords, xy_dims
from terrapipe.core.crs import longitude_period, same_crs
from terrapipe.core.errors import GridMismatchError, InvalidArgumentError
from terrapipe.core.sample import iso_times

__all__ = ["stitch"]

Overlap = Literal["mean", "center"]
_TOLERANCE = 1e-3  # of a pixel


class _Grid:
    """The template's grid: spatial dims, shape, transform, CRS and output coordinates."""

    def __init__(self, template: Any) -> None:
        if isinstance(template, xr.DataArray | xr.Dataset):
            self._from_xarray(template)
        elif hasattr(template, "affine") and hasattr(template, "shape") and hasattr(template, "crs"):
            self._from_geobox(template)
        else:
            msg = f"template must be an xarray DataArray/Dataset or an odc-geo GeoBox, got {type(template).__name__}"
            raise InvalidArgumentError(msg)

    def _from_xarray(self, template: xr.DataArray | xr.Dataset) -> None:
        import rioxarray  # noqa: F401

        x_dim, y_dim = xy_dims(template)
        if isinstance(template, xr.DataArray) and (x_dim is None or y_dim is None):
            if template.ndim < 2:
                raise InvalidArgumentError(f"template needs two spatial dimensions, got {template.dims!r}")
            y_dim, x_dim = template.dims[-2], template.dims[-1]
        if x_dim is None or y_dim is None:
            raise InvalidArgumentError(f"template has no x/y dimensions: {tuple(template.dims)!r}")
        self.y_dim: Hashable = y_dim
        self.x_dim: Hashable = x_dim
        self.shape = (int(template.sizes[y_dim]), int(template.sizes[x_dim]))
        self.template: xr.DataArray | xr.Dataset | None = template
        try:
            crs = template.rio.crs
        except Exception:  # odd inputs: treat as having no CRS
            crs = None
        self.crs = (
            "" if crs is None else (":".join(crs.to_authority()) if crs.to_authority() else crs.to_wkt())
        )
        try:
            self.transform: Affine | None = transform_from_coords(template, x_dim, y_dim)
        except (TypeError, ValueError):  # non-numeric coordinates: coordinate matching only
            self.transform = None
        self._uneven: set[Hashable] = {
            d for d in (x_dim, y_dim) if d in template.coords and _uneven(template[d])
        }
        self.coords = {
            name: coord for name, coord in template.coords.items() if set(coord.dims) <= {x_dim, y_dim}
        }
        self.lead_template = template if isinstance(template, xr.DataArray) else None
        self._crs_seen: str | None = None
        variables = template.coords.variables
        self._ref_coords: dict[Hashable, np.ndarray] = {
            d: np.asarray(variables[d].values) for d in (x_dim, y_dim) if d in variables
        }
        self._lines: dict[Hashable, tuple[float, float] | None] = {
            d: None if d in self._uneven else _axis_line(values) for d, values in self._ref_coords.items()
        }
        self.other_dims: tuple[Hashable, ...] = tuple(
            d for d in template.sizes if d not in (x_dim, y_dim) and int(template.sizes[d]) > 1
        )
        time = time_name(template)  # "time", ERA5's valid_time...: the axis a GeoMeta's time is along
        time_dims = template.coords[time].dims if time is not None else ()
        self.time_dim: Hashable | None = time_dims[0] if len(time_dims) == 1 else None

    def _from_geobox(self, gbox: Any) -> None:
        from odc.geo.xr import xr_coords

        self.y_dim, self.x_dim = "y", "x"
        self.shape = (int(gbox.shape[0]), int(gbox.shape[1]))
        self.template = None
        crs = gbox.crs
        self.crs = "" if crs is None else str(crs)
        self.transform = gbox.affine
        self._uneven = set()
        self.coords = dict(xr_coords(gbox, crs_coord_name="spatial_ref"))
        if "longitude" in self.coords or "latitude" in self.coords:
            self.y_dim, self.x_dim = "latitude", "longitude"
        self.lead_template = None
        self._crs_seen = None
        self._ref_coords = {}
        self._lines = {}
        self.other_dims = ()
        self.time_dim = None

    def steps_of(self, meta: Any) -> tuple[Any, ...]:
        """Where a prediction's chip lies along the template's other axes (``time``...), as far as it says.

        An xarray chip: its coordinate values along each such axis it has; a
        GeoMeta: its ``time`` where the template has a time axis.
        Predictions whose places differ would be merged on one y/x grid.
        """
        steps: list[Any] = []
        for dim in self.other_dims:
            if isinstance(meta, xr.DataArray | xr.Dataset):
                if dim in meta.coords and dim in meta.dims:
                    steps.append((dim, np.asarray(meta[dim].values).ravel()))
            elif isinstance(meta, Mapping) and dim == self.time_dim and meta.get("time") is not None:
                time = meta["time"]
                steps.append((dim, np.asarray(list(time) if isinstance(time, list | tuple) else [time])))
        return tuple(steps)

    def shape_of(self, meta: Any) -> tuple[int, int] | None:
        """Return the ``(height, width)`` a prediction's chip covers, where its chip or GeoMeta says."""
        if isinstance(meta, xr.DataArray | xr.Dataset):
            if self.y_dim in meta.dims and self.x_dim in meta.dims:
                return int(meta.sizes[self.y_dim]), int(meta.sizes[self.x_dim])
            return None
        shape = meta.get("shape") if isinstance(meta, Mapping) else None
        if isinstance(shape, list | tuple) and len(shape) == 2:
            return int(shape[0]), int(shape[1])
        return None

    def origin_from_meta(self, meta: Mapping[str, Any]) -> tuple[int, int]:
        """Row and column of a GeoMeta's window on this grid."""
        crs = str(meta.get("crs") or "")
        if crs and self.crs and not same_crs(crs, self.crs):  # EPSG:4326 and OGC:CRS84 are one CRS here
            raise GridMismatchError(
                f"a prediction is in CRS {crs!r} but the template is in {self.crs!r}; reproject first"
            )
        if self.transform is None:
            raise GridMismatchError(
                "the template has no transform to place GeoMeta predictions; pass chips instead"
            )
        a, b, c, d, e, f = (float(v) for v in meta["transform"])
        t = self.transform
        if not np.allclose((a, b, d, e), (t.a, t.b, t.d, t.e), rtol=1e-9, atol=1e-12):
            msg = (
                f"a prediction's pixel size {(a, e)!r} differs from the template's {(t.a, t.e)!r}; stitch places "
                "predictions on the template grid without resampling"
            )
            raise GridMismatchError(msg)
        col, row = ~t @ (c, f)
        return _whole(row, "row"), _whole(col, "column")

    def columns(self, col: int, width: int) -> list[int]:
        """Every column where a prediction ``width`` pixels wide at ``col`` lies on this grid.

        On a lon/lat grid whose columns make whole turns of the globe, the prediction is also placed
        one (or more) turns away: a prediction straddling the edge of a 0..360 template lands on both
        of its ends, one on a template wider than the globe (a repeated column) on every copy of its
        place. Elsewhere, its own column (which may lie off the grid).

        Examples
        --------
        >>> from affine import Affine
        >>> grid = _Grid.__new__(_Grid)
        >>> grid.crs, grid.transform, grid.shape = "EPSG:4326", Affine(1, 0, 0, 0, -1, 2), (2, 360)
        >>> grid.columns(-2, 4), grid.columns(285 - 360, 2), grid.columns(10, 2)
        ([-2, 358], [285], [10])
        """
        turn = self._turn()
        if turn is None:
            return [col]
        span = self.shape[1]
        first = -((col + width - 1) // turn)  # the least k with col + k * turn + width > 0
        last = (span - 1 - col) // turn  # the greatest k with col + k * turn < span
        return [col + k * turn for k in range(first, last + 1)] or [col]

    def _turn(self) -> int | None:
        """Columns per turn of the globe on a lon/lat grid (a whole number of them), else ``None``."""
        t = self.transform
        period = longitude_period(self.crs) if self.crs and t is not None and t.b == 0 and t.a else None
        if period is None or t is None:
            return None
        turn = period / abs(t.a)
        if abs(turn - round(turn)) > _TOLERANCE or round(turn) < 1:
            return None
        return round(turn)

    def origin_from_chip(self, chip: xr.DataArray | xr.Dataset) -> tuple[int, int]:
        """Row and column of an xarray chip's first pixel on this grid.

        Every coordinate of the chip must be the template's at its place (a
        flipped, strided or shifted chip is refused), and a chip with a CRS
        must be in the template's.
        """
        self._check_chip_crs(chip)
        out = []
        for dim in (self.y_dim, self.x_dim):
            if dim not in chip.dims:
                raise GridMismatchError(
                    f"a chip lacks the template's dimension {dim!r} (it has {tuple(chip.dims)!r})"
                )
            chip_coords = chip.coords.variables  # Variables: no DataArray built per lookup
            if dim in chip_coords and dim in self._ref_coords:
                ref = self._ref_coords[dim]
                got = np.asarray(chip_coords[dim].values)
                first = got[:1]
                line = self._lines.get(dim)
                if ref.size >= 2 and first.size and line is None:  # no step: find the value itself
                    hits = np.flatnonzero(ref == first[0])
                    if hits.size != 1:
                        raise GridMismatchError(
                            f"a prediction's first {dim!r} coordinate {first[0]!r} is not one of the template's "
                            "(which are not evenly spaced); predictions must lie on the template's pixels"
                        )
                    out.append(int(hits[0]))
                    _check_on_axis(got, ref, int(hits[0]), dim, line=None)
                    continue
                if line is not None and first.size:
                    # the template's line in float64 (float32 coordinates: ref[1] - ref[0] is off by up to
                    # two units in their last place, which a 3600-column axis multiplies past a pixel)
                    offset = _whole((float(first[0]) - line[0]) / line[1], str(dim))
                    out.append(offset)
                    _check_on_axis(got, ref, offset, dim, line=line)
                    continue
                if first.size:  # one template pixel along dim: the chip must hold its coordinate
                    out.append(_single_pixel_offset(got, ref, dim))
                    continue
            if dim in chip.coords and self.transform is not None and self.template is None:
                return self._origin_from_coords(chip)
            raise GridMismatchError(
                f"cannot place a chip without coordinates along {dim!r}; pass its GeoMeta instead"
            )
        return out[0], out[1]

    def _check_chip_crs(self, chip: xr.DataArray | xr.Dataset) -> None:
        """Refuse a chip whose grid mapping (rioxarray's ``spatial_ref``) states another CRS than the template's."""
        if not self.crs:
            return
        name = chip.encoding.get("grid_mapping", "spatial_ref")
        variables = chip.coords.variables
        if name not in variables:
            return
        attrs = variables[name].attrs
        text = attrs.get("crs_wkt") or attrs.get("spatial_ref")
        if not isinstance(text, str) or text == self._crs_seen:  # chips of one source share it: checked once
            return
        if not same_crs(text, self.crs):
            raise GridMismatchError(
                f"a prediction's chip is in another CRS ({text[:60]!r}...) than the template ({self.crs!r}); "
                "reproject first"
            )
        self._crs_seen = text

    def _origin_from_coords(self, chip: xr.DataArray | xr.Dataset) -> tuple[int, int]:
        t = self.transform
        assert t is not None
        x0 = float(chip[self.x_dim].values[0])
        y0 = float(chip[self.y_dim].values[0])
        col, row = ~t @ (x0, y0)
        return _whole(row - 0.5, "row"), _whole(col - 0.5, "column")


def _axis_line(values: np.ndarray) -> tuple[float, float] | None:
    """``(first centre, step)`` in float64 of an evenly spaced axis: the line fitted through all its values.

    ``None`` where the values are not finite numbers, fewer than two, or all equal.

    Examples
    --------
    >>> first, step = _axis_line((np.arange(3600) * 0.1 - 179.95).astype("float32"))
    >>> round(first, 4), round(step, 7)
    (-179.95, 0.1)
    """
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):  # not numbers: matched by value
        return None
    if numbers.ndim != 1 or numbers.size < 2 or not np.isfinite(numbers).all():
        return None
    step = float(numbers[-1] - numbers[0]) / (numbers.size - 1)
    if step == 0.0 or not np.isfinite(step):
        return None
    first = float(np.mean(numbers - step * np.arange(numbers.size, dtype=np.float64)))
    return first, step


def _single_pixel_offset(got: np.ndarray, ref: np.ndarray, dim: Hashable) -> int:
    """Where a chip lies along a template axis one pixel long: its coordinates must hold the template's once.

    There is no step to place it by, so a chip whose coordinates miss the template's pixel is refused
    (it was placed on that pixel, silently).
    """
    try:
        hits = np.flatnonzero(got == np.asarray(ref[0]).astype(got.dtype))
    except (TypeError, ValueError):
        hits = np.flatnonzero(got == ref[0])
    if hits.size != 1:
        raise GridMismatchError(
            f"a prediction's {dim!r} coordinates ({got[0]} .. {got[-1]}) do not hold the template's one "
            f"{dim!r} coordinate {ref[0]}; predictions must lie on the template's pixels"
        )
    return -int(hits[0])


def _check_on_axis(
    got: np.ndarray, ref: np.ndarray, offset: int, dim: Hashable, *, line: tuple[float, float] | None
) -> None:
    """Refuse a chip whose coordinates along ``dim`` are not the template's from ``offset`` on.

    On an evenly spaced axis (``line``: its first centre and step), positions
    past the template's ends continue its step (padded chips); on an uneven
    one only those inside are compared.
    """
    if got.size < 2:
        return
    index = np.arange(offset, offset + got.size)
    inside = (index >= 0) & (index < ref.size)
    try:
        if line is not None:
            first, step = line
            expected = first + step * index
            tolerance = _TOLERANCE * abs(step)
            for values in (got, ref):  # float32 coordinates are a unit in their last place off their line
                if values.dtype.kind == "f" and values.dtype.itemsize < 8:
                    largest = max(float(np.abs(got).max()), float(np.abs(ref).max()))
                    tolerance = max(tolerance, float(np.spacing(np.asarray(largest, values.dtype))))
            ok = bool((np.abs(got.astype(np.float64) - expected) <= tolerance).all())
        else:
            ok = bool(np.array_equal(got[inside], ref[index[inside]]))
    except (TypeError, ValueError):  # not numbers: matched by value
        ok = bool(np.array_equal(got[inside], ref[index[inside]]))
    if not ok:
        msg = (
            f"a prediction's {dim!r} coordinates ({got[0]!r} .. {got[-1]!r}) are not the template's from its "
            f"pixel {offset} on (flipped, strided or another grid); predictions must lie on the template's pixels"
        )
        raise GridMismatchError(msg)


def _same_steps(first: tuple[Any, ...], other: tuple[Any, ...]) -> bool:
    """Whether two predictions lie at the same places along the template's other axes.

    Values of different kinds (a chip's datetime64 and a GeoMeta's ISO text) are compared as ISO text.
    """
    if len(first) != len(other):
        return False
    for (a_dim, a), (b_dim, b) in zip(first, other, strict=True):
        if a_dim != b_dim or a.shape != b.shape:
            return False
        if a.dtype.kind != b.dtype.kind:
            a, b = np.asarray(iso_times(a)), np.asarray(iso_times(b))
        if not bool(np.asarray(a == b).all()):
            return False
    return True


def _refuse_merge(first: tuple[Any, ...], other: tuple[Any, ...], grid: _Grid) -> None:
    """Refuse predictions from chips at different places along an axis stitch does not place (``time``)."""
    dims = dict(first)
    for dim, values in other:
        if dim in dims and not _same_steps(((dim, dims[dim]),), ((dim, values),)):
            shown = [_shown(dims[dim]), _shown(values)]
            msg = (
                f"predictions come from chips at different {dim!r} ({shown[0]} and {shown[1]}) and stitch "
                f"places them on the template's {grid.y_dim!r}/{grid.x_dim!r} only, so they would be merged "
                f"into one layer; stitch each {dim!r} step on its own (template.isel({dim}=i)) or chip with "
                f"{dim!r} kept whole"
            )
            raise GridMismatchError(msg)
    missing = sorted(set(dims) ^ {dim for dim, _ in other}, key=str)
    msg = (
        f"some predictions say where they lie along {missing[0]!r} and others do not, so chips of "
        f"different {missing[0]!r} may be merged into one layer; give every prediction its chip or GeoMeta"
    )
    raise GridMismatchError(msg)


def _shown(values: np.ndarray) -> str:
    """Show a chip's coordinate values along one axis, shortly."""
    text = [str(v) for v in values[:1]] + [str(v) for v in values[1:][-1:]]
    return text[0] if len(text) == 1 else f"{text[0]} .. {text[-1]}"


def _uneven(coord: Any) -> bool:
    try:
        return coord.ndim == 1 and not evenly_spaced(coord.values)
    except (TypeError, ValueError):  # not numbers: matched by value as before
        return False


def _whole(value: float, what: str) -> int:
    near = round(float(value)) if np.isfinite(value) else 0
    if not np.isfinite(value) or abs(value - near) > _TOLERANCE:
        raise GridMismatchError(
            f"a prediction's {what} offset {value!r} is not a whole pixel of the template grid; "
            "predictions must lie on the template's pixels"
        )
    return int(near)


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    elif isinstance(value, xr.DataArray):
        x_dim, y_dim = xy_dims(value)
        if x_dim is not None and y_dim is not None and value.dims[-2:] != (y_dim, x_dim):
            value = value.transpose(..., y_dim, x_dim)  # placed by its names: (x, y) is not (y, x)
        value = value.values
    return np.asarray(value)


def _pairs(predictions: Iterable[Any]) -> Iterable[tuple[np.ndarray, Any]]:
    """Unpack ``(prediction, meta)`` pairs; batched predictions with a list of metas are split."""
    if isinstance(predictions, str | bytes) or not isinstance(predictions, Iterable):
        raise InvalidArgumentError(
            f"stitch takes an iterable of (prediction, meta) pairs or Samples, got a {type(predictions).__name__}"
        )
    for entry in predictions:
        if isinstance(entry, Mapping) and "meta" in entry:
            key = next((k for k in ("prediction", "image", "mask") if k in entry), None)
            if key is None:
                raise InvalidArgumentError(
                    "a Sample given to stitch needs a 'prediction', 'image' or 'mask' entry"
                )
            pred, meta = entry[key], entry["meta"]
        else:
            try:
                pred, meta = entry
            except (TypeError, ValueError) as err:
                msg = f"stitch takes (prediction, meta) pairs, got {type(entry).__name__}"
                raise InvalidArgumentError(msg) from err
        array = _as_numpy(pred)
        if isinstance(meta, list | tuple) and not isinstance(meta, str) and meta and not _is_number(meta[0]):
            if array.shape[0] != len(meta):
                raise InvalidArgumentError(
                    f"a batch of {array.shape[0]} predictions came with {len(meta)} metadata entries"
                )
            yield from zip(array, meta, strict=True)
        else:
            yield array, meta


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number)


def stitch(
    predictions: Iterable[Any],
    template: Any,
    *,
    overlap: Overlap = "mean",
    fill_value: float | None = None,
    dtype: Any = None,
    name: Hashable | None = None,
) -> xr.DataArray:
    """Place per-chip predictions on the template's grid (see the module doc).

    Parameters
    ----------
    predictions
        ``(prediction, meta)`` pairs: ``prediction`` a numpy array or torch
        tensor ``[..., h, w]`` (or a batch ``[n, ..., h, w]`` with a list of ``n``
        metas); ``meta`` the xarray chip or its ``GeoMeta``. ``Sample`` dicts
        with ``"prediction"``/``"image"``/``"mask"`` and ``"meta"`` work too.
    template
        The grid to fill: the chipped DataArray (or any DataArray/Dataset on
        that grid) or an odc-geo ``GeoBox``.
    overlap
        ``"mean"`` or ``"center"``.
    fill_value
        Value of pixels no prediction covers; default NaN for float results
        and 0 for integer ones.
    dtype
        Result dtype; default the predictions' dtype for ``"center"`` and a
        float type for ``"mean"`` (float32 for 8/16-bit integers and float32
        predictions, float64 otherwise). An integer or bool ``dtype`` with
        ``"mean"``: averaged in float64, rounded half to even. A prediction
        an integer ``dtype`` cannot hold (NaN, out of range) is refused.
    name
        Name of the result (default the template's name).

    Returns
    -------
    xarray.DataArray
        ``(*leading, y, x)`` on the template grid, with its CRS. Leading
        dimensions take the template's names and coordinates when their
        sizes match, else ``band`` (one) or ``dim_0, dim_1, ...``.

    Raises
    ------
    InvalidArgumentError
        For an unknown ``overlap``, no predictions, inconsistent shapes, or
        values an integer ``dtype`` cannot hold.
    GridMismatchError
        When a prediction is in another CRS or resolution, or not aligned
        with the template's pixels, or no prediction lies on the template.
    """
    if not isinstance(overlap, str) or overlap not in ("mean", "center"):
        raise InvalidArgumentError(f"overlap must be 'mean' or 'center', got {overlap!r}")
    if dtype is not None:
        dtype = check_numeric_dtype(dtype, "stitch dtype")
    if fill_value is not None:
        check_number(fill_value, "stitch fill_value", finite=False)
    grid = _Grid(template)
    height, width = grid.shape
    acc: np.ndarray | None = None
    count: np.ndarray | None = None
    best: np.ndarray | None = None
    best_rank: np.ndarray | None = None
    lead: tuple[int, ...] = ()
    first_steps: tuple[Any, ...] | None = None
    placed, off = 0, None  # predictions with a pixel on the template; the first one with none
    for pred, meta in _pairs(predictions):
        steps = grid.steps_of(meta)
        if first_steps is None:
            first_steps = steps
        elif not _same_steps(first_steps, steps):
            _refuse_merge(first_steps, steps, grid)
        if pred.ndim < 2:
            raise InvalidArgumentError(
                f"a prediction must be at least 2-D [..., h, w], got shape {pred.shape}"
            )
        if acc is None:
            lead = pred.shape[:-2]
            out_dtype = np.dtype(dtype) if dtype is not None else _default_dtype(pred.dtype, overlap)
            # an integer or bool result of "mean" is averaged in float64 and rounded at the end
            exact = overlap == "center" or np.issubdtype(out_dtype, np.inexact)
            acc = np.zeros((*lead, height, width), dtype=out_dtype if exact else np.float64)
            if overlap == "mean":
                count = np.zeros((height, width), dtype=np.int32)
            else:
                best = np.full((height, width), np.iinfo(np.int64).max, dtype=np.int64)
                best_rank = np.zeros((height, width), dtype=np.int64)
        elif pred.shape[:-2] != lead:
            raise InvalidArgumentError(
                f"predictions have different leading shapes: {lead} and {pred.shape[:-2]}"
            )
        if isinstance(meta, xr.DataArray | xr.Dataset):
            row, first_col = grid.origin_from_chip(meta)
        elif isinstance(meta, Mapping) and "transform" in meta:
            row, first_col = grid.origin_from_meta(meta)
        else:
            raise InvalidArgumentError(
                f"a prediction's meta must be an xarray chip or a GeoMeta, got {type(meta).__name__}"
            )
        _check_fits(pred, out_dtype)
        h, w = pred.shape[-2:]
        covers = grid.shape_of(meta)
        if covers is not None and covers != (h, w):
            raise GridMismatchError(
                f"a prediction of shape {pred.shape} covers {h}x{w} pixels but its chip is {covers[0]}x{covers[1]} "
                "(another resolution, a crop, or channels last?); stitch places predictions on their chips' "
                "pixels without resampling: give each prediction its chip's height and width, last"
            )
        r0, r1 = max(row, 0), min(row + h, height)
        lands = False
        for col in grid.columns(first_col, w):
            c0, c1 = max(col, 0), min(col + w, width)
            if r0 >= r1 or c0 >= c1:
                continue
            lands = True
            part = pred[..., r0 - row : r1 - row, c0 - col : c1 - col]
            target = acc[..., r0:r1, c0:c1]
            if overlap == "mean":
                assert count is not None
                n = count[r0:r1, c0:c1]
                n += 1
                target += (part - target) / n
            else:
                assert best is not None
                assert best_rank is not None
                rows = np.arange(r0, r1, dtype=np.int64) - row
                cols = np.arange(c0, c1, dtype=np.int64) - col
                # squared distance to the window centre, doubled to stay in integers
                dist = (2 * rows + 1 - h)[:, None] ** 2 + (2 * cols + 1 - w)[None, :] ** 2
                rank = row * (1 << 31) + col  # ties go to the smaller (row, col) origin
                held, held_rank = best[r0:r1, c0:c1], best_rank[r0:r1, c0:c1]
                take = (dist < held) | ((dist == held) & (rank < held_rank))
                held[take] = dist[take]
                held_rank[take] = rank
                target[..., take] = part[..., take]
        if lands:
            placed += 1
        elif off is None:
            off = (row, first_col, h, w)
    if acc is None:
        raise InvalidArgumentError("stitch got no predictions")
    if not placed and off is not None:
        row, col, h, w = off
        raise GridMismatchError(
            f"no prediction lies on the template: the first covers rows {row}..{row + h} and columns "
            f"{col}..{col + w} of the template's grid, which has {height} rows and {width} columns (chips of "
            "another tile or scene?); stitch each tile's predictions on that tile's template"
        )
    limit = np.iinfo(np.int64).max
    if count is not None:
        covered = np.asarray(count > 0)
    else:
        assert best is not None
        covered = np.asarray(best < limit)
    if acc.dtype != out_dtype:  # the running mean of an integer or bool result: rounded half to even
        acc = np.rint(acc).astype(out_dtype)
    fill = fill_value
    if fill is None:
        fill = float("nan") if np.issubdtype(acc.dtype, np.inexact) else 0
    if not covered.all():
        if isinstance(fill, float) and np.isnan(fill) and not np.issubdtype(acc.dtype, np.inexact):
            raise InvalidArgumentError(
                f"cannot fill uncovered pixels of a {acc.dtype} result with NaN; pass fill_value="
            )
        acc[..., ~covered] = fill
    return _wrap(acc, grid, lead, name, fill)


def _check_fits(pred: np.ndarray, dtype: np.dtype[Any]) -> None:
    """Refuse a prediction whose values an integer result ``dtype`` cannot hold (NaN, or out of its range).

    numpy would store 300.0 in a ``uint8`` result as 44, and NaN as anything, silently.

    Examples
    --------
    >>> _check_fits(np.array([[0.0, 255.0]]), np.dtype("uint8"))
    >>> _check_fits(np.array([[0.0, 300.0]]), np.dtype("uint8"))
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: a prediction holds values from 0 to 300, which a uint8 result cannot hold (0 to 255); pass a wider dtype= or scale the predictions
    """
    if dtype.kind not in "iu" or pred.size == 0 or pred.dtype.kind == "c":
        return
    if pred.dtype.kind in "iub" and np.can_cast(pred.dtype, dtype):
        return
    info = np.iinfo(dtype)
    if pred.dtype.kind == "f" and not np.isfinite(pred).all():
        msg = f"a prediction holds NaN or infinity, which a {dtype} result cannot hold; pass a float dtype= or fill them"
        raise InvalidArgumentError(msg)
    low, high = pred.min(), pred.max()
    if low < info.min or high > info.max:
        msg = (
            f"a prediction holds values from {low:g} to {high:g}, which a {dtype} result cannot hold "
            f"({info.min} to {info.max}); pass a wider dtype= or scale the predictions"
        )
        raise InvalidArgumentError(msg)


def _default_dtype(pred: np.dtype[Any], overlap: Overlap) -> np.dtype[Any]:
    if overlap == "center":
        return pred
    if pred == np.float32 or (np.issubdtype(pred, np.integer) and pred.itemsize <= 2) or pred == np.bool_:
        return np.dtype(np.float32)
    if np.issubdtype(pred, np.complexfloating):
        return pred
    return np.dtype(np.float64)


def _wrap(
    data: np.ndarray, grid: _Grid, lead: Sequence[int], name: Hashable | None, fill: Any
) -> xr.DataArray:
    import rioxarray  # noqa: F401

    coords: dict[Hashable, Any] = dict(grid.coords)
    lead_dims: list[Hashable]
    template = grid.lead_template
    spatial = {grid.y_dim, grid.x_dim}
    template_lead = [d for d in template.dims if d not in spatial] if template is not None else []
    if template is not None and tuple(int(template.sizes[d]) for d in template_lead) == tuple(lead):
        lead_dims = list(template_lead)
        for cname, coord in template.coords.items():
            if set(coord.dims) <= set(lead_dims) | spatial:
                coords[cname] = coord
    elif len(lead) == 1:
        lead_dims = ["band"]
    else:
        lead_dims = [f"dim_{i}" for i in range(len(lead))]
    out = xr.DataArray(
        data,
        dims=(*lead_dims, grid.y_dim, grid.x_dim),
        coords=coords,
        name=name if name is not None else (template.name if template is not None else None),
    )
    if grid.crs:
        out = out.rio.write_crs(grid.crs)
        if grid.transform is not None:
            out = out.rio.write_transform(grid.transform)
    if not (isinstance(fill, float) and np.isnan(fill) and not np.issubdtype(data.dtype, np.inexact)):
        out = out.rio.write_nodata(fill, encoded=False)
    return out
