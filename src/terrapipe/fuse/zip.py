"""``zip_grids``: zip several chip pipes into one chip, checking that their grids agree.

Modalities chipped by separate pipes (two dates of a scene, an image and a
pre-aligned label raster) come together element by element. For each step
:class:`ZipGrids` takes one element of every pipe and checks that they lie on
the same grid: same CRS, same shape, and transforms whose corners agree
within ``tolerance`` pixels. Then:

- xarray chips are merged into one ``xr.Dataset`` (the carrier of
  :mod:`terrapipe.fuse`): a DataArray becomes the variable named by
  ``names`` (the first pipe's defaults to ``"image"``; the others' one band
  is squeezed, several get a ``"<name>_band"`` dimension); a Dataset's
  variables and vector layers are added as they are, except that a
  dimension clashing with the first's (another size or other coordinate
  values, e.g. ``band``) is renamed ``"<variable>_<dim>"`` and keeps its
  coordinate values under that name. All variables take the first
  element's spatial coordinates; ``attrs["source_ids"]`` lists where every
  input came from;
- :class:`~terrapipe.core.sample.Sample` dicts (from ``to_tensor``) are
  merged into one Sample: keys and ``variables`` are combined (a key held by
  two samples is an error), ``meta`` is the first's with every
  ``source_ids`` and every time (below).

Times
-----
Every input's time survives; none is dropped or collapsed into another's.
In a merged Dataset:

- ``time`` is the time of the first input that has one (a scalar
  coordinate, a time axis, or a coordinate along ``band``); inputs without
  a time (a DEM) add none and contradict nothing;
- an input whose time is the same (same instants; a scalar ``t`` and a
  one-step axis ``[t]`` are the same) adds nothing: one value stays one;
- an input whose time differs keeps it as the coordinate
  ``"<variable>_time"`` of each of its variables (a scalar, or along the
  variable's own time or band dimension). The time of variable ``v`` is
  thus ``"v_time"`` where it exists, else ``time``: :func:`time_of` reads
  it and :func:`chip_times` lists every time of a chip.

``to_tensor`` of a merged Dataset puts :func:`chip_times` in
``meta["time"]``. A merged Sample's ``meta["time"]`` is likewise the one
time of its inputs when they agree, else the tuple of every distinct input
time in pipe order (a sample's tuple of times is spliced in); samples
without a time are skipped. A Sample's flat ``meta`` cannot say which
tensor each time belongs to: zip xarray chips, then ``to_tensor``, and use
:func:`time_of` before converting, when that matters.

Grids that differ raise :class:`~terrapipe.core.errors.GridMismatchError`
naming both; pipes of different lengths raise
:class:`~terrapipe.core.errors.InvalidArgumentError` when the shorter ends
(nothing is dropped silently).

Examples
--------
>>> import numpy as np, xarray as xr
>>> def chip(value, x0=0.0):
...     return xr.DataArray(np.full((2, 2, 2), value), dims=("band", "y", "x"),
...                         coords={"y": [15.0, 5.0], "x": [x0 + 5, x0 + 15]}).rio.write_crs("EPSG:32631")
>>> import terrapipe as tp
>>> import terrapipe.fuse
>>> before, after = tp.from_items([chip(1.0)]), tp.from_items([chip(2.0)])
>>> ds = next(iter(before.zip_grids(after, names=["before", "after"])))
>>> {k: v.dims for k, v in ds.data_vars.items()}
{'before': ('band', 'y', 'x'), 'after': ('after_band', 'y', 'x')}

Each input keeps its time: here an April image, a DEM without a time and a
June image.

>>> april = chip(1.0).assign_coords(time=np.datetime64("2024-04-15"))
>>> june = chip(2.0).assign_coords(time=np.datetime64("2024-06-19"))
>>> dem = chip(3.0)[:1]
>>> ds = next(iter(tp.from_items([april]).zip_grids(
...     tp.from_items([dem]), tp.from_items([june]), names=["image", "dem", "june"])))
>>> {name: str(ds[name].values)[:10] for name in ("time", "june_time")}
{'time': '2024-04-15', 'june_time': '2024-06-19'}
>>> str(time_of(ds, "june").values)[:10], chip_times(ds)
('2024-06-19', ('2024-04-15T00:00:00', '2024-06-19T00:00:00'))
>>> next(iter(before.zip_grids(tp.from_items([chip(2.0, x0=50.0)]))))
Traceback (most recent call last):
...
terrapipe.core.errors.GridMismatchError: zip_grids: element 0 of pipe 1 is not on the grid of pipe 0: transform differs: ...
"""

