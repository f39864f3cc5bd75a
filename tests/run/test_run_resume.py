"""Exact resume: stop anywhere (mid-batch, mid-epoch, across epochs), resume, compare."""

from __future__ import annotations

import functools
import json
import operator
import random

import pytest

import terrapipe as tp
import terrapipe.run
from terrapipe.core.errors import ResumeWarning
from terrapipe.run import loader, shuffled_items
from tests.run.run_helpers import negate, repeat_twice

EPOCHS = 3


def make_pipe():
    return shuffled_items(range(23), seed=11).map(negate).pmap(negate, workers=2).prefetch(2)


def run_all(make, **kwargs):
    with loader(make(), **kwargs) as batches:
        return [[b.tolist() for b in batches] for _ in range(EPOCHS)]


def run_with_stop(make, stop, *, through_json=True, **kwargs):
    """Take ``stop`` batches (over epochs), save, resume in a fresh loader, finish all epochs."""
    got = []
    with loader(make(), **kwargs) as first:
        for _ in range(EPOCHS):
            if len(got) == stop:
                break
            it = iter(first)
            for batch in it:
                got.append(batch.tolist())
                if len(got) == stop:
                    break
        state = first.state_dict()
    if through_json:
        state = json.loads(json.dumps(state))
    with loader(make(), **kwargs) as second:
        second.load_state_dict(state)
        for _ in range(EPOCHS - state["epoch"]):
            got.extend(b.tolist() for b in second)
    return got


LAYOUTS = [
    {"workers": 0},
    {"workers": 0, "prefetch": 0},
    {"workers": 1},
    {"workers": 3, "prefetch": 0},
    {"workers": 2, "method": "process"},
]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
def test_resume_at_random_points_equals_uninterrupted_run(layout):
    full = run_all(make_pipe, batch_size=4, **layout)
    expected = [b for epoch in full for b in epoch]
    assert (
        len({tuple(functools.reduce(operator.iadd, epoch, [])) for epoch in full}) == EPOCHS
    )  # reshuffled every epoch
    n_batches = len(expected)
    rng = random.Random(sum(map(ord, str(layout))))
    stops = {0, 1, n_batches // EPOCHS, n_batches - 1, *rng.sample(range(n_batches), 3)}
    for stop in sorted(stops):
        assert run_with_stop(make_pipe, stop, batch_size=4, **layout) == expected, (
            f"stop after {stop} batches"
        )


def test_state_before_and_right_after_loading():
    with loader(shuffled_items(range(8), seed=0), workers=2) as items:
        assert items.state_dict() == {"epoch": 0, "position": None}
        list(items)
        assert items.state_dict() == {"epoch": 1, "position": None}
        it = iter(items)
        next(it)
        state = items.state_dict()
        assert state["epoch"] == 1
        assert state["position"] is not None
    with loader(shuffled_items(range(8), seed=0), workers=2) as again:
        again.load_state_dict(state)
        assert again.state_dict() == state


def test_state_moves_between_zero_and_one_worker_and_methods():
    make = lambda: shuffled_items(range(15), seed=4)  # noqa: E731
    expected = run_all(make, batch_size=2, workers=1)
    assert run_with_stop(make, 4, batch_size=2, workers=1) == [b for e in expected for b in e]
    with loader(make(), batch_size=2, workers=1) as first:
        it = iter(first)
        head = [next(it).tolist() for _ in range(3)]
        state = first.state_dict()
    with loader(make(), batch_size=2, workers=0, prefetch=0) as second:
        second.load_state_dict(state)
        assert head + [b.tolist() for b in second] == expected[0]


def test_state_from_other_layout_is_refused():
    with loader(tp.from_items(range(10)), workers=2) as first:
        it = iter(first)
        next(it)
        state = first.state_dict()
    with (
        loader(tp.from_items(range(10)), workers=3) as other,
        pytest.raises(tp.PipelineStateError, match="workers"),
    ):
        other.load_state_dict(state)
    with (
        loader(tp.from_items(range(10)), workers=2) as same,
        pytest.raises(tp.PipelineStateError, match="missing"),
    ):
        same.load_state_dict({"epoch": 0})


def test_stateless_stages_resume_by_fast_forward_with_a_warning():
    make = lambda: tp.from_items(range(9)).flatmap(repeat_twice)  # noqa: E731
    full = run_all(make, batch_size=4, workers=2)
    with loader(make(), batch_size=4, workers=2) as first:
        assert not first.exact_resume
        it = iter(first)
        head = [next(it).tolist() for _ in range(2)]
        state = first.state_dict()
    with loader(make(), batch_size=4, workers=2) as second:
        with pytest.warns(ResumeWarning, match="FlatMap"):
            second.load_state_dict(state)
        assert head + [b.tolist() for b in second] == full[0]


def test_resume_between_epochs_needs_no_warning():
    with loader(tp.from_items(range(4)).flatmap(repeat_twice), workers=2) as first:
        list(first)
        state = first.state_dict()
    with loader(tp.from_items(range(4)).flatmap(repeat_twice), workers=2) as second:
        second.load_state_dict(state)  # filterwarnings turns a ResumeWarning into an error
        assert sorted(second) == sorted([0, 0, 1, 1, 2, 2, 3, 3])
