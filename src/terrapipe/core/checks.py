"""Argument checks shared by stages: a wrong type or value is an ``InvalidArgumentError`` naming it.

Stages check their options when they are built, so that a string where a
number goes, a list where a name goes or a ``None`` where a mapping goes is
reported there, by name and value, instead of surfacing later as a bare
``TypeError`` from numpy or ``int()`` in the middle of a pass.

Examples
--------
>>> from terrapipe.core.checks import check_int
>>> check_int(3, "chip seed")
3
>>> check_int("x", "chip seed")
Traceback (most recent call last):
...
terrapipe.core.errors.InvalidArgumentError: chip seed must be an int, got 'x'
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np

from terrapipe.core.errors import InvalidArgumentError

__all__ = [
    "check_int",
    "check_iterable",
    "check_mapping",
    "check_name",
    "check_names",
    "check_number",
    "check_numeric_dtype",
]


def check_int(value: Any, what: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) within the bounds given; else raise.

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{what} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(f"{what} must be <= {maximum}, got {value!r}")
    return int(value)


def check_number(
    value: Any, what: str, *, finite: bool = True, minimum: float | None = None, maximum: float | None = None
) -> float:
    """Return ``value`` as a float if it is a real number (not a bool) within the bounds given; else raise.

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value.
    """
    try:
        ok = (not isinstance(value, bool | str | bytes) and float(value) == float(value)) or math.isnan(value)
    except (TypeError, ValueError):
        ok = False
    if not ok or getattr(value, "ndim", 0) != 0:
        raise InvalidArgumentError(f"{what} must be a number, got {value!r}")
    number = float(value)
    if finite and not math.isfinite(number):
        raise InvalidArgumentError(f"{what} must be a finite number, got {value!r}")
    if minimum is not None and number < minimum:
        raise InvalidArgumentError(f"{what} must be >= {minimum}, got {value!r}")
    if maximum is not None and number > maximum:
        raise InvalidArgumentError(f"{what} must be <= {maximum}, got {value!r}")
    return number


def check_numeric_dtype(value: Any, what: str) -> np.dtype[Any]:
    """Return ``value`` as a numpy dtype if it names a bool, int or float dtype; else raise.

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value.
    """
    try:
        dtype: np.dtype[Any] = np.dtype(value)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(
            f"{what} must be a numpy dtype ('float32', np.uint8), got {value!r}"
        ) from err
    if isinstance(value, bool | int | float) or dtype.kind not in "biuf":
        raise InvalidArgumentError(f"{what} must be a bool, int or float dtype, got {value!r}")
    return dtype


def check_mapping(value: Any, what: str) -> Mapping[Any, Any]:
    """Return ``value`` if it is a mapping (a dict); else raise.

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value.
    """
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{what} must be a mapping (a dict), got {value!r}")
    return value


def check_name(value: Any, what: str) -> str:
    """Return ``value`` if it is a non-empty str; else raise.

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value.
    """
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{what} must be a non-empty str, got {value!r}")
    return value


def check_names(value: Any, what: str) -> tuple[Hashable, ...]:
    """Return a str or a list/tuple of hashable names as a tuple of names; else raise.

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value.
    """
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, Hashable) and not isinstance(v, bool) for v in value
    ):
        raise InvalidArgumentError(f"{what} must be a name or a list of names, got {value!r}")
    return tuple(value)


def check_iterable(value: Any, what: str) -> Iterable[Any]:
    """Return ``value`` if it can be iterated; else raise.

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value's type.
    """
    if not isinstance(value, Iterable):
        raise InvalidArgumentError(
            f"{what} must be an iterable (a list, a range...), got {type(value).__name__}"
        )
    return value