from __future__ import annotations

import time
from collections.abc import Collection, Hashable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from terrapipe.core.checks import check_name
from terrapipe.core.coords import time_name
from terrapipe.core.errors import GridMismatchError, InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.sample import GeoMeta, iso_times
from terrapipe.fuse.carrier import IMAGE, VECTORS_ATTR, add_raster
from terrapipe.fuse.grid import describe_grid, grid_mismatch, grid_of, spatial_dims
from terrapipe.fuse.provenance import source_ids_of

__all__ = ["ZipGrids", "check_same_grid", "chip_times", "merge_chips", "merge_samples", "time_of"]

_SAMPLE_KEYS = ("image", "mask", "boxes", "labels")


def check_same_grid(*chips: Any, tolerance: float = 1e-3, names: Sequence[str] | None = None) -> None:
    """Raise :class:`GridMismatchError` unless every chip lies on the first one's grid.

    Parameters
    ----------
    *chips
        xarray chips, odc-geo ``GeoBox`` es or ``GeoMeta`` dicts.
    tolerance
        How far grid corners may lie apart, in pixels.
    names
        Names of the chips for the message (default ``"chip 0"``, ...).

    Raises
    ------
    GridMismatchError
        Naming both grids and how they differ.

    Examples
    --------
    >>> from terrapipe.core.sample import geo_meta
    >>> a = geo_meta("EPSG:32631", (10, 0, 0, 0, -10, 100), (4, 4))
    >>> check_same_grid(a, geo_meta("EPSG:32631", (10, 0, 0, 0, -10, 100), (4, 4)))
    >>> check_same_grid(a, geo_meta("EPSG:32632", (10, 0, 0, 0, -10, 100), (4, 4)), names=["s2", "dem"])
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.GridMismatchError: dem is not on the grid of s2: crs differs (EPSG:32631 vs EPSG:32632); s2: EPSG:32631 shape (4, 4) transform (10, 0, 0, 0, -10, 100), dem: EPSG:32632 shape (4, 4) transform (10, 0, 0, 0, -10, 100); bring them onto one grid first (align_to, or chip both on the same grid)
    """
    if names is not None and (
        isinstance(names, str)
        or not isinstance(names, list | tuple)
        or not all(isinstance(n, str) for n in names)
    ):
        raise InvalidArgumentError(f"check_same_grid names must be a list of str or None, got {names!r}")
    labels = list(names) if names is not None else [f"chip {i}" for i in range(len(chips))]
    grids = [_grid(c) for c in chips]
    for label, grid in zip(labels[1:], grids[1:], strict=False):
        reason = grid_mismatch(grids[0], grid, tolerance=tolerance)
        if reason is not None:
            msg = (
                f"{label} is not on the grid of {labels[0]}: {reason}; {labels[0]}: {describe_grid(grids[0])}, "
                f"{label}: {describe_grid(grid)}; bring them onto one grid first (align_to, or chip both on the same grid)"
            )
            raise GridMismatchError(msg)


def _grid(chip: Any) -> Any:
    from odc.geo.geobox import GeoBox

    if isinstance(chip, GeoBox):
        return chip
    if isinstance(chip, Mapping) and "transform" in chip and "crs" in chip:
        from affine import Affine

        if not chip["crs"]:
            raise InvalidArgumentError("a GeoMeta without CRS has no grid to compare")
        return GeoBox(tuple(chip["shape"]), Affine(*chip["transform"][:6]), chip["crs"])
    if isinstance(chip, Mapping) and "meta" in chip:
        return _grid(chip["meta"])
    return grid_of(chip)


