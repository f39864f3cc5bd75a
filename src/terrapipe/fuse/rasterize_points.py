"""``rasterize_points``: lidar statistics (and padded point tensors) on each chip's grid.

For every chip, :class:`RasterizePoints` takes the points of a LAS/LAZ/COPC
file that fall on the chip, and adds rasters on the chip's exact grid, so
lidar zips with imagery (the same ``y``/``x`` and CRS; see :mod:`terrapipe.fuse`):

- ``<prefix>_max_z``, ``<prefix>_min_z``, ``<prefix>_mean_z`` (float32, NaN
  where no point falls), ``<prefix>_count`` (int32), ``<prefix>_mean_intensity``
  (float32, NaN where empty);
- ``<prefix>_class_fraction`` with ``classes=[2, 5, 6]``: one band per class,
  the share of the pixel's points in that class (NaN where empty).

A point belongs to the pixel whose half-open cell ``[left, right) x (bottom,
top]`` holds it (the chip's affine, inverted), so a point on the edge between
two chips counts in exactly one. Longitudes wrap: a lon/lat chip written past
180 gets the points of a cloud written -180..180 on its far side (and a chip
whose box crosses the antimeridian in a lon/lat cloud's CRS reads both sides).
A COPC file is read per chip: only the octree
nodes reaching the chip are fetched (:class:`~terrapipe.io.copc.CopcFile`,
hierarchy pages kept between chips); a LAS/LAZ file is read once, when the
stage is built. When the chip's CRS is not the cloud's, the chip's bounds are
reprojected (densified) to query, and the points' x, y are reprojected onto the
chip's CRS (z is kept).

With ``max_points=N`` each chip also gets its points as **padded** arrays, so
that batches collate with torch's default collate into dense tensors (ragged
lists would need a custom collate and break ``pin_memory``/``to(device)`` on
the batch; the mask says which rows are real):

- ``<prefix>_points``: ``(N, 3 + len(fields))`` float32: x and y relative to
  the chip's upper-left corner (chip CRS units), z, then the ``fields``;
  zero rows past the chip's points;
- ``<prefix>_points_mask``: ``(N,)`` bool;
- ``<prefix>_points_origin``: ``(3,)`` float64, the corner (x, y, 0) to add back;
- ``<prefix>_points_scale``, ``<prefix>_points_offset``: ``(3,)`` float64, the
  file's scales and offsets;
- ``<prefix>_points_total``: the chip's number of points before padding. A
  chip with more than N points keeps a random N of them (seeded by ``seed``
  and the chip's bounds, so a rerun gives the same points); the total says so.

The CRS and transform are the chip's, in the Sample's ``meta``.

Examples
--------
>>> import terrapipe as tp
>>> pipe = tp.from_items([chip]).rasterize_points(copc_url, classes=[2, 6])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox
from pyproj import CRS, Transformer

from terrapipe.core.checks import check_int, check_name
from terrapipe.core.crs import longitude_period, no_operation
from terrapipe.core.errors import InvalidArgumentError, TerrapipeError
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.redact import public_url
from terrapipe.fuse.carrier import add_raster, as_dataset
from terrapipe.fuse.grid import crs_text, grid_bounds, grid_of, pixels_of
from terrapipe.fuse.vector_index import OUTPUT_REVISION, turns_between
from terrapipe.io.copc import CopcFile, read_las_header
from terrapipe.io.point_cloud import (
    DEFAULT_FIELDS,
    DEFAULT_MAX_BYTES,
    PointCloud,
    _crs_of,
    _record_to_cloud,
    check_fields,
    is_copc,
    open_point_cloud,
)
from terrapipe.io.storage import Storage

__all__ = ["STATISTICS", "RasterizePoints", "rasterize_cloud"]

#: The per-pixel statistics :class:`RasterizePoints` can compute.
STATISTICS = ("max_z", "min_z", "mean_z", "count", "mean_intensity")


def _check_statistics(statistics: Sequence[str]) -> tuple[str, ...]:
    if isinstance(statistics, str):
        statistics = (statistics,)
    if not isinstance(statistics, list | tuple) or not statistics:
        raise InvalidArgumentError(
            f"rasterize_points: statistics must be a name or a non-empty list of names of {STATISTICS}, "
            f"got {statistics!r}"
        )
    out = tuple(statistics)
    unknown = [s for s in out if not isinstance(s, str) or s not in STATISTICS]
    if unknown or len(set(out)) != len(out):
        raise InvalidArgumentError(
            f"rasterize_points: statistics must be distinct names of {STATISTICS}, got {out}"
        )
    return out


def rasterize_cloud(
    xy: np.ndarray,
    z: np.ndarray,
    grid: GeoBox,
    *,
    statistics: Sequence[str] = ("max_z", "min_z", "mean_z", "count"),
    intensity: np.ndarray | None = None,
    classification: np.ndarray | None = None,
    classes: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Return per-pixel statistics of points (x, y in the grid's CRS) on ``grid``.

    Parameters
    ----------
    xy
        ``(n, 2)`` coordinates in the grid's CRS.
    z
        ``(n,)`` heights.
    grid
        The chip's grid.
    statistics
        Names from :data:`STATISTICS`.
    intensity, classification
        ``(n,)`` attributes (needed for ``mean_intensity`` and ``classes``).
    classes
        Class codes whose per-pixel fractions to return (as ``class_fraction``).

    Returns
    -------
    dict
        ``name -> (y, x)`` array (``class_fraction``: ``(classes, y, x)``).

    Examples
    --------
    >>> from odc.geo.geobox import GeoBox
    >>> from affine import Affine
    >>> grid = GeoBox((2, 2), Affine(1, 0, 0, 0, -1, 2), "EPSG:32631")
    >>> out = rasterize_cloud(np.array([[0.5, 1.5], [0.2, 1.9], [1.5, 0.5]]), np.array([1.0, 3.0, 7.0]), grid)
    >>> out["max_z"]
    array([[ 3., nan],
           [nan,  7.]], dtype=float32)
    >>> out["count"]
    array([[2, 0],
           [0, 1]], dtype=int32)
    """
    stats = _check_statistics(statistics)
    ny, nx = grid.shape.yx
    cols, rows = pixels_of(grid, xy)
    inside = (cols >= 0) & (cols < nx) & (rows >= 0) & (rows < ny)
    flat = rows[inside] * nx + cols[inside]
    heights = np.asarray(z, dtype=np.float64)[inside]
    size = ny * nx
    count = np.bincount(flat, minlength=size)
    empty = count == 0
    out: dict[str, np.ndarray] = {}
    if "max_z" in stats:
        top = np.full(size, -np.inf)
        np.maximum.at(top, flat, heights)
        top[empty] = np.nan
        out["max_z"] = top.reshape(ny, nx).astype(np.float32)
    if "min_z" in stats:
        low = np.full(size, np.inf)
        np.minimum.at(low, flat, heights)
        low[empty] = np.nan
        out["min_z"] = low.reshape(ny, nx).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        if "mean_z" in stats:
            out["mean_z"] = (
                (np.bincount(flat, heights, minlength=size) / count).reshape(ny, nx).astype(np.float32)
            )
        if "count" in stats:
            out["count"] = count.reshape(ny, nx).astype(np.int32)
        if "mean_intensity" in stats:
            if intensity is None:
                raise InvalidArgumentError("rasterize_points: mean_intensity needs the intensity field")
            weights = np.asarray(intensity, dtype=np.float64)[inside]
            out["mean_intensity"] = (
                (np.bincount(flat, weights, minlength=size) / count).reshape(ny, nx).astype(np.float32)
            )
        if classes:
            if classification is None:
                raise InvalidArgumentError("rasterize_points: classes= needs the classification field")
            codes = np.asarray(classification)[inside]
            bands = [np.bincount(flat[codes == c], minlength=size) / count for c in classes]
            out["class_fraction"] = np.stack(bands).reshape(len(classes), ny, nx).astype(np.float32)
    return out


