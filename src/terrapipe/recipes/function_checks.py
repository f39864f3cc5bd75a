"""Values the recipe functions refuse: the ones that would give silently wrong tensors.

``normalize`` with a ``std`` of 0 divided by zero (every pixel of that
channel ``inf`` or NaN), a ``mean`` of 3 values on a 1-channel image
broadcast it to 3 channels, ``scale`` by NaN or infinity made every pixel
NaN or infinite, and ``select_channels`` with ``-1`` picked the last
channel by Python's negative indexing. :func:`argument_problem` names such
a value from the arguments alone (a recipe is refused when it is loaded);
the functions check the element as well (:func:`channel_problem`).

Examples
--------
>>> argument_problem("normalize", {"mean": [0, 0], "std": [1, 0]})
'std must be finite numbers other than 0, got [1, 0]'
>>> argument_problem("scale", {"factor": 0.0001}) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COARSEN_METHODS", "argument_problem", "channel_problem"]

#: Block reductions of ``coarsen`` (missing values left out).
COARSEN_METHODS = ("mean", "min", "max", "median")


def _finite(values: Any) -> bool:
    items = values if isinstance(values, Sequence) and not isinstance(values, str) else [values]
    return all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v)) for v in items
    )


def argument_problem(name: str, kwargs: Mapping[str, Any]) -> str | None:
    """Return what is wrong with the arguments of recipe function ``name`` (``None``: nothing known).

    Parameters
    ----------
    name
        The recipe function.
    kwargs
        Its keyword arguments (references such as ``$input`` are not judged).

    Returns
    -------
    str or None
        The problem, for a message.
    """
    if name == "normalize":
        mean, std = kwargs.get("mean"), kwargs.get("std")
        if mean is not None and not _finite(mean):
            return f"mean must be finite numbers, got {mean!r}"
        if std is not None and (not _finite(std) or any(float(v) == 0 for v in _listed(std))):
            return f"std must be finite numbers other than 0, got {std!r}"
        if mean is not None and std is not None and len(_listed(mean)) != len(_listed(std)):
            return f"mean and std must have one value per channel each, got {len(_listed(mean))} and {len(_listed(std))}"
    elif name == "scale":
        factor = kwargs.get("factor")
        if factor is not None and not _finite(factor):
            return f"factor must be a finite number, got {factor!r}"
    elif name == "coarsen":
        factor, method = kwargs.get("factor"), kwargs.get("method")
        if factor is not None and (isinstance(factor, bool) or not isinstance(factor, int) or factor < 1):
            return f"factor must be a whole number >= 1, got {factor!r}"
        if method is not None and method not in COARSEN_METHODS:
            return f"method must be one of {', '.join(COARSEN_METHODS)}, got {method!r}"
    elif name == "select_channels":
        channels = kwargs.get("channels")
        if channels is not None and any(
            not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in _listed(channels)
        ):
            return f"channels are counted from 0 (no negative indices), got {channels!r}"
    return None


def channel_problem(name: str, count: int, given: int) -> str | None:
    """Return the problem of ``given`` per-channel values (or, for ``select_channels``, the highest index + 1) for ``count`` channels.

    Examples
    --------
    >>> channel_problem("normalize", 1, 3)
    'normalize has 3 values per channel for an image of 1 channel(s); give 1 (or one for all)'
    """
    if name == "normalize" and given not in (1, count):
        return f"normalize has {given} values per channel for an image of {count} channel(s); give {count} (or one for all)"
    if name == "select_channels" and given > count:
        return (
            f"select_channels asks for channel {given - 1} of an image of {count} channel(s) (counted from 0)"
        )
    return None


def _listed(values: Any) -> list[Any]:
    return list(values) if isinstance(values, Sequence) and not isinstance(values, str) else [values]