def _clashes(ds: xr.Dataset, extra: Mapping[Hashable, xr.Variable], chip: xr.Dataset, dim: Hashable) -> bool:
    """Whether ``chip``'s dimension ``dim`` differs from ``ds``'s (size or coordinate values).

    ``extra`` holds the coordinates the merge adds to ``ds`` at its end.
    """
    if ds.sizes[dim] != chip.sizes[dim]:
        return True
    mine = extra[dim] if dim in extra else (ds.coords[dim].variable if dim in ds.coords else None)
    if mine is not None and dim in chip.coords:
        return not np.array_equal(mine.values, chip.coords[dim].values)
    return (mine is not None) != (dim in chip.coords)


TIME = "time"


def time_of(chip: xr.Dataset | xr.DataArray, name: Hashable | None = None) -> xr.DataArray | None:
    """Return the time coordinate of variable ``name`` of a chip, or ``None`` when it has none.

    That is the coordinate ``"<name>_time"`` where :class:`ZipGrids` kept
    an input's own time, else the chip's ``time`` when it applies to the
    variable (a scalar, or along the variable's dimensions), as xarray
    shows it on ``chip[name]``: a variable without a time of its own (a
    DEM zipped with an image) shows the chip's.

    Parameters
    ----------
    chip
        A Dataset (then ``name`` is one of its variables) or a DataArray
        (``name`` is ignored: its ``time``).
    name
        The variable.

    Returns
    -------
    xarray.DataArray or None
        The coordinate.

    Raises
    ------
    InvalidArgumentError
        When the Dataset has no variable ``name``.

    Examples
    --------
    >>> ds = xr.Dataset({"a": ("x", [1]), "b": ("x", [2])}, coords={"time": 1, "b_time": 2})
    >>> int(time_of(ds, "a")), int(time_of(ds, "b"))
    (1, 2)
    """
    if isinstance(chip, xr.DataArray):
        return chip.coords.get(TIME)
    if name not in chip.data_vars:
        raise InvalidArgumentError(
            f"the chip has no variable {name!r} (it has {sorted(map(str, chip.data_vars))})"
        )
    dims = set(chip[name].dims)
    for candidate in (f"{name}_time", TIME):
        if candidate in chip.coords and set(chip.coords[candidate].dims) <= dims:
            return chip.coords[candidate]
    return None


def chip_times(chip: xr.Dataset | xr.DataArray) -> str | tuple[str, ...] | None:
    """Return every time a chip carries as ISO 8601 (what a Sample's ``meta["time"]`` holds).

    ``time`` first, then each variable's own ``"<variable>_time"`` (see the
    module doc), without repeating a time already listed: one time is a
    string (a time axis a tuple, as :func:`~terrapipe.core.sample.iso_times`
    gives them), several times are one tuple, no time is ``None``.

    Examples
    --------
    >>> ds = xr.Dataset({"a": ("x", [1]), "b": ("x", [2])},
    ...                 coords={"time": np.datetime64("2024-04-15"), "b_time": np.datetime64("2024-06-19")})
    >>> chip_times(ds), chip_times(ds[["a"]].drop_vars("b_time"))
    (('2024-04-15T00:00:00', '2024-06-19T00:00:00'), '2024-04-15T00:00:00')
    """
    names: list[Hashable] = [time_name(chip) or TIME]  # ERA5's valid_time, WRF's XTIME: by CF attributes
    if isinstance(chip, xr.Dataset):
        names.extend(f"{name}_time" for name in chip.data_vars)
    return _combine_times([iso_times(chip.coords[n].values) for n in names if n in chip.coords])


