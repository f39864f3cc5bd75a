"""Batches of the loader as numpy arrays, and geo metadata as strings for graph frameworks.

The loader's batches (:func:`~terrapipe.collate`) hold torch
tensors stacked along a first batch axis and ``meta`` as a list of
:class:`~terrapipe.core.sample.GeoMeta`. Keras, TensorFlow and JAX take
numpy arrays: :func:`numpy_batch` converts the tensors (no copy for CPU
tensors, except where ``channels_last`` moves the channel axis) and keeps
``meta`` as it is, plain Python. A tensor graph (``tf.data``) cannot carry
Python objects, so :func:`encode_meta` writes each ``GeoMeta`` as a JSON
string and :func:`decode_meta` reads it back, equal to the original.

Examples
--------
>>> import torch
>>> from terrapipe.core.sample import geo_meta
>>> meta = geo_meta("EPSG:32631", (10, 0, 600000, 0, -10, 5100000), (2, 2), source_ids=["a.tif"])
>>> batch = {"image": torch.ones(1, 3, 2, 2), "mask": torch.zeros(1, 2, 2, dtype=torch.int64), "meta": [meta]}
>>> out = numpy_batch(batch)
>>> type(out["image"]).__name__, out["mask"].dtype, out["meta"][0]["crs"]
('ndarray', dtype('int64'), 'EPSG:32631')
>>> decode_meta(encode_meta(meta)) == meta
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.sample import GeoMeta

__all__ = ["CHANNEL_KEYS", "decode_meta", "encode_meta", "meta_list", "numpy_batch"]

#: Keys whose second axis is a channel axis (``[B, C, H, W]`` or ``[B, T, C, H, W]``).
CHANNEL_KEYS = frozenset({"image"})


def _array(value: torch.Tensor, key: str) -> np.ndarray[Any, Any]:
    if value.dtype == torch.bfloat16:
        raise InvalidArgumentError(
            f"batch key {key!r} is bfloat16, which numpy has no type for; convert it in the pipe "
            "(to_tensor(dtype=torch.float32)) before handing it to another framework"
        )
    return value.detach().cpu().numpy()  # type: ignore[no-any-return]


def _convert(value: Any, key: str, channels_last: bool) -> Any:
    if isinstance(value, torch.Tensor):
        array = _array(value, key)
        if channels_last and key.rsplit(".", 1)[-1] in CHANNEL_KEYS and array.ndim >= 4:
            array = np.ascontiguousarray(np.moveaxis(array, -3, -1))
        return array
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, Mapping):
        return {k: _convert(v, f"{key}.{k}", channels_last) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_convert(v, f"{key}[{i}]", channels_last) for i, v in enumerate(value))
    if isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
        return [_array(v, key) for v in value]  # ragged (boxes of varying counts): one array per sample
    return value


def numpy_batch(batch: Any, *, channels_last: bool = False) -> Any:
    """Return the loader's batch with every torch tensor as a numpy array; ``meta`` unchanged.

    Parameters
    ----------
    batch
        A batch of :func:`terrapipe.loader` (a dict of stacked tensors, lists
        of ragged tensors and ``meta``), or any nesting of tensors.
    channels_last
        Move the channel axis of ``image`` to the end (``[B, C, H, W]`` to
        ``[B, H, W, C]``), the layout Keras and TensorFlow convolutions expect
        by default. Other keys keep their layout.

    Returns
    -------
    Any
        The same structure with numpy arrays (CPU tensors are shared, not copied,
        unless moved to channels last).

    Raises
    ------
    InvalidArgumentError
        For a bfloat16 tensor (numpy has no such type).

    Examples
    --------
    >>> numpy_batch((torch.arange(3), ["x"]))
    (array([0, 1, 2]), ['x'])
    """
    return _convert(batch, "batch", channels_last)


def encode_meta(meta: Mapping[str, Any]) -> str:
    """Write one :class:`~terrapipe.core.sample.GeoMeta` as a JSON string (for a ``tf.string`` tensor).

    Examples
    --------
    >>> encode_meta({"crs": "EPSG:4326", "time": None})
    '{"crs": "EPSG:4326", "time": null}'
    """
    try:
        return json.dumps(dict(meta), allow_nan=False)
    except (TypeError, ValueError) as err:
        keys = sorted(meta)
        raise InvalidArgumentError(
            f"sample meta with keys {keys} holds a value JSON cannot write ({err}); "
            "meta must be plain Python (strings, numbers, tuples) as GeoMeta is"
        ) from err


_TUPLE_KEYS = ("transform", "bounds", "shape", "source_ids")


def decode_meta(text: str | bytes) -> GeoMeta:
    """Read back a :class:`~terrapipe.core.sample.GeoMeta` written by :func:`encode_meta`.

    Sequences come back as tuples, as :func:`~terrapipe.core.sample.geo_meta` makes them.

    Raises
    ------
    InvalidArgumentError
        For text that is not a JSON object.

    Examples
    --------
    >>> decode_meta(b'{"crs": "EPSG:4326", "shape": [2, 3], "time": ["2024-06-01", "2024-06-02"]}')
    {'crs': 'EPSG:4326', 'shape': (2, 3), 'time': ('2024-06-01', '2024-06-02')}
    """
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(f"not an encoded sample meta: {str(text)[:60]!r}") from err
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"not an encoded sample meta: {str(text)[:60]!r}")
    for key in (*_TUPLE_KEYS, "time"):
        if isinstance(value.get(key), list):
            value[key] = tuple(value[key])
    return value  # type: ignore[return-value]


def meta_list(batch: Any) -> list[Any] | None:
    """Return the ``meta`` list of a batch, or ``None`` when it has none."""
    if isinstance(batch, Mapping) and isinstance(batch.get("meta"), Sequence):
        return list(batch["meta"])
    return None
