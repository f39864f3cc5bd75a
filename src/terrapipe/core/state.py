"""Checkpoint state: the ``Stateful`` protocol and a shared save/restore check.

Stages that hold a position (sources, chippers, samplers, shuffles) implement
:class:`Stateful`:

- ``state_dict()``, called between elements, describes the position *after the
  last element the stage yielded* in its current pass (or the start of its
  next pass when no pass is running), together with what it needs to redo the
  same pass exactly (epoch, seeds) and, under ``"source"``, its source's state
  where the source is stateful;
- ``load_state_dict(state)`` makes the *next* ``iter()`` resume from there.

Keys are checked strictly: a state from another kind of stage, or from a
stage configured differently, raises :class:`PipelineStateError` rather than
resuming somewhere else. States are plain dicts of ints, strings and lists, so
they pickle and JSON-serialise.

Examples
--------
>>> import terrapipe as tp
>>> from terrapipe.core.state import check_resume
>>> check_resume(lambda: tp.from_items(range(10)), stop_after=4)
[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
import xarray as xr

from terrapipe.core.errors import PipelineStateError

__all__ = ["ResumesNextPass", "Stateful", "check_resume", "expect_keys", "same_elements"]


@runtime_checkable
class Stateful(Protocol):
    """Something whose position can be saved and restored."""

    def state_dict(self) -> dict[str, Any]:
        """Return the position after the last element yielded."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next pass resume from ``state``."""
        ...


def expect_keys(state: Mapping[str, Any], keys: Iterable[str], *, owner: str) -> None:
    """Raise :class:`PipelineStateError` unless ``state`` has exactly ``keys``.

    Examples
    --------
    >>> expect_keys({"epoch": 0, "offset": 3}, ["epoch", "offset"], owner="FromItems")
    >>> expect_keys({"epoch": 0}, ["epoch", "offset"], owner="FromItems")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.PipelineStateError: FromItems cannot load this state: missing keys ['offset'], unexpected keys []; was it saved from the same pipeline?
    """
    want, have = set(keys), set(state)
    if want != have:
        msg = (
            f"{owner} cannot load this state: missing keys {sorted(want - have)}, unexpected keys "
            f"{sorted(have - want)}; was it saved from the same pipeline?"
        )
        raise PipelineStateError(msg)


class ResumesNextPass:
    """Mixin for stages whose ``load_state_dict`` keeps the state for their next pass.

    The stage lists its ``state_keys``; loading checks them
    (:func:`expect_keys`), sets the stage's epoch to the saved one, stores
    :meth:`_resume_point` in ``self._resume`` for the next ``__iter__`` and
    marks no pass as running. A stage whose resume point is not the whole
    state overrides :meth:`_resume_point`.

    Examples
    --------
    >>> class Counter(ResumesNextPass):
    ...     state_keys = ("epoch", "offset")
    ...     def set_epoch(self, epoch):
    ...         self.epoch = epoch
    >>> c = Counter()
    >>> c.load_state_dict({"epoch": 2, "offset": 5})
    >>> c.epoch, c._resume, c._in_pass
    (2, {'epoch': 2, 'offset': 5}, False)
    """

    state_keys: ClassVar[tuple[str, ...]]
    _resume: Any
    _in_pass: bool

    def _resume_point(self, state: Mapping[str, Any]) -> Any:
        """Return what the next pass resumes from (the whole state by default)."""
        return dict(state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next pass resume at ``state`` (see the stage's ``state_dict``)."""
        expect_keys(state, self.state_keys, owner=type(self).__name__)
        stage: Any = self  # a Stage: set_epoch is its method
        stage.set_epoch(int(state["epoch"]))
        self._resume = self._resume_point(state)
        self._in_pass = False


def same_elements(a: Any, b: Any) -> bool:
    """Whether two pipe elements are equal, looking inside arrays, tensors and xarray objects.

    ``==`` is ambiguous for numpy arrays and tensors and elementwise for xarray,
    so element sequences holding them cannot be compared with ``!=``. Arrays
    are equal when their dtypes, shapes and values are (NaNs equal), xarray
    objects when ``identical``; dicts, lists and tuples compare item by item.

    Examples
    --------
    >>> import numpy as np
    >>> same_elements({"x": np.array([1.0, np.nan])}, {"x": np.array([1.0, np.nan])})
    True
    >>> same_elements([np.zeros(2)], [np.zeros(3)])
    False
    """
    if isinstance(a, xr.DataArray):
        return isinstance(b, xr.DataArray) and bool(a.identical(b))
    if isinstance(a, xr.Dataset):
        return isinstance(b, xr.Dataset) and bool(a.identical(b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and same_elements(a.numpy(force=True), b.numpy(force=True))
    if isinstance(a, np.ndarray):
        if not isinstance(b, np.ndarray) or a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_elements(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same_elements(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)


def check_resume(make_pipe: Callable[[], Any], *, stop_after: int, epochs: int = 1) -> list[Any]:
    """Check that a pipe stopped after ``stop_after`` elements resumes exactly.

    Runs ``make_pipe()`` uninterrupted for ``epochs`` passes; then runs a fresh
    pipe for ``stop_after`` elements, saves its state, loads it into another
    fresh pipe and lets that one finish. The two sequences must be equal
    element by element (:func:`same_elements`, so elements may hold arrays,
    tensors and xarray objects).

    Parameters
    ----------
    make_pipe
        Builds the pipe (same configuration every call).
    stop_after
        Number of elements (counted over all passes) before the stop.
    epochs
        How many passes make a run.

    Returns
    -------
    list
        The uninterrupted sequence.

    Raises
    ------
    AssertionError
        If the resumed run differs.
    """
    full: list[Any] = []
    reference = make_pipe()
    for _ in range(epochs):
        full.extend(reference)

    first = make_pipe()
    got: list[Any] = []
    passes_done = 0
    while passes_done < epochs:
        need = stop_after - len(got)
        it = iter(first)
        chunk = list(islice(it, need)) if need > 0 else []
        got.extend(chunk)
        if len(got) >= stop_after:
            break
        passes_done += 1
    state = first.state_dict()

    second = make_pipe()
    second.load_state_dict(state)
    remaining_passes = epochs - passes_done
    for _ in range(remaining_passes):
        got.extend(second)
    if len(got) != len(full) or not all(same_elements(x, y) for x, y in zip(got, full, strict=True)):
        msg = f"resumed run differs from the uninterrupted one (stop after {stop_after}):\n{got}\n!=\n{full}"
        raise AssertionError(msg)
    return full
