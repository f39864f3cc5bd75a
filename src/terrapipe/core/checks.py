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
import sys
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from terrapipe.core.errors import InvalidArgumentError

if TYPE_CHECKING:  # only for the annotation: core never imports io when it runs
    from terrapipe.io.storage import Storage

__all__ = [
    "check_bool",
    "check_column_names",
    "check_int",
    "check_iterable",
    "check_mapping",
    "check_name",
    "check_names",
    "check_number",
    "check_numeric_dtype",
    "check_positive_int",
    "check_scalar_options",
    "check_storage",
]


def check_int(value: Any, what: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer within the bounds given; else raise.

    Python and numpy integers are taken; a bool (``True``, ``np.True_``), a
    float (even ``2.0``), a string or an array is not.

    Raises
    ------
    InvalidArgumentError
        Naming ``what``, the bounds and the value.

    Examples
    --------
    >>> check_int(np.int64(3), "n", minimum=0), check_int(np.uint8(7), "n")
    (3, 7)
    >>> check_int(2.0, "chip seed", minimum=0)
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: chip seed must be an int >= 0, got 2.0
    >>> check_int(np.True_, "n")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: n must be an int, got np.True_
    """
    if (
        isinstance(value, bool | np.bool_)
        or not isinstance(value, int | np.integer)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        bounds = "" if minimum is None else f" >= {minimum}"
        bounds += "" if maximum is None else f"{' and' if bounds else ''} <= {maximum}"
        raise InvalidArgumentError(f"{what} must be an int{bounds}, got {value!r}")
    return int(value)


def check_positive_int(value: Any, what: str, *, unit: str = "") -> int:
    """Return ``value`` as an int if it is an integer >= 1, as :func:`check_int`; worded "a positive int".

    For the options whose message says "a positive int" (sizes, counts,
    byte budgets); ``unit`` is put after it, e.g. ``" (bytes)"``.

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value.

    Examples
    --------
    >>> check_positive_int(np.int64(2), "prefetch size")
    2
    >>> check_positive_int(0, "max_bytes", unit=" (bytes)")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: max_bytes must be a positive int (bytes), got 0
    """
    try:
        return check_int(value, what, minimum=1)
    except InvalidArgumentError:
        pass
    raise InvalidArgumentError(f"{what} must be a positive int{unit}, got {value!r}")


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


def check_bool(value: Any, what: str) -> bool:
    """Return ``value`` as a bool if it is one (a Python or numpy bool); else raise.

    A string such as ``"false"`` is truthy in Python: it is refused rather
    than read as ``True``.

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value.

    Examples
    --------
    >>> check_bool(np.bool_(True), "masked")
    True
    >>> check_bool("false", "masked")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: masked must be True or False, got 'false'
    """
    if not isinstance(value, bool | np.bool_):
        raise InvalidArgumentError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def check_column_names(value: Any, what: str) -> list[str]:
    """Return a list or tuple of non-empty str (attribute column names) as a list; else raise.

    A single str is refused, not split into letters: a list holds one name
    as ``["name"]``. An empty list is allowed (no attribute column).

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value.

    Examples
    --------
    >>> check_column_names(("kind", "height"), "columns")
    ['kind', 'height']
    >>> check_column_names("kind", "columns")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: columns must be a list of column names, got 'kind'; \
write ['kind'] for one column
    """
    if isinstance(value, str):
        raise InvalidArgumentError(
            f"{what} must be a list of column names, got {value!r}; write [{value!r}] for one column"
        )
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise InvalidArgumentError(f"{what} must be a list of column names (str), got {value!r}")
    return list(value)


def check_scalar_options(value: Any, what: str, *, reserved: Iterable[str] = ()) -> dict[str, Any]:
    """Return a mapping of str keys to str, int, float or bool values as a dict; else raise.

    For option mappings handed on as keywords (GDAL open options): a key
    in ``reserved`` is one terrapipe sets itself and is refused, so that it
    is not a bare ``TypeError`` (a keyword given twice) at the first read.

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value, key or reserved key.

    Examples
    --------
    >>> check_scalar_options({"num_threads": "ALL_CPUS"}, "open_options")
    {'num_threads': 'ALL_CPUS'}
    >>> check_scalar_options({"sharing": True}, "open_options", reserved=("sharing",))
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: open_options must not set 'sharing' (terrapipe sets it), ...
    """
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"{what} must be a mapping of option names to values (a dict), got {value!r}"
        )
    taken = set(reserved)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(f"{what} keys must be non-empty str, got {key!r} in {value!r}")
        if key in taken:
            raise InvalidArgumentError(f"{what} must not set {key!r} (terrapipe sets it), got {value!r}")
        if not isinstance(item, str | int | float | bool | np.bool_ | np.number):
            raise InvalidArgumentError(
                f"{what}[{key!r}] must be a str, int, float or bool, got {type(item).__name__} {item!r} "
                f"in {value!r}"
            )
        out[key] = item
    return out


def check_storage(value: Any) -> Storage | None:
    """Return ``value`` if it is ``None`` or a :class:`terrapipe.Storage`; else raise.

    ``core`` sits below ``io``, so the class is looked up where it was loaded, not imported: a
    ``Storage`` exists only once ``terrapipe.io.storage`` is loaded.

    Raises
    ------
    InvalidArgumentError
        Naming the type given and how to build a ``Storage``.

    Examples
    --------
    >>> import terrapipe as tp
    >>> check_storage(None) is None, check_storage(tp.Storage(retries=0)).retries
    (True, 0)
    >>> check_storage({"anon": True})
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: storage must be None or a terrapipe.Storage, got dict \
(build one with tp.Storage(...) or tp.Storage.from_env())
    """
    storage = sys.modules.get("terrapipe.io.storage")
    if value is None or (storage is not None and isinstance(value, storage.Storage)):
        return value  # type: ignore[no-any-return]
    raise InvalidArgumentError(
        f"storage must be None or a terrapipe.Storage, got {type(value).__name__} "
        "(build one with tp.Storage(...) or tp.Storage.from_env())"
    )