def _combine_times(times: Sequence[str | tuple[str, ...] | None]) -> str | tuple[str, ...] | None:
    """Combine the ISO times of several inputs: one if they agree, else all distinct ones in order.

    Examples
    --------
    >>> _combine_times(["2024-04-15", None, ("2024-04-15",)])
    '2024-04-15'
    >>> _combine_times(["2024-04-15", None, ("2024-06-19", "2024-07-01")])
    ('2024-04-15', '2024-06-19', '2024-07-01')
    """
    distinct: list[str | tuple[str, ...]] = []
    seen: list[tuple[str, ...]] = []
    for value in times:
        if value is None:
            continue
        key = (value,) if isinstance(value, str) else tuple(value)
        if key not in seen:
            seen.append(key)
            distinct.append(value)
    if not distinct:
        return None
    if len(distinct) == 1:
        return distinct[0]
    return tuple(t for key in seen for t in key)


def _same_time(a: xr.Variable, b: xr.Variable) -> bool:
    """Whether two time coordinates hold the same instants (a scalar ``t`` equals an axis ``[t]``)."""
    left, right = np.asarray(a.values).ravel(), np.asarray(b.values).ravel()
    if left.shape != right.shape:
        return False
    try:
        return bool(np.array_equal(left, right))
    except TypeError:  # values that do not compare (datetimes against strings)
        return False


def _mapped(
    coord: xr.Variable, renames: Mapping[Hashable, Hashable], squeezed: Collection[Hashable] = ()
) -> xr.Variable:
    """``coord`` with the dimensions its variable got in the merged chip (renamed, or squeezed away)."""
    dropped = {d: 0 for d in coord.dims if d in squeezed}
    if dropped:
        coord = coord.isel(dropped)
    dims = tuple(renames.get(d, d) for d in coord.dims)
    return xr.Variable(dims, coord.data, coord.attrs, coord.encoding)


def _add_time(
    ds: xr.Dataset, extra: dict[Hashable, xr.Variable], name: Hashable, time: xr.Variable | None
) -> None:
    """Give variable ``name`` of the merged chip its time (see the module doc), in ``extra`` (coordinates to add)."""
    if time is None:
        return
    current = extra.get(TIME, ds.coords[TIME].variable if TIME in ds.coords else None)
    if current is not None:
        if _same_time(current, time):
            return
    elif time.dims in ((), (TIME,)):
        extra[TIME] = time
        return
    own = f"{name}_time"
    if own in extra or own in ds.variables:
        taken = extra[own] if own in extra else (ds.coords[own].variable if own in ds.coords else None)
        if taken is not None and _same_time(taken, time):
            return  # a time axis renamed "<name>_time" already carries these values
        msg = f"zip_grids: the time of variable {name!r} goes to coordinate {own!r}, which the chip already has; rename one"
        raise InvalidArgumentError(msg)
    extra[own] = time


def _add_dim_coords(
    ds: xr.Dataset,
    extra: dict[Hashable, xr.Variable],
    chip: xr.Dataset | xr.DataArray,
    dims: Sequence[Hashable],
    renames: Mapping[Hashable, Hashable],
) -> None:
    """Carry the coordinate values of an added variable's non-spatial dimensions (under their new names)."""
    for dim in dims:
        new = renames.get(dim, dim)
        if dim in chip.coords and new not in ds.coords and new not in extra:
            extra[new] = _mapped(chip.coords[dim].variable, renames)


