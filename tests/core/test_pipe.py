from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import IterDataPipe

import terrapipe as tp
from terrapipe.core.pipe import Stage, iter_graph, register, registered_names


def test_functional_and_class_forms_agree():
    functional = tp.from_items(range(6)).header(4)
    by_class = tp.core.Header(tp.core.FromItems(range(6)), 4)
    assert list(functional) == list(by_class) == [0, 1, 2, 3]


def test_every_stage_is_an_iterdatapipe_and_iterable_dataset():
    pipe = tp.from_items([1])
    assert isinstance(pipe, IterDataPipe)
    assert isinstance(pipe, torch.utils.data.IterableDataset)


def test_chains_with_torch_core_pipes():
    pipe = (
        tp.from_items(range(10))
        .map(lambda x: x * 2)
        .filter(lambda x: x % 4 == 0)
        .header(4)
        .batch(2)
        .enumerate()
    )
    assert list(pipe) == [(0, [0, 4]), (1, [8, 12])]


def test_fork_zip_mux_demux_chain():
    a, b = tp.from_items(range(3)).fork(2)
    assert list(a.zip(b.map(str))) == [(0, "0"), (1, "1"), (2, "2")]
    evens, odds = tp.from_items(range(6)).demux(2, lambda x: x % 2)
    assert list(evens.mux(odds)) == [0, 1, 2, 3, 4, 5]


def test_our_names_are_registered_once():
    names = registered_names()
    for name in ("header", "flatmap", "zip_longest", "cycle", "enumerate"):
        assert name in names
    assert len(names) == len(set(names))


def test_register_refuses_a_taken_name():
    with pytest.raises(tp.InvalidArgumentError, match="'map' is already registered"):

        @register("map")
        class Clash(Stage[int]):
            def __iter__(self):
                yield 1


def test_iter_graph_lists_downstream_first():
    src = tp.from_items([1, 2])
    pipe = src.map(str).header(1)
    graph = iter_graph(pipe)
    assert graph[0] is pipe
    assert graph[-1] is src


def test_set_epoch_reaches_every_stage_and_auto_increments():
    src = tp.from_items([1, 2])
    pipe = src.header(2)
    tp.set_epoch(pipe, 5)
    assert src._next_epoch == 5
    list(pipe)
    assert src._next_epoch == 6  # the pass used epoch 5, the next one uses 6
    with pytest.raises(tp.InvalidArgumentError):
        src.set_epoch(-1)


def test_pipes_pickle_with_named_functions():
    pipe = tp.from_items(range(4)).map(abs).header(3)
    clone = pickle.loads(pickle.dumps(pipe))
    assert list(clone) == [0, 1, 2]


def test_len_never_reruns_the_source():
    calls = []

    def spy(x):
        calls.append(x)
        return x

    pipe = tp.from_items(range(5)).map(spy).header(3)
    assert len(pipe) == 3
    assert calls == []


def test_unknown_length_raises_type_error_like_torch():
    pipe = tp.from_items([[1], [2, 3]]).flatmap()
    with pytest.raises(TypeError):
        len(pipe)
    with pytest.raises(TypeError):
        len(pipe.header(1))


def test_graph_walk_matches_torch_and_needs_no_pickling():
    from torch.utils.data.graph import traverse_dps

    from terrapipe.core.pipe import pipe_graph

    a, b = tp.from_items([1, 2]), tp.from_items([3, 4])
    left, right = a.map(str).fork(2)
    pipe = left.zip(right, b).header(2).demux(2, lambda x: 0)[0]

    def shape(graph):
        return sorted((type(dp).__name__, shape(sub)) for dp, sub in graph.values())

    assert shape(pipe_graph(pipe)) == shape(traverse_dps(pipe))


def test_graph_walk_survives_unpicklable_items_and_large_lists():
    import threading

    lock = threading.Lock()  # cannot be pickled
    items = [lock] * 100_000
    pipe = tp.from_items(items).map(lambda x: x).header(1)
    assert [type(p).__name__ for p in iter_graph(pipe)] == ["Header", "MapperIterDataPipe", "FromItems"]
    assert list(pipe) == [lock]
