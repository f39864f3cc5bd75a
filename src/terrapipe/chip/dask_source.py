"""Read dask-backed inputs without dask's per-call overhead, and never differently from dask.

``xr.open_zarr(path)`` (dask chunks: what xarray's tutorials show) and
``stack_stac`` give dask arrays. Computing every block of such an array
through ``array[key].compute()`` costs a new graph layer, an optimisation
pass over the whole graph and a scheduler call per block, and for Zarr it
reads through zarr-python; the chipper was 2-4x slower on them than on the
same store opened with ``chunks=None``. This module offers two faster ways,
and chooses per array:

1. :func:`plain_source`: when the graph is a **plain store read** (dask's
   ``from_array`` getter tasks over one backend array, optionally cut by
   basic slices, as ``xr.open_zarr`` and ``isel`` build it), every chunk of
   the dask array is checked to be the box of that backend array at one
   fixed offset, and the chipper reads the backend array directly, lazily
   indexed as with ``chunks=None`` (and through the direct Zarr decoder
   where it applies, :mod:`terrapipe.io.zarr_direct`). Anything else in
   the graph (arithmetic such as ``da + 1``, ``where``, ``rechunk``, a
   concatenation, a lock on the getter, a fancy index, a non-numpy chunk
   type) is not a plain read, and the array goes to 2. ``from_array``'s own
   ``Blockwise`` layer is read as a layer (its slices come from an
   ``ArraySliceDep``, checked against the declared chunks), never
   materialised into a task per chunk: 0.5 ms instead of 9-30 ms of CPU for
   a 4096² to 8192² cube of 512² chunks, per element.
2. :class:`DaskBlocks`: computes the dask chunks a block covers from the
   array's own (optimised once, per element) low-level graph: one
   synchronous scheduler call per block for all its chunks (all bands,
   times...), with only the tasks they need. The values are dask's own.

Both look into dask's task specification (``dask._task_spec``, a private
module of dask >= 2025.1, reached through :func:`terrapipe._compat.dask_task_spec`)
and its ``Blockwise`` / ``ArraySliceDep`` layers: this module checks the
version, and any surprise there means "not a plain read" (and
:func:`dask_blocks` returning ``None``: the generic ``compute`` path).
``tests/chip/test_dask_source.py`` fails when dask changes what it builds.

Examples
--------
>>> import dask.array, numpy as np, xarray as xr
>>> import zarr
>>> data = np.arange(48, dtype="int16").reshape(6, 8)
>>> store = zarr.create_array(store={}, shape=(6, 8), chunks=(3, 4), dtype="int16")
>>> store[:] = data
>>> var = xr.Variable(("y", "x"), dask.array.from_zarr(store))
>>> plain = plain_source(var[1:, 2:])
>>> plain.chunks is None, plain.shape, bool((plain.values == data[1:, 2:]).all())
(True, (5, 6), True)
>>> plain_source(var + 1) is None
True
>>> blocks = dask_blocks(var + 1)
>>> blocks.read((slice(3, 6), slice(0, 8))).tolist() == (data[3:6] + 1).tolist()
True
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Hashable, Iterator, Mapping, Sequence
from itertools import product
from typing import Any

import numpy as np
import xarray as xr

from terrapipe._compat import dask_meta, dask_take_getitem, dask_task_spec, xarray_indexing
from terrapipe.core.errors import ReadError, TerrapipeError

__all__ = [
    "DaskBlocks",
    "Pick",
    "SourceBlocks",
    "dask_blocks",
    "native_picks",
    "plain_source",
    "read_pick",
    "task_spec",
]

_MIN_DASK = (2025, 1)


def task_spec() -> Any:
    """Return dask's task-specification module, or ``None`` where dask is missing or older than 2025.1."""
    try:
        import dask

        spec = dask_task_spec()
    except ImportError:  # no dask, or its task specification moved (MissingDependencyError is one too)
        return None
    try:
        version = tuple(int(part) for part in str(getattr(dask, "__version__", "0.0")).split(".")[:2])
    except ValueError:
        return None
    return spec if version >= _MIN_DASK else None