def merge_chips(chips: Sequence[Any], names: Sequence[str | None]) -> xr.Dataset:
    """Merge xarray chips on one grid into one Dataset (the grids are not checked here).

    Every input's time is kept (see the module doc).
    """
    first = chips[0]
    if isinstance(first, xr.DataArray):
        ds = first.to_dataset(name=names[0] or IMAGE, promote_attrs=False)
    else:
        ds = first
    vectors = dict(ds.attrs.get(VECTORS_ATTR) or {})
    y_dim, x_dim = spatial_dims(ds)
    extra: dict[Hashable, xr.Variable] = {}  # coordinates to add: times and labels of added dimensions
    for chip, name in zip(chips[1:], names[1:], strict=True):
        if isinstance(chip, xr.DataArray):
            label = name or (str(chip.name) if chip.name is not None else None)
            if label is None:
                raise InvalidArgumentError("zip_grids needs names= for DataArray chips without a name")
            other_y, other_x = spatial_dims(chip)
            lead = [d for d in chip.dims if d not in (other_y, other_x)]
            if len(lead) > 1:
                msg = f"zip_grids: chip {label!r} has dims {chip.dims!r}; only (band, y, x) or (y, x) can be added"
                raise InvalidArgumentError(msg)
            values = chip.transpose(*lead, other_y, other_x).values
            if label in extra:
                raise InvalidArgumentError(
                    f"zip_grids: {label!r} names a coordinate of the merged chip; rename it"
                )
            ds = add_raster(ds, label, values, attrs=chip.attrs)
            renames: dict[Hashable, Hashable] = {other_y: y_dim, other_x: x_dim}
            squeezed = [d for d in lead if chip.sizes[d] == 1]
            renames.update({d: f"{label}_band" for d in lead if d not in squeezed})
            time = chip.coords[TIME].variable if TIME in chip.coords else None
            _add_time(ds, extra, label, None if time is None else _mapped(time, renames, squeezed))
            continue
        other_y, other_x = spatial_dims(chip)
        for var_name, var in chip.data_vars.items():
            if var_name in ds.variables or var_name in extra:
                raise InvalidArgumentError(f"zip_grids: two pipes give a variable {var_name!r}; rename one")
            renames = {other_y: y_dim, other_x: x_dim}
            for dim in var.dims:
                if dim in (other_y, other_x):
                    continue
                if (dim in ds.dims and _clashes(ds, extra, chip, dim)) or (
                    dim not in ds.dims and (dim in ds.variables or dim in extra)
                ):
                    renames[dim] = f"{var_name}_{dim}"  # another axis, or a name the chip uses otherwise
            source = var.variable
            dims = tuple(renames.get(d, d) for d in source.dims)
            ds = ds.assign({var_name: xr.Variable(dims, source.data, source.attrs, source.encoding)})
            _add_dim_coords(ds, extra, chip, [d for d in var.dims if d not in (other_y, other_x)], renames)
            time = time_of(chip, var_name)
            _add_time(ds, extra, var_name, None if time is None else _mapped(time.variable, renames))
        for layer, frame in (chip.attrs.get(VECTORS_ATTR) or {}).items():
            if layer in vectors:
                raise InvalidArgumentError(f"zip_grids: two pipes carry a vector layer {layer!r}; rename one")
            vectors[layer] = frame
    source_ids: list[str] = []
    for chip in chips:
        source_ids.extend(s for s in source_ids_of(chip) if s not in source_ids)
    ds = ds.assign_coords(extra) if extra else ds.copy(deep=False)
    ds.attrs = {**ds.attrs, "source_ids": tuple(source_ids)}
    if vectors:
        ds.attrs[VECTORS_ATTR] = vectors
    return ds


