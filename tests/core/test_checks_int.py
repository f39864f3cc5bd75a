"""One integer check (``core.checks.check_int``) for every stage option that is a count, a size or a seed.

``chip``'s ``WindowShuffle`` and ``Reads`` had a check of their own
(``check_count``: numpy integers taken, bools refused) while ``check_int``
refused numpy integers. Now ``check_int`` serves all: Python and numpy
integers (returned as a Python int), never a bool (``True``, ``np.True_``),
a float (``2.0`` neither), a string or an array; the message names the
option, its bounds and the value, as ``check_count``'s did.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.chip import Reads, WindowShuffle
from terrapipe.core.checks import check_int
from terrapipe.core.errors import InvalidArgumentError

INTEGER_TYPES = [
    np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.intp, np.uintp,
]  # fmt: skip
NOT_INTEGERS = [
    True, False, np.True_, np.False_, 2.0, np.float64(2.0), np.float32(3.0), 2.5, "2", b"2", None,
    np.array(2), np.array([2]), [2], 2 + 0j, float("nan"),
]  # fmt: skip


@pytest.mark.parametrize("kind", INTEGER_TYPES, ids=lambda k: k.__name__)
def test_numpy_integers_are_taken_and_returned_as_python_ints(kind: Any) -> None:
    value = check_int(kind(7), "n", minimum=0, maximum=10)
    assert value == 7
    assert type(value) is int
    assert type(check_int(7, "n")) is int


@pytest.mark.parametrize("value", NOT_INTEGERS, ids=repr)
def test_bools_floats_strings_and_arrays_are_refused_by_name_and_bounds(value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^chip seed must be an int >= 0, got "):
        check_int(value, "chip seed", minimum=0)


@pytest.mark.parametrize(
    ("value", "minimum", "maximum", "message"),
    [
        (np.int64(-1), 0, None, "n must be an int >= 0, got np.int64(-1)"),
        (np.uint64(2**64 - 1), None, 100, "n must be an int <= 100, got np.uint64(18446744073709551615)"),
        (11, 0, 10, "n must be an int >= 0 and <= 10, got 11"),
        (np.True_, None, None, "n must be an int, got np.True_"),
    ],
)
def test_bounds_apply_to_numpy_integers_too(value: Any, minimum: Any, maximum: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        check_int(value, "n", minimum=minimum, maximum=maximum)
    assert str(info.value) == message


def test_window_shuffle_and_reads_keep_their_rule_and_messages() -> None:
    assert WindowShuffle(buffer=np.int64(8), seed=np.uint8(3)) == WindowShuffle(buffer=8, seed=3)
    assert type(WindowShuffle(buffer=np.int32(8)).buffer) is int
    assert Reads(block_cache_bytes=np.int64(0), read_ahead=np.int16(2)) == Reads(
        block_cache_bytes=0, read_ahead=2
    )
    for bad in (np.True_, True, 2.0, "8"):
        with pytest.raises(
            InvalidArgumentError, match=f"^WindowShuffle buffer must be an int >= 1, got {bad!r}$"
        ):
            WindowShuffle(buffer=bad)
        with pytest.raises(
            InvalidArgumentError, match=f"^Reads read_ahead must be an int >= 0, got {bad!r}$"
        ):
            Reads(read_ahead=bad)
    with pytest.raises(InvalidArgumentError, match=r"^WindowShuffle seed must be an int >= 0, got -1$"):
        WindowShuffle(seed=-1)


def test_stages_checked_with_check_int_take_numpy_integers() -> None:
    da = xr.DataArray(np.zeros((16, 16), dtype="uint8"), dims=("y", "x"))
    pipe = tp.from_items([da]).sample_windows({"y": 4, "x": 4}, n=np.int64(3), seed=np.uint16(2))
    assert pipe.n == 3
    assert type(pipe.n) is int
    assert len(list(pipe)) == 3
    with pytest.raises(InvalidArgumentError, match="sample_windows n must be an int >= 0"):
        tp.from_items([da]).sample_windows({"y": 4, "x": 4}, n=np.True_)
