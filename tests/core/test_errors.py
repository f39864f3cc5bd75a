from __future__ import annotations

import warnings

import pytest

import terrapipe as tp
from terrapipe.core import errors
from terrapipe.core.on_error import check_on_error, handle_error
from terrapipe.core.stats import StageStats


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.MissingDependencyError, ImportError),
        (errors.InvalidArgumentError, ValueError),
        (errors.ReadError, OSError),
        (errors.STACSearchError, RuntimeError),
        (errors.GridMismatchError, ValueError),
        (errors.RecipeError, ValueError),
        (errors.CacheError, RuntimeError),
        (errors.DeviceError, RuntimeError),
        (errors.PipelineStateError, ValueError),
    ],
)
def test_hierarchy_mixes_in_builtins(cls, builtin):
    err = cls("x.tif: broken; do this")
    assert isinstance(err, tp.TerrapipeError)
    assert isinstance(err, builtin)
    assert getattr(tp, cls.__name__) is cls


def test_warnings_have_their_own_base():
    assert issubclass(errors.SkippedElementWarning, errors.TerrapipeWarning)
    assert issubclass(errors.TerrapipeWarning, UserWarning)


def test_on_error_policies():
    stats = StageStats(name="read_raster")
    err = errors.ReadError("a.tif: truncated; re-download it")
    with pytest.raises(errors.ReadError):
        handle_error(err, on_error="raise", stats=stats)
    assert stats.skipped == 0
    handle_error(err, on_error="skip", stats=stats)
    with pytest.warns(errors.SkippedElementWarning, match="a.tif: truncated"):
        handle_error(err, on_error="warn", stats=stats)
    assert stats.skipped == 2
    assert stats.last_errors == [str(err), str(err)]


def test_on_error_keeps_only_recent_messages():
    stats = StageStats(name="s")
    with warnings.catch_warnings():
        for i in range(50):
            stats.record_skip(f"e{i}")
    assert stats.skipped == 50
    assert stats.last_errors[0] == "e30"
    assert len(stats.last_errors) == 20


def test_check_on_error():
    assert check_on_error("warn") == "warn"
    with pytest.raises(errors.InvalidArgumentError, match="'ignore'"):
        check_on_error("ignore")
