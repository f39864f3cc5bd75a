"""A vector layer prepared for per-chip queries: reprojected once per CRS, spatially indexed.

``rasterize`` and ``clip_vector`` meet chips in one or a few CRSs (the UTM
zones of the scenes). Reprojecting the whole frame for every chip would
cost ``chips x features``; :class:`VectorIndex` reprojects it the first time
a CRS is met, keeps that copy with its spatial index, and answers each chip
with the features whose geometry intersects the chip's bounds.

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

from collections.abc import Sequence
from typing import Any

import numpy as np

from terrapipe.core.checks import check_column_names
from terrapipe.core.digests import wkb_digest
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require
from terrapipe.fuse.grid import crs_text

__all__ = ["VectorIndex"]

#: How many reprojected copies one index keeps (least recently used are dropped).
MAX_CRS = 8


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
        frame = self._by_crs.pop(crs, None)
        if frame is None:
            if crs == self.crs:
                frame = self.frame
            else:
                frame = self.frame.to_crs(crs)
                self.reprojections += 1
            frame.sindex  # noqa: B018  (build the index once, here)
        self._by_crs[crs] = frame
        while len(self._by_crs) > MAX_CRS:
            self._by_crs.pop(next(iter(self._by_crs)))
        return frame

    def query(self, bounds: Sequence[float], crs: str) -> Any:
        """Return the features (in ``crs``, original order) that intersect ``bounds``.

        Parameters
        ----------
        bounds
            ``(left, bottom, right, top)`` in ``crs``.
        crs
            The chip's CRS as :func:`~terrapipe.fuse.grid.crs_text` gives it.
        """
        import shapely

        frame = self.in_crs(crs)
        if len(frame) == 0:
            return frame
        hits = frame.sindex.query(shapely.box(*bounds), predicate="intersects")
        return frame.iloc[np.sort(hits)]