def merge_samples(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge Samples on one grid into one Sample (the grids are not checked here).

    ``meta["time"]`` lists every input's time (see the module doc).
    """
    out: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    source_ids: list[str] = []
    for index, sample in enumerate(samples):
        for key, value in sample.items():
            if key == "meta":
                source_ids.extend(s for s in value.get("source_ids", ()) if s not in source_ids)
            elif key == "variables":
                for name, tensor in value.items():
                    if name in variables:
                        raise InvalidArgumentError(
                            f"zip_grids: two samples have variable {name!r}; rename one"
                        )
                    variables[name] = tensor
            elif key in out:
                msg = f"zip_grids: samples 0..{index} both have {key!r}; convert one modality into variables instead"
                raise InvalidArgumentError(msg)
            else:
                out[key] = value
    if variables:
        out["variables"] = variables
    meta: GeoMeta = dict(samples[0]["meta"])  # type: ignore[assignment]
    meta["source_ids"] = tuple(source_ids)
    meta["time"] = _combine_times([s["meta"].get("time") for s in samples])
    out["meta"] = meta
    return out


@register("zip_grids")
class ZipGrids(Stage[Any]):
    """Zip ``source`` with other pipes of chips on the same grid into one chip per step.

    Parameters
    ----------
    source
        The first pipe: its grid is the reference.
    *others
        The other pipes, element for element.
    names
        One name per pipe (``None`` entries for Datasets and Samples): the
        variable a DataArray chip becomes. Default ``"image"`` for the first
        pipe and the DataArray's own name for the others.
    tolerance
        How far grid corners may lie apart, in pixels (default 0.001).

    Yields
    ------
    xarray.Dataset or Sample
        A Dataset when the elements are xarray chips, a Sample when they
        are Samples; every input's time is kept (see "Times" in
        :mod:`terrapipe.fuse.zip`).

    Raises
    ------
    GridMismatchError
        When an element's grid differs from the first pipe's.
    InvalidArgumentError
        For pipes of different lengths, a name used twice, mixed element
        kinds or bad arguments.

    Notes
    -----
    The stage holds no position: resuming its sources resumes it.
    """

    stateless = True

    def __init__(
        self,
        source: IterDataPipe[Any],
        *others: IterDataPipe[Any],
        names: Sequence[str | None] | None = None,
        tolerance: float = 1e-3,
    ) -> None:
        super().__init__()
        if not others:
            raise InvalidArgumentError("zip_grids needs at least one other pipe to zip with")
        for pipe in others:
            if not isinstance(pipe, IterDataPipe):
                raise InvalidArgumentError(f"zip_grids takes pipes, got {type(pipe).__name__}")
        count = 1 + len(others)
        given = list(names) if names is not None else [None] * count
        if len(given) != count:
            raise InvalidArgumentError(f"zip_grids got {len(given)} names for {count} pipes")
        self.names = [None if n is None else check_name(n, "zip_grids name") for n in given]
        if not tolerance >= 0:
            raise InvalidArgumentError(f"tolerance must be >= 0 pixels, got {tolerance!r}")
        self.source = source
        self.others = list(others)
        self.tolerance = float(tolerance)

    def _labels(self) -> list[str]:
        return [f"pipe {i}" + (f" ({n!r})" if n else "") for i, n in enumerate(self.names)]

    def __iter__(self) -> Iterator[Any]:
        iterators = [iter(p) for p in (self.source, *self.others)]
        labels = self._labels()
        step = 0
        while True:
            elements = []
            ended = []
            for i, it in enumerate(iterators):
                try:
                    elements.append(next(it))
                except StopIteration:
                    ended.append(i)
            if len(ended) == len(iterators):
                return
            if ended:
                msg = (
                    f"zip_grids: {', '.join(labels[i] for i in ended)} ended after {step} elements while "
                    f"the others go on; zip pipes of the same length (same chips)"
                )
                raise InvalidArgumentError(msg)
            started = time.perf_counter()
            grids = [_grid(e) for e in elements]
            for i in range(1, len(grids)):
                reason = grid_mismatch(grids[0], grids[i], tolerance=self.tolerance)
                if reason is not None:
                    msg = (
                        f"zip_grids: element {step} of {labels[i]} is not on the grid of {labels[0]}: {reason}; "
                        f"{labels[0]}: {describe_grid(grids[0])}, {labels[i]}: {describe_grid(grids[i])}"
                    )
                    raise GridMismatchError(msg)
            merged = self._merge(elements)
            self.stats.seconds += time.perf_counter() - started
            self.stats.elements += 1
            step += 1
            yield merged

    def _merge(self, elements: list[Any]) -> Any:
        if all(isinstance(e, xr.DataArray | xr.Dataset) for e in elements):
            return merge_chips(elements, self.names)
        if all(isinstance(e, Mapping) and "meta" in e for e in elements):
            return merge_samples(elements)
        kinds = sorted({type(e).__name__ for e in elements})
        raise InvalidArgumentError(f"zip_grids zips xarray chips or Samples, not a mix: got {kinds}")

    def __len__(self) -> int:
        source: Any = self.source
        return len(source)
