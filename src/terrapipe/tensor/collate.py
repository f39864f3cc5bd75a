r"""``collate``: a batch of :class:`~terrapipe.core.sample.Sample`\ s, geo metadata kept per sample.

The one collate of terrapipe: ``tp.loader``'s default and a DataLoader's
``collate_fn`` (``functools.partial(tp.collate, boxes="pad")`` for padded
boxes; both pickle to worker processes). It does what torch's
``default_collate`` does, except where geo samples need otherwise:

- tensors, numpy arrays and numbers are stacked along a new first dimension
  (Python floats as ``float64``, ints as ``int64``, bools as ``bool``, numpy
  scalars of one type, ``np.bool_`` included, in their own dtype, like
  ``default_collate``); **tensors that must stack but differ in shape or
  dtype raise** :class:`~terrapipe.core.errors.InvalidArgumentError` naming
  the key, the samples and the shapes (batch chips of one size, e.g.
  ``chip(..., boundary="pad")``, or name the key in ``lists=``);
- dicts are collated key by key (every sample must have the same keys;
  ``variables`` too), tuples and namedtuples position by position;
- ``meta`` becomes a list of the samples' :class:`~terrapipe.core.sample.GeoMeta`,
  each intact (``batch["meta"][i]["crs"]``), which ``stitch`` and
  ``pixels_to_boxes`` take back;
- ``boxes`` (``[N_i, 4]``) and ``labels`` (``[N_i]``) vary in length:
  ``boxes="list"`` (default) keeps lists of tensors, even when the counts
  happen to agree; ``boxes="pad"`` pads them to ``[B, N_max, 4]`` (with
  ``0``) and ``[B, N_max]`` (with ``-1``) and adds ``boxes_mask``, a
  ``bool [B, N_max]`` that is true for real boxes. Labels of one per sample
  (``[]``) are stacked to ``[B]``;
- keys named in ``lists=`` (e.g. a point cloud's ``points``) stay one entry
  per sample;
- lists, strings, ``None``, numbers of mixed types and other objects become
  a list (one entry per sample).

In a loader worker process (:mod:`terrapipe.run.workers`) the stacked
tensors are allocated by the allocator set with :func:`stacking_into`
(shared memory there), so the batch crosses to the main process without a
copy.

Examples
--------
>>> import torch
>>> from terrapipe.core.sample import geo_meta
>>> def sample(n):
...     meta = geo_meta("EPSG:32631", (10, 0, 600000, 0, -10, 5100000), (4, 4))
...     return {"image": torch.zeros(3, 4, 4), "boxes": torch.ones(n, 4), "labels": torch.ones(n, dtype=torch.int64),
...             "meta": meta}
>>> batch = collate([sample(1), sample(3)])
>>> batch["image"].shape, [b.shape[0] for b in batch["boxes"]], batch["meta"][1]["crs"]
(torch.Size([2, 3, 4, 4]), [1, 3], 'EPSG:32631')
>>> padded = collate([sample(1), sample(3)], boxes="pad")
>>> padded["boxes"].shape, padded["labels"][0].tolist(), padded["boxes_mask"].sum(1).tolist()
(torch.Size([2, 3, 4]), [1, -1, -1], [1, 3])
>>> collate([(1, "a"), (2, "b")])
(tensor([1, 2]), ['a', 'b'])
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from numbers import Number
from typing import Any, Literal

import numpy as np
import torch

from terrapipe.core.errors import InvalidArgumentError

__all__ = ["BoxMode", "collate", "stacking_into"]

BoxMode = Literal["list", "pad"]
#: Allocates the output of a stack: ``(shape, dtype) -> tensor``.
Allocator = Callable[[Sequence[int], torch.dtype], torch.Tensor]

#: Keys kept as one entry per sample, never collated.
_LIST_KEYS = frozenset({"meta"})
#: Keys whose tensors hold one row per object, so their length varies from sample to sample.
_PER_OBJECT = ("boxes", "labels")
#: ``dict`` first: an isinstance check against the ``Mapping`` ABC is slow, and most samples are dicts.
_MAPPINGS = (dict, Mapping)
_ALLOCATOR: contextvars.ContextVar[Allocator | None] = contextvars.ContextVar(
    "terrapipe_collate_alloc", default=None
)


@contextlib.contextmanager
def stacking_into(allocator: Allocator | None) -> Iterator[None]:
    """Make :func:`collate` allocate the tensors it stacks with ``allocator`` in this context.

    Parameters
    ----------
    allocator
        ``(shape, dtype) -> tensor`` on the CPU (e.g. shared memory); ``None``: ``torch.stack``'s own.

    Examples
    --------
    >>> import torch
    >>> with stacking_into(lambda shape, dtype: torch.full(tuple(shape), 7.0, dtype=dtype)):
    ...     collate([torch.zeros(2), torch.ones(2)]).tolist()
    [[0.0, 0.0], [1.0, 1.0]]
    """
    token = _ALLOCATOR.set(allocator)
    try:
        yield
    finally:
        _ALLOCATOR.reset(token)


def _where(path: str) -> str:
    return f"{path!r}" if path else "the samples"


def _stack(values: list[Any], path: str) -> torch.Tensor:
    first = values[0]
    dtype = first.dtype
    try:  # dtypes here (torch.stack would promote them); types and shapes torch.stack checks
        for value in values:
            if value.dtype is not dtype:
                _refuse(values, path)
    except AttributeError:
        _refuse(values, path)
    allocate = _ALLOCATOR.get()
    try:
        cpu = first.device.type == "cpu" and not any(v.requires_grad for v in values)
        out = allocate((len(values), *first.shape), dtype) if allocate is not None and cpu else None
        if (
            cpu
            and dtype in _NUMPY_STACKS
            and min(first.numel() * 8, first.numel() * len(values)) >= _NUMPY_STACK_MIN
            and _plain(values)
            and (out is None or _apart(out, values))
        ):
            # one copy per value on this thread: torch.stack's intra-op threads spin on busy cores (F, #20)
            out = torch.empty((len(values), *first.shape), dtype=dtype) if out is None else out
            np.stack([v.numpy() for v in values], out=out.numpy())
            return out
        return torch.stack(values) if out is None else torch.stack(values, out=out)
    except (RuntimeError, TypeError) as err:
        _refuse(values, path)
        raise InvalidArgumentError(f"collate: cannot stack {_where(path)}: {err}") from err


#: Elements (of the stack, and 8x those of one value) from which CPU tensors are stacked by numpy
#: (torch.stack copies a smaller stack on the calling thread: at::internal::GRAIN_SIZE).
_NUMPY_STACK_MIN = 1 << 15
_NUMPY_STACKS = frozenset({torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                           torch.float16, torch.float32, torch.float64})  # fmt: skip


def _plain(values: list[Any]) -> bool:
    """Whether every value is a plain contiguous dense tensor of the first one's shape (numpy can stack them)."""
    shape = values[0].shape
    return all(
        type(v) is torch.Tensor and v.layout is torch.strided and v.shape == shape and v.is_contiguous()
        for v in values
    )