# -- 1. plain store reads -------------------------------------------------------------------------------


def plain_source(variable: xr.Variable) -> xr.Variable | None:
    """Return a lazily indexed variable equal to a dask-backed one that only reads a backend array, or ``None``.

    See the module doc for what counts as a plain read. The result has the
    variable's dims, attributes and encoding; its data is the backend array
    (``xr.open_zarr``'s lazily indexed Zarr array, a numpy array, a
    ``zarr.Array``) cut by the offset the graph reads it at.
    """
    try:
        return _plain_source(variable)
    except Exception:  # any surprise in dask's or xarray's internals: not a plain read
        return None


def _plain_source(variable: xr.Variable) -> xr.Variable | None:
    found = _plain_read(variable)
    return None if found is None else _as_variable(found[0], found[1], variable)


def _plain_read(variable: xr.Variable) -> tuple[Any, list[int]] | None:
    """Return ``(backend object, offset)`` when every chunk of a dask-backed variable is that object's box at one offset."""
    spec = task_spec()
    array = variable.data
    if spec is None or not hasattr(array, "__dask_graph__") or type(dask_meta(array)) is not np.ndarray:
        return None
    chunks = tuple(tuple(lengths) for lengths in array.chunks)
    if any(np.isnan(c) for lengths in chunks for c in lengths):
        return None
    graph = array.__dask_graph__()
    name = array.name
    readers = _reader_layers(spec, graph)
    whole = readers.get(name)
    if whole is not None and _reads_its_own_chunks(whole[1], chunks):
        # ``from_array``'s own layer: chunk i reads the source's box of chunk i (offset 0)
        return whole[0], [0] * len(chunks)
    starts = [np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64) for lengths in chunks]
    source: Any = None
    offset: list[int] | None = None
    memo: dict[Hashable, Any] = {}
    for index in product(*(range(len(lengths)) for lengths in chunks)):
        found = _resolve(spec, graph, (name, *index), memo, 0, readers)
        if found is None:
            return None
        obj, box = found
        if source is None:
            source = obj
        elif obj is not source:
            return None
        here = [int(starts[k][i]) for k, i in enumerate(index)]
        lengths = [int(chunks[k][i]) for k, i in enumerate(index)]
        if len(box) != len(here) or any(b - a != n for (a, b), n in zip(box, lengths, strict=True)):
            return None
        shift = [a - h for (a, _), h in zip(box, here, strict=True)]
        if offset is None:
            offset = shift
        elif shift != offset:
            return None
    if source is None or offset is None:
        return None
    return source, offset


def _reader_layers(spec: Any, graph: Any) -> dict[Hashable, tuple[Any, Any]]:
    """Return the graph's ``from_array`` layers: layer name -> (backend object, its ``ArraySliceDep``).

    ``dask.array.from_array`` (and ``xr.open_zarr``, ``dask.array.from_zarr``)
    build one ``Blockwise`` layer whose task is ``getter(source, slices)``, the
    slices of block ``i`` coming from an ``ArraySliceDep`` indexed like the
    output. Its chunks' boxes are known from that dependency without
    materialising the layer (a task object per chunk: 10-50 ms for a few hundred
    chunks). Anything else about the layer (another function, a lock, more
    arguments, concatenation, new axes, a subset of blocks) leaves it out, and
    its chunks are taken apart task by task (:func:`_resolve`).
    """
    layers = getattr(graph, "layers", None)
    if not isinstance(layers, Mapping):
        return {}
    from dask.blockwise import Blockwise, blockwise_token
    from dask.layers import ArraySliceDep

    token: Any = blockwise_token
    out: dict[Hashable, tuple[Any, Any]] = {}
    for layer_name, found in layers.items():
        if type(found) is not Blockwise:
            continue
        layer: Any = found
        if layer.output != layer_name:
            continue
        if layer.output_blocks is not None or layer.concatenate or layer.new_axes:
            continue
        task = layer.task
        if type(task) is not spec.Task or not _is_getter(task.func):
            continue
        args = tuple(task.args)
        if len(args) != 2 or not all(
            type(arg) is spec.TaskRef and arg.key == token(i) for i, arg in enumerate(args)
        ):
            continue
        kwargs = dict(task.kwargs)
        kwargs.pop("asarray", None)
        if kwargs.pop("lock", None) or kwargs:
            continue  # a locked read (dask serialises it): keep dask's way
        indices = tuple(layer.indices)
        if len(indices) != 2 or indices[0][1] is not None:
            continue
        dep_name, dep_index = indices[1]
        dep = layer.io_deps.get(dep_name)
        if type(dep) is not ArraySliceDep or tuple(dep_index) != tuple(layer.output_indices):
            continue
        source = _value(spec, graph, indices[0][0])
        shape = getattr(source, "shape", None)
        if source is None or shape is None or len(shape) != len(dep.chunks):
            continue
        out[layer_name] = (source, dep)
    return out


