"""Failures of xarray's CF decoding at an open, named as such: the file is fine, its attributes cannot be decoded.

xarray decodes times (``units``, ``calendar``) and packed values
(``scale_factor``, ``add_offset``, ``_FillValue``) as it opens a file or a Zarr
store. Where the attributes cannot be decoded (``"days since the flood"``, a
calendar pandas or cftime does not know, ``"months since"`` in the standard
calendar, a ``scale_factor`` written as text, times beyond 64-bit integers),
the readers' messages said the data could not be read, "the file is probably
truncated or corrupt ... re-download the file" (so users fetched it again),
and times beyond 64-bit integers escaped as a bare ``OverflowError``.
:func:`decoding_error` names the variable (where xarray does), what could not
be decoded and the keywords that open the raw values.

Examples
--------
>>> err = ValueError("unable to decode time units 'days since the flood' with 'the default calendar'.")
>>> err.add_note("Raised while decoding variable 't' with value <xarray.Variable (t: 3)>")
>>> print(decoding_error("a.nc", "cannot open (netcdf4)", err, time_keywords="decode_times=False"))
cannot open (netcdf4) 'a.nc': its variable 't' cannot be decoded as its attributes say (ValueError: unable to decode time units 'days since the flood' with 'the default calendar'.); the file is not damaged: pass decode_times=False to read the raw values, or fix the variable's units/calendar attributes
>>> decoding_error("a.nc", "cannot open", OSError("truncated"), time_keywords="") is None
True
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from terrapipe.core.errors import ReadError
from terrapipe.io.read_errors import read_error

__all__ = ["check_packing", "decoding_error", "name_decoding_failures"]

#: The packing attributes xarray applies lazily, at each read (a text value failed there, a bare numpy error).
_PACKING = ("scale_factor", "add_offset")

_VARIABLE_NOTE = re.compile(r"Raised while decoding variable '(?P<name>.*?)' with value")
_TIME_WORDS = ("time units", "time values", "calendar", "outofbounds", "out of bounds", "datetime")


def _variable_of(err: BaseException) -> str | None:
    """Return the variable xarray's note on ``err`` names ("Raised while decoding variable 't' ..."), if any."""
    for note in getattr(err, "__notes__", None) or ():
        found = _VARIABLE_NOTE.match(str(note))
        if found:
            return found.group("name")
    return None


def decoding_error(
    path: str,
    action: str,
    err: BaseException,
    *,
    time_keywords: str,
    value_keywords: str | None = None,
    variable: str | None = None,
) -> ReadError | None:
    """Return the :class:`ReadError` for a CF decoding failure at an open, or ``None`` for any other failure.

    Parameters
    ----------
    path
        The file or store, as errors name it.
    action
        What failed (``"cannot open (netcdf4)"``).
    err
        What xarray raised.
    time_keywords
        The keywords of this reader that open raw times (``"decode_times=False"``).
    value_keywords
        Those that open other raw values (``"mask_and_scale=False"``); ``None``: the reader has none.
    variable
        The variable being decoded, where the caller knows it (else the one xarray's note names).

    Returns
    -------
    ReadError or None
        ``None`` where ``err`` is not a decoding failure (xarray named no
        variable being decoded, and it is no time or arithmetic error).
    """
    variable = variable if variable is not None else _variable_of(err)
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    low = f"{type(err).__name__} {text}".lower()
    times = any(word in low for word in _TIME_WORDS)
    if variable is None and not times and not isinstance(err, ArithmeticError) and "ufunc" not in low:
        return None
    if isinstance(err, OSError):  # reading failed (named as such by the caller), not decoding
        return None
    what = f"its variable {variable!r}" if variable is not None else "a variable"
    cause = f"{what} cannot be decoded as its attributes say ({type(err).__name__}: {text})"
    fix = "units/calendar attributes" if times else "attributes (scale_factor, add_offset, _FillValue, units)"
    keywords = time_keywords if times else value_keywords
    raw = f"pass {keywords} to read the raw values, or " if keywords else ""
    hint = f"the file is not damaged: {raw}fix the variable's {fix}"
    return read_error(path, action, err, cause=cause, hint=hint)


