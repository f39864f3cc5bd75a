from __future__ import annotations

import pytest

import terrapipe as tp


def test_from_items_sequence_and_len():
    pipe = tp.from_items(["a", "b"])
    assert list(pipe) == ["a", "b"]
    assert list(pipe) == ["a", "b"]  # replayable: a new pass each epoch
    assert len(pipe) == 2


def test_from_items_copies_unordered_iterables_once():
    pipe = tp.from_items({3, 1, 2})
    assert sorted(pipe) == [1, 2, 3]
    assert list(pipe) == list(pipe)


def test_from_items_refuses_generators():
    with pytest.raises(tp.InvalidArgumentError, match="one-shot iterator"):
        tp.from_items(x for x in range(3))


def test_from_items_counts_elements():
    pipe = tp.from_items(range(4))
    list(pipe)
    assert pipe.stats.elements == 4


@pytest.mark.parametrize("stop_after", [0, 1, 5, 9, 10, 13, 29])
def test_from_items_resumes_exactly(stop_after):
    from terrapipe.core.state import check_resume

    check_resume(lambda: tp.from_items(range(10)), stop_after=stop_after, epochs=3)


def test_from_items_state_is_strict():
    with pytest.raises(tp.PipelineStateError, match="missing keys"):
        tp.from_items([1]).load_state_dict({"epoch": 0})


def test_check_resume_compares_arrays_and_xarray_elements():
    import numpy as np
    import xarray as xr

    from terrapipe.core.state import check_resume

    items = [{"x": xr.DataArray(np.full((2, 2), i, dtype="f4")), "t": np.arange(i + 1)} for i in range(5)]
    assert len(check_resume(lambda: tp.from_items(items, shard=False), stop_after=3, epochs=2)) == 10
