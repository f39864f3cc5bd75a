"""A vector layer prepared for per-chip queries: reprojected once per CRS, spatially indexed.

``rasterize`` and ``clip_vector`` meet chips in one or a few CRSs (the UTM
zones of the scenes). Reprojecting the whole frame for every chip would
cost ``chips x features``; :class:`VectorIndex` reprojects it the first time
a CRS is met, keeps that copy with its spatial index, and answers each chip
with the features whose geometry intersects the chip's bounds.

On a lon/lat chip, longitudes wrap: a chip written 0..360 (ERA5-style) or
across the antimeridian (170..190) meets the features written -180..180 one
turn away, and a layer written 0..360 meets chips written -180..180. The
query looks one or more turns east and west (as far as the layer's extent
reaches) and moves each feature it finds there by those turns, so that it lies
under the chip.

Examples
--------
>>> import geopandas as gpd
>>> from shapely.geometry import Point
>>> frame = gpd.GeoDataFrame({"v": [1, 2]}, geometry=[Point(5.0, 45.0), Point(7.0, 45.0)], crs="EPSG:4326")
>>> index = VectorIndex(frame, what="rasterize")
>>> hits = index.query((600000, 4900000, 800000, 5100000), "EPSG:32631")
>>> list(hits["v"]), index.reprojections
([1], 1)
>>> _ = index.query((0, 0, 1, 1), "EPSG:32631"); index.reprojections
1
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from terrapipe.core.checks import check_column_names
from terrapipe.core.crs import longitude_period, no_operation, same_crs
from terrapipe.core.digests import wkb_digest
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require
from terrapipe.fuse.grid import crs_text

__all__ = [
    "MAX_TURNS",
    "OUTPUT_REVISION",
    "VectorIndex",
    "moved_rows",
    "one_row_per_feature",
    "turns_between",
]

#: How many reprojected copies one index keeps (least recently used are dropped).
MAX_CRS = 8
#: Revision of what the stages that query a layer by a chip's bounds (rasterize, clip_vector,
#: rasterize_points) put on a chip, in their cache configuration: 2 since lon/lat chips past +-180 get the
#: features on their far side, so that a cache written before is not served (its entries lack them).
OUTPUT_REVISION = 2
#: How many turns of the globe a lon/lat query looks at either side of the chip (a chip wider than that
#: is refused rather than queried thousands of times; a layer's stray far coordinate is not followed).
MAX_TURNS = 16


def _load(vector: Any, what: str) -> Any:
    gpd = require("geopandas", feature=what)
    if isinstance(vector, gpd.GeoDataFrame):
        return vector
    if isinstance(vector, gpd.GeoSeries):
        return gpd.GeoDataFrame(geometry=vector)
    from terrapipe.io.vector import open_vector

    if isinstance(vector, str) or hasattr(vector, "__fspath__") or hasattr(vector, "href"):
        return open_vector(vector)
    msg = f"{what} takes a GeoDataFrame, GeoSeries or a vector file path, got {type(vector).__name__}"
    raise InvalidArgumentError(msg)


class VectorIndex:
    """Features of one layer, reprojected on demand and queried by chip bounds.

    Parameters
    ----------
    vector
        A GeoDataFrame / GeoSeries with a CRS, or a vector file path or URL
        (read once with :func:`~terrapipe.io.open_vector`).
    what
        The stage using it, for messages.
    columns
        Attribute columns to keep (default all).

    Raises
    ------
    InvalidArgumentError
        For a frame without CRS, an unknown column or something that is not
        a vector layer.

    Notes
    -----
    Features with a missing (``None``) or empty geometry are dropped at
    construction (``dropped`` counts them): they cover no pixel and have no
    box. The reprojected copies are not pickled: each DataLoader worker
    builds its own the first time it meets a CRS.
    """

    def __init__(self, vector: Any, *, what: str, columns: Sequence[str] | None = None) -> None:
        if columns is not None:  # before a file is read
            columns = check_column_names(columns, f"{what} columns")
        frame = _load(vector, what)
        if frame.crs is None:
            source = frame.attrs.get("source", "the GeoDataFrame")
            msg = (
                f"{what}: {source} has no CRS, so it cannot be placed on a chip's grid; "
                "set the one its coordinates are in with frame.set_crs('EPSG:...')"
            )
            raise InvalidArgumentError(msg)
        if columns is not None:
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                msg = f"{what}: no column {missing} in the vector layer (columns: {[str(c) for c in frame.columns]})"
                raise InvalidArgumentError(msg)
            geometry = frame.geometry.name  # always kept; naming it too would repeat the column
            frame = frame[[*dict.fromkeys(c for c in columns if c != geometry), geometry]]
        keep = ~(frame.geometry.isna() | frame.geometry.is_empty)
        self.dropped = int((~keep).sum())
        self.frame = frame[keep.to_numpy()] if self.dropped else frame
        self.what = what
        self.crs = crs_text(frame.crs)
        self.reprojections = 0
        self._by_crs: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_by_crs"] = {}
        return state

    def __len__(self) -> int:
        return len(self.frame)

    def cache_config(self) -> dict[str, Any]:
        """Describe the layer by its content (for cache keys and pipeline fingerprints).

        :func:`~terrapipe.cache.canonical.canonical` uses it in place of the
        index's attributes. The layer counts by content, whether it was given
        as a GeoDataFrame or read from a file: a digest of its geometries' WKB
        in row order, its CRS, and its attribute columns (the ones kept),
        their dtypes, values and the row index, digested by
        :func:`~terrapipe.cache.canonical.canonical`. Features dropped for a
        missing or empty geometry do not count; the reprojected copies do
        not either.

        Returns
        -------
        dict
            ``geometry`` (:func:`~terrapipe.core.digests.wkb_digest`,
            bytes), ``crs`` (a pyproj CRS) and ``attributes`` (a pandas
            DataFrame without the geometry column).

        Examples
        --------
        >>> import geopandas as gpd
        >>> from shapely.geometry import box
        >>> from terrapipe.cache.canonical import canonical
        >>> frame = gpd.GeoDataFrame({"v": [1, 2]}, geometry=[box(0, 0, 1, 1), box(1, 1, 2, 2)], crs="EPSG:32631")
        >>> config = VectorIndex(frame, what="clip_vector").cache_config()
        >>> sorted(config), list(config["attributes"].columns)
        (['attributes', 'crs', 'geometry'], ['v'])
        >>> canonical(config) == canonical(VectorIndex(frame.copy(), what="clip_vector").cache_config())
        True
        >>> canonical(config) == canonical(VectorIndex(frame.assign(v=[1, 3]), what="clip_vector").cache_config())
        False
        """
        import pandas as pd  # type: ignore[import-untyped]

        frame = self.frame
        attributes = pd.DataFrame(frame.drop(columns=[frame.geometry.name]))
        return {"geometry": wkb_digest(frame.geometry), "crs": frame.crs, "attributes": attributes}

    def in_crs(self, crs: str) -> Any:
        """Return the features in ``crs`` (reprojected the first time), spatial index built."""
        return self._in_crs(crs)[0]

    def _in_crs(self, crs: str) -> tuple[Any, tuple[float, float]]:
        """Return the features in ``crs`` and their x extent (west, east)."""
        found: tuple[Any, tuple[float, float]] | None = self._by_crs.pop(crs, None)
        if found is None:
            if same_crs(crs, self.crs):
                frame = self.frame
            else:
                with no_operation(self.crs, crs, self.what):
                    frame = self.frame.to_crs(crs)
                self.reprojections += 1
            frame.sindex  # noqa: B018  (build the index once, here)
            west, _, east, _ = (float(v) for v in frame.total_bounds) if len(frame) else (math.nan,) * 4
            found = (frame, (west, east))
        self._by_crs[crs] = found
        while len(self._by_crs) > MAX_CRS:
            self._by_crs.pop(next(iter(self._by_crs)))
        return found

    def hits(self, bounds: Sequence[float], crs: str) -> tuple[Any, np.ndarray, np.ndarray]:
        """Return the features in ``crs``, and which of them meet ``bounds`` under which x shift.

        Parameters
        ----------
        bounds
            ``(left, bottom, right, top)`` in ``crs``.
        crs
            The chip's CRS as :func:`~terrapipe.fuse.grid.crs_text` gives it.

        Returns
        -------
        tuple
            The layer in ``crs`` (a GeoDataFrame), the positions of the
            features met (in layer order; a feature met in several turns of a
            lon/lat CRS comes once per turn, west to east) and the x shift to
            add to each to put it under ``bounds`` (0 but for lon/lat chips
            past the layer's edge).

        Examples
        --------
        >>> import geopandas as gpd
        >>> from shapely.geometry import box
        >>> frame = gpd.GeoDataFrame(geometry=[box(-180, 0, -170, 10), box(170, 0, 180, 10)], crs="EPSG:4326")
        >>> _, positions, shifts = VectorIndex(frame, what="rasterize").hits((175, 0, 185, 10), "EPSG:4326")
        >>> positions.tolist(), shifts.tolist()
        ([0, 1], [360.0, 0.0])
        """
        import shapely

        frame, extent = self._in_crs(crs)
        if len(frame) == 0:
            return frame, np.empty(0, dtype=np.intp), np.empty(0)
        left, bottom, right, top = (float(v) for v in bounds)
        period, (west, east) = longitude_period(crs), extent
        turns = [0.0]  # the x shifts (whole turns of the globe) under which the layer meets the chip
        if period is not None and math.isfinite(west) and math.isfinite(east):
            turns = turns_between(left, right, west, east, period, self.what)
        positions: list[np.ndarray] = []
        shifts: list[np.ndarray] = []
        for shift in turns:
            found = frame.sindex.query(
                shapely.box(left - shift, bottom, right - shift, top), predicate="intersects"
            )
            positions.append(np.asarray(found, dtype=np.intp))
            shifts.append(np.full(len(found), shift))
        if not positions:
            return frame, np.empty(0, dtype=np.intp), np.empty(0)
        position, moved = np.concatenate(positions), np.concatenate(shifts)
        order = np.lexsort((moved, position))
        return frame, position[order], moved[order]

    def query(self, bounds: Sequence[float], crs: str) -> Any:
        """Return the features (in ``crs``, original order) that intersect ``bounds`` (as in :meth:`hits`).

        A feature met one or more turns of the globe away is moved by those
        turns; one met in several turns comes once per turn (same index
        label, west to east).
        """
        frame, positions, shifts = self.hits(bounds, crs)
        return moved_rows(frame, positions, shifts)


def turns_between(
    left: float, right: float, west: float, east: float, period: float, what: str
) -> list[float]:
    """Return the x shifts ``k * period`` under which ``[left, right]`` meets ``[west, east]``.

    At most :data:`MAX_TURNS` turns either side of the data's own: a layer with
    a stray coordinate far away (x = 1e9 in degrees) widens its extent, not the
    turns worth looking at. A chip wider than :data:`MAX_TURNS` turns is refused.

    Examples
    --------
    >>> turns_between(170.0, 190.0, -180.0, 180.0, 360.0, "rasterize")
    [0.0, 360.0]
    >>> shifts = turns_between(0.0, 2.0, 0.0, 1e9, 360.0, "rasterize")  # a stray point at x = 1e9
    >>> len(shifts), shifts[0], shifts[-1]
    (17, -5760.0, 0.0)
    """
    if right - left > MAX_TURNS * period:
        raise InvalidArgumentError(
            f"{what}: a lon/lat chip {left:.6g}..{right:.6g} spans more than {MAX_TURNS} turns of the globe; "
            "check the chip's transform, or cut it into chips narrower than the globe"
        )
    first = max(math.ceil((left - east) / period), math.floor(left / period) - MAX_TURNS)
    last = min(math.floor((right - west) / period), math.ceil(right / period) + MAX_TURNS)
    return [float(k * period) for k in range(first, last + 1)]


def moved_rows(frame: Any, positions: np.ndarray, shifts: np.ndarray) -> Any:
    """Return ``frame``'s rows at ``positions``, each geometry moved east by its shift.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely.geometry import Point
    >>> frame = gpd.GeoDataFrame(geometry=[Point(-179, 0)], crs="EPSG:4326")
    >>> moved_rows(frame, np.array([0, 0]), np.array([0.0, 360.0])).geometry.x.tolist()
    [-179.0, 181.0]
    """
    import shapely

    rows = frame.iloc[positions]
    if not np.any(shifts):
        return rows
    geoms = np.array(rows.geometry.to_numpy(), dtype=object)
    for shift in np.unique(shifts[shifts != 0]):
        at = shifts == shift
        geoms[at] = shapely.transform(geoms[at], lambda xy, dx=float(shift): xy + np.array([dx, 0.0]))
    out = rows.copy()
    out[frame.geometry.name] = geoms
    return out


def one_row_per_feature(rows: Any, positions: np.ndarray) -> Any:
    """Join the copies of a feature met in several turns of the globe into one row.

    ``rows`` holds the copies of a feature consecutively (``positions``, the
    feature of each row, as :meth:`VectorIndex.hits` orders them); each
    feature keeps its first row, its geometry the union of its copies'.
    Burnt apart, two copies that meet at the antimeridian would both burn a
    pixel astride it (twice its value with ``merge="add"``); clipped apart,
    they would be two rows of one feature.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely.geometry import box
    >>> rows = gpd.GeoDataFrame({"v": [7, 7]}, geometry=[box(179, 0, 180, 1), box(180, 0, 181, 1)])
    >>> joined = one_row_per_feature(rows, np.array([3, 3]))
    >>> len(joined), joined.geometry.iloc[0].bounds
    (1, (179.0, 0.0, 181.0, 1.0))
    """
    import shapely

    first = np.flatnonzero(np.r_[True, positions[1:] != positions[:-1]])
    geoms = rows.geometry.to_numpy()
    out = rows.iloc[first].copy()
    out[rows.geometry.name] = np.array(
        [shapely.union_all(part) for part in np.split(geoms, first[1:])], dtype=object
    )
    return out