def _fields_of(
    cloud: PointCloud, fields: tuple[str, ...], *, given: bool, needed: set[str]
) -> tuple[str, ...]:
    """Return the fields to take from an in-memory cloud: the default ones it has, or all those asked for."""
    if not given:  # the default list: the ones the cloud carries, and those the statistics need
        fields = tuple(f for f in fields if f in cloud.fields or f in needed)
    missing = [f for f in fields if f not in cloud.fields]
    if missing:
        raise InvalidArgumentError(
            f"rasterize_points: the PointCloud {cloud.source!r} has no field {missing} (it has "
            f"{sorted(cloud.fields)}); pass fields= naming some of those, or statistics/classes that need none"
        )
    return fields


def _joined(clouds: Sequence[PointCloud]) -> PointCloud:
    """Return the points of several queries of one cloud as one (the first one's metadata)."""
    first = clouds[0]
    return PointCloud(
        xyz=np.concatenate([c.xyz for c in clouds]),
        fields={name: np.concatenate([c.fields[name] for c in clouds]) for name in first.fields},
        crs=first.crs,
        crs_wkt=first.crs_wkt,
        scales=first.scales,
        offsets=first.offsets,
        bounds=first.bounds,
        source=first.source,
        copc=first.copc,
        bytes_fetched=clouds[-1].bytes_fetched,
        point_format=first.point_format,
    )