def _is_number(value: Any) -> bool:
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except Exception:  # an object numpy cannot hold: not a number
        return False


def check_packing(ds: Any, path: str, action: str, *, value_keywords: str | None = None) -> None:
    """Refuse at the open a variable whose ``scale_factor`` or ``add_offset`` is not a number.

    xarray keeps them (in ``encoding``, once decoded) and applies them at each
    read: a text ``scale_factor = "ten"`` opened and then failed at every read
    with a bare numpy ``UFuncTypeError``. Only the attributes are looked at
    (no value is read).

    Raises
    ------
    ReadError
        Naming the variable, the attribute and its value.
    """
    for name, var in ds.variables.items():
        for attr in _PACKING:
            value = var.encoding.get(attr)  # where xarray keeps what it applies (mask_and_scale=False: attrs)
            if value is None or _is_number(value):
                continue
            cause = f"its variable {str(name)!r} has {attr} {value!r}, not a number: its values cannot be unpacked"
            raw = f"pass {value_keywords} to read the packed values, or " if value_keywords else ""
            raise read_error(
                path, action, cause=cause, hint=f"the file is not damaged: {raw}fix the attribute"
            )


class _Decoding:
    """One lazy CF decoding step of a variable: a failure at a read becomes the :func:`decoding_error`."""

    __slots__ = ("action", "func", "path", "time_keywords", "value_keywords", "variable")

    def __init__(
        self, func: Any, path: str, variable: str, time_keywords: str, value_keywords: str | None
    ) -> None:
        self.func, self.path, self.variable = func, path, variable
        self.time_keywords, self.value_keywords = time_keywords, value_keywords

    def __call__(self, values: Any) -> Any:
        try:
            return self.func(values)
        except (ValueError, TypeError, ArithmeticError) as err:
            found = decoding_error(
                self.path,
                "cannot read",
                err,
                time_keywords=self.time_keywords,
                value_keywords=self.value_keywords,
                variable=self.variable,
            )
            if found is None:
                raise
            raise found from err


def name_decoding_failures(
    ds: Any, path: str, *, time_keywords: str, value_keywords: str | None = None
) -> None:
    """Make the lazy CF decoding of every variable of ``ds`` fail as a :class:`ReadError` naming it.

    xarray decodes times and packed values lazily, at each read (its
    ``_ElementwiseFunctionArray``): times beyond 64-bit nanoseconds in a
    variable that is not an index (read at the open) were a bare
    ``OverflowError`` at ``.values``, from inside xarray and cftime. Each such
    step's function is wrapped where the open left it (under dask, in the
    array object the graph holds); nothing is read here.
    """
    from xarray.coding import common

    from terrapipe._compat import variable_data

    lazy = getattr(common, "_ElementwiseFunctionArray", None)
    if lazy is None:  # another xarray: its own errors
        return
    for name, var in ds.variables.items():
        _wrap_steps(_starts(variable_data(var)), lazy, path, str(name), time_keywords, value_keywords)


def _starts(data: Any) -> list[Any]:
    """Where a variable's lazy wrappers begin: its data, or under dask the array object its graph holds."""
    graph = getattr(data, "__dask_graph__", None)
    if graph is None:
        return [data]
    layers = getattr(graph(), "layers", None) or {}
    return [next(iter(layer.values())) for layer in layers.values() if len(layer) == 1]


def _wrap_steps(
    starts: list[Any], lazy: Any, path: str, name: str, time_keywords: str, value_keywords: str | None
) -> None:
    """Wrap the function of each lazy decoding step found below ``starts`` (see :func:`name_decoding_failures`)."""
    from terrapipe.io.stamped_file import StampedArray

    seen: set[int] = set()
    for data in starts:
        while data is not None and id(data) not in seen:
            seen.add(id(data))
            if type(data) is lazy and not isinstance(data.func, _Decoding):
                data.func = _Decoding(data.func, path, name, time_keywords, value_keywords)
            # xarray's wrappers hold the next one as .array; a StampedArray (a local file) as .data
            data = data.data if isinstance(data, StampedArray) else getattr(data, "array", None)
