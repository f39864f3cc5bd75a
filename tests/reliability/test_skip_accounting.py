"""Skips reach the user through ``tp.loader``, in every worker mode.

``on_error="skip"`` counts each dropped element in the stage's stats, but the
loader runs copies of the pipe (one per worker, and one for ``workers=0``),
so before the fix the user's stages, and anything the loader reported,
showed 0 skips. Now the workers send their copies' counters back; the loader
adds them to the user's stages, sums them (``loader.skipped``,
``loader.stats``, ``loader.summary()``) and ends each epoch that skipped with
a ``SkipsInEpochWarning``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import SkipsInEpochWarning, TerrapipeWarning
from tests.reliability.data import write_cog

MODES = [(0, "thread", None), (2, "thread", None), (2, "process", "fork"), (3, "process", "spawn")]
GOOD, BAD = 5, 4


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("skips")
    good = []
    for i in range(GOOD):
        path = folder / f"good{i}.tif"
        write_cog(path, seed=i, size=64, block=32)
        good.append(str(path))
    whole = Path(good[0]).read_bytes()
    bad = [folder / "empty.tif", folder / "text.tif", folder / "header.tif", folder / "missing.tif"]
    bad[0].write_bytes(b"")
    bad[1].write_text("not a tiff at all\n")
    bad[2].write_bytes(whole[:64])  # the TIFF header and nothing else
    mixed = []
    for i, path in enumerate(good):  # corrupt files spread over every worker's shard
        mixed.append(path)
        if i < len(bad):
            mixed.append(str(bad[i]))
    return mixed


def total(da: object) -> float:
    return float(np.asarray(da).sum())


def make_pipe(paths: list[str]) -> tp.Stage:  # type: ignore[type-arg]
    return tp.from_items(paths).read_raster(on_error="skip")  # type: ignore[no-any-return]


@pytest.mark.parametrize(("workers", "method", "context"), MODES)
def test_loader_reports_the_exact_skip_count(
    paths: list[str], workers: int, method: str, context: str | None
) -> None:
    pipe = make_pipe(paths)
    batches = tp.loader(
        pipe.map(total),
        workers=workers,
        method=method,
        multiprocessing_context=context,  # type: ignore[arg-type]
    )
    with batches:
        for epoch in range(2):
            with pytest.warns(
                SkipsInEpochWarning, match=rf"epoch {epoch}: {BAD} element\(s\) skipped"
            ) as seen:
                values = list(batches)
            assert len(values) == GOOD
            assert len([w for w in seen if issubclass(w.category, SkipsInEpochWarning)]) == 1
            assert batches.skipped == BAD * (epoch + 1)
            assert pipe.stats.skipped == BAD * (epoch + 1)  # the user's own stage counts them
        stats = {s.name: s for s in batches.stats}
        assert stats["ReadRaster"].skipped == 2 * BAD
        assert stats["ReadRaster"].elements == 2 * GOOD
        assert any("missing.tif" in m for m in stats["ReadRaster"].last_errors)
        summary = batches.summary()
        assert summary["skipped"] == 2 * BAD
        for name in ("empty.tif", "text.tif", "header.tif", "missing.tif"):
            assert any(name in message for message in pipe.stats.last_errors), name


def test_an_epoch_without_skips_does_not_warn(paths: list[str], recwarn: pytest.WarningsRecorder) -> None:
    good = [p for p in paths if "good" in p]
    with tp.loader(make_pipe(good).map(total), workers=2) as batches:
        assert len(list(batches)) == GOOD
        assert batches.skipped == 0
    assert not [w for w in recwarn if issubclass(w.category, TerrapipeWarning)]


def test_skips_are_counted_per_stage_and_per_worker_that_met_them(paths: list[str]) -> None:
    reader = make_pipe(paths)
    chips = reader.chip({"y": 32, "x": 32}, on_error="skip")
    with tp.loader(chips, workers=2) as batches:
        # the chipper shards by window, so both workers open every file and both skip each bad one
        with pytest.warns(SkipsInEpochWarning, match=rf"ReadRaster: {2 * BAD}\)"):
            assert len(list(batches)) == GOOD * 4
        counts = {s.name: s.skipped for s in batches.stats}
    assert counts == {"Chip": 0, "ReadRaster": 2 * BAD, "FromItems": 0}
    assert reader.stats.skipped == 2 * BAD


def test_counts_survive_a_pass_abandoned_mid_epoch(paths: list[str]) -> None:
    pipe = make_pipe(paths)
    with tp.loader(pipe.map(total), workers=2, prefetch=0) as batches:
        iterator = iter(batches)
        next(iterator)
        iterator.close()  # no epoch end: no warning
        with pytest.warns(SkipsInEpochWarning):
            list(batches)  # the next epoch, whole
        assert batches.skipped >= BAD
        assert pipe.stats.skipped == batches.skipped


def as_sample(da: object) -> dict[str, np.ndarray]:
    return {"value": np.asarray(np.asarray(da).sum(), dtype="float64")}


def test_materialize_reports_the_skips_of_its_partitions(paths: list[str], tmp_path: Path) -> None:
    pytest.importorskip("cloudpickle")
    pipe = make_pipe(paths)
    with pytest.warns(SkipsInEpochWarning, match=rf"materialize: {BAD} element\(s\) skipped"):
        report = tp.materialize(pipe.map(as_sample), str(tmp_path / "store"), partitions=3)
    assert report.samples == GOOD
    assert report.elements_skipped == BAD
    assert sum(r.elements_skipped for r in report.results) == BAD
    assert pipe.stats.skipped == BAD
    assert f"{BAD} element(s) skipped on error" in str(report)


@pytest.mark.parametrize(("workers", "method", "context"), MODES[1:3])
def test_skips_made_before_the_first_batch_is_asked_for_still_warn(
    paths: list[str], workers: int, method: str, context: str | None
) -> None:
    # The workers start with iter() and may read (and skip) every element before the first next():
    # the epoch's warning compares the counters with those from before the workers started.
    import time

    batches = tp.loader(
        make_pipe(paths).map(total),
        workers=workers,
        method=method,
        multiprocessing_context=context,  # type: ignore[arg-type]
    )
    with batches:
        running = iter(batches)
        deadline = time.monotonic() + 60
        while batches.skipped < BAD and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.warns(SkipsInEpochWarning, match=rf"epoch 0: {BAD} element\(s\) skipped"):
            values = list(running)
    assert len(values) == GOOD
    assert batches.skipped == BAD