def _reads_its_own_chunks(dep: Any, chunks: tuple[tuple[int, ...], ...]) -> bool:
    """Whether an ``ArraySliceDep`` gives block ``i`` of ``chunks`` the box of that block.

    Checked along every axis (each block of an axis, the others at 0) and at
    the last block: an ``ArraySliceDep`` is a product of per-axis slices.
    """
    if tuple(tuple(int(c) for c in lengths) for lengths in dep.chunks) != chunks:
        return False
    starts = [np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64).tolist() for lengths in chunks]
    first = [0] * len(chunks)
    probes = [
        (*first[:k], i, *first[k + 1 :]) for k, lengths in enumerate(chunks) for i in range(len(lengths))
    ]
    probes.append(tuple(len(lengths) - 1 for lengths in chunks))
    for index in probes:
        want = tuple(slice(s[i], s[i + 1]) for s, i in zip(starts, index, strict=True))
        got = dep[index]
        if not isinstance(got, tuple) or tuple(got) != want:
            return False
    return True


def _is_getter(func: Any) -> bool:
    from dask.array.core import getter, getter_inline, getter_nofancy

    return func in (getter, getter_nofancy, getter_inline)


def _resolve(
    spec: Any,
    graph: Mapping[Hashable, Any],
    key: Hashable,
    memo: dict[Hashable, Any],
    depth: int,
    readers: Mapping[Hashable, tuple[Any, Any]],
) -> tuple[Any, list[tuple[int, int]]] | None:
    """Return the backend object a chunk reads and the box it reads from it, or ``None`` if the task is not a read."""
    if key in memo:
        return memo[key]  # type: ignore[no-any-return]
    if depth > 64:
        return None
    out: tuple[Any, list[tuple[int, int]]] | None = None
    reader = readers.get(key[0]) if isinstance(key, tuple) and key else None
    if reader is not None:
        source, dep = reader
        box = _box(dep[key[1:]], tuple(int(n) for n in source.shape))  # type: ignore[index]
        out = None if box is None else (source, box)
    else:
        node = graph[key]
        if isinstance(node, spec.Alias):
            out = _resolve(spec, graph, node.target, memo, depth + 1, readers)
        elif isinstance(node, spec.Task):
            out = _resolve_task(spec, graph, node, memo, depth, readers)
    memo[key] = out
    return out


def _resolve_task(
    spec: Any,
    graph: Mapping[Hashable, Any],
    task: Any,
    memo: dict[Hashable, Any],
    depth: int,
    readers: Mapping[Hashable, tuple[Any, Any]],
) -> tuple[Any, list[tuple[int, int]]] | None:
    from dask.array.chunk import getitem as chunk_getitem

    func, args, kwargs = task.func, tuple(task.args), dict(task.kwargs)
    if _is_getter(func):
        if len(args) < 2 or len(args) > 4:
            return None
        lock = args[3] if len(args) > 3 else kwargs.pop("lock", None)
        kwargs.pop("asarray", None)
        if lock or kwargs:
            return None  # a locked read (dask serialises it): keep dask's way
        source = _value(spec, graph, args[0])
        index = _value(spec, graph, args[1])
        shape = getattr(source, "shape", None)
        if source is None or shape is None:
            return None
        box = _box(index, tuple(int(n) for n in shape))
        return None if box is None else (source, box)
    if func in (operator.getitem, chunk_getitem) and len(args) == 2 and not kwargs:
        ref = args[0]
        if not isinstance(ref, spec.TaskRef):
            return None
        inner = _resolve(spec, graph, ref.key, memo, depth + 1, readers)
        if inner is None:
            return None
        source, outer = inner
        cut = _box(_value(spec, graph, args[1]), tuple(b - a for a, b in outer))
        if cut is None:
            return None
        return source, [(a + lo, a + hi) for (a, _), (lo, hi) in zip(outer, cut, strict=True)]
    return None


