r"""``collate_samples``: the loader's default collate, which keeps geo metadata as lists.

torch's ``default_collate`` turns a list of dicts into a dict of batched
values; applied to :class:`~terrapipe.core.sample.Sample`\\ s it would turn
the ``meta`` dicts inside out (a dict of lists of crs strings, of tuples of
transform coefficients...). Here:

- tensors (and numpy arrays, numbers) of one shape are stacked along a new
  first dimension (Python floats as ``float64``, like torch's
  ``default_collate``); tensors whose shapes differ (``boxes``, ``labels``
  with a varying number of objects) stay a list;
- ``meta`` stays a list of :class:`~terrapipe.core.sample.GeoMeta`, one per sample;
- dicts (``variables``) and tuples are collated key by key, position by position;
- anything else (strings, ``None``, objects) becomes a list.

In a loader worker process the stacked tensors are allocated in shared
memory (:mod:`~terrapipe.run.shared_memory`), so the batch crosses to the
main process without being copied.

Examples
--------
>>> import torch
>>> from terrapipe.core.sample import geo_meta
>>> meta = geo_meta("EPSG:32631", (10, 0, 600000, 0, -10, 5100000), (2, 2))
>>> samples = [{"image": torch.zeros(3, 2, 2), "boxes": torch.zeros(n, 4), "meta": meta} for n in (1, 2)]
>>> batch = collate_samples(samples)
>>> batch["image"].shape, [b.shape[0] for b in batch["boxes"]], batch["meta"][1]["crs"]
(torch.Size([2, 3, 2, 2]), [1, 2], 'EPSG:32631')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Number
from typing import Any

import numpy as np
import torch

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.run.shared_memory import collating_into_shared_memory, empty_shared

__all__ = ["collate_samples"]

#: Keys whose values are kept as one list entry per sample, never collated.
LIST_KEYS = frozenset({"meta"})


def _stack(values: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    first = values[0]
    if all(v.shape == first.shape and v.dtype == first.dtype for v in values):
        if (
            collating_into_shared_memory()
            and first.device.type == "cpu"
            and not any(v.requires_grad for v in values)
        ):
            # in a loader worker process: the batch then crosses to the main process without a copy
            return torch.stack(values, out=empty_shared((len(values), *first.shape), first.dtype))
        return torch.stack(values)
    return values


def collate_samples(batch: Sequence[Any]) -> Any:
    """Combine a list of samples into one batch (see the module docs for the rules).

    Parameters
    ----------
    batch
        The samples; at least one.

    Returns
    -------
    Any
        The batch: same structure as a sample, with batched leaves.

    Raises
    ------
    InvalidArgumentError
        For an empty batch.

    Examples
    --------
    >>> collate_samples([(1, "a"), (2, "b")])
    (tensor([1, 2]), ['a', 'b'])
    """
    if isinstance(batch, str | bytes) or not isinstance(batch, Sequence):
        raise InvalidArgumentError(f"collate_samples needs a list of samples, got {type(batch).__name__}")
    if len(batch) == 0:
        raise InvalidArgumentError("collate_samples got an empty batch")
    values = list(batch)
    first = values[0]
    if isinstance(first, torch.Tensor) and all(isinstance(v, torch.Tensor) for v in values):
        return _stack(values)
    if isinstance(first, np.ndarray) and all(isinstance(v, np.ndarray) for v in values):
        return _stack([torch.as_tensor(v) for v in values])
    if isinstance(first, bool | Number) and not isinstance(first, complex):
        if all(type(v) is type(first) for v in values):
            return torch.tensor(values, dtype=torch.float64 if isinstance(first, float) else None)
        return values
    if isinstance(first, Mapping) and all(
        isinstance(v, Mapping) and v.keys() == first.keys() for v in values
    ):
        return {
            key: [v[key] for v in values] if key in LIST_KEYS else collate_samples([v[key] for v in values])
            for key in first
        }
    if isinstance(first, tuple) and all(isinstance(v, tuple) and len(v) == len(first) for v in values):
        columns = [collate_samples([v[i] for v in values]) for i in range(len(first))]
        if hasattr(first, "_fields"):  # a namedtuple
            return type(first)(*columns)
        return tuple(columns)
    return values