def _apart(out: Any, values: list[Any]) -> bool:
    """Whether numpy may stack ``values`` into an allocator's ``out``.

    It must be the stack's shape and dtype, contiguous on the CPU, its memory apart from every value's;
    else torch.stack resizes or refuses it, as it always did (numpy would overwrite values it has yet to copy).
    """
    first = values[0]
    if not (
        type(out) is torch.Tensor
        and out.device.type == "cpu"
        and out.dtype is first.dtype
        and out.shape == (len(values), *first.shape)
        and out.is_contiguous()
        and not out.requires_grad
    ):
        return False
    start = out.data_ptr()
    end = start + out.numel() * out.element_size()
    size = first.numel() * first.element_size()
    return all(v.data_ptr() >= end or v.data_ptr() + size <= start for v in values)


def _refuse(values: list[Any], path: str) -> None:
    """Raise the error that names why ``values`` cannot be stacked (a type, shape or dtype that differs)."""
    _tensors(values, path, torch.Tensor)
    shape, dtype = values[0].shape, values[0].dtype
    for i, value in enumerate(values):
        if value.shape != shape:
            odd = [j for j, v in enumerate(values) if v.shape != shape]
            raise InvalidArgumentError(
                f"collate: {_where(path)} has shape {tuple(shape)} in sample 0 but {tuple(value.shape)} in "
                f"sample {i} (samples {odd} differ from sample 0); batch chips of one size (a fixed chip "
                "size, chip(..., boundary='pad')), or keep the key one entry per sample with "
                "functools.partial(tp.collate, lists=[<key>])"
            )
        if value.dtype != dtype:
            raise InvalidArgumentError(
                f"collate: {_where(path)} has dtype {dtype} in sample 0 but {value.dtype} in sample {i}; "
                "convert every sample alike (to_tensor(dtype=...))"
            )