def _value(spec: Any, graph: Mapping[Hashable, Any], arg: Any) -> Any:
    """Return a task argument's value: a literal, a ``DataNode``, or a reference to a key holding a literal."""
    if isinstance(arg, spec.TaskRef):
        arg = graph[arg.key]
    if isinstance(arg, spec.DataNode):
        return arg.value
    if isinstance(arg, spec.GraphNode):
        return None  # computed: not a plain read
    return arg


def _box(index: Any, shape: tuple[int, ...]) -> list[tuple[int, int]] | None:
    """Bounds of a basic-slice index (step 1, one slice per axis) into an array of ``shape``."""
    if not isinstance(index, tuple) or len(index) != len(shape):
        return None
    out = []
    for part, n in zip(index, shape, strict=True):
        if not isinstance(part, slice) or part.step not in (None, 1):
            return None
        start, stop, _ = part.indices(n)
        out.append((start, max(start, stop)))
    return out


def _as_variable(source: Any, offset: Sequence[int], variable: xr.Variable) -> xr.Variable | None:
    indexing = xarray_indexing()

    box = tuple(slice(o, o + n) for o, n in zip(offset, variable.shape, strict=True))
    if isinstance(source, indexing.ImplicitToExplicitIndexingAdapter):
        data: Any = source.array  # xarray's lazily indexed backend array (what getter indexes)
        if not isinstance(data, indexing.ExplicitlyIndexed):
            return None
    elif type(source) is np.ndarray:
        data = source
    elif _is_zarr_array(source):
        from xarray.backends.zarr import ZarrArrayWrapper

        data = indexing.LazilyIndexedArray(ZarrArrayWrapper(source))  # type: ignore[no-untyped-call]
    else:
        return None
    if np.dtype(data.dtype) != np.dtype(variable.dtype) or len(data.shape) != variable.ndim:
        return None
    lazy = xr.Variable(variable.dims, data, variable.attrs, variable.encoding)
    out = lazy[box] if any(o for o in offset) or lazy.shape != variable.shape else lazy
    if out.shape != variable.shape or out.chunks is not None:
        return None
    return out


def _is_zarr_array(obj: Any) -> bool:
    try:
        import zarr
    except ImportError:
        return False
    return isinstance(obj, zarr.Array)


# -- 2. any other graph: the chunks of a block in one scheduler call -----------------------------------------


