"""``rasterize``: burn vector features onto each chip's grid (``rasterio.features.rasterize``).

For every chip, :class:`Rasterize` takes the features that intersect the
chip (spatial-index query on a copy of the layer reprojected once per CRS,
see :class:`~terrapipe.fuse.vector_index.VectorIndex`) and burns them with
``rasterio.features.rasterize`` onto the chip's transform and shape. The
result equals rasterizing the whole layer on that grid.

- Points burn the pixel they fall in, lines the pixels they cross
  (Bresenham), polygons the pixels whose centre is inside (or every pixel
  they touch with ``all_touched=True``). Multi-part geometries and
  GeometryCollections burn every part.
- ``merge="replace"``: a later feature overwrites an earlier one (the
  layer's row order); ``merge="add"``: values are summed onto ``fill``
  (parts of one GeometryCollection that overlap count once each).
- On a lon/lat chip, longitudes wrap: a chip written 0..360 or across the
  antimeridian burns the features written -180..180 on its far side, moved
  one turn of the globe (a layer written 0..360 likewise burns chips written
  -180..180); a feature met on both sides of the chip burns as one geometry
  (its copies joined), in layer order
  (:class:`~terrapipe.fuse.vector_index.VectorIndex`).
- A chip that no feature touches (outside the layer's extent, or an empty
  layer) gets a mask full of ``fill``: that is a result, not an error.
- A layer without CRS is refused (``InvalidArgumentError``): there is no
  way to know where its coordinates lie.

Examples
--------
>>> import numpy as np, xarray as xr, geopandas as gpd
>>> from shapely.geometry import box
>>> chip = xr.DataArray(np.zeros((1, 4, 4)), dims=("band", "y", "x"),
...                     coords={"y": [35.0, 25.0, 15.0, 5.0], "x": [5.0, 15.0, 25.0, 35.0]}).rio.write_crs("EPSG:32631")
>>> fields = gpd.GeoDataFrame({"class": [3, 5]}, geometry=[box(0, 0, 20, 20), box(20, 20, 40, 40)], crs="EPSG:32631")
>>> import terrapipe as tp
>>> import terrapipe.fuse
>>> ds = next(iter(tp.from_items([chip]).rasterize(fields, column="class")))
>>> ds["mask"].values
array([[0, 0, 5, 5],
       [0, 0, 5, 5],
       [3, 3, 0, 0],
       [3, 3, 0, 0]], dtype=int32)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox
from rasterio.enums import MergeAlg
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize as rio_rasterize

from terrapipe.core.checks import check_name, check_number
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.warning_filters import ignore_once
from terrapipe.fuse.carrier import add_raster, as_dataset
from terrapipe.fuse.grid import crs_text, grid_bounds, grid_of, pixels_of
from terrapipe.fuse.vector_index import OUTPUT_REVISION, VectorIndex, moved_rows, one_row_per_feature

__all__ = ["Merge", "Rasterize", "rasterize_features"]

Merge = Literal["replace", "add"]
_MERGE = {"replace": MergeAlg.replace, "add": MergeAlg.add}
_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "uint64", "float32", "float64")


#: rasterio's ``rasterize`` burns into an in-memory dataset (``MemoryDataset``)
#: whose constructor runs ``warnings.catch_warnings()`` + ``simplefilter("ignore")``.
#: Two threads interleaving that block (``pmap``, loader threads) let its "no
#: geotransform" warning through now and then, and can leave an ignore-everything
#: filter installed for good or throw away the user's filters. The burnt arrays
#: are right all the same (identical to serial runs, tested). So terrapipe's calls
#: take turns (:data:`_RASTERIO_RASTERIZE_LOCK`: the call holds the GIL throughout,
#: so threads lose no parallelism), and a narrow filter, put at the front when a
#: pass starts, ignores exactly that warning raised from ``rasterio.features`` in
#: case another thread's ``catch_warnings`` interleaves
#: (see :mod:`terrapipe.core.warning_filters`).
_SPURIOUS_MESSAGE = "Dataset has no geotransform"
_RASTERIO_RASTERIZE_LOCK = threading.Lock()


def _ignore_spurious_warning() -> None:
    ignore_once(_SPURIOUS_MESSAGE, NotGeoreferencedWarning, module=r"rasterio\.features")


def _check_dtype(dtype: Any) -> np.dtype[Any]:
    try:
        value: np.dtype[Any] = np.dtype(dtype)
    except TypeError as err:
        raise InvalidArgumentError(f"dtype must be one of {_DTYPES}, got {dtype!r}") from err
    if value.name not in _DTYPES:
        raise InvalidArgumentError(f"rasterize cannot burn dtype {value.name!r}; use one of {_DTYPES}")
    return value


def _fits(values: np.ndarray, dtype: np.dtype[Any]) -> bool:
    """Whether every value can be stored in ``dtype`` exactly (integers) or at all (floats)."""
    if values.size == 0:
        return True
    if dtype.kind == "f":  # finite values must stay finite (1e300 in float32 would burn inf)
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        return bool(finite.size == 0 or np.abs(finite).max() <= np.finfo(dtype).max)
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        return False
    info = np.iinfo(dtype)
    return bool(values.min() >= info.min and values.max() <= info.max)


def _fits_float(values: np.ndarray, dtype: np.dtype[Any]) -> bool:
    """Whether integer ``values`` survive ``dtype`` (a float) exactly: 16777217 in float32 burnt 16777216."""
    if values.dtype.kind not in "iu":
        return True
    return bool(np.array_equal(values.astype(dtype).astype(values.dtype), values))


def _exact_in_double(values: np.ndarray) -> bool:
    """Whether GDAL, which burns doubles, burns every integer of ``values`` exactly (within +-2**53)."""
    if values.dtype.kind not in "iu" or values.size == 0:
        return True
    return bool(int(values.max()) <= _DOUBLE_EXACT and int(values.min()) >= -_DOUBLE_EXACT)


#: The largest integer a double holds exactly, with every integer below it.
_DOUBLE_EXACT = 2**53


def _burn_values(
    frame: Any, column: str | None, dtype: Any, what: str
) -> tuple[np.ndarray | None, np.dtype[Any]]:
    """Validate the value column; return its values (None: burn 1) and the mask dtype."""
    if column is None:
        return None, _check_dtype(dtype if dtype is not None else "uint8")
    if not isinstance(column, str):
        raise InvalidArgumentError(f"{what}: column must be a column name (a str) or None, got {column!r}")
    if column not in frame.columns or column == frame.geometry.name:
        msg = (
            f"{what}: no value column {column!r} (columns: "
            f"{[str(c) for c in frame.columns if c != frame.geometry.name]}); pick one of those, "
            "or column=None to burn 1 where a feature is"
        )
        raise InvalidArgumentError(msg)
    values = frame[column].to_numpy()
    if values.dtype == bool:
        values = values.astype(np.uint8)
    if values.dtype.kind not in "iuf":
        raise InvalidArgumentError(f"{what}: column {column!r} must be numeric to burn, it is {values.dtype}")
    if values.dtype.kind == "f" and np.isnan(values).any():
        n = int(np.isnan(values).sum())
        raise InvalidArgumentError(
            f"{what}: column {column!r} has {n} missing values; fill or drop them first"
        )
    if dtype is None:
        if values.dtype.kind == "f":
            dtype = "float32"
        else:
            dtype = "int32" if _fits(values, np.dtype("int32")) else "int64"
    mask_dtype = _check_dtype(dtype)
    if not _fits(values, mask_dtype) or (mask_dtype.kind == "f" and not _fits_float(values, mask_dtype)):
        low, high = values.min(), values.max()
        raise InvalidArgumentError(
            f"{what}: values of {column!r} ({low}..{high}) do not fit dtype {mask_dtype.name}"
        )
    return values, mask_dtype


def rasterize_features(
    geometries: Any,
    values: np.ndarray | None,
    grid: GeoBox,
    *,
    fill: float | int = 0,
    all_touched: bool = False,
    merge: Merge = "replace",
    dtype: Any = "uint8",
) -> np.ndarray:
    """Burn geometries (already in the grid's CRS) onto ``grid``.

    Parameters
    ----------
    geometries
        Shapely geometries (a GeoSeries or sequence), in the grid's CRS.
    values
        One value per geometry, or ``None`` to burn 1.
    grid
        The target grid.
    fill, all_touched, merge, dtype
        As in :class:`Rasterize`.

    Returns
    -------
    numpy.ndarray
        ``(height, width)``.
    """
    height, width = grid.shape.yx
    geoms = _points_to_centres(_near_the_grid(list(geometries), grid), grid)
    if not geoms:
        return np.full((height, width), fill, dtype=dtype)
    burn = values if values is not None else np.ones(len(geoms), dtype=np.uint8)
    out_dtype = np.dtype(dtype)
    if not _exact_in_double(burn):
        return _burn_by_code(
            geoms, burn, grid, fill=fill, all_touched=all_touched, merge=merge, dtype=out_dtype
        )
    # GDAL clamps a sum to the dtype (300 features of 1 read 255 in uint8): where the sum could leave
    # the dtype, add in float64 (exact for integers below 2**53) and check the result fits.
    wide = merge == "add" and out_dtype.kind in "iu" and not _sum_fits(burn, fill, out_dtype)
    shapes = zip(geoms, burn.tolist(), strict=True)
    with _RASTERIO_RASTERIZE_LOCK:
        burnt: np.ndarray = rio_rasterize(
            shapes,
            out_shape=(height, width),
            transform=grid.affine,
            fill=fill,
            all_touched=all_touched,
            merge_alg=_MERGE[merge],
            dtype="float64" if wide else dtype,
        )
    if wide:
        if not _fits(burnt, out_dtype):
            raise InvalidArgumentError(
                f"rasterize: summed values reach {burnt.min():g}..{burnt.max():g} on this chip, beyond dtype "
                f"{out_dtype.name} (GDAL would clamp them); pass a wider dtype= (e.g. 'int32')"
            )
        burnt = burnt.astype(out_dtype)
    return burnt


#: How far (in pixels) a geometry may reach past the grid before it is cut to the grid (GDAL's pixel space
#: overflows: a polygon reaching 1e15 m burnt nothing on a 10 m chip it covers, as rasterio does).
_FAR_PIXELS = 1e6
#: The margin (in pixels) kept around the grid when a far-reaching geometry is cut.
_CUT_MARGIN = 8


def _near_the_grid(geoms: list[Any], grid: GeoBox) -> list[Any]:
    """Cut the geometries that reach far past the grid to the grid (with a margin); leave the others as they are.

    GDAL burns in pixel coordinates and gives nothing (no error) for a
    geometry whose coordinates overflow them: a box of +-1e300, a triangle
    with a vertex at 1e15 m (a feature reprojected far from its projection's
    centre), burnt 0 pixels of a chip it covers. Cut to the grid plus a
    margin, it burns the pixels it covers; geometries within
    :data:`_FAR_PIXELS` pixels are not touched (their burn is GDAL's, exactly).
    """
    import shapely

    if not geoms:
        return geoms
    left, bottom, right, top = grid_bounds(grid.affine, grid.shape.yx)
    a, b, _, d, e, _ = (abs(float(v)) for v in tuple(grid.affine)[:6])
    pixel = max(a, b, d, e)
    bounds = shapely.bounds(np.asarray(geoms, dtype=object))
    reach = pixel * _FAR_PIXELS
    with np.errstate(invalid="ignore"):
        far = (
            (bounds[:, 0] < left - reach)
            | (bounds[:, 1] < bottom - reach)
            | (bounds[:, 2] > right + reach)
            | (bounds[:, 3] > top + reach)
        )
    if not far.any():
        return geoms
    margin = pixel * _CUT_MARGIN
    rect = (left - margin, bottom - margin, right + margin, top + margin)
    out = list(geoms)
    for i in np.flatnonzero(far):
        with np.errstate(all="ignore"):
            out[i] = shapely.clip_by_rect(geoms[i], *rect)
            lost = shapely.is_empty(out[i]) and shapely.intersects(geoms[i], shapely.box(*rect))
        if lost:  # GEOS overflows too (coordinates past ~1e154): say so rather than burn nothing
            raise InvalidArgumentError(
                f"rasterize: a feature reaching {tuple(float(v) for v in bounds[i])} covers this chip but its "
                "coordinates are too large to burn (they overflow); check the layer (a reprojection that blew up?)"
            )
    return out


def _points_to_centres(geoms: list[Any], grid: GeoBox) -> list[Any]:
    """Move each point (and part of a multipoint) to the centre of the pixel that holds it, by :func:`pixels_of`.

    GDAL burns a point on the edge between two chips in both, or in neither,
    as each chip's transform rounds (chips at 0.7 m burnt 40 of 1600 lattice
    points twice, others nowhere; the whole grid burns each once). At a
    pixel's centre the point burns the pixel of the half-open rule, the same
    on every chip; a point elsewhere burns where GDAL burnt it.
    """
    import shapely

    kinds = shapely.get_type_id(np.asarray(geoms, dtype=object)) if geoms else np.empty(0)
    points = np.flatnonzero((kinds == 0) | (kinds == 4))  # Point, MultiPoint
    if not len(points):
        return geoms

    def to_centre(xy: np.ndarray) -> np.ndarray:
        cols, rows = pixels_of(grid, xy)
        a, b, c, d, e, f = (float(v) for v in tuple(grid.affine)[:6])
        col, row = cols + 0.5, rows + 0.5
        return np.column_stack([a * col + b * row + c, d * col + e * row + f])

    out = list(geoms)
    moved = shapely.transform(np.asarray([geoms[i] for i in points], dtype=object), to_centre)
    for i, geom in zip(points, moved, strict=True):
        out[i] = geom
    return out


def _burn_by_code(
    geoms: list[Any],
    values: np.ndarray,
    grid: GeoBox,
    *,
    fill: float | int,
    all_touched: bool,
    merge: Merge,
    dtype: np.dtype[Any],
) -> np.ndarray:
    """Burn 64-bit integers beyond +-2**53 exactly: GDAL burns doubles (2**53 + 1 burnt 2**53, 2**64 - 1 burnt 0).

    Each feature burns the code of its value (its rank among the distinct
    values, plus one), in the same order, so the same feature wins each
    pixel; the codes are then looked up. Sums cannot be made exact so.
    """
    if merge == "add":
        raise InvalidArgumentError(
            f"rasterize: merge='add' of values beyond +-2**53 ({values.min()}..{values.max()}) cannot be summed "
            "exactly (GDAL adds doubles); use merge='replace', or smaller values"
        )
    distinct, codes = np.unique(values, return_inverse=True)
    height, width = grid.shape.yx
    with _RASTERIO_RASTERIZE_LOCK:
        burnt: np.ndarray = rio_rasterize(
            zip(geoms, (codes + 1).tolist(), strict=True),
            out_shape=(height, width),
            transform=grid.affine,
            fill=0,
            all_touched=all_touched,
            merge_alg=MergeAlg.replace,
            dtype="uint32" if len(distinct) < 2**32 - 1 else "uint64",
        )
    out = np.full((height, width), fill, dtype=dtype)
    hit = burnt > 0
    out[hit] = distinct[burnt[hit].astype(np.int64) - 1]
    return out


def _sum_fits(values: np.ndarray, fill: float | int, dtype: np.dtype[Any]) -> bool:
    """Whether ``fill`` plus any subset of ``values`` stays within an integer dtype."""
    info = np.iinfo(dtype)
    as_float = values.astype(np.float64)
    high = float(fill) + float(as_float[as_float > 0].sum())
    low = float(fill) + float(as_float[as_float < 0].sum())
    return info.min <= low and high <= info.max


@register("rasterize")
class Rasterize(Stage[xr.Dataset]):
    """Add a raster burnt from vector features to every chip of ``source``.

    Parameters
    ----------
    source
        A pipe of xarray chips (DataArray or Dataset) with a CRS.
    vector
        A GeoDataFrame with a CRS, or a vector file path or URL (read once,
        when the stage is built).
    column
        Numeric column whose values are burnt; ``None`` burns 1.
    all_touched
        Burn every pixel a polygon touches, not only those whose centre it covers.
    merge
        ``"replace"`` (later features win) or ``"add"`` (values are summed).
    fill
        Value of pixels no feature covers.
    dtype
        Mask dtype; default ``uint8`` without a column, ``int32`` (``int64``
        if needed) for an integer column, ``float32`` for a float column.
    name
        Name of the new variable (``"mask"``).

    Yields
    ------
    xarray.Dataset
        The chip as a Dataset plus ``name``: ``(y, x)`` of ``dtype`` with
        ``attrs["_FillValue"] = fill``.

    Raises
    ------
    InvalidArgumentError
        For a layer without CRS, an unknown or non-numeric column, values
        that do not fit ``dtype``, a chip without CRS or a taken name.

    Notes
    -----
    The layer is reprojected once per CRS the chips come in
    (``stage.index.reprojections`` counts it) and queried with its spatial
    index per chip. The stage holds no position: resuming its source resumes it.
    """

    stateless = True

    def __init__(
        self,
        source: IterDataPipe[Any],
        vector: Any,
        *,
        column: str | None = None,
        all_touched: bool = False,
        merge: Merge = "replace",
        fill: float | int = 0,
        dtype: Any = None,
        name: str = "mask",
    ) -> None:
        super().__init__()
        if not isinstance(merge, str) or merge not in _MERGE:
            raise InvalidArgumentError(f"merge must be 'replace' or 'add', got {merge!r}")
        self.source = source
        self.name = check_name(name, "rasterize name")
        self.index = VectorIndex(vector, what="rasterize")
        self.column = column
        _, self.dtype = _burn_values(self.index.frame, column, dtype, "rasterize")
        check_number(fill, "rasterize fill", finite=False)
        fill_array = np.asarray([fill])
        if not _fits(fill_array, self.dtype) or (
            self.dtype.kind == "f" and not _fits_float(fill_array, self.dtype)
        ):
            raise InvalidArgumentError(f"rasterize: fill={fill!r} does not fit dtype {self.dtype.name}")
        self.all_touched = bool(all_touched)
        self.merge: Merge = merge
        self.fill = fill
        origin = self.index.frame.attrs.get("source")
        self._encoding = {"source": str(origin)} if origin else {}

    def burn(self, grid: GeoBox) -> np.ndarray:
        """Return the mask of one grid (the features intersecting it, burnt)."""
        frame, positions, shifts = self.index.hits(
            grid_bounds(grid.affine, grid.shape.yx), crs_text(grid.crs)
        )
        hits = moved_rows(frame, positions, shifts)
        if len(np.unique(positions)) != len(positions):
            hits = one_row_per_feature(hits, positions)
        values = None
        if self.column is not None:
            values = hits[self.column].to_numpy()
            if values.dtype == bool:
                values = values.astype(np.uint8)
        return rasterize_features(
            hits.geometry,
            values,
            grid,
            fill=self.fill,
            all_touched=self.all_touched,
            merge=self.merge,
            dtype=self.dtype,
        )

    def __iter__(self) -> Iterator[xr.Dataset]:
        _ignore_spurious_warning()
        for element in self.source:
            started = time.perf_counter()
            ds = as_dataset(element)
            mask = self.burn(grid_of(ds))
            out = add_raster(ds, self.name, mask, attrs={"_FillValue": self.fill}, encoding=self._encoding)
            self.stats.seconds += time.perf_counter() - started
            self.stats.elements += 1
            yield out

    def __len__(self) -> int:
        source: Any = self.source
        return len(source)

    def cache_config(self) -> dict[str, Any]:
        """Describe what the stage burns (for cache keys and pipeline fingerprints).

        :func:`~terrapipe.cache.segment.describe_stage` (and so
        :func:`~terrapipe.dist.fingerprint.pipe_fingerprint`) uses it in place
        of the stage's attributes. The layer counts by content, whether it was
        given as a GeoDataFrame or read from a file: a digest of its
        geometries' WKB in row order (the order decides ``merge="replace"``),
        its CRS and the values of ``column``; attribute columns that are not
        burnt do not count.

        Returns
        -------
        dict
            ``revision`` (:data:`~terrapipe.fuse.vector_index.OUTPUT_REVISION`),
            ``geometry`` (a digest, bytes), ``crs``, ``values`` (array or
            ``None``) and the options ``column``, ``all_touched``, ``merge``,
            ``fill``, ``dtype``, ``name``.

        Examples
        --------
        >>> import geopandas as gpd, terrapipe as tp
        >>> from shapely.geometry import box
        >>> layer = gpd.GeoDataFrame({"v": [1, 2]}, geometry=[box(0, 0, 1, 1), box(1, 1, 2, 2)], crs="EPSG:32631")
        >>> config = Rasterize(tp.from_items([]), layer, column="v").cache_config()
        >>> config["values"], config["dtype"], config["fill"]
        (array([1, 2]), 'int32', 0)
        >>> moved = layer.set_geometry([box(0, 0, 1, 1), box(1, 1, 3, 3)])
        >>> Rasterize(tp.from_items([]), moved, column="v").cache_config()["geometry"] == config["geometry"]
        False
        """
        from terrapipe.core.digests import wkb_digest

        frame = self.index.frame
        values = None if self.column is None else frame[self.column].to_numpy()
        return {
            "revision": OUTPUT_REVISION,
            "geometry": wkb_digest(frame.geometry),
            "crs": frame.crs,
            "values": values,
            "column": self.column,
            "all_touched": self.all_touched,
            "merge": self.merge,
            "fill": self.fill,
            "dtype": self.dtype.name,
            "name": self.name,
        }
