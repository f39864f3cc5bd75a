"""``object_store.get(range=)`` and ``get_ranges`` promise exactly the bytes asked for, at every URL kind.

Their docs: "Return the bytes of url ... exactly those", "ReadError ... when a range comes back short
(past the end of the object)". A local path and a bucket URL check each answer's length (``_exact``);
an http(s) URL's answer is returned as the server's 206 gave it: a range running past the end of the
object comes back short, silently (a caller reading a fixed-size record gets fewer bytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from terrapipe.core.errors import ReadError
from terrapipe.io import object_store

DATA = bytes(range(100))
PAST_THE_END = [(90, 110), (99, 101), (0, 101)]


@pytest.fixture(scope="module")
def served(http_root: Path, range_server_session: Any) -> tuple[str, str]:
    path = http_root / "hostile_wave4b_short_ranges.bin"
    path.write_bytes(DATA)
    return str(path), range_server_session.url_for(path)


@pytest.mark.parametrize("bounds", PAST_THE_END)
def test_a_local_range_past_the_end_is_refused(served: tuple[str, str], bounds: tuple[int, int]) -> None:
    with pytest.raises(ReadError, match="past the end"):
        object_store.get(served[0], range=bounds)
    with pytest.raises(ReadError, match="past the end"):
        object_store.get_ranges(served[0], [(0, 10), bounds])


@pytest.mark.parametrize("bounds", PAST_THE_END)
def test_an_http_range_past_the_end_is_refused_as_a_local_one(
    served: tuple[str, str], bounds: tuple[int, int]
) -> None:
    with pytest.raises(ReadError, match="past the end"):
        object_store.get(served[1], range=bounds)


@pytest.mark.parametrize("bounds", PAST_THE_END)
@pytest.mark.parametrize("alone", [True, False], ids=["alone", "with_another"])
def test_http_get_ranges_past_the_end_is_refused_as_a_local_one(
    served: tuple[str, str], bounds: tuple[int, int], alone: bool
) -> None:
    with pytest.raises(ReadError, match="past the end"):
        object_store.get_ranges(served[1], [bounds] if alone else [(0, 10), bounds])


@pytest.mark.parametrize("bounds", [(0, 100), (10, 20), (99, 100)])
def test_ranges_inside_the_object_are_its_bytes_at_every_url(
    served: tuple[str, str], bounds: tuple[int, int]
) -> None:
    start, end = bounds
    for where in served:
        assert object_store.get(where, range=bounds) == DATA[start:end]
        assert object_store.get_ranges(where, [(0, 3), bounds]) == [DATA[0:3], DATA[start:end]]