class DaskBlocks:
    """Compute boxes of a dask array from the dask chunks they cover, one scheduler call per box.

    Made by :func:`dask_blocks`; the chipper's reader calls :meth:`read` from
    its threads (``spec.direct``), each with the synchronous scheduler.

    Parameters
    ----------
    array
        The dask array.
    source
        What errors name (the store or the variable).
    """

    def __init__(self, array: Any, source: str = "") -> None:
        from dask.base import optimize

        (optimised,) = optimize(array)  # type: ignore[no-untyped-call]
        self.name = optimised.name
        self.graph = dict(optimised.__dask_graph__())
        self.chunks = tuple(tuple(int(c) for c in lengths) for lengths in optimised.chunks)
        self.starts = [np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64) for lengths in self.chunks]
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.source = source
        self.chunks_read = 0

    def shape_of(self, key: Sequence[slice]) -> tuple[int, ...]:
        """Shape of ``array[key]`` (what :meth:`read` returns)."""
        return tuple(len(range(*k.indices(n))) for k, n in zip(key, self.shape, strict=True))

    def read(self, key: Sequence[slice], out: np.ndarray | None = None) -> np.ndarray:
        """Return ``array[key]`` for a key of slices (step 1), computed from the chunks it covers."""
        bounds = [k.indices(n)[:2] for k, n in zip(key, self.shape, strict=True)]
        ranges = [
            range(int(np.searchsorted(s, a, side="right")) - 1, int(np.searchsorted(s, b, side="left")))
            if b > a
            else range(0)
            for (a, b), s in zip(bounds, self.starts, strict=True)
        ]
        coords = list(product(*ranges))
        keys = [(self.name, *c) for c in coords]
        shape = tuple(b - a for a, b in bounds)
        if out is not None and (out.shape != shape or out.dtype != self.dtype):
            out = None
        if not keys:
            return np.empty(shape, dtype=self.dtype) if out is None else out
        try:
            values = self._values(coords, keys)
        except TerrapipeError:
            raise
        except Exception as err:
            raise ReadError(
                f"chip: computing dask chunks {coords[:4]}{'...' if len(coords) > 4 else ''} of {self.source or 'a dask array'} "
                f"failed: {type(err).__name__}: {err}; check that the graph's inputs are readable"
            ) from err
        self.chunks_read += len(keys)
        for c, value in zip(coords, values, strict=True):
            chunk = np.asarray(value)
            lo = [int(s[i]) for s, i in zip(self.starts, c, strict=True)]
            expected = tuple(self.chunks[k][i] for k, i in enumerate(c))
            if chunk.shape != expected or chunk.dtype != self.dtype:
                raise ReadError(
                    f"chip: dask chunk {c} of {self.source or 'a dask array'} computed to shape {chunk.shape} "
                    f"{chunk.dtype}, but the array declares {expected} {self.dtype}; fix the graph (a map_blocks "
                    "with a wrong chunks= or dtype=?)"
                )
            dst, src = [], []
            for (a, b), start, n in zip(bounds, lo, expected, strict=True):
                top, bottom = max(a, start), min(b, start + n)
                dst.append(slice(top - a, bottom - a))
                src.append(slice(top - start, bottom - start))
            if len(keys) == 1 and all(s == slice(0, n) for s, n in zip(src, chunk.shape, strict=True)):
                return chunk  # the box is one whole chunk: no copy (and no buffer allocated for it)
            if out is None:  # allocated only for a copy: an unused block-sized buffer costs page faults
                out = np.empty(shape, dtype=self.dtype)
            out[tuple(dst)] = chunk[tuple(src)]
        return out  # type: ignore[return-value]

    def _values(self, coords: Sequence[tuple[int, ...]], keys: Sequence[Hashable]) -> Sequence[Any]:
        """Compute the chunks ``keys`` (at ``coords`` in the chunk grid): one synchronous scheduler call."""
        from dask.core import get_dependencies
        from dask.local import get_sync

        return get_sync(_cull(self.graph, keys, get_dependencies), keys)  # type: ignore[arg-type,no-any-return]


class SourceBlocks(DaskBlocks):
    """Read the dask chunks of a pure selection of a native ``stack_stac`` cube from its array, as dask would.

    A native ``stack_stac`` cube (:class:`terrapipe.stac.native_read.NativeArray`
    under ``dask.array.from_array``, no lock) is a plain read that
    :func:`plain_source` cannot turn into a lazily indexed variable. Its
    chunks, and those of any selection of it (``isel``/``sel`` by integers,
    slices with any step, lists of bands or times: dask's ``getitem`` and
    ``take`` tasks over the getter's chunks, found by :func:`native_picks`),
    are ``array[pick]`` for each chunk's pick of the array's indices: read
    here without building, optimising and scheduling a graph per block
    (0.2-0.5 ms a block, and ~4 ms per element to optimise the graph). The
    chunk boxes, checks and copies are :class:`DaskBlocks`'s, so the values
    are the same.

    Parameters
    ----------
    variable
        The dask-backed variable.
    array, picks
        The array every chunk reads, and each chunk's pick of it (chunk
        coordinates -> per axis of ``array``: an ``int`` (the axis dropped),
        a ``range``, or a tuple of indices).
    source
        What errors name.
    """

    def __init__(
        self, variable: xr.Variable, array: Any, picks: Mapping[tuple[int, ...], Pick], source: str = ""
    ) -> None:
        dask_array = variable.data
        self.name = dask_array.name
        self.graph = {}
        self.chunks = tuple(tuple(int(c) for c in lengths) for lengths in dask_array.chunks)
        self.starts = [np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64) for lengths in self.chunks]
        self.shape = tuple(int(n) for n in dask_array.shape)
        self.dtype = np.dtype(dask_array.dtype)
        self.source = source
        self.chunks_read = 0
        self.array = array
        self.picks = picks

    def _values(self, coords: Sequence[tuple[int, ...]], keys: Sequence[Hashable]) -> Sequence[Any]:
        return [read_pick(self.array, self.picks[c], _LISTED_AXES) for c in coords]


