"""``clip_vector``: attach to each chip the vector features that intersect it, clipped, in its CRS.

For every chip, :class:`ClipVector` queries the layer (reprojected once per
CRS, spatially indexed: :class:`~terrapipe.fuse.vector_index.VectorIndex`),
intersects each hit with the chip's footprint, and attaches the result as a
GeoDataFrame to the chip (``ds.attrs["vectors"][name]``, read it with
:func:`~terrapipe.fuse.carrier.chip_vectors`). ``to_tensor(boxes=name)``
turns them into pixel boxes and labels.

- A clipped polygon keeps only its polygonal parts (a polygon touching the
  chip's edge does not gain a sliver line); lines keep their line parts.
- Features that only touch the chip's edge (an empty or lower-dimensional
  intersection) are left out.
- A point (or multipoint part) goes with the one chip whose half-open cells
  hold it, as ``rasterize`` and ``rasterize_points`` place it: one on the edge
  between chips comes once, not with each.
- The original index is kept, so a clipped feature can be traced back; each
  feature comes at most once.
- On a lon/lat chip, longitudes wrap: a chip written 0..360 or across the
  antimeridian gets the features written -180..180 on its far side, moved one
  turn of the globe; a feature met on both sides (a field split at 180) is one
  row whose geometry is the union of its parts on the chip.
- A chip that no feature touches gets an empty GeoDataFrame.

Examples
--------
>>> import numpy as np, xarray as xr, geopandas as gpd
>>> from shapely.geometry import box
>>> chip = xr.DataArray(np.zeros((1, 4, 4)), dims=("band", "y", "x"),
...                     coords={"y": [35.0, 25.0, 15.0, 5.0], "x": [5.0, 15.0, 25.0, 35.0]}).rio.write_crs("EPSG:32631")
>>> houses = gpd.GeoDataFrame({"kind": [1, 2]}, geometry=[box(30, 30, 50, 50), box(60, 60, 70, 70)],
...                           crs="EPSG:32631")
>>> import terrapipe as tp
>>> import terrapipe.fuse
>>> ds = next(iter(tp.from_items([chip]).clip_vector(houses, name="houses")))
>>> clipped = tp.fuse.chip_vectors(ds, "houses")
>>> list(clipped["kind"]), clipped.geometry.iloc[0].bounds
([1], (30.0, 30.0, 40.0, 40.0))
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from terrapipe.core.checks import check_name
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.fuse.carrier import as_dataset, with_vectors
from terrapipe.fuse.grid import crs_text, grid_bounds, grid_of, pixels_of
from terrapipe.fuse.vector_index import OUTPUT_REVISION, VectorIndex, moved_rows, one_row_per_feature

__all__ = ["ClipVector", "clip_features"]


def _keep_dimension(clipped: Any, dims: np.ndarray) -> Any:
    """Keep, in each clipped geometry, only the parts of its feature's dimension."""
    import shapely

    out = np.array(clipped, dtype=object)
    mixed = shapely.get_type_id(out) == shapely.GeometryType.GEOMETRYCOLLECTION
    for i in np.flatnonzero(mixed):
        parts = shapely.get_parts(out[i])
        keep = parts[shapely.get_dimensions(parts) == dims[i]]
        out[i] = shapely.union_all(keep) if len(keep) else shapely.GeometryCollection()
    return out


def _points_in_half_open_cells(clipped: np.ndarray, dims: np.ndarray, grid: GeoBox) -> np.ndarray:
    """Drop the points on a chip's far edges: a point on the edge between chips belongs to one of them.

    The clipped footprint is closed, so a point on the edge between two chips
    was in both (on a corner, in four): a label given twice. Points keep the
    half-open rule of ``rasterize`` and ``rasterize_points``
    (:func:`~terrapipe.fuse.grid.pixels_of`): the chip whose cells hold them.
    """
    import shapely

    height, width = grid.shape.yx
    at = np.flatnonzero((dims == 0) & ~shapely.is_empty(clipped))
    if not len(at):
        return clipped
    out = clipped.copy()
    kinds = shapely.get_type_id(out[at])
    single = at[kinds == shapely.GeometryType.POINT]
    if len(single):
        cols, rows = pixels_of(grid, shapely.get_coordinates(out[single]))
        outside = (cols < 0) | (cols >= width) | (rows < 0) | (rows >= height)
        out[single[outside]] = shapely.Point()
    for i in at[kinds != shapely.GeometryType.POINT]:  # multipoints: part by part
        parts = shapely.get_parts(out[i])
        parts = parts[shapely.get_type_id(parts) == shapely.GeometryType.POINT]
        cols, rows = pixels_of(grid, shapely.get_coordinates(parts))
        kept = parts[(cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)]
        out[i] = shapely.multipoints(kept) if len(kept) else shapely.MultiPoint()
    return out