def _from_numpy(value: np.ndarray, path: str, i: int | None) -> torch.Tensor:
    """``value`` as a tensor with the same numbers: native byte order, no negative strides, no mask.

    torch takes neither a big-endian array (``'>u2'`` from a file) nor negative
    strides (``a[::-1]``), and warns on a read-only one (``np.frombuffer``,
    a read-only memmap): those are copied (the stack copies them anyway). A
    masked array is refused: its mask would be dropped and the masked values
    batched as data.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise InvalidArgumentError(
            f"collate: {_where(path)} of sample {i} is a numpy masked array, whose mask a tensor cannot "
            "hold; fill it (array.filled(np.nan)) and batch the mask as a key of its own (np.ma.getmaskarray)"
        )
    if not value.dtype.isnative or not value.flags.writeable or any(stride < 0 for stride in value.strides):
        value = np.array(value, dtype=value.dtype.newbyteorder("="), order="C")  # a writable copy
    try:
        return torch.as_tensor(value)
    except TypeError as err:  # a dtype torch has not (float128, complex256)
        raise InvalidArgumentError(
            f"collate: cannot make a tensor of {_where(path)}{'' if i is None else f' of sample {i}'}: numpy "
            f"dtype {value.dtype} has no torch dtype; convert it (array.astype(np.float64)) or name the key in lists="
        ) from err


def _pad(values: list[torch.Tensor], fill: float, path: str) -> tuple[torch.Tensor, torch.Tensor]:
    tail = values[0].shape[1:]
    for i, value in enumerate(values):
        if value.ndim == 0:
            raise InvalidArgumentError(
                f"collate: {path!r} of sample {i} is a single value (shape ()), but other samples hold "
                "one row per object; give every sample [N, ...] rows (N may be 0)"
            )
        if value.shape[1:] != tail or value.dtype != values[0].dtype:
            raise InvalidArgumentError(
                f"collate: {path!r} of sample {i} is {value.dtype} [N, {', '.join(map(str, value.shape[1:]))}] "
                f"but sample 0's is {values[0].dtype} [N, {', '.join(map(str, tail))}]; convert every sample alike"
            )
    dtype = values[0].dtype
    if fill < 0 and (
        dtype == torch.bool or not (dtype.is_floating_point or dtype.is_complex or dtype.is_signed)
    ):
        raise InvalidArgumentError(
            f"collate: {path!r} is {dtype}, which cannot hold the padding {fill} that marks a missing "
            f"object ({fill} would read as {torch.tensor(fill).to(dtype).item()!r}, a real value); convert "
            "the labels to a signed dtype (labels.long()), or keep lists (boxes='list')"
        )
    longest = max(v.shape[0] for v in values)
    out = torch.full((len(values), longest, *tail), fill, dtype=dtype)
    present = torch.zeros((len(values), longest), dtype=torch.bool)
    for i, value in enumerate(values):
        out[i, : value.shape[0]] = value
        present[i, : value.shape[0]] = True
    return out, present


def _tensors(values: list[Any], path: str, kind: type) -> list[Any]:
    for i, value in enumerate(values):
        if not isinstance(value, kind):
            raise InvalidArgumentError(
                f"collate: {_where(path)} is a {kind.__name__} in sample 0 but a {type(value).__name__} in "
                f"sample {i}; convert every sample alike (or name the key in lists=)"
            )
    return values


def _keys_differ(values: list[Any], path: str) -> None:
    """Raise the error that names the first sample whose keys differ from sample 0's."""
    keys = values[0].keys()
    for i, value in enumerate(values):
        if not isinstance(value, _MAPPINGS) or value.keys() != keys:
            got = sorted(map(str, value)) if isinstance(value, Mapping) else type(value).__name__
            raise InvalidArgumentError(
                f"collate: {_where(path)} of sample {i} has keys {got} but sample 0's has "
                f"{sorted(map(str, keys))}; convert every chip alike"
            )


def _mapping(
    values: list[Any], path: str, boxes: BoxMode, lists: Collection[str], sample_keys: bool
) -> dict[str, Any]:
    first = values[0]
    size = len(first)
    for value in values:  # same size and (below) every key of sample 0: the same keys
        if not isinstance(value, _MAPPINGS) or len(value) != size:
            _keys_differ(values, path)
    try:
        columns = {key: [v[key] for v in values] for key in first}
    except KeyError:
        _keys_differ(values, path)
        raise
    batch: dict[str, Any] = {}
    for key, column in columns.items():
        where = f"{path}[{key!r}]" if path else str(key)
        if sample_keys and key in _PER_OBJECT and any(isinstance(c, torch.Tensor) and c.ndim for c in column):
            _tensors(column, where, torch.Tensor)
            if boxes == "pad":
                batch[key], batch["boxes_mask"] = _pad(column, 0.0 if key == "boxes" else -1, where)
            else:
                batch[key] = column
        elif key in _LIST_KEYS or key in lists:
            batch[key] = column
        else:
            batch[key] = _collate(column, where, boxes, lists, sample_keys and key != "variables")
    return batch


