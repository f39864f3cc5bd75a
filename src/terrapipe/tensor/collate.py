r"""``collate``: a batch of :class:`~terrapipe.core.sample.Sample`\ s, geo metadata kept per sample.

Use it as a DataLoader's ``collate_fn`` (``functools.partial(tp.collate,
boxes="pad")`` for padded boxes; both pickle to worker processes):

- ``image``, ``mask`` and each ``variables[name]`` are stacked along a new
  first dimension; samples whose shapes differ raise an error naming the key
  (chip with one size, or ``boundary="pad"``);
- ``meta`` becomes a list of the samples' :class:`~terrapipe.core.sample.GeoMeta`,
  each intact (``batch["meta"][i]["crs"]``), which ``stitch`` and
  ``pixels_to_boxes`` take back;
- ``boxes`` (``[N_i, 4]``) and ``labels`` (``[N_i]``) vary in length:
  ``boxes="list"`` (default) keeps lists of tensors; ``boxes="pad"`` pads them
  to ``[B, N_max, 4]`` (with ``0``) and ``[B, N_max]`` (with ``-1``) and adds
  ``boxes_mask``, a ``bool [B, N_max]`` that is true for real boxes. Labels
  of one per sample (``[]``) are stacked to ``[B]``;
- any other key: tensors of one shape are stacked, everything else is a list.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import torch

from terrapipe.core.errors import InvalidArgumentError

__all__ = ["BoxMode", "collate"]

BoxMode = Literal["list", "pad"]
_STACKED = ("image", "mask")
_VARIABLE_LENGTH = ("boxes", "labels")


def _stack(values: list[Any], key: str) -> torch.Tensor:
    for i, value in enumerate(values):
        if not isinstance(value, torch.Tensor):
            raise InvalidArgumentError(
                f"collate: {key!r} of sample {i} is a {type(value).__name__}, not a tensor"
            )
    first = values[0]
    for i, value in enumerate(values):
        if value.shape != first.shape:
            msg = (
                f"collate: {key!r} has shape {tuple(first.shape)} in sample 0 but {tuple(value.shape)} in sample {i}; "
                "batch chips of one size (or chip with boundary='pad')"
            )
            raise InvalidArgumentError(msg)
    if any(v.dtype != first.dtype for v in values):
        raise InvalidArgumentError(
            f"collate: {key!r} has several dtypes {sorted({str(v.dtype) for v in values})}"
        )
    return torch.stack(values)


def _pad(values: list[torch.Tensor], fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max((v.shape[0] for v in values), default=0)
    tail = values[0].shape[1:]
    out = torch.full((len(values), longest, *tail), fill, dtype=values[0].dtype)
    present = torch.zeros((len(values), longest), dtype=torch.bool)
    for i, value in enumerate(values):
        out[i, : value.shape[0]] = value
        present[i, : value.shape[0]] = True
    return out, present


def _other(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, torch.Tensor) and all(
        isinstance(v, torch.Tensor) and v.shape == first.shape and v.dtype == first.dtype for v in values
    ):
        return torch.stack(values)
    return values


def collate(samples: Sequence[Mapping[str, Any]], *, boxes: BoxMode = "list") -> dict[str, Any]:
    """Combine samples into one batch (see the module doc for the rules).

    Parameters
    ----------
    samples
        The samples, at least one; every sample must have the same keys.
    boxes
        ``"list"`` or ``"pad"``: how variable-length ``boxes``/``labels`` are batched.

    Returns
    -------
    dict
        The batch.

    Raises
    ------
    InvalidArgumentError
        For an empty batch, samples with different keys, or tensors that
        must stack but differ in shape or dtype.
    """
    if boxes not in ("list", "pad"):
        raise InvalidArgumentError(f"boxes must be 'list' or 'pad', got {boxes!r}")
    if isinstance(samples, str | bytes | Mapping) or not isinstance(samples, Iterable):
        raise InvalidArgumentError(f"collate takes a list of Samples (dicts), got a {type(samples).__name__}")
    items = list(samples)
    if not items:
        raise InvalidArgumentError("collate got an empty batch")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidArgumentError(
                f"collate takes Samples (dicts), sample {i} is a {type(item).__name__}"
            )
    keys = list(items[0].keys())
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidArgumentError(
                f"collate takes Samples (dicts), sample {i} is a {type(item).__name__}"
            )
        if set(item.keys()) != set(keys):
            msg = f"collate: sample {i} has keys {sorted(item)} but sample 0 has {sorted(keys)}; convert all chips alike"
            raise InvalidArgumentError(msg)
    batch: dict[str, Any] = {}
    per_box = [
        k
        for k in _VARIABLE_LENGTH
        if k in keys and any(isinstance(v[k], torch.Tensor) and v[k].ndim for v in items)
    ]
    for key in keys:
        values = [item[key] for item in items]
        if key == "meta":
            batch[key] = values
        elif key in _STACKED:
            batch[key] = _stack(values, key)
        elif key == "variables":
            names = list(values[0].keys())
            for i, value in enumerate(values):
                if set(value.keys()) != set(names):
                    msg = (
                        f"collate: sample {i} has variables {sorted(value)} but sample 0 has {sorted(names)}"
                    )
                    raise InvalidArgumentError(msg)
            batch[key] = {name: _stack([v[name] for v in values], f"variables[{name!r}]") for name in names}
        elif key in per_box:
            if boxes == "pad":
                padded, present = _pad(values, 0.0 if key == "boxes" else -1)
                batch[key] = padded
                batch["boxes_mask"] = present
            else:
                batch[key] = values
        elif key == "labels":
            batch[key] = _stack(values, key)
        else:
            batch[key] = _other(values)
    return batch