def clip_features(frame: Any, grid: GeoBox) -> Any:
    """Clip features (already in the grid's CRS) to the grid's footprint.

    Parameters
    ----------
    frame
        A GeoDataFrame in the grid's CRS (typically the features whose
        bounds intersect the grid).
    grid
        The chip's grid.

    Returns
    -------
    geopandas.GeoDataFrame
        The features whose intersection with the footprint has their own
        dimension, with their geometries clipped; the index is kept.

    Raises
    ------
    InvalidArgumentError
        When GEOS cannot intersect invalid geometries (a self-intersecting
        polygon may or may not fail): the message names them by index.
    """
    import shapely
    import shapely.errors

    if len(frame) == 0:
        return frame.copy()
    footprint = shapely.box(*grid_bounds(grid.affine, grid.shape.yx)) if grid.affine.is_rectilinear else None
    if footprint is None:
        footprint = shapely.Polygon(
            [
                grid.affine @ corner
                for corner in ((0, 0), (grid.shape.x, 0), (grid.shape.x, grid.shape.y), (0, grid.shape.y))
            ]
        )
    geoms = frame.geometry.to_numpy()
    dims = shapely.get_dimensions(geoms)
    try:
        clipped = _keep_dimension(shapely.intersection(geoms, footprint), dims)
    except shapely.errors.GEOSException as err:
        invalid = [str(i) for i in frame.index[~shapely.is_valid(geoms)][:10]]
        msg = (
            f"clip_vector: features {invalid or '?'} (index) of the vector layer are invalid geometries "
            f"that GEOS cannot intersect with the chip ({err}); repair the layer first "
            "(frame.geometry = frame.make_valid()) or drop them"
        )
        raise InvalidArgumentError(msg) from err
    clipped = _points_in_half_open_cells(clipped, dims, grid)
    keep = ~shapely.is_empty(clipped) & (shapely.get_dimensions(clipped) == dims)
    out = frame.iloc[np.flatnonzero(keep)].copy()
    out[frame.geometry.name] = clipped[keep]
    return out


@register("clip_vector")
class ClipVector(Stage[xr.Dataset]):
    """Attach to every chip of ``source`` the features of a layer that intersect it, clipped.

    Parameters
    ----------
    source
        A pipe of xarray chips (DataArray or Dataset) with a CRS.
    vector
        A GeoDataFrame with a CRS, or a vector file path or URL (read once,
        when the stage is built).
    name
        Name of the layer on the chip (``"features"``).
    columns
        Attribute columns to keep (default all).

    Yields
    ------
    xarray.Dataset
        The chip as a Dataset, with the clipped GeoDataFrame (chip CRS) in
        ``attrs["vectors"][name]``.

    Raises
    ------
    InvalidArgumentError
        For a layer without CRS, an unknown column, a chip without CRS, a
        name the chip already carries, or invalid geometries GEOS cannot
        intersect with a chip (named by their index).

    Notes
    -----
    The layer is reprojected once per CRS (``stage.index.reprojections``).
    The stage holds no position: resuming its source resumes it.
    """

    stateless = True

    def __init__(
        self,
        source: IterDataPipe[Any],
        vector: Any,
        *,
        name: str = "features",
        columns: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.name = check_name(name, "clip_vector name")
        self.index = VectorIndex(vector, what="clip_vector", columns=columns)

    def cache_config(self) -> dict[str, Any]:
        """Describe what the stage attaches (for cache keys and pipeline fingerprints).

        :func:`~terrapipe.cache.segment.describe_stage` (and so
        :func:`~terrapipe.dist.fingerprint.pipe_fingerprint`) uses it in place
        of the stage's attributes. The layer counts by content, whether it was
        given as a GeoDataFrame or read from a file
        (:meth:`~terrapipe.fuse.vector_index.VectorIndex.cache_config`: WKB in
        row order, CRS, the kept columns with their values and the row index,
        which the clipped features keep).

        Returns
        -------
        dict
            ``revision`` (:data:`~terrapipe.fuse.vector_index.OUTPUT_REVISION`),
            ``layer`` (the index's description) and ``name``.

        Examples
        --------
        >>> import geopandas as gpd, terrapipe as tp
        >>> from shapely.geometry import box
        >>> from terrapipe.cache.canonical import canonical
        >>> houses = gpd.GeoDataFrame({"kind": [1, 2]}, geometry=[box(0, 0, 1, 1), box(1, 1, 2, 2)], crs="EPSG:32631")
        >>> config = ClipVector(tp.from_items([]), houses, name="houses").cache_config()
        >>> sorted(config), config["name"]
        (['layer', 'name', 'revision'], 'houses')
        >>> other = ClipVector(tp.from_items([]), houses, name="houses", columns=[]).cache_config()
        >>> canonical(other) == canonical(config)
        False
        """
        return {"revision": OUTPUT_REVISION, "layer": self.index.cache_config(), "name": self.name}

    def clip(self, grid: GeoBox) -> Any:
        """Return the clipped features of one grid."""
        frame, positions, shifts = self.index.hits(
            grid_bounds(grid.affine, grid.shape.yx), crs_text(grid.crs)
        )
        hits = moved_rows(frame, positions, shifts)
        if len(np.unique(positions)) == len(positions):
            return clip_features(hits, grid)
        # A feature met in two turns of the globe: clip each copy, then make one row of its parts.
        clipped = clip_features(hits.set_axis(np.arange(len(hits))), grid)
        rows = clipped.index.to_numpy()
        if len(rows) == 0:  # every copy only touched the chip's edges
            return hits.iloc[rows]
        out = one_row_per_feature(clipped, positions[rows])
        return out.set_axis(hits.index[out.index.to_numpy()])

    def __iter__(self) -> Iterator[xr.Dataset]:
        for element in self.source:
            started = time.perf_counter()
            ds = as_dataset(element)
            out = with_vectors(ds, self.name, self.clip(grid_of(ds)))
            self.stats.seconds += time.perf_counter() - started
            self.stats.elements += 1
            yield out

    def __len__(self) -> int:
        source: Any = self.source
        return len(source)
