"""``align_to``: put another raster (a DEM, a coarser band) onto each chip's exact grid.

For every chip, :class:`AlignTo` finds the window of the reference raster
that covers the chip (odc-geo's ``compute_reproject_roi`` in the reference's
pixels, plus a margin for the resampling kernel), reads only that window
(for a COG over HTTP: only the tiles that hold it), and reprojects it with
``rasterio.warp.reproject`` onto the chip's CRS, transform and shape. The
result is added to the chip as a variable (see :mod:`terrapipe.fuse`).

:func:`align_array` does the same for one chip and returns a DataArray.

Pixels of the chip that the reference does not cover get the reference's
nodata (or ``nodata=``); a chip entirely outside the reference is all nodata,
not an error. The variable's ``_FillValue`` attribute says which value that
is (NaN for floats without a nodata value).

Examples
--------
>>> import numpy as np, rasterio, xarray as xr
>>> from rasterio.transform import from_origin
>>> with rasterio.open("dem.tif", "w", driver="GTiff", width=40, height=40, count=1, dtype="float32",
...                    crs="EPSG:32631", transform=from_origin(500000, 5000200, 10, 10)) as dst:
...     dst.write(np.arange(1600, dtype="float32").reshape(1, 40, 40))
>>> chip = xr.DataArray(np.zeros((3, 8, 8), "uint16"), dims=("band", "y", "x"),
...                     coords={"y": 5000000 - 2.5 - 5.0 * np.arange(8), "x": 500100 + 2.5 + 5.0 * np.arange(8)}
...                     ).rio.write_crs("EPSG:32631")
>>> import terrapipe as tp
>>> import terrapipe.fuse
>>> out = next(iter(tp.from_items([chip]).align_to("dem.tif", resampling="nearest")))
>>> out["dem"].dims, float(out["dem"][0, 0]), float(out["dem"][7, 7])
(('y', 'x'), 810.0, 933.0)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np
import rasterio.warp
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.overlap import compute_reproject_roi
from rasterio.enums import Resampling

from terrapipe.core.checks import check_name, check_number
from terrapipe.core.crs import longitude_period, no_operation, same_crs
from terrapipe.core.errors import InvalidArgumentError, ReadError, TerrapipeError
from terrapipe.core.on_error import OnError, check_on_error, handle_error
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.redact import redact_url
from terrapipe.fuse.carrier import add_raster, as_dataset
from terrapipe.fuse.grid import crs_text, grid_of, spatial_dims

#: Revision of what ``align_to`` puts on a chip, in its cache key (see :class:`AlignTo`).
OUTPUT_REVISION = 2

__all__ = ["AlignTo", "align_array", "check_resampling", "kernel_margin", "reference_window"]

#: Kernel radius of each resampling, in source pixels at scale 1 (GDAL's warper widens it when shrinking).
_RADIUS = {
    Resampling.nearest: 1,
    Resampling.bilinear: 1,
    Resampling.cubic: 2,
    Resampling.cubic_spline: 2,
    Resampling.lanczos: 3,
}


def check_resampling(value: str | Resampling) -> Resampling:
    """Validate a resampling name (``"bilinear"``) or a ``rasterio.enums.Resampling``.

    Examples
    --------
    >>> check_resampling("cubic")
    <Resampling.cubic: 2>
    """
    if isinstance(value, Resampling):
        return value
    if isinstance(value, str) and value in Resampling.__members__:
        return Resampling[value]
    names = sorted(n for n in Resampling.__members__ if not n.startswith("_"))
    raise InvalidArgumentError(f"resampling must be one of {names}, got {value!r}")


def kernel_margin(resampling: Resampling, scale: float) -> int:
    """Source pixels to read beyond the chip's footprint so the kernel sees all it needs.

    Parameters
    ----------
    resampling
        The resampling.
    scale
        Source pixels per destination pixel (> 1 when shrinking).

    Examples
    --------
    >>> kernel_margin(Resampling.bilinear, 1 / 3), kernel_margin(Resampling.average, 4.0)
    (2, 5)
    """
    radius = _RADIUS.get(resampling, 1)
    return math.ceil(radius * max(1.0, float(scale))) + 1


def reference_window(reference: GeoBox, chip: GeoBox, resampling: Resampling) -> tuple[slice, slice] | None:
    """Return the ``(rows, cols)`` of ``reference`` needed to resample onto ``chip``.

    Pure grid math (no I/O): the chip's outline is mapped into the
    reference's pixels (odc-geo), padded by :func:`kernel_margin` and clipped
    to the reference.

    Returns
    -------
    tuple of slice, or None
        The window, or ``None`` when the chip lies outside the reference.

    Examples
    --------
    >>> from affine import Affine
    >>> ref = GeoBox((100, 100), Affine(10, 0, 0, 0, -10, 1000), "EPSG:32631")
    >>> chip = GeoBox((8, 8), Affine(5, 0, 200, 0, -5, 800), "EPSG:32631")
    >>> reference_window(ref, chip, Resampling.bilinear)
    (slice(18, 26, None), slice(18, 26, None))
    >>> reference_window(ref, GeoBox((8, 8), Affine(5, 0, -900, 0, -5, 800), "EPSG:32631"), Resampling.nearest)
    """
    return _window_and_cover(reference, chip, resampling)[0]


def _window_and_cover(
    reference: GeoBox, chip: GeoBox, resampling: Resampling
) -> tuple[tuple[slice, slice] | None, bool]:
    """Return :func:`reference_window`, and whether the reference covers the whole chip."""
    with (
        np.errstate(invalid="ignore"),  # odc-geo maps points off the globe to NaN (across the dateline)
        no_operation(reference.crs, chip.crs, "align_to"),
    ):
        info = compute_reproject_roi(reference, chip, padding=0)
    rows, cols = info.roi_src
    if rows.stop <= rows.start or cols.stop <= cols.start:
        return None, False
    margin = kernel_margin(resampling, info.scale)
    height, width = reference.shape.yx
    window = (
        slice(max(0, rows.start - margin), min(height, rows.stop + margin)),
        slice(max(0, cols.start - margin), min(width, cols.stop + margin)),
    )
    dst_rows, dst_cols = info.roi_dst
    covers = (dst_rows.stop - dst_rows.start, dst_cols.stop - dst_cols.start) == tuple(chip.shape.yx)
    return window, covers


def _wrapped_grids(grid: GeoBox) -> list[GeoBox]:
    """Return ``grid``, and for a lon/lat grid the same grid one turn of the globe west and east."""
    if grid.crs is None or not grid.crs.geographic:
        return [grid]
    turn = longitude_period(str(grid.crs)) or 360.0  # 360 degrees, 400 grads
    shifted = [
        GeoBox(grid.shape, Affine.translation(shift, 0) @ grid.affine, grid.crs) for shift in (-turn, turn)
    ]
    return [grid, *shifted]


def _is_fill(values: np.ndarray, fill: float | int) -> np.ndarray:
    found: np.ndarray = np.isnan(values) if isinstance(fill, float) and math.isnan(fill) else values == fill
    return found


def _as_reference(reference: Any, bands: Any) -> xr.DataArray:
    if isinstance(reference, xr.DataArray):
        if bands is not None:
            raise InvalidArgumentError(
                "bands= is for a reference path; select bands of a DataArray with .sel"
            )
        if reference.ndim not in (2, 3):
            msg = f"a reference DataArray must be (y, x) or (band, y, x), got dims {reference.dims!r}"
            raise InvalidArgumentError(msg)
        y_dim, x_dim = spatial_dims(reference)
        lead = [d for d in reference.dims if d not in (y_dim, x_dim)]
        # (y, x) stays 2-D: expand_dims would load a lazily read reference whole into memory.
        ordered: xr.DataArray = reference.transpose(*lead, y_dim, x_dim)
        return ordered
    from terrapipe.io.raster import open_raster

    return open_raster(reference, bands=bands)


def _default_name(reference: Any) -> str:
    if isinstance(reference, xr.DataArray):
        if reference.name is None:
            raise InvalidArgumentError("give align_to a name= for a reference DataArray without a name")
        return str(reference.name)
    from terrapipe.io.paths import href_of

    stem = os.path.basename(href_of(reference).split("?", 1)[0]).split(".", 1)[0]
    if not stem:
        raise InvalidArgumentError(f"cannot derive a name from {reference!r}; give align_to a name=")
    return stem


def _out_dtype(dtype: Any, default: Any) -> np.dtype[Any]:
    try:
        out: np.dtype[Any] = np.dtype(dtype) if dtype is not None else np.dtype(default)
    except TypeError as err:
        raise InvalidArgumentError(f"dtype must be a numpy dtype, got {dtype!r}") from err
    if out.kind not in "biuf":
        raise InvalidArgumentError(f"dtype must be a numeric (bool, int or float) dtype, got {dtype!r}")
    return out


def _fill_for(dtype: np.dtype[Any], nodata: float | None) -> float | int:
    if nodata is not None:
        value = check_number(nodata, "nodata", finite=False)
        return int(value) if dtype.kind in "biu" and value.is_integer() else value
    return float("nan") if np.issubdtype(dtype, np.floating) else 0


def _read_aligned(
    reference: xr.DataArray,
    ref_grid: GeoBox,
    chip: GeoBox,
    *,
    resampling: Resampling,
    src_nodata: float | None,
    fill: float | int,
    dtype: np.dtype[Any],
) -> tuple[np.ndarray, int]:
    """Reproject the reference window covering ``chip``; return ``(bands, h, w)`` and bytes read."""
    height, width = chip.shape.yx
    bands = reference.shape[0] if reference.ndim == 3 else 1
    out = np.full((bands, height, width), fill, dtype=dtype)
    read = 0
    # A lon/lat reference written in 0..360 (ERA5) or -180..180 serves chips on the other side of the
    # antimeridian through the same pixels 360 degrees away: a chip at -5..5 reads 355..360 and 0..5.
    for i, grid in enumerate(_wrapped_grids(ref_grid)):
        window, covers = _window_and_cover(grid, chip, resampling)
        if window is None:
            continue
        into = out if i == 0 else np.full_like(out, fill)
        read += _read_window(reference, grid, window, chip, into, resampling, src_nodata, fill)
        if i == 0 and covers:
            break
        if i > 0:
            take = _is_fill(out, fill) & ~_is_fill(into, fill)
            out[take] = into[take]
    return out, read


def _read_window(
    reference: xr.DataArray,
    ref_grid: GeoBox,
    window: tuple[slice, slice],
    chip: GeoBox,
    out: np.ndarray,
    resampling: Resampling,
    src_nodata: float | None,
    fill: float | int,
) -> int:
    """Read ``window`` of the reference and warp it into ``out`` (on ``chip``); return the bytes read."""
    rows, cols = window
    y_dim, x_dim = reference.dims[-2], reference.dims[-1]
    try:
        pixels = np.asarray(reference.isel({y_dim: rows, x_dim: cols}).values)
    except TerrapipeError:
        raise
    except Exception as err:  # a lazily read reference fails here (corrupt chunk, lost connection)
        source = redact_url(str(reference.encoding.get("source", reference.name)))
        msg = (
            f"align_to: cannot read rows {rows.start}:{rows.stop}, columns {cols.start}:{cols.stop} of the "
            f"reference {source!r}: {type(err).__name__}: {err}; check that it is readable, "
            "or pass on_error='skip' to skip the chips that need it"
        )
        raise ReadError(msg) from err
    if pixels.ndim == 2:
        pixels = pixels[None]
    window_transform = ref_grid.affine @ ref_grid.affine.translation(cols.start, rows.start)
    src_crs: str | None = crs_text(ref_grid.crs)
    dst_crs: str | None = crs_text(chip.crs)
    if src_crs == dst_crs or same_crs(src_crs, dst_crs):
        # One CRS: the transforms alone say where the pixels go, so GDAL asks PROJ nothing (PROJ finds no
        # operation from EPSG:4807, a Paris-meridian CRS in grads, to itself: the warp failed).
        src_crs = dst_crs = None
    try:
        _warp(
            pixels,
            out,
            src=(window_transform, src_crs, src_nodata),
            dst=(chip.affine, dst_crs, fill),
            resampling=resampling,
        )
    except MemoryError:
        raise
    except Exception as err:  # GDAL/PROJ (rasterio's CPLE_* errors): no coordinate operation between the CRSs
        msg = (
            f"align_to: GDAL cannot warp the reference ({crs_text(ref_grid.crs)}) onto the chip "
            f"({crs_text(chip.crs)}): {type(err).__name__}: {err}; reproject the reference into the chips' CRS "
            "(or one PROJ can convert to it) first"
        )
        raise InvalidArgumentError(msg) from err
    return int(pixels.nbytes)


def _warp(
    pixels: np.ndarray,
    out: np.ndarray,
    *,
    src: tuple[Any, str | None, float | None],
    dst: tuple[Any, str | None, float | int],
    resampling: Resampling,
) -> None:
    """``rasterio.warp.reproject(pixels -> out)`` through georeferenced in-memory datasets.

    Given numpy arrays, rasterio wraps them in datasets created inside
    ``warnings.catch_warnings()``, which swaps the process-wide filter list:
    threads warping at once could leave an "ignore" filter installed for good
    (or let the warning out). GDAL MEM datasets opened with their transform
    and CRS raise no warning, so nothing is swapped; the results and the speed
    are the same (the warp releases the GIL either way). A CRS of ``None`` on
    both sides: the grids share one CRS and their transforms place the pixels.
    """
    (src_transform, src_crs, src_nodata), (dst_transform, dst_crs, dst_nodata) = src, dst
    # A reference without nodata: every value of it is a value. GDAL's warper, given a destination
    # nodata, moves computed values off it (0 -> 1 for uint8, 0 -> -1 for int16 with any resampling but
    # nearest): an ocean of 0 became land class 1, silently. So the destination gets none.
    marked = src_nodata is not None
    bands = list(range(1, pixels.shape[0] + 1))
    profile = {"driver": "MEM", "count": len(bands)}
    with (
        rasterio.open(
            "", "w+", **profile, width=pixels.shape[2], height=pixels.shape[1], dtype=pixels.dtype,
            crs=src_crs, transform=src_transform, nodata=src_nodata,
        ) as source,
        rasterio.open(
            "", "w+", **profile, width=out.shape[2], height=out.shape[1], dtype=out.dtype,
            crs=dst_crs, transform=dst_transform, nodata=dst_nodata if marked else None,
        ) as destination,
    ):  # fmt: skip
        source.write(pixels)
        destination.write(out)
        rasterio.warp.reproject(
            source=rasterio.band(source, bands),
            destination=rasterio.band(destination, bands),
            src_nodata=src_nodata,
            dst_nodata=dst_nodata if marked else None,
            init_dest_nodata=marked,  # unmarked: the destination keeps the fill where nothing lands
            resampling=resampling,
            num_threads=1,
        )
        out[...] = destination.read()


def _nodata_of(reference: xr.DataArray) -> float | None:
    nodata = reference.rio.nodata
    if nodata is None:
        nodata = reference.rio.encoded_nodata
        if nodata is not None and np.issubdtype(reference.dtype, np.floating):
            return float("nan")  # masked reference: nodata is NaN in the values
    return None if nodata is None else float(nodata)


def align_array(
    reference: Any,
    like: xr.DataArray | xr.Dataset | GeoBox,
    *,
    resampling: str | Resampling = "bilinear",
    nodata: float | None = None,
    dtype: Any = None,
    bands: Any = None,
) -> xr.DataArray:
    """Reproject the part of ``reference`` under one chip onto the chip's grid.

    Parameters
    ----------
    reference
        A path/URL/STAC asset of a raster (opened with
        :func:`~terrapipe.io.open_raster`), or a ``(band, y, x)`` / ``(y, x)``
        DataArray with a CRS.
    like
        The chip (an xarray object with a CRS) or its ``GeoBox``.
    resampling
        A ``rasterio.enums.Resampling`` or its name.
    nodata
        Value of uncovered pixels; default the reference's nodata, else NaN
        (floats) or 0 (integers).
    dtype
        Result dtype; default the reference's.
    bands
        Bands to read from a reference path (see ``open_raster``).

    Returns
    -------
    xarray.DataArray
        ``(band, y, x)`` on the chip's grid, with its CRS and ``_FillValue``: the
        chip's own spatial dimensions and coordinates (a lon/lat chip's ``y``/``x``
        too); for a ``GeoBox``, odc-geo's (``latitude``/``longitude`` when
        geographic).

    Raises
    ------
    InvalidArgumentError
        For a reference or chip without CRS, or bad arguments.
    ReadError
        When the reference cannot be read.
    """
    method = check_resampling(resampling)
    ref = _as_reference(reference, bands)
    ref_grid = grid_of(ref)
    grid = like if isinstance(like, GeoBox) else grid_of(like)
    out_dtype = _out_dtype(dtype, ref.dtype)
    src_nodata = _nodata_of(ref)
    fill = _fill_for(out_dtype, nodata if nodata is not None else src_nodata)
    values, _ = _read_aligned(
        ref, ref_grid, grid, resampling=method, src_nodata=src_nodata, fill=fill, dtype=out_dtype
    )
    from odc.geo.xr import xr_coords

    coords: dict[Hashable, Any] = dict(xr_coords(grid, crs_coord_name="spatial_ref"))
    coords["band"] = (
        np.asarray(ref[ref.dims[0]].values)
        if ref.ndim == 3 and ref.dims[0] in ref.coords
        else np.arange(1, len(values) + 1)
    )
    names: tuple[Hashable, Hashable] = _spatial_names(grid)
    if not isinstance(like, GeoBox):  # the chip's own axes and coordinates, so that it aligns with them
        odc_names = names
        names = spatial_dims(like)
        for odc_name, name in zip(odc_names, names, strict=True):
            coords[name] = like.coords[name] if name in like.coords else coords[odc_name]
            if odc_name != name:
                del coords[odc_name]
    da = xr.DataArray(values, dims=("band", *names), coords=coords)
    da.attrs["_FillValue"] = fill
    return da


def _spatial_names(grid: GeoBox) -> tuple[str, str]:
    """Return the spatial dimension names odc-geo gives a grid: ``("y", "x")`` or ``("latitude", "longitude")``."""
    return ("latitude", "longitude") if grid.crs is not None and grid.crs.geographic else ("y", "x")


@register("align_to")
class AlignTo(Stage[xr.Dataset]):
    """Add a raster, resampled onto each chip's grid, to every chip of ``source``.

    Parameters
    ----------
    source
        A pipe of xarray chips (DataArray or Dataset) with a CRS.
    reference
        The raster to align: a path, URL or STAC asset (opened lazily with
        :func:`~terrapipe.io.open_raster`; only each chip's window is read), or
        a DataArray with a CRS.
    name
        Name of the new variable; default the file's stem (``"dem"`` for
        ``dem.tif``) or the DataArray's name.
    resampling
        ``"bilinear"`` (default), ``"nearest"`` (for classes), ``"cubic"``,
        ``"average"``, ... or a ``rasterio.enums.Resampling``.
    nodata
        Value of chip pixels the reference does not cover; default the
        reference's nodata, else NaN for floats, 0 for integers.
    dtype
        dtype of the aligned raster; default the reference's.
    bands
        Bands of a reference path to read (1-based or names); default all.
    on_error
        ``"raise"``, ``"skip"`` or ``"warn"`` when the reference's window
        cannot be read (a ``ReadError``); skipped chips are counted.

    Yields
    ------
    xarray.Dataset
        The chip as a Dataset (a DataArray becomes ``"image"``) plus variable
        ``name``: ``(y, x)`` for a one-band reference, else
        ``("<name>_band", y, x)``.

    Raises
    ------
    InvalidArgumentError
        For bad arguments, a reference or chip without CRS, or a name the
        chip already uses.
    ReadError
        When the reference cannot be opened (at construction) or a window
        cannot be read (with ``on_error="raise"``).

    Notes
    -----
    ``stats.bytes_read`` counts the pixel bytes of the windows read (before
    decompression it may be less). The stage holds no position: resuming its
    source resumes it.
    """

    stateless = True

    def __init__(
        self,
        source: IterDataPipe[Any],
        reference: Any,
        *,
        name: str | None = None,
        resampling: str | Resampling = "bilinear",
        nodata: float | None = None,
        dtype: Any = None,
        bands: Any = None,
        on_error: OnError = "raise",
    ) -> None:
        super().__init__()
        self.source = source
        self.resampling = check_resampling(resampling)
        self.name = check_name(name if name is not None else _default_name(reference), "align_to name")
        self.on_error = check_on_error(on_error)
        self.reference = _as_reference(reference, bands)
        self.reference_grid = grid_of(self.reference)
        self.dtype = _out_dtype(dtype, self.reference.dtype)
        self.src_nodata = _nodata_of(self.reference)
        self.fill = _fill_for(self.dtype, nodata if nodata is not None else self.src_nodata)
        # part of the cache key: 2 since a reference without nodata keeps its values equal to the fill
        # (before, GDAL's warper moved them off it), so a cache written before is not served
        self.revision = OUTPUT_REVISION
        origin = self.reference.encoding.get("source")
        self._encoding = {"source": str(origin)} if origin else {}

    def __iter__(self) -> Iterator[xr.Dataset]:
        for element in self.source:
            started = time.perf_counter()
            ds = as_dataset(element)
            try:
                values, nbytes = _read_aligned(
                    self.reference,
                    self.reference_grid,
                    grid_of(ds),
                    resampling=self.resampling,
                    src_nodata=self.src_nodata,
                    fill=self.fill,
                    dtype=self.dtype,
                )
            except InvalidArgumentError:
                raise
            except TerrapipeError as err:
                self.stats.seconds += time.perf_counter() - started
                handle_error(err, on_error=self.on_error, stats=self.stats)
                continue
            out = add_raster(ds, self.name, values, attrs={"_FillValue": self.fill}, encoding=self._encoding)
            self.stats.bytes_read += nbytes
            self.stats.seconds += time.perf_counter() - started
            self.stats.elements += 1
            yield out

    def __len__(self) -> int:
        if self.on_error != "raise":
            raise TypeError(f"align_to with on_error={self.on_error!r} may drop chips; its length is unknown")
        source: Any = self.source
        return len(source)