#: One chunk's indices into the array it reads, per axis of that array: an ``int`` (the axis is dropped), a
#: ``range`` (a slice, any step) or a tuple of ints (a list of indices, in order).
Pick = tuple[int | range | tuple[int, ...], ...]

#: Axes of a native cube (``time``, ``band``) whose lists of indices it reads itself; a list along ``y``
#: or ``x`` is read as the rows or columns it spans, then taken.
_LISTED_AXES = 2


def read_pick(array: Any, pick: Pick, listed: int = 0) -> np.ndarray:
    """Return ``array[pick]``: ints drop axes, ranges and index tuples keep them (each axis on its own), in order.

    ``listed``: along the first ``listed`` axes the array takes a list of
    indices and reads them on their own (a native cube's times and bands:
    :data:`_LISTED_AXES`); along the others, the indices' span is read,
    then taken.

    Examples
    --------
    >>> read_pick(np.arange(24).reshape(2, 3, 4), (1, (2, 0), range(3, -1, -2))).tolist()
    [[23, 21], [15, 13]]
    """
    key: list[Any] = []
    after: list[Any] = []
    for axis, part in enumerate(pick):
        if isinstance(part, int):
            key.append(part)
        elif isinstance(part, range):
            if part.step > 0 or not part:
                key.append(slice(part.start, part.start if not part else part.stop, part.step))
                after.append(slice(None))
            else:  # read forward, then reverse
                forward = part[::-1]
                key.append(slice(forward.start, forward.stop, forward.step))
                after.append(slice(None, None, -1))
        elif axis < listed:
            key.append(list(part))
            after.append(slice(None))
        else:
            low = min(part, default=0)
            key.append(slice(low, max(part, default=-1) + 1))
            after.append(np.asarray(part, dtype=np.intp) - low)
    values = np.asarray(array[tuple(key)])
    for axis, step in enumerate(after):
        if isinstance(step, np.ndarray):
            values = np.take(values, step, axis=axis)
        elif step.step == -1:
            values = values[(slice(None),) * axis + (step,)]
    return np.ascontiguousarray(values) if any(s < 0 for s in values.strides) else values


def _native_blocks(variable: xr.Variable, source: str) -> SourceBlocks | None:
    """Return a :class:`SourceBlocks` reader when ``variable`` is a pure selection of a native ``stack_stac`` cube."""
    native = getattr(
        sys.modules.get("terrapipe.stac.native_read"), "NativeArray", None
    )  # loaded if one exists
    if native is None:
        return None
    try:
        found = native_picks(variable, native)
    except Exception:  # any surprise in dask's internals: not a plain read
        return None
    if found is None or np.dtype(found[0].dtype) != np.dtype(variable.dtype):
        return None
    return SourceBlocks(variable, found[0], found[1], source)


