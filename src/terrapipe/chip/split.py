"""Spatial train/val/test splits by geographic cells, with an optional buffer gap.

Random splits of overlapping or neighbouring windows leak: a validation chip
shares pixels (or at least spatially autocorrelated surroundings) with
training chips. :class:`SpatialSplit` instead cuts the map into square cells
of ``cell_size`` CRS units, gives each cell a subset at random (seeded, in
proportion to ``fractions``), and assigns a window to a subset only when the
window *grown by* ``buffer`` lies in cells of that one subset. Consequences:

- windows of different subsets never overlap, and are at least ``buffer``
  apart;
- windows crossing a cell border between two subsets, or closer than
  ``buffer`` to a cell of another subset, belong to no subset (they are
  counted by the chipper as ``outside_split``);
- the assignment depends only on map coordinates, the seed and the
  fractions, so it is the same for every raster, process, worker and run.

Cells are labelled by a hash of their integer coordinates, not by a random
draw over a list, so no state is kept and any extent works.

Examples
--------
>>> import numpy as np
>>> split = SpatialSplit({"train": 0.5, "val": 0.5}, cell_size=100.0, seed=1)
>>> bounds = np.array([[30, 30, 60, 60], [110, 10, 150, 50], [80, 10, 120, 50]])
>>> split.labels(bounds)
['val', 'train', None]
>>> SpatialSplit({"train": 0.5, "val": 0.5}, cell_size=100.0, buffer=20, seed=1).labels(bounds)
['val', None, None]

A stage yields one subset of a split: ``chip(..., split=split.select("train"))``
(a :class:`SplitSubset`, the split and the subset's name in one value).

>>> split.select("val").keep(bounds).tolist()
[True, False, False]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from affine import Affine

from terrapipe.core.crs import longitude_period
from terrapipe.core.errors import InvalidArgumentError

__all__ = ["REVISION", "SpatialSplit", "SplitSubset", "window_bounds"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: Revision of the labels a split gives windows, in its cache configuration: 2 since windows of lon/lat
#: rasters are moved by whole turns of the globe before their cells are looked up (a window of a 0..360
#: raster and the same place -180..180 are in one subset), so a cache written before is not served.
REVISION = 2


def _mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64 finaliser: a well-spread 64-bit hash of each value."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def window_bounds(
    transform: Affine | None,
    col: npt.ArrayLike,
    row: npt.ArrayLike,
    width: int,
    height: int,
    crs: str = "",
) -> npt.NDArray[np.float64]:
    """Return ``[n, 4]`` map bounds ``(left, bottom, right, top)`` of pixel windows.

    Parameters
    ----------
    transform
        Pixel to map transform; ``None`` gives bounds in pixels.
    col, row
        Window origins (first column and row).
    width, height
        Window size in pixels.
    crs
        The grid's CRS. In a lon/lat CRS a place has one longitude per turn
        of the globe (a raster written 0..360 or -180..180): each window is
        moved by whole turns so that its left edge lies in [-180, 180), so
        that a place falls in the same cells, and subset, however its raster
        writes longitudes.

    Examples
    --------
    >>> window_bounds(Affine(10, 0, 100, 0, -10, 200), [0, 2], [0, 1], 2, 2).tolist()
    [[100.0, 180.0, 120.0, 200.0], [120.0, 170.0, 140.0, 190.0]]
    >>> window_bounds(Affine(1, 0, 0, 0, -1, 10), [359, 170], [0, 0], 2, 1, crs="EPSG:4326").tolist()
    [[-1.0, 9.0, 1.0, 10.0], [170.0, 9.0, 172.0, 10.0]]
    """
    c = np.asarray(col, dtype=np.float64)
    r = np.asarray(row, dtype=np.float64)
    t = transform if transform is not None else Affine.identity()
    corners = ((c, r), (c + width, r), (c, r + height), (c + width, r + height))
    xs = np.stack([t.c + t.a * cc + t.b * rr for cc, rr in corners])
    ys = np.stack([t.f + t.d * cc + t.e * rr for cc, rr in corners])
    out = np.stack([xs.min(0), ys.min(0), xs.max(0), ys.max(0)], axis=-1)
    period = longitude_period(crs) if crs and transform is not None else None
    if period is not None and out.size:
        turns = period * np.floor((out[:, 0] + period / 2) / period)
        out[:, 0] -= turns
        out[:, 2] -= turns
    return out


@dataclass(frozen=True)
class SpatialSplit:
    """Assign windows to subsets by the geographic cells they lie in (see the module doc).

    Parameters
    ----------
    fractions
        Subset names and their expected share of cells, e.g.
        ``{"train": 0.8, "val": 0.1, "test": 0.1}`` (normalised to sum to 1).
    cell_size
        Cell side in CRS units (pixels for inputs without a transform);
        a pair for ``(x, y)`` sizes. Make it several windows wide, or most
        windows cross a border and belong to no subset.
    buffer
        Minimum gap, in the same units, between windows of different subsets.
    seed
        Seed of the cell labels.
    origin
        Map coordinates of a cell corner.

    Raises
    ------
    InvalidArgumentError
        For empty or negative fractions, a non-positive cell size or a negative buffer.
    """

    fractions: Mapping[str, float]
    cell_size: float | tuple[float, float]
    buffer: float = 0.0
    seed: int = 0
    origin: tuple[float, float] = (0.0, 0.0)
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _edges: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (
            not self.fractions
            or any(v < 0 for v in self.fractions.values())
            or sum(self.fractions.values()) <= 0
        ):
            raise InvalidArgumentError(
                f"fractions must be non-negative with a positive sum, got {self.fractions!r}"
            )
        cx, cy = self.cell_xy
        if not (cx > 0 and cy > 0):
            raise InvalidArgumentError(f"cell_size must be positive, got {self.cell_size!r}")
        if self.buffer < 0:
            raise InvalidArgumentError(f"buffer must be >= 0, got {self.buffer!r}")
        names = tuple(self.fractions)
        shares = np.array([float(self.fractions[n]) for n in names])
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_edges", np.cumsum(shares / shares.sum()))

    @property
    def names(self) -> tuple[str, ...]:
        """The subset names, in the order of ``fractions``."""
        return self._names

    @property
    def cell_xy(self) -> tuple[float, float]:
        """Cell width and height."""
        if isinstance(self.cell_size, tuple | list):
            return float(self.cell_size[0]), float(self.cell_size[1])
        return float(self.cell_size), float(self.cell_size)

    def cell_labels(self, ix: npt.ArrayLike, iy: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Subset number of the cells ``(ix, iy)``.

        Examples
        --------
        >>> split = SpatialSplit({"a": 1.0}, cell_size=1.0)
        >>> split.cell_labels([0, 5], [0, -3]).tolist()
        [0, 0]
        """
        ix64 = np.asarray(ix, dtype=np.int64).astype(np.uint64)
        iy64 = np.asarray(iy, dtype=np.int64).astype(np.uint64)
        seed = np.uint64(self.seed & 0xFFFFFFFFFFFFFFFF)
        with np.errstate(over="ignore"):
            h = _mix64(_mix64(_mix64(np.asarray(seed, dtype=np.uint64)) ^ ix64) ^ (iy64 * _GOLDEN))
        u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        return np.minimum(np.searchsorted(self._edges, u, side="right"), len(self._names) - 1).astype(
            np.int64
        )

    def assign(self, bounds: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Subset number of each window ``(left, bottom, right, top)``, or -1 for none.

        Parameters
        ----------
        bounds
            ``[n, 4]`` window bounds in CRS units.
        """
        b = np.asarray(bounds, dtype=np.float64).reshape(-1, 4)
        cx, cy = self.cell_xy
        ox, oy = self.origin
        grow = self.buffer
        left, bottom = np.minimum(b[:, 0], b[:, 2]) - grow, np.minimum(b[:, 1], b[:, 3]) - grow
        right, top = np.maximum(b[:, 0], b[:, 2]) + grow, np.maximum(b[:, 1], b[:, 3]) + grow
        x0 = np.floor((left - ox) / cx).astype(np.int64)
        y0 = np.floor((bottom - oy) / cy).astype(np.int64)
        # a window ending exactly on a border does not enter the next cell
        x1 = np.maximum(np.ceil((right - ox) / cx).astype(np.int64) - 1, x0)
        y1 = np.maximum(np.ceil((top - oy) / cy).astype(np.int64) - 1, y0)
        label = self.cell_labels(x0, y0)
        out = label.copy()
        span_x = int((x1 - x0).max(initial=0)) + 1
        span_y = int((y1 - y0).max(initial=0)) + 1
        for dx in range(span_x):
            for dy in range(span_y):
                if dx == 0 and dy == 0:
                    continue
                inside = (x0 + dx <= x1) & (y0 + dy <= y1)
                if not inside.any():
                    continue
                other = self.cell_labels(x0[inside] + dx, y0[inside] + dy)
                clash = np.flatnonzero(inside)[other != label[inside]]
                out[clash] = -1
        return out

    def cache_config(self) -> dict[str, Any]:
        """Describe the split for cache keys and pipeline fingerprints.

        Returns
        -------
        dict
            ``revision`` (:data:`REVISION`), ``subsets`` (names and fractions, in their order: the
            order decides which subset a cell gets), ``cell_size``, ``buffer``, ``seed``, ``origin``.

        Examples
        --------
        >>> config = SpatialSplit({"train": 0.8, "val": 0.2}, cell_size=10.0).cache_config()
        >>> config["revision"], config["subsets"]
        (2, [('train', 0.8), ('val', 0.2)])
        """
        return {
            "revision": REVISION,
            "subsets": [(name, float(self.fractions[name])) for name in self._names],
            "cell_size": self.cell_xy,
            "buffer": float(self.buffer),
            "seed": int(self.seed),
            "origin": (float(self.origin[0]), float(self.origin[1])),
        }

    def labels(self, bounds: npt.ArrayLike) -> list[str | None]:
        """Subset name of each window (``None`` for windows that belong to none)."""
        return [self._names[i] if i >= 0 else None for i in self.assign(bounds).tolist()]

    def select(self, name: str) -> SplitSubset:
        """Return the subset ``name`` of this split, for a stage's ``split=``.

        Raises
        ------
        InvalidArgumentError
            For a name that is not one of ``fractions``.

        Examples
        --------
        >>> SpatialSplit({"train": 0.8, "val": 0.2}, cell_size=1000.0).select("val")
        SplitSubset(split=SpatialSplit(fractions={'train': 0.8, 'val': 0.2}, cell_size=1000.0, buffer=0.0, seed=0, origin=(0.0, 0.0)), name='val')
        """
        return SplitSubset(self, name)

    def subset_number(self, name: str) -> int:
        """Index of a subset name.

        Raises
        ------
        InvalidArgumentError
            For a name that is not one of ``fractions``.
        """
        if name not in self._names:
            raise InvalidArgumentError(f"subset {name!r} is not one of the split's subsets {self._names!r}")
        return self._names.index(name)


@dataclass(frozen=True)
class SplitSubset:
    """One subset of a :class:`SpatialSplit`: what a stage's ``split=`` takes (``split.select(name)``).

    Parameters
    ----------
    split
        The split.
    name
        The name of the subset to keep: windows of other subsets, or of
        none (across a cell border, inside the buffer), are left out.

    Raises
    ------
    InvalidArgumentError
        For a split that is not a :class:`SpatialSplit`, or a name that is not one of its subsets.

    Notes
    -----
    Frozen and picklable, hashable when the split's ``fractions`` are (a
    mapping is not; equality holds either way).
    """

    split: SpatialSplit
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.split, SpatialSplit):
            raise InvalidArgumentError(
                f"a split subset needs a tp.chip.SpatialSplit, got {type(self.split).__name__}: {self.split!r:.80}"
            )
        self.split.subset_number(self.name)

    @property
    def number(self) -> int:
        """The subset's index in the split (what :meth:`SpatialSplit.assign` gives its windows)."""
        return self.split.subset_number(self.name)

    def keep(self, bounds: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether each window ``(left, bottom, right, top)`` belongs to this subset."""
        return np.asarray(self.split.assign(bounds) == self.number)

    @classmethod
    def of(cls, value: Any) -> SplitSubset | None:
        """Return a stage's ``split=`` as a subset: ``None`` or a :class:`SplitSubset`.

        Raises
        ------
        InvalidArgumentError
            For anything else, naming ``split.select(name)`` for a bare :class:`SpatialSplit`.
        """
        if value is None or isinstance(value, SplitSubset):
            return value
        if isinstance(value, SpatialSplit):
            raise InvalidArgumentError(
                "split= takes one subset of the split: pass split=split.select(name), e.g. "
                f"split.select({value.names[0]!r}) (subsets {value.names!r})"
            )
        raise InvalidArgumentError(
            f"split must be None or a subset of a tp.chip.SpatialSplit (split.select(name)), got "
            f"{type(value).__name__}: {value!r:.80}"
        )