@register("rasterize_points")
class RasterizePoints(Stage[xr.Dataset]):
    """Add lidar statistics (and optionally padded points) from a point cloud to every chip of ``source``.

    Parameters
    ----------
    source
        A pipe of xarray chips (DataArray or Dataset) with a CRS.
    points
        A LAS/LAZ/COPC path or URL, or a :class:`~terrapipe.io.point_cloud.PointCloud`.
    statistics
        Per-pixel statistics, names from :data:`STATISTICS`.
    classes
        Class codes (ASPRS: 2 ground, 5 high vegetation, 6 building, ...) whose
        per-pixel fractions to add as ``<prefix>_class_fraction``.
    max_points
        Also add the chip's points, padded to this many rows (see the module notes).
    fields
        Point attributes read (and appended to the padded points).
    prefix
        Prefix of the new variables' names.
    crs
        CRS to assume for a file that declares none.
    storage
        Configuration of the byte layer.
    seed
        Seed of the choice of points when a chip has more than ``max_points``.

    Yields
    ------
    xarray.Dataset
        The chip as a Dataset plus the new variables.

    Raises
    ------
    ReadError
        The point cloud cannot be read (see :func:`~terrapipe.io.point_cloud.open_point_cloud`).
    InvalidArgumentError
        Bad options, a chip without CRS, a taken variable name.

    Notes
    -----
    ``stage.bytes_fetched`` counts the bytes read from storage (for COPC, per
    chip nodes plus the hierarchy pages). The stage holds no position.
    """

    stateless = True

    def __init__(
        self,
        source: IterDataPipe[Any],
        points: Any,
        *,
        statistics: Sequence[str] = ("max_z", "min_z", "mean_z", "count"),
        classes: Sequence[int] | None = None,
        max_points: int | None = None,
        fields: Sequence[str] = DEFAULT_FIELDS,
        prefix: str = "lidar",
        crs: Any = None,
        storage: Storage | None = None,
        seed: int = 0,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__()
        self.source = source
        self.statistics = _check_statistics(statistics)
        if classes is not None and (
            not isinstance(classes, list | tuple)
            or not classes
            or not all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in classes)
        ):
            raise InvalidArgumentError(
                f"rasterize_points: classes must be a non-empty list of integer class codes, got {classes!r}"
            )
        self.classes = None if classes is None else tuple(int(c) for c in classes)
        self.max_points = (
            None if max_points is None else check_int(max_points, "rasterize_points: max_points", minimum=1)
        )
        self.fields = check_fields(fields, "rasterize_points")
        for needed, stat in (("intensity", "mean_intensity"),):
            if stat in self.statistics and needed not in self.fields:
                self.fields += (needed,)
        if self.classes and "classification" not in self.fields:
            self.fields += ("classification",)
        self.prefix = check_name(prefix, "rasterize_points name")
        self.seed = check_int(seed, "rasterize_points: seed", minimum=0)
        self.storage = storage
        self._copc: CopcFile | None = None
        self._cloud: PointCloud | None = None
        self._url = ""
        self._from_file = not isinstance(points, PointCloud)
        if isinstance(points, PointCloud):
            wanted = {"intensity"} if "mean_intensity" in self.statistics else set()
            wanted |= {"classification"} if self.classes else set()
            self.fields = _fields_of(points, self.fields, given=fields is not DEFAULT_FIELDS, needed=wanted)
            self._cloud = points
            self.crs, self.crs_wkt, self.where = points.crs, points.crs_wkt, points.source
        else:
            url = str(points.__fspath__()) if hasattr(points, "__fspath__") else points
            if not isinstance(url, str) or not url:
                raise InvalidArgumentError(
                    f"rasterize_points takes a path, URL or PointCloud, got {points!r}"
                )
            self.where = public_url(url)
            self._url = url
            counter = [0]
            header = read_las_header(url, storage, counter=counter)
            self.crs, self.crs_wkt = _crs_of(header, crs, self.where)
            if is_copc(header):
                self._copc = CopcFile(url, storage, header=header)
                self._copc.bytes_fetched += counter[0]
            else:
                self._cloud = open_point_cloud(
                    url, crs=crs, fields=self.fields, storage=storage, max_bytes=max_bytes
                )
        self._to_cloud: dict[str, tuple[Transformer, Transformer] | None] = {}
        self._period = longitude_period(crs_text(self.crs))
        self._encoding = {"source": self.where}

    @property
    def bytes_fetched(self) -> int:
        """Bytes read from storage so far."""
        if self._copc is not None:
            return self._copc.bytes_fetched
        return self._cloud.bytes_fetched if self._cloud is not None else 0

    def _transformers(self, grid: GeoBox) -> tuple[Transformer, Transformer] | None:
        key = str(grid.crs)
        if key not in self._to_cloud:
            if grid.crs is None:
                raise InvalidArgumentError("rasterize_points: the chip has no CRS")
            chip_crs = CRS.from_user_input(grid.crs.to_wkt())
            if chip_crs.equals(self.crs, ignore_axis_order=True):
                self._to_cloud[key] = None
            else:
                with no_operation(self.crs, chip_crs, "rasterize_points"):
                    self._to_cloud[key] = (
                        Transformer.from_crs(chip_crs, self.crs, always_xy=True),
                        Transformer.from_crs(self.crs, chip_crs, always_xy=True),
                    )
        return self._to_cloud[key]

    def _boxes(self, grid: GeoBox, pair: tuple[Transformer, Transformer] | None) -> list[tuple[Any, float]]:
        """Return the boxes to query in the cloud's CRS, each with the x shift that moves its points onto the chip.

        Longitudes wrap: a lon/lat chip past 180 (or a layer's far side) is
        queried one turn of the globe away and its points moved back by that
        turn; a chip whose box in a lon/lat cloud's CRS crosses the
        antimeridian (PROJ then gives ``west > east``) is queried on both sides.
        """
        left, bottom, right, top = grid_bounds(grid.affine, grid.shape.yx)
        # One pixel wider on every side: a point on the chip's edge is a hair outside its box in floating
        # point (chips at 0.1 m lost the line of points between them); pixels_of decides where it lies.
        a, b, _, d, e, _ = tuple(grid.affine)[:6]
        pad = max(abs(a), abs(b), abs(d), abs(e))
        left, bottom, right, top = left - pad, bottom - pad, right + pad, top + pad
        if pair is not None:
            box = pair[0].transform_bounds(left, bottom, right, top, densify_pts=21)
            period = self._period
            if period is not None and box[0] > box[2]:
                return [
                    ((box[0], box[1], period / 2, box[3]), 0.0),
                    ((-period / 2, box[1], box[2], box[3]), 0.0),
                ]
            return [(box, 0.0)]
        period = self._period
        if period is None:
            return [((left, bottom, right, top), 0.0)]
        if self._copc is not None:
            west, east = float(self._copc.header.mins[0]), float(self._copc.header.maxs[0])
        else:
            assert self._cloud is not None
            west, east = float(self._cloud.bounds[0]), float(self._cloud.bounds[2])
            if len(self._cloud):
                west, east = float(self._cloud.xyz[:, 0].min()), float(self._cloud.xyz[:, 0].max())
        shifts = turns_between(left, right, west, east, period, "rasterize_points")
        return [((left - shift, bottom, right - shift, top), shift) for shift in shifts]

    def points_of(self, grid: GeoBox) -> tuple[np.ndarray, PointCloud]:
        """Return the chip's points: ``(n, 2)`` x, y in the chip's CRS, and the cloud (in its own CRS)."""
        pair = self._transformers(grid)
        pieces: list[tuple[np.ndarray, PointCloud]] = []
        for box, shift in self._boxes(grid, pair):
            cloud = self._query(box)
            xy = cloud.xyz[:, :2]
            if pair is not None and len(xy):
                x, y = pair[1].transform(xy[:, 0], xy[:, 1])
                xy = np.column_stack([x, y])
                period = longitude_period(str(grid.crs))
                if period is not None:  # PROJ gives -180..180: wrap into the chip's turn of the globe
                    west = grid_bounds(grid.affine, grid.shape.yx)[0]
                    xy[:, 0] = west + np.mod(xy[:, 0] - west, period)
            elif shift:
                xy = xy + np.array([shift, 0.0])
            pieces.append((xy, cloud))
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate([xy for xy, _ in pieces]), _joined([cloud for _, cloud in pieces])

    def _query(self, box: Any) -> PointCloud:
        """Return the points of the cloud inside ``box`` (the cloud's CRS)."""
        if self._copc is not None:
            record = self._copc.query(box)
            header = self._copc.header
            extent = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
            return _record_to_cloud(
                record,
                header,
                crs=self.crs,
                crs_wkt=self.crs_wkt,
                fields=self.fields,
                bounds=extent,
                where=self.where,
                copc=True,
                fetched=self._copc.bytes_fetched,
            )
        assert self._cloud is not None
        return self._cloud.within(box)

    def _padded(self, ds: xr.Dataset, grid: GeoBox, xy: np.ndarray, cloud: PointCloud) -> xr.Dataset:
        assert self.max_points is not None
        cols, rows = pixels_of(grid, xy)
        ny, nx = grid.shape.yx
        inside = np.flatnonzero((cols >= 0) & (cols < nx) & (rows >= 0) & (rows < ny))
        total = len(inside)
        if total > self.max_points:
            bounds = np.asarray(grid_bounds(grid.affine, grid.shape.yx), dtype=np.float64).tobytes()
            digest = hashlib.blake2b(bounds + self.seed.to_bytes(8, "little", signed=True), digest_size=8)
            rng = np.random.default_rng(int.from_bytes(digest.digest(), "little"))
            inside = np.sort(rng.choice(inside, self.max_points, replace=False))
        origin_x, origin_y = grid.affine * (0, 0)
        columns = 3 + len(self.fields)
        table = np.zeros((self.max_points, columns), dtype=np.float32)
        n = len(inside)
        table[:n, 0] = xy[inside, 0] - origin_x
        table[:n, 1] = xy[inside, 1] - origin_y
        table[:n, 2] = cloud.xyz[inside, 2]
        for i, name in enumerate(self.fields):
            table[:n, 3 + i] = cloud.fields[name][inside]
        mask = np.zeros(self.max_points, dtype=bool)
        mask[:n] = True
        p = f"{self.prefix}_points"
        names = ["x", "y", "z", *self.fields]
        return ds.assign(
            {
                p: xr.Variable(
                    (f"{self.prefix}_point", f"{self.prefix}_column"), table, attrs={"columns": names}
                ),
                f"{p}_mask": xr.Variable((f"{self.prefix}_point",), mask),
                f"{p}_origin": xr.Variable((f"{self.prefix}_xyz",), np.array([origin_x, origin_y, 0.0])),
                f"{p}_scale": xr.Variable((f"{self.prefix}_xyz",), np.array(cloud.scales)),
                f"{p}_offset": xr.Variable((f"{self.prefix}_xyz",), np.array(cloud.offsets)),
                f"{p}_total": xr.Variable((), np.int64(total)),
            }
        )

    def __iter__(self) -> Iterator[xr.Dataset]:
        for element in self.source:
            started = time.perf_counter()
            ds = as_dataset(element)
            grid = grid_of(ds)
            xy, cloud = self.points_of(grid)
            rasters = rasterize_cloud(
                xy,
                cloud.xyz[:, 2],
                grid,
                statistics=self.statistics,
                intensity=cloud.fields.get("intensity"),
                classification=cloud.fields.get("classification"),
                classes=self.classes,
            )
            for name, data in rasters.items():
                attrs: dict[str, Any] = {} if name == "count" else {"_FillValue": np.nan}
                if name == "class_fraction":
                    attrs["classes"] = list(self.classes or ())
                ds = add_raster(ds, f"{self.prefix}_{name}", data, attrs=attrs, encoding=self._encoding)
            if self.max_points is not None:
                ds = self._padded(ds, grid, xy, cloud)
            self.stats.seconds += time.perf_counter() - started
            self.stats.elements += 1
            yield ds

    def __len__(self) -> int:
        source: Any = self.source
        return len(source)

    def cache_config(self) -> dict[str, Any]:
        """Describe what the stage adds (for cache keys and pipeline fingerprints).

        The points count by content: a :class:`~terrapipe.io.point_cloud.PointCloud`
        by a digest of its coordinates and fields; a file by its size and version
        stamps (ETag, last modified: a HEAD, or the local file's) plus a digest of
        its header, so a rewritten file changes the key.

        Examples
        --------
        >>> import terrapipe as tp
        >>> cloud = tp.io.PointCloud(np.zeros((1, 3)), {}, CRS.from_epsg(32631), "", (1.0,) * 3, (0.0,) * 3,
        ...                       (0.0, 0.0, 0.0, 0.0), "x.las")
        >>> config = RasterizePoints(tp.from_items([]), cloud).cache_config()
        >>> config["statistics"], config["prefix"]
        (['max_z', 'min_z', 'mean_z', 'count'], 'lidar')
        """
        from terrapipe.io import object_store

        digest = hashlib.blake2b(digest_size=16)
        if self._cloud is not None and self._copc is None and not self._from_file:
            digest.update(np.ascontiguousarray(self._cloud.xyz).tobytes())
            for name in sorted(self._cloud.fields):
                digest.update(name.encode())
                digest.update(np.ascontiguousarray(self._cloud.fields[name]).tobytes())
            identity: Any = {"points": digest.hexdigest()}
        else:
            try:
                info = object_store.head(self._url, self.storage)
                stamp = [info.size, info.etag, str(info.last_modified)]
            except TerrapipeError:  # a GET-only presigned URL: the header alone
                stamp = None
            header = read_las_header(self._url, self.storage)
            for value in (header.point_count, header.mins, header.maxs, header.scales, header.offsets):
                digest.update(np.asarray(value, dtype=np.float64).tobytes())
            identity = {"source": self.where, "stamp": stamp, "header": digest.hexdigest()}
        return {
            **identity,
            "revision": OUTPUT_REVISION,
            "crs": self.crs_wkt,
            "statistics": list(self.statistics),
            "classes": None if self.classes is None else list(self.classes),
            "max_points": self.max_points,
            "fields": list(self.fields),
            "prefix": self.prefix,
            "seed": self.seed,
        }