def native_picks(variable: xr.Variable, kind: type) -> tuple[Any, Mapping[tuple[int, ...], Pick]] | None:
    """Return ``(array, picks)`` when every chunk of a dask-backed variable is a selection of one ``kind`` array.

    The graph is followed from each output chunk down to ``from_array``'s
    getter over the array (read as a layer, never materialised), through
    what only selects: ``Alias``, dask's ``getitem`` (ints, slices with any
    step: ``isel``, splitting ``rechunk``) and ``take`` (one list of indices
    on one axis: ``sel(band=[...])``). Each chunk's pick must have the shape
    the array declares for that chunk. Any other task (arithmetic, ``where``,
    ``astype``, a merging ``rechunk``, a concatenation, a lock on the getter,
    ``None`` or boolean indices) means ``None``: dask computes it.
    """
    spec = task_spec()
    array = variable.data
    if spec is None or not hasattr(array, "__dask_graph__") or type(dask_meta(array)) is not np.ndarray:
        return None
    chunks = tuple(tuple(int(c) for c in lengths) for lengths in array.chunks)
    graph = array.__dask_graph__()
    readers = {k: v for k, v in _reader_layers(spec, graph).items() if type(v[0]) is kind}
    if not readers:
        return None
    whole = readers.get(array.name)
    if whole is not None and _reads_its_own_chunks(whole[1], chunks):
        return whole[0], _ChunkBoxes(chunks)  # ``from_array``'s own layer: chunk i is the box of chunk i
    memo: dict[Hashable, Any] = {}
    source: Any = None
    picks: dict[tuple[int, ...], Pick] = {}
    for index in product(*(range(len(lengths)) for lengths in chunks)):
        found = _pick_of(spec, graph, (array.name, *index), memo, 0, readers, None)
        if found is None:
            return None
        obj, pick = found
        if source is None:
            source = obj
        elif obj is not source:
            return None
        kept = tuple(len(part) for part in pick if not isinstance(part, int))
        if kept != tuple(chunks[k][i] for k, i in enumerate(index)):
            return None
        picks[index] = pick
    return (source, picks) if source is not None else None


class _ChunkBoxes(Mapping[tuple[int, ...], Pick]):
    """The picks of an array's own chunks (chunk ``i``: the ranges of chunk ``i``), made when asked for."""

    def __init__(self, chunks: tuple[tuple[int, ...], ...]) -> None:
        self.chunks = chunks
        self.starts = [
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64).tolist() for lengths in chunks
        ]

    def __getitem__(self, index: tuple[int, ...]) -> Pick:
        return tuple(range(s[i], s[i + 1]) for s, i in zip(self.starts, index, strict=True))

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        return iter(product(*(range(len(lengths)) for lengths in self.chunks)))

    def __len__(self) -> int:
        return int(np.prod([len(lengths) for lengths in self.chunks]))


def _pick_of(
    spec: Any,
    graph: Any,
    key: Hashable,
    memo: dict[Hashable, Any],
    depth: int,
    readers: Mapping[Hashable, tuple[Any, Any]],
    layer: Any,
) -> tuple[Any, Pick] | None:
    """Return the array a chunk reads and its pick of it, or ``None`` if the chunk's task computes anything."""
    if key in memo:
        return memo[key]  # type: ignore[no-any-return]
    if depth > 64:
        return None
    out: tuple[Any, Pick] | None = None
    reader = readers.get(key[0]) if isinstance(key, tuple) and key else None
    if reader is not None:
        source, dep = reader
        shape = tuple(int(n) for n in source.shape)
        out = _pick_after(source, tuple(range(n) for n in shape), dep[key[1:]])  # type: ignore[index]
    else:
        here = graph.layers.get(key[0]) if isinstance(key, tuple) and key else None
        node = _node(graph, key, here if here is not None else layer)
        if isinstance(node, spec.Alias):
            out = _pick_of(spec, graph, node.target, memo, depth + 1, readers, here)
        elif isinstance(node, spec.Task):
            out = _pick_of_task(spec, graph, node, memo, depth, readers, here)
    memo[key] = out
    return out


def _node(graph: Any, key: Hashable, layer: Any) -> Any:
    """Return ``graph[key]``, looked up first in ``layer`` (the layer of the task that refers to it)."""
    if layer is not None and not isinstance(layer, Mapping):
        layer = None
    if layer is not None:
        try:
            return layer[key]
        except (KeyError, TypeError):
            pass
    return graph[key]


