"""A ranged answer cut short is resumed by a range of the rest, each part checked: never wrong, never lost.

A flaky CDN or proxy closes some answers part way. GDAL's ``/vsicurl/`` asked for the rest; the
byte layer (now under GDAL too) does likewise: the bytes that came are kept, the rest (and as much
again, within the file) is asked for at once, checked like any range (its ``Content-Range``, the
file's size and ``ETag`` as at the first part), without spending a retry; an answer with no byte
spends one (``Storage.retries``), so a server that sends nothing ends in a ``ReadError``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from terrapipe.core.errors import ReadError
from terrapipe.io import http_reads
from terrapipe.io.storage import Storage
from tests.servers.http_range import range_server

DATA = os.urandom(300_000)


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "f.bin").write_bytes(DATA)
    with range_server(tmp_path) as server:
        yield server


@pytest.mark.parametrize(("start", "stop"), [(0, 100_000), (1000, 101_000), (100_000, 150_000)])
def test_answers_always_cut_in_half_give_the_exact_range(served, start: int, stop: int) -> None:
    served.fault("/f.bin", kind="truncate")
    url = f"{served.url}/f.bin"
    reply = http_reads.read(url, Storage(retries=1), byte_range=http_reads.ByteRange(start, stop))
    assert reply.body == DATA[start:stop]
    assert served.stats()["faults_served"]["truncate"] > 1  # it was cut, and resumed


@pytest.mark.parametrize(("start", "stop"), [(250_000, 300_000), (299_990, 300_000)])
def test_a_range_at_the_end_always_cut_in_half_is_a_read_error(served, start: int, stop: int) -> None:
    # no room to ask for more than the rest: half of the last byte is none (a ReadError, never other bytes)
    served.fault("/f.bin", kind="truncate")
    url = f"{served.url}/f.bin"
    with pytest.raises(ReadError, match=r"f\.bin.*cut short"):
        http_reads.read(url, Storage(retries=1, backoff=0.01), byte_range=http_reads.ByteRange(start, stop))


def test_answers_with_no_byte_spend_the_retries(served) -> None:
    served.fault("/f.bin", kind="drop")
    url = f"{served.url}/f.bin"
    with pytest.raises(ReadError, match=r"f\.bin.*closed without an answer.*after 2 tries"):
        http_reads.read(url, Storage(retries=1, backoff=0.01), byte_range=http_reads.ByteRange(0, 10))
