"""A catalog of small Zarr scenes: ``read_zarr`` opens the next store while the current one is chipped.

Each scene's open (metadata, coordinates, CRS) used to sit between the reads
of one scene and the next (docs/benchmarks/chip.md, many small scenes). The
store after the current one now opens on a thread; these tests hold what
must not change: every store once, in order, its error in its own turn,
nothing opened further ahead than one store, no thread left behind.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.io.zarr_reader as zarr_reader
from terrapipe.core.errors import ReadError
from terrapipe.core.pipe import IterDataPipe

N_SCENES = 5
SIDE = 16


def _write_scene(path: Path, value: int) -> str:
    data = np.full((1, SIDE, SIDE), value, dtype=np.uint16)
    coords = {"band": [1], "y": 100.0 - np.arange(SIDE) - 0.5, "x": 10.0 + np.arange(SIDE) + 0.5}
    xr.Dataset({"image": (("band", "y", "x"), data)}, coords=coords).to_zarr(
        path, zarr_format=3, consolidated=False
    )
    return str(path)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("scenes")
    return [_write_scene(folder / f"s{k}.zarr", k + 1) for k in range(N_SCENES)]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stores ``read_zarr`` opened so far, in the order their opens started."""
    log: list[str] = []
    real = zarr_reader._open_zarr

    def recording(source: Any, **kwargs: Any) -> Any:
        log.append(Path(str(source)).name)
        return real(source, **kwargs)

    monkeypatch.setattr(zarr_reader, "_open_zarr", recording)
    return log


def _value(obj: xr.DataArray) -> int:
    values = np.unique(np.asarray(obj))
    assert values.size == 1
    return int(values[0])


def _chip_value(chip: Any) -> int:
    array, _meta = chip  # output="numpy": (array, GeoMeta)
    values = np.unique(array)
    assert values.size == 1
    return int(values[0])


def _wait_for(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


def _open_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("terrapipe-open-ahead")]


def test_the_next_store_opens_while_the_current_one_is_used(scenes: list[str], opened: list[str]) -> None:
    it = iter(tp.from_items(scenes).read_zarr(variables="image"))
    first = next(it)
    assert _value(first) == 1
    # While the caller holds the first scene, the second one opens (before: only on the next next()).
    assert _wait_for(lambda: len(opened) >= 2), opened
    time.sleep(0.1)
    assert opened == ["s0.zarr", "s1.zarr"]  # one store ahead, no more
    assert _value(next(it)) == 2
    assert _wait_for(lambda: len(opened) >= 3), opened
    rest = [_value(a) for a in it]
    assert rest == [3, 4, 5]
    assert opened == [f"s{k}.zarr" for k in range(N_SCENES)]  # each store opened once


def test_every_store_once_in_order_and_every_chip_once(scenes: list[str]) -> None:
    pipe = tp.from_items(scenes).read_zarr(variables="image").chip({"y": 8, "x": 8}, output="numpy")
    values = [_chip_value(c) for c in pipe]
    assert values == [k for k in range(1, N_SCENES + 1) for _ in range(4)]
    # twice: a second pass opens every store again, in order
    again = [_chip_value(c) for c in pipe]
    assert again == values


@pytest.mark.parametrize("missing_at", [0, 2, N_SCENES])
def test_a_missing_store_fails_in_its_own_turn(scenes: list[str], tmp_path: Path, missing_at: int) -> None:
    paths = list(scenes)
    paths.insert(missing_at, str(tmp_path / "gone.zarr"))
    it = iter(tp.from_items(paths).read_zarr(variables="image"))
    got = [_value(next(it)) for _ in range(missing_at)]
    with pytest.raises(ReadError, match=r"gone\.zarr"):
        next(it)
    assert got == list(range(1, missing_at + 1))  # every store before it, none after


@pytest.mark.parametrize("on_error", ["skip", "warn"])
def test_a_missing_store_is_skipped_and_counted_in_its_turn(
    scenes: list[str], tmp_path: Path, on_error: str
) -> None:
    paths = [scenes[0], str(tmp_path / "gone.zarr"), scenes[1], str(tmp_path / "gone2.zarr")]
    pipe = tp.from_items(paths).read_zarr(variables="image", on_error=on_error)
    if on_error == "warn":
        with pytest.warns(tp.SkippedElementWarning):
            got = [_value(a) for a in pipe]
    else:
        got = [_value(a) for a in pipe]
    assert got == [1, 2]
    assert pipe.stats.skipped == 2
    assert pipe.stats.elements == 2


def test_another_error_of_an_open_comes_after_the_stores_before_it(
    scenes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = zarr_reader._open_zarr

    def failing(source: Any, **kwargs: Any) -> Any:
        if str(source).endswith("s1.zarr"):
            raise ValueError("a bug in an open")
        return real(source, **kwargs)

    monkeypatch.setattr(zarr_reader, "_open_zarr", failing)
    it = iter(tp.from_items(scenes).read_zarr(variables="image"))
    assert _value(next(it)) == 1  # its successor failed on the thread meanwhile: not yet raised
    with pytest.raises(ValueError, match="a bug in an open"):
        next(it)


class _FailingSource(IterDataPipe[str]):
    """Yields the given paths, then raises."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __iter__(self) -> Iterator[str]:
        yield from self.paths
        raise RuntimeError("the catalog broke")


def test_an_error_of_the_source_comes_after_the_stores_pulled_before_it(scenes: list[str]) -> None:
    it = iter(zarr_reader.ReadZarr(_FailingSource(scenes[:3]), variables="image"))
    got = [_value(next(it)) for _ in range(3)]
    with pytest.raises(RuntimeError, match="the catalog broke"):
        next(it)
    assert got == [1, 2, 3]


def test_a_pass_stopped_early_waits_for_its_open_and_leaves_no_thread(
    scenes: list[str], opened: list[str]
) -> None:
    before = len(_open_ahead_threads())
    it = iter(tp.from_items(scenes).read_zarr(variables="image"))
    next(it)
    it.close()  # type: ignore[attr-defined]
    assert len(_open_ahead_threads()) == before
    assert len(opened) <= 2
    time.sleep(0.05)
    assert len(opened) <= 2  # nothing opened after the pass ended


_MARK: contextvars.ContextVar[str] = contextvars.ContextVar("test_open_ahead_mark", default="unset")


def test_each_open_sees_the_callers_context(scenes: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = zarr_reader._open_zarr

    def recording(source: Any, **kwargs: Any) -> Any:
        seen.append(_MARK.get())
        return real(source, **kwargs)

    monkeypatch.setattr(zarr_reader, "_open_zarr", recording)
    token = _MARK.set("caller")
    try:
        assert len(list(tp.from_items(scenes).read_zarr(variables="image"))) == N_SCENES
    finally:
        _MARK.reset(token)
    assert seen == ["caller"] * N_SCENES


def test_a_chip_pass_resumed_mid_scene_gives_the_rest_exactly(scenes: list[str]) -> None:
    def pipe() -> Any:
        return tp.from_items(scenes).read_zarr(variables="image").chip({"y": 8, "x": 8}, output="numpy")

    whole = [_chip_value(c) for c in pipe()]
    first = pipe()
    it = iter(first)
    head = [_chip_value(next(it)) for _ in range(6)]  # mid-way through the second scene
    state = first.state_dict()
    it.close()  # type: ignore[attr-defined]
    resumed = pipe()
    resumed.load_state_dict(state)
    tail = [_chip_value(c) for c in resumed]
    assert head + tail == whole