def _pick_of_task(
    spec: Any,
    graph: Any,
    task: Any,
    memo: dict[Hashable, Any],
    depth: int,
    readers: Mapping[Hashable, tuple[Any, Any]],
    layer: Any,
) -> tuple[Any, Pick] | None:
    from dask.array.chunk import getitem as chunk_getitem

    func, args, kwargs = task.func, tuple(task.args), dict(task.kwargs)
    if kwargs or len(args) != 2 or not isinstance(args[0], spec.TaskRef):
        return None
    take = dask_take_getitem()
    if func not in (operator.getitem, chunk_getitem) and (take is None or func is not take):
        return None
    index = _arg_value(spec, graph, args[1], layer)
    if func is take:
        if not isinstance(index, tuple) or len(index) != 2:
            return None
        index = index[1]
    inner = _pick_of(spec, graph, args[0].key, memo, depth + 1, readers, layer)
    if inner is None:
        return None
    return _pick_after(inner[0], inner[1], index)


def _arg_value(spec: Any, graph: Any, arg: Any, layer: Any) -> Any:
    """Return a task argument's value: a literal, a ``DataNode``, or a reference to a key holding one (else ``None``)."""
    if isinstance(arg, spec.TaskRef):
        arg = _node(graph, arg.key, layer)
    if isinstance(arg, spec.DataNode):
        return arg.value
    if isinstance(arg, spec.GraphNode):
        return None
    return arg


def _pick_after(source: Any, pick: Pick, index: Any) -> tuple[Any, Pick] | None:
    """Return ``(source, pick)`` once ``index`` (a basic index, or one list along one axis) selects from ``pick``.

    Examples
    --------
    >>> _pick_after("a", (range(4), range(10)), (slice(1, None), 3))
    ('a', (range(1, 4), 3))
    >>> _pick_after("a", (range(4), range(10)), (slice(None), np.array([2, 0]))) == ("a", (range(4), (2, 0)))
    True
    >>> _pick_after("a", (range(4),), (None, slice(None))) is None  # a new axis: not a selection
    True
    """
    if not isinstance(index, tuple):
        index = (index,)
    kept = [k for k, part in enumerate(pick) if not isinstance(part, int)]
    if len(index) > len(kept):
        return None
    out: list[Any] = list(pick)
    lists = 0
    for k, part in zip(kept, index + (slice(None),) * (len(kept) - len(index)), strict=True):
        current = pick[k]
        assert not isinstance(current, int)
        if isinstance(part, slice):
            out[k] = current[part]
        elif isinstance(part, int | np.integer) and not isinstance(part, bool | np.bool_):
            out[k] = current[int(part)]
        elif isinstance(part, np.ndarray | list) and _is_index_list(part):
            lists += 1
            out[k] = tuple(current[int(i)] for i in part)
        else:
            return None  # None, Ellipsis, booleans, arrays of other shapes: not a plain selection
    if lists > 1:
        return None  # several lists index jointly (numpy's broadcasting): not a selection per axis
    return source, tuple(part if isinstance(part, int | range) else tuple(part) for part in out)


def _is_index_list(part: Any) -> bool:
    values = np.asarray(part)
    return values.ndim == 1 and values.dtype.kind in "iu"


def _cull(graph: Mapping[Hashable, Any], keys: Sequence[Hashable], dependencies: Any) -> dict[Hashable, Any]:
    """Return the tasks ``keys`` need (and only those)."""
    needed: dict[Hashable, Any] = {}
    todo = list(keys)
    while todo:
        key = todo.pop()
        if key in needed:
            continue
        task = graph[key]
        needed[key] = task
        todo.extend(d for d in dependencies(graph, key) if d not in needed)
    return needed


def dask_blocks(variable: xr.Variable, source: str = "") -> DaskBlocks | None:
    """Return a :class:`DaskBlocks` reader of a dask-backed variable, or ``None`` (unknown chunk sizes, no dask)."""
    array = variable.data
    if task_spec() is None or not hasattr(array, "__dask_graph__"):
        return None
    if any(np.isnan(c) for lengths in array.chunks for c in lengths):
        return None
    native = _native_blocks(variable, source)
    if native is not None:
        return native
    try:
        return DaskBlocks(array, source)
    except Exception:  # a graph we cannot take apart: the generic compute path
        return None
