"""The chipper reads its next elements ahead over remote data, and stays exact while it does.

Arrays marked ``encoding["remote"] = True`` are read as remote sources are (the
storage's concurrency, 16 threads, reads across elements), from in-memory
backends that count every chunk read; no network is needed. Nothing here
asserts a duration: that the next element is read while the current one is,
is shown with events that only a read of the next element sets.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from itertools import islice
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.chip.chipper as chipper_module
import terrapipe.chip.reader as reader_module
from terrapipe.chip.reader import BlockReader
from terrapipe.core.errors import InvalidArgumentError, ReadError, SkippedElementWarning
from terrapipe.core.on_error import handle_error
from terrapipe.core.pipe import Stage
from terrapipe.core.state import check_resume, same_elements
from tests.chip.chip_helpers import CountingArray, Keys, counting_dataarray

SHAPES = [(16, 12), (8, 12), (12, 16)]  # three elements of different sizes: 12, 6 and 12 chips of 4 x 4
CHUNKS = (8, 6)


def _items(
    *, remote: bool = True, fail: dict[int, list[tuple[int, int]]] | None = None
) -> tuple[list[xr.DataArray], list[CountingArray]]:
    items, backends = [], []
    for k, (h, w) in enumerate(SHAPES):
        data = np.arange(h * w, dtype="float64").reshape(h, w) + 1000 * k
        da, backend = counting_dataarray(data, ("y", "x"), CHUNKS, fail_chunks=(fail or {}).get(k, ()))
        if remote:
            da.encoding["remote"] = True
        items.append(da)
        backends.append(backend)
    return items, backends


def _firsts(chips: Any) -> list[float]:
    return [float(np.asarray(c[0] if isinstance(c, tuple) else c.values).ravel()[0]) for c in chips]


class Recorded(Stage[Any]):
    """Pass elements through, logging each pull in ``log`` (not stateful: the chipper replays it)."""

    def __init__(self, source: Any, log: list[str]) -> None:
        super().__init__()
        self.source = source
        self.log = log

    def __iter__(self) -> Iterator[Any]:
        for k, element in enumerate(self.source):
            self.log.append(f"pull {k}")
            yield element


class Flaky(Stage[Any]):
    """Fail on element ``fail_at`` with a ReadError, under ``on_error`` (not stateful)."""

    def __init__(self, source: Any, fail_at: int, on_error: Any) -> None:
        super().__init__()
        self.source = source
        self.fail_at = fail_at
        self.on_error = on_error

    def __iter__(self) -> Iterator[Any]:
        for k, element in enumerate(self.source):
            if k == self.fail_at:
                handle_error(ReadError(f"element {k} is broken"), on_error=self.on_error, stats=self.stats)
                continue
            yield element


# -- reading ahead ---------------------------------------------------------------------------------------


def test_the_next_element_is_read_while_the_current_one_is():
    items, backends = _items()
    started = threading.Event()
    seen: list[bool] = []
    first, second = backends[0], backends[1]
    real_first, real_second = first._read, second._read

    def first_read(key: Any) -> np.ndarray:
        seen.append(started.wait(timeout=10))  # only a read of element 1 sets it
        return real_first(key)

    def second_read(key: Any) -> np.ndarray:
        started.set()
        return real_second(key)

    first._read, second._read = first_read, second_read
    chips = list(tp.from_items(items).chip({"y": 4, "x": 4}))
    assert len(chips) == 30
    assert seen
    assert all(seen)


def test_local_elements_are_pulled_only_when_their_turn_comes():
    for remote in (False, True):
        items, _ = _items(remote=remote)
        log: list[str] = []
        for _chip in Recorded(tp.from_items(items), log).chip({"y": 4, "x": 4}):
            log.append("chip")
        last_of_first = [i for i, entry in enumerate(log) if entry == "chip"][11]
        if remote:  # element 1 was pulled (and read) before element 0's last chip
            assert log.index("pull 1") < last_of_first
        else:
            assert log[:13] == ["pull 0"] + ["chip"] * 12  # as before: one element at a time
            assert log[13] == "pull 1"


def test_every_chunk_is_read_once_and_the_chips_are_those_of_local_reads():
    local_items, local_backends = _items(remote=False)
    remote_items, remote_backends = _items(remote=True)
    for options in ({}, {"overlap": 1}, {"shuffle": tp.chip.WindowShuffle(buffer=5, seed=3)}):
        local = list(tp.from_items(local_items).chip({"y": 4, "x": 4}, output="numpy", **options))
        remote = list(tp.from_items(remote_items).chip({"y": 4, "x": 4}, output="numpy", **options))
        assert same_elements([a for a, _ in remote], [a for a, _ in local])
    for lb, rb in zip(local_backends, remote_backends, strict=True):
        assert rb.reads == lb.reads
        assert set(rb.reads.values()) == {3}  # once per pass: three passes
        assert len(rb.reads) == rb.n_chunks


def test_bytes_in_flight_stay_under_the_bound_across_elements(monkeypatch):
    block = 8 * 6 * 8  # one float64 chunk
    monkeypatch.setattr(reader_module, "DEFAULT_INFLIGHT_BYTES", 3 * block)
    made: list[BlockReader] = []

    class Recording(BlockReader):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(chipper_module, "BlockReader", Recording)
    lock = threading.Lock()
    running = {"now": 0, "peak": 0}
    real = reader_module.read_block

    def counting(spec: Any, key: tuple[slice, ...], out: np.ndarray | None = None) -> np.ndarray:
        nbytes = spec.itemsize * int(np.prod(reader_module._shape(spec, key)))
        with lock:
            running["now"] += nbytes
            running["peak"] = max(running["peak"], running["now"])
        try:
            return real(spec, key, out)  # type: ignore[no-any-return]
        finally:
            with lock:
                running["now"] -= nbytes

    monkeypatch.setattr(reader_module, "read_block", counting)
    items, backends = _items()
    pipe = tp.from_items(items).chip({"y": 4, "x": 4})
    assert len(list(pipe)) == 30
    assert len(made) == 3
    assert all(r.max_inflight_bytes == 3 * block for r in made)
    assert max(r.peak_inflight_bytes for r in made) <= 3 * block
    assert running["peak"] <= 3 * block
    assert max(r.peak_inflight_bytes for r in made) > block  # it did read ahead, up to the bound
    assert all(set(b.reads.values()) == {1} for b in backends)


def test_elements_pulled_ahead_are_bounded():
    items = []
    for k in range(40):  # one 4 x 4 window each: every element is read ahead at once, budget allowing
        da, _ = counting_dataarray(np.full((4, 4), float(k)), ("y", "x"), (4, 4))
        da.encoding["remote"] = True
        items.append(da)
    log: list[str] = []
    ahead = []
    for k, chip in enumerate(Recorded(tp.from_items(items), log).chip({"y": 4, "x": 4})):
        assert float(chip.values[0, 0]) == k
        ahead.append(sum(e.startswith("pull") for e in log) - (k + 1))
    assert max(ahead) == chipper_module.ELEMENTS_AHEAD  # pulled while element k is served: at most that many


def test_explicit_read_ahead_zero_reads_one_element_at_a_time():
    items, _ = _items()
    log: list[str] = []
    for _chip in Recorded(tp.from_items(items), log).chip(
        {"y": 4, "x": 4}, reads=tp.chip.Reads(read_ahead=0)
    ):
        log.append("chip")
    assert log[:13] == ["pull 0"] + ["chip"] * 12


# -- exact resume ------------------------------------------------------------------------------------------

OPTIONS = [{}, {"overlap": 1}, {"shuffle": tp.chip.WindowShuffle(buffer=5, seed=2)}]


@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "overlap", "shuffle"])
@pytest.mark.parametrize("stateful", [True, False], ids=["stateful", "replayed"])
def test_resume_after_every_chip_is_exact(options, stateful):
    items, _ = _items()
    total = len(list(tp.from_items(items).chip({"y": 4, "x": 4}, **options)))

    def make() -> Keys:
        source: Any = tp.from_items(items)
        if not stateful:
            source = Recorded(source, [])
        return Keys(source.chip({"y": 4, "x": 4}, **options))

    for stop in range(total + 1):
        check_resume(make, stop_after=stop, epochs=1)
    check_resume(make, stop_after=total + 7, epochs=2)  # mid-element of the second epoch


def test_a_state_saved_with_the_next_element_pulled_ahead_resumes_there():
    items, _ = _items()
    source = tp.from_items(items)
    pipe = source.chip({"y": 4, "x": 4})
    it = iter(pipe)
    done = list(islice(it, 12))  # every chip of element 0: element 1 is pulled and being read
    # the source went past element 1 (here to its end: every element is read ahead) ...
    assert source.state_dict() not in ({"epoch": 0, "offset": 0}, {"epoch": 0, "offset": 1})
    state = pipe.state_dict()
    assert state["item"] == 0
    assert state["source"] == {"epoch": 0, "offset": 0}  # ... the state is element 0's
    resumed = tp.from_items(items).chip({"y": 4, "x": 4})
    resumed.load_state_dict(state)
    assert _firsts(done) + _firsts(resumed) == _firsts(tp.from_items(items).chip({"y": 4, "x": 4}))


# -- errors keep their place -------------------------------------------------------------------------------


def _until_error(pipe: Any) -> tuple[list[float], ReadError | None]:
    got: list[float] = []
    try:
        for chip in pipe:
            got.extend(_firsts([chip]))
    except ReadError as err:
        return got, err
    return got, None


@pytest.mark.parametrize("on_error", ["raise", "skip", "warn"])
def test_a_failing_upstream_element_fails_in_its_turn(on_error):
    reference = _firsts(tp.from_items(_items(remote=False)[0][:1]).chip({"y": 4, "x": 4}))
    items, _ = _items()
    pipe = Flaky(tp.from_items(items), fail_at=1, on_error=on_error).chip({"y": 4, "x": 4})
    got: list[float] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got, err = _until_error(pipe)
    if on_error == "raise":
        assert isinstance(err, ReadError)
        assert "element 1 is broken" in str(err)
        assert got == reference  # every chip of element 0 came first
        return
    assert err is None
    third = _firsts(tp.from_items(_items(remote=False)[0][2:]).chip({"y": 4, "x": 4}))
    assert got == reference + third
    assert pipe.source.stats.skipped == 1
    assert any(issubclass(w.category, SkippedElementWarning) for w in caught) == (on_error == "warn")


@pytest.mark.parametrize("on_error", ["raise", "skip", "warn"])
@pytest.mark.parametrize("failing", [(0, 0), (0, 1)], ids=["first chunk", "second chunk"])
def test_a_failing_block_of_an_element_read_ahead_fails_in_its_turn(on_error, failing):
    fail = {1: [failing], 2: [(0, 0)]}  # chunks of elements 1 and 2 (both read ahead) cannot be read
    results = []
    for remote in (False, True):
        items, _ = _items(remote=remote, fail=fail)
        pipe = tp.from_items(items).chip({"y": 4, "x": 4}, on_error=on_error)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got, err = _until_error(pipe)
        warned = sum(issubclass(w.category, SkippedElementWarning) for w in caught)
        results.append((got, None if err is None else type(err), pipe.stats.skipped, warned))
    assert results[1] == results[0]  # what the one-element-at-a-time local read does, in the same order
    got, err, skipped, warned = results[1]
    assert len(got) >= 12  # element 0 whole, before anything of the failing ones
    if on_error == "raise":
        assert err is ReadError
    else:
        assert err is None
        assert skipped >= 2
        assert warned == (skipped if on_error == "warn" else 0)


def test_an_element_too_small_keeps_its_place_under_skip():
    items, _ = _items()
    tiny = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"))
    tiny.encoding["remote"] = True
    pipe = tp.from_items([items[0], tiny, items[2]]).chip({"y": 4, "x": 4}, on_error="skip")
    got = _firsts(pipe)
    assert got == _firsts(tp.from_items([items[0], items[2]]).chip({"y": 4, "x": 4}))
    assert pipe.stats.skipped == 1
    with pytest.raises(InvalidArgumentError, match="smaller than the window"):
        list(tp.from_items([items[0], tiny]).chip({"y": 4, "x": 4}))


# -- loaders -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["thread", "process"])
def test_loader_workers_read_ahead_in_their_shards(method):
    items, _ = _items()
    plain = sorted(_firsts(tp.from_items(items).chip({"y": 4, "x": 4}, output="numpy")))
    pipe = tp.from_items(items).chip({"y": 4, "x": 4}, output="numpy")
    got = sorted(
        float(array[0, 0]) for array, _meta in tp.loader(pipe, workers=2, method=method, collate=None)
    )
    assert got == plain
