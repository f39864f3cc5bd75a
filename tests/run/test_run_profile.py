"""tp.profile: per-stage elements, times, bytes read and skips, on a copy of the pipe."""

from __future__ import annotations

import io
import time

import terrapipe as tp
import terrapipe.run
from terrapipe.core.on_error import handle_error
from terrapipe.core.pipe import Stage
from terrapipe.run import profile
from tests.run.run_helpers import ReadWindows, windows_of, write_cog


def slow(x):
    time.sleep(0.002)
    return x


class SkipOdd(Stage[int]):
    def __init__(self, source):
        super().__init__()
        self.source = source

    def __iter__(self):
        for x in self.source:
            if x % 2:
                handle_error(tp.ReadError(f"item {x} is odd"), on_error="skip", stats=self.stats)
                continue
            self.stats.elements += 1
            yield x


def test_profile_reports_each_stage_source_first(tmp_path):
    cog = write_cog(tmp_path / "a.tif", size=128)
    pipe = ReadWindows(tp.from_items(windows_of(cog) * 3).map(slow))
    out = io.StringIO()
    report = profile(pipe, n=5, file=out)
    names = [s.name for s in report.stages]
    assert names == ["FromItems", "MapperIterDataPipe", "ReadWindows"]
    by_name = {s.name: s for s in report.stages}
    assert report.elements == 5
    assert by_name["ReadWindows"].elements == 5
    assert by_name["ReadWindows"].bytes_read == 5 * 3 * 64 * 64 * 2
    assert by_name["MapperIterDataPipe"].bytes_read is None
    assert by_name["MapperIterDataPipe"].seconds >= 5 * 0.002 * 0.9  # the sleeps are the map's own time
    assert by_name["ReadWindows"].total_seconds >= by_name["MapperIterDataPipe"].total_seconds
    text = out.getvalue()
    assert "ReadWindows" in text
    assert "bytes read" in text
    assert "5 elements in" in text
    assert pipe.stats.elements == 0  # the pipe itself was not run


def test_profile_counts_skips_and_handles_short_pipes():
    report = profile(SkipOdd(tp.from_items(range(6))), n=100, show=False)
    skip = report.stages[-1]
    assert (skip.name, skip.elements, skip.skipped) == ("SkipOdd", 3, 3)
    assert report.elements == 3


def test_profile_through_threads():
    report = profile(tp.from_items(range(20)).map(slow).pmap(slow, workers=2).prefetch(2), n=10, show=False)
    assert [s.elements for s in report.stages][-1] == 10
    assert all(s.seconds >= 0 for s in report.stages)
    assert "Prefetch" in report.table()


def test_profile_validates():
    import pytest

    with pytest.raises(tp.InvalidArgumentError, match="n must"):
        profile(tp.from_items([1]), n=0)
    with pytest.raises(tp.InvalidArgumentError, match="pipe"):
        profile([1, 2], n=1)
