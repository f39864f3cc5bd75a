"""The functions a recipe may name as ``fn`` of ``map``, ``flatmap``, ``pmap`` or ``filter_fn`` of ``filter``: an allowlist.

A recipe is data: it can never import or evaluate code. Steps whose stage
takes a function (``map: {fn: normalize, ...}``) name one of the functions
registered here with :func:`recipe_function`; extra keys become keyword
arguments (``functools.partial``). Anything else is a
:class:`~terrapipe.core.errors.RecipeError`.

Examples
--------
>>> sorted(recipe_functions())[:3]
['dataset_to_sample', 'drop_keys', 'has_data']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["recipe_function", "recipe_functions"]

F = TypeVar("F", bound=Callable[..., Any])
_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def recipe_function(name: str) -> Callable[[F], F]:
    """Register ``fn`` under ``name`` so that recipes can name it.

    Parameters
    ----------
    name
        The name recipes use.

    Returns
    -------
    Callable
        A decorator returning the function unchanged.
    """

    def decorate(fn: F) -> F:
        if name in _FUNCTIONS:
            msg = f"recipe function {name!r} is already registered"
            raise ValueError(msg)
        _FUNCTIONS[name] = fn
        return fn

    return decorate


def recipe_functions() -> dict[str, Callable[..., Any]]:
    """Return the registered recipe functions, by name.

    Returns
    -------
    dict
        Name -> function (a copy).
    """
    return dict(_FUNCTIONS)


@recipe_function("normalize")
def normalize(
    sample: dict[str, Any], *, mean: Sequence[float], std: Sequence[float], key: str = "image"
) -> dict[str, Any]:
    """Standardise ``sample[key]`` (channels first) per channel: ``(x - mean) / std``.

    Examples
    --------
    >>> out = normalize({"image": torch.ones(2, 1, 1)}, mean=[1, 0], std=[1, 2])
    >>> out["image"].flatten().tolist()
    [0.0, 0.5]
    """
    image = sample[key].to(torch.float32)
    shape = (-1,) + (1,) * (image.ndim - 1)
    mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(shape)
    std_t = torch.as_tensor(std, dtype=torch.float32).reshape(shape)
    return {**sample, key: (image - mean_t) / std_t}


@recipe_function("scale")
def scale(sample: dict[str, Any], *, factor: float, key: str = "image") -> dict[str, Any]:
    """Multiply ``sample[key]`` by ``factor`` (as float32).

    Examples
    --------
    >>> scale({"image": torch.tensor([10000])}, factor=1e-4)["image"].tolist()
    [1.0]
    """
    return {**sample, key: sample[key].to(torch.float32) * factor}


@recipe_function("select_channels")
def select_channels(sample: dict[str, Any], *, channels: Sequence[int], key: str = "image") -> dict[str, Any]:
    """Keep the channels (first axis) ``channels`` of ``sample[key]``, in that order.

    Examples
    --------
    >>> select_channels({"image": torch.arange(3)}, channels=[2, 0])["image"].tolist()
    [2, 0]
    """
    return {**sample, key: sample[key][list(channels)]}


@recipe_function("drop_keys")
def drop_keys(sample: dict[str, Any], *, keys: Sequence[str]) -> dict[str, Any]:
    """Remove ``keys`` from a dict element.

    Examples
    --------
    >>> drop_keys({"a": 1, "b": 2}, keys=["a"])
    {'b': 2}
    """
    return {k: v for k, v in sample.items() if k not in keys}


@recipe_function("name_pair")
def name_pair(pair: Sequence[Any], *, names: Sequence[str]) -> dict[str, Any]:
    """Turn a tuple from ``zip`` into a dict keyed by ``names`` (e.g. ``fine``, ``coarse``).

    Examples
    --------
    >>> name_pair((1, 2), names=["fine", "coarse"])
    {'fine': 1, 'coarse': 2}
    """
    if len(pair) != len(names):
        msg = f"name_pair got {len(pair)} elements but {len(names)} names {list(names)!r}"
        raise ValueError(msg)
    return dict(zip(names, pair, strict=True))


@recipe_function("dataset_to_sample")
def dataset_to_sample(element: Any, *, dtype: str = "float32") -> dict[str, Any]:
    """Convert an ``xr.Dataset`` window (e.g. of a climate cube) to a Sample-like dict of tensors.

    Every data variable becomes ``variables[name]`` (a tensor of ``dtype``);
    ``meta`` holds the coordinates' first and last values.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"t2m": (("time",), np.arange(3.0))}, coords={"time": [0, 1, 2]})
    >>> out = dataset_to_sample(ds)
    >>> out["variables"]["t2m"].tolist(), out["meta"]["coords"]["time"]
    ([0.0, 1.0, 2.0], (0, 2))
    """
    torch_dtype = getattr(torch, dtype)
    variables = {
        str(k): torch.as_tensor(np.array(v.values), dtype=torch_dtype) for k, v in element.data_vars.items()
    }
    coords: Mapping[str, tuple[Any, Any]] = {
        str(k): (_plain(c.values[0]), _plain(c.values[-1]))
        for k, c in element.coords.items()
        if c.ndim == 1 and c.size
    }
    return {"variables": variables, "meta": {"coords": dict(coords)}}


def _plain(value: Any) -> Any:
    if isinstance(value, np.datetime64):
        return str(value)
    return value.item() if hasattr(value, "item") else value


@recipe_function("nonempty")
def nonempty(sample: dict[str, Any], *, key: str = "boxes") -> bool:
    """Whether ``sample[key]`` has at least one element (a ``filter`` predicate: chips with boxes).

    Examples
    --------
    >>> nonempty({"boxes": torch.zeros(0, 4)}), nonempty({"boxes": torch.zeros(2, 4)})
    (False, True)
    """
    return len(sample[key]) > 0


@recipe_function("has_data")
def has_data(
    sample: dict[str, Any], *, key: str = "image", nodata: float = 0, min_fraction: float = 0.5
) -> bool:
    """Whether at least ``min_fraction`` of the pixels of ``sample[key]`` (``[C, H, W]``) have data in every channel.

    A ``filter`` predicate, e.g. for chips that must be clear at both dates.

    Examples
    --------
    >>> image = torch.tensor([[[1, 0], [1, 1]], [[1, 1], [1, 1]]])
    >>> has_data({"image": image}, min_fraction=0.75), has_data({"image": image}, min_fraction=0.8)
    (True, False)
    """
    valid = (sample[key] != nodata).all(dim=0)
    return bool(valid.float().mean() >= min_fraction)
