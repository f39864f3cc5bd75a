"""Which patches make which batch in xbatcher 0.4.0 — as integer arithmetic, without xbatcher.

xbatcher's ``BatchGenerator(ds, input_dims, input_overlap, batch_dims,
concat_input_dims)`` cuts *patches* over the "sliced" dimensions (the batch
dimensions that are not input dimensions, then the input dimensions, in the
order given), numbered row-major, and groups them into *batches*:

- ``concat_input_dims=False``: one patch per batch;
- no ``batch_dims``: every patch in one batch;
- batch dimensions disjoint from the input dimensions: one batch per
  combination of batch-dimension slices (a contiguous range of patches);
- a dimension in both: per dimension, patch ``j`` goes to batch
  ``j // ceil(batch_size / input_stride)``, and patches whose batch number
  along some dimension reaches ``size // batch_size`` are left out.

:class:`XbatcherSchema` reproduces this exactly, holding only per-dimension
arrays (patch numbers are computed, not listed), except that batches left
empty by the last rule are skipped: xbatcher 0.4.0 fails on them with
``ValueError: min() arg is an empty sequence``.

Examples
--------
>>> schema = XbatcherSchema({"y": 10, "x": 10}, {"x": 4}, batch_dims={"y": 5})
>>> schema.sliced_dims, schema.patch_shape, schema.n_batches
(('y', 'x'), (2, 2), 4)
>>> concat = XbatcherSchema({"y": 10, "x": 10}, {"x": 4}, batch_dims={"y": 5}, concat_input_dims=True)
>>> [concat.batch_patches(b).tolist() for b in range(concat.n_batches)]
[[0, 1], [2, 3]]
>>> dup = XbatcherSchema({"x": 10}, {"x": 4}, batch_dims={"x": 5}, concat_input_dims=True)
>>> dup.n_batches, dup.batch_patches(0).tolist()
(1, [0, 1])
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np

from terrapipe.chip.plan import IntArray, axis_starts
from terrapipe.core.errors import InvalidArgumentError

__all__ = ["XbatcherSchema"]


@dataclass(frozen=True)
class XbatcherSchema:
    """Patches and batches of an xbatcher ``BatchGenerator`` configuration (see the module doc).

    Parameters
    ----------
    sizes
        Sizes of the input's dimensions.
    input_dims, input_overlap, batch_dims, concat_input_dims
        As in ``xbatcher.BatchGenerator``.

    Raises
    ------
    InvalidArgumentError
        (a ``ValueError``) where xbatcher raises: a dimension the input lacks,
        a patch longer than its dimension, an overlap not smaller than the patch.
    """

    sizes: Mapping[Hashable, int]
    input_dims: Mapping[Hashable, int]
    input_overlap: Mapping[Hashable, int] = field(default_factory=dict)
    batch_dims: Mapping[Hashable, int] = field(default_factory=dict)
    concat_input_dims: bool = False
    _starts: tuple[IntArray, ...] = field(init=False, repr=False, compare=False)
    _batches: IntArray | None = field(init=False, repr=False, compare=False)
    _offsets: IntArray | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.input_dims:
            raise InvalidArgumentError("input_dims must name at least one dimension, got {}")
        for dim, length in {**self.input_dims, **self.batch_dims}.items():
            if dim not in self.sizes:
                raise InvalidArgumentError(
                    f"dimension {dim!r} is not a dimension of the input {dict(self.sizes)!r}"
                )
            if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
                raise InvalidArgumentError(f"the length along {dim!r} must be an int >= 1, got {length!r}")
        for dim, length in self.batch_dims.items():
            # batch-only dims are checked with the patch lengths below; a dim in
            # both only matters when patches are concatenated
            if dim in self.input_dims and self.concat_input_dims and length > self.sizes[dim]:
                msg = (
                    f"batch length {length} along {dim!r} is greater than the dimension length "
                    f"{self.sizes[dim]}; use a batch length <= {self.sizes[dim]}"
                )
                raise InvalidArgumentError(msg)
        starts = []
        for dim, length in self.sliced.items():
            size = int(self.sizes[dim])
            overlap = int(self.input_overlap.get(dim, 0))
            if length > size:
                msg = (
                    "input sample length must be less than or equal to the dimension length, but the sample "
                    f"length of {length} is greater than the dimension length of {size} for {dim!r}"
                )
                raise InvalidArgumentError(msg)
            if overlap >= length:
                msg = (
                    "input overlap must be less than the input sample length, but the input sample length is "
                    f"{length} and the overlap is {overlap} (dimension {dim!r})"
                )
                raise InvalidArgumentError(msg)
            starts.append(axis_starts(size, int(length), int(length) - overlap, "drop"))
        object.__setattr__(self, "_starts", tuple(starts))
        batches, offsets = self._group()
        object.__setattr__(self, "_batches", batches)
        object.__setattr__(self, "_offsets", offsets)

    # -- patches -------------------------------------------------------------
    @property
    def sliced(self) -> dict[Hashable, int]:
        """Patch length of each sliced dimension: batch-only dimensions first, then the input dimensions."""
        out = {d: int(n) for d, n in self.batch_dims.items() if d not in self.input_dims}
        out.update({d: int(n) for d, n in self.input_dims.items()})
        return out

    @property
    def sliced_dims(self) -> tuple[Hashable, ...]:
        """The sliced dimensions, in patch order (first varies slowest)."""
        return tuple(self.sliced)

    @property
    def duplicate_dims(self) -> tuple[Hashable, ...]:
        """Dimensions that are both input and batch dimensions."""
        return tuple(d for d in self.batch_dims if d in self.input_dims)

    @property
    def strides(self) -> dict[Hashable, int]:
        """Step between patch starts along each sliced dimension."""
        return {d: n - int(self.input_overlap.get(d, 0)) for d, n in self.sliced.items()}

    @property
    def patch_starts(self) -> tuple[IntArray, ...]:
        """Patch start offsets along each sliced dimension."""
        return self._starts

    @property
    def patch_shape(self) -> tuple[int, ...]:
        """Patches along each sliced dimension."""
        return tuple(int(s.size) for s in self._starts)

    @property
    def n_patches(self) -> int:
        """Total number of patches."""
        return int(np.prod(self.patch_shape, dtype=np.int64))

    # -- batches -------------------------------------------------------------
    def _group(self) -> tuple[IntArray | None, IntArray | None]:
        """Patch numbers of every batch, concatenated, and batch offsets (``None``: one patch per batch)."""
        n = self.n_patches
        if not self.concat_input_dims:
            return None, None
        if not self.batch_dims:
            return np.arange(n, dtype=np.int64), np.array([0, n], dtype=np.int64)
        if not self.duplicate_dims:
            per_batch = int(np.prod(self.patch_shape[len(self.batch_dims) :], dtype=np.int64))
            count = n // per_batch if per_batch else 0
            return np.arange(n, dtype=np.int64), np.arange(count + 1, dtype=np.int64) * per_batch
        # a dimension in both: xbatcher's per-dimension batch numbers
        per_dim_batch = []
        n_batches = []
        for dim, patches in zip(self.sliced_dims, self.patch_shape, strict=True):
            if dim in self.batch_dims:
                stride = self.strides[dim] if dim in self.input_dims else int(self.batch_dims[dim])
                per_batch = -(-int(self.batch_dims[dim]) // stride)
                per_dim_batch.append(np.arange(patches, dtype=np.int64) // per_batch)
                n_batches.append(int(self.sizes[dim]) // int(self.batch_dims[dim]))
            else:
                per_dim_batch.append(np.zeros(patches, dtype=np.int64))
                n_batches.append(1)
        grids = np.meshgrid(*per_dim_batch, indexing="ij")
        ids = np.stack([g.ravel() for g in grids]) if grids else np.zeros((0, n), np.int64)
        inside = np.all(ids < np.asarray(n_batches)[:, None], axis=0)
        patch_numbers = np.flatnonzero(inside).astype(np.int64)
        if patch_numbers.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
        flat = np.ravel_multi_index(tuple(ids[:, inside]), tuple(n_batches)).astype(np.int64)
        order = np.argsort(flat, kind="stable")
        sorted_ids = flat[order]
        breaks = np.flatnonzero(np.diff(sorted_ids)) + 1
        offsets = np.concatenate([[0], breaks, [sorted_ids.size]]).astype(np.int64)
        return patch_numbers[order], offsets

    @property
    def n_batches(self) -> int:
        """Number of (non-empty) batches."""
        if self._offsets is None:
            return self.n_patches
        return int(self._offsets.size - 1)

    def batch_patches(self, batch: int) -> IntArray:
        """Patch numbers of one batch, in xbatcher's order."""
        if self._offsets is None or self._batches is None:
            return np.array([batch], dtype=np.int64)
        return self._batches[self._offsets[batch] : self._offsets[batch + 1]]

    def patch_sequence(self, first: int, last: int) -> tuple[IntArray, IntArray]:
        """Patch numbers of batches ``first:last`` concatenated, and the batch offsets into them."""
        if self._offsets is None or self._batches is None:
            seq = np.arange(first, last, dtype=np.int64)
            return seq, np.arange(last - first + 1, dtype=np.int64)
        lo, hi = int(self._offsets[first]), int(self._offsets[last])
        return self._batches[lo:hi], (self._offsets[first : last + 1] - lo).astype(np.int64)

    def patch_selector(self, patch: int) -> dict[Hashable, slice]:
        """Return the ``isel`` selector of one patch (xbatcher's patch selector)."""
        index = np.unravel_index(patch, self.patch_shape)
        return {
            dim: slice(int(s[i]), int(s[i]) + length)
            for (dim, length), s, i in zip(self.sliced.items(), self._starts, index, strict=True)
        }