def _collate(values: list[Any], path: str, boxes: BoxMode, lists: Collection[str], sample_keys: bool) -> Any:
    first = values[0]
    if isinstance(first, torch.Tensor):
        return _stack(values, path)
    if isinstance(first, _MAPPINGS):
        return _mapping(values, path, boxes, lists, sample_keys)
    if isinstance(first, np.ndarray) and first.dtype.kind not in "OSUVMm":
        return _stack(
            [_from_numpy(v, path, i) for i, v in enumerate(_tensors(values, path, np.ndarray))], path
        )
    if isinstance(first, np.bool_ | np.number) and all(type(v) is type(first) for v in values):
        # numpy scalars as default_collate makes them: a tensor of their dtype (np.bool_ too, not a list)
        return _from_numpy(np.array(values), path, None)
    if isinstance(first, bool | Number) and not isinstance(first, complex):
        if all(type(v) is type(first) for v in values):
            try:
                return torch.tensor(values, dtype=torch.float64 if isinstance(first, float) else None)
            except (OverflowError, RuntimeError, ValueError, TypeError) as err:  # an int beyond int64
                raise InvalidArgumentError(
                    f"collate: cannot make a tensor of {_where(path)} ({type(first).__name__}s): {err}; "
                    "convert them (or name the key in lists=)"
                ) from err
        return values
    if isinstance(first, tuple):
        for i, value in enumerate(values):
            if not isinstance(value, tuple) or len(value) != len(first):
                raise InvalidArgumentError(
                    f"collate: {_where(path)} is a tuple of {len(first)} in sample 0 but "
                    f"{type(value).__name__} of {len(value) if isinstance(value, tuple) else '?'} in sample {i}"
                )
        columns = [
            _collate([v[j] for v in values], f"{path}[{j}]", boxes, lists, sample_keys)
            for j in range(len(first))
        ]
        return type(first)(*columns) if hasattr(first, "_fields") else tuple(columns)
    return values


def collate(samples: Sequence[Any], *, boxes: BoxMode = "list", lists: Collection[str] = ()) -> Any:
    """Combine samples into one batch (see the module doc for the rules).

    Parameters
    ----------
    samples
        The samples, at least one: Samples (dicts), or any structure of
        tensors, arrays, numbers, dicts and tuples alike in every sample.
    boxes
        ``"list"`` or ``"pad"``: how variable-length ``boxes``/``labels`` are batched.
    lists
        Keys kept as a list of one entry per sample (their shapes may differ),
        wherever a dict holds them; ``meta`` always is.

    Returns
    -------
    Any
        The batch: the samples' structure with batched leaves (a dict for Samples).

    Raises
    ------
    InvalidArgumentError
        For an empty batch, samples with different keys, or tensors that
        must stack but differ in shape or dtype (naming the key and samples).

    Examples
    --------
    >>> import torch
    >>> collate([{"image": torch.zeros(2, 2)}, {"image": torch.zeros(3, 3)}])
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: collate: 'image' has shape (2, 2) in sample 0 but (3, 3) in sample 1 (samples [1] differ from sample 0); batch chips of one size (a fixed chip size, chip(..., boundary='pad')), or keep the key one entry per sample with functools.partial(tp.collate, lists=[<key>])
    >>> collate([{"points": torch.zeros(5, 3)}, {"points": torch.zeros(2, 3)}], lists=["points"])["points"][1].shape
    torch.Size([2, 3])
    """
    if boxes not in ("list", "pad"):
        raise InvalidArgumentError(f"boxes must be 'list' or 'pad', got {boxes!r}")
    if isinstance(lists, str | bytes) or not isinstance(lists, Iterable):
        raise InvalidArgumentError(f"lists must be a collection of key names, got {lists!r}")
    keep = frozenset(lists)
    if isinstance(samples, str | bytes | Mapping) or not isinstance(samples, Iterable):
        raise InvalidArgumentError(f"collate takes a list of samples, got a {type(samples).__name__}")
    items = list(samples)
    if not items:
        raise InvalidArgumentError("collate got an empty batch")
    return _collate(items, "", boxes, keep, True)
