"""The stages zen3geo users had from torchdata and torch core lacks."""

from __future__ import annotations

import pytest

import terrapipe as tp


class TestHeader:
    def test_takes_first_n(self):
        assert list(tp.from_items("abcdef").header(2)) == ["a", "b"]

    def test_does_not_read_past_the_limit(self):
        seen = []
        pipe = tp.from_items(range(100)).map(lambda x: seen.append(x) or x).header(3)
        assert list(pipe) == [0, 1, 2]
        assert seen == [0, 1, 2]

    def test_zero_and_longer_than_source(self):
        assert list(tp.from_items([1, 2]).header(0)) == []
        pipe = tp.from_items([1, 2]).header(10)
        assert list(pipe) == [1, 2]
        assert len(pipe) == 2

    @pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
    def test_bad_limit(self, bad):
        with pytest.raises(tp.InvalidArgumentError, match="header limit"):
            tp.from_items([1]).header(bad)


class TestFlatMap:
    def test_flattens_with_function(self):
        assert list(tp.from_items([1, 2, 3]).flatmap(range)) == [0, 0, 1, 0, 1, 2]

    def test_flattens_iterables_without_function(self):
        assert list(tp.from_items([(1, 2), (), (3,)]).flatmap()) == [1, 2, 3]

    def test_not_callable(self):
        with pytest.raises(tp.InvalidArgumentError):
            tp.from_items([1]).flatmap(3)


class TestZipLongest:
    def test_pads_shorter(self):
        pipe = tp.from_items([1, 2, 3]).zip_longest(tp.from_items([10]), fill_value=-1)
        assert list(pipe) == [(1, 10), (2, -1), (3, -1)]
        assert len(pipe) == 3

    def test_three_pipes(self):
        pipe = tp.core.ZipLongest(tp.from_items([1]), tp.from_items([]), tp.from_items([5, 6]))
        assert list(pipe) == [(1, None, 5), (None, None, 6)]

    def test_needs_two_pipes(self):
        with pytest.raises(tp.InvalidArgumentError):
            tp.core.ZipLongest(tp.from_items([1]))
        with pytest.raises(tp.InvalidArgumentError, match="pipes only"):
            tp.core.ZipLongest(tp.from_items([1]), [2])


class TestCycle:
    def test_count(self):
        pipe = tp.from_items([1, 2]).cycle(3)
        assert list(pipe) == [1, 2] * 3
        assert len(pipe) == 6

    def test_forever_with_header(self):
        assert list(tp.from_items([7]).cycle().header(4)) == [7, 7, 7, 7]
        with pytest.raises(TypeError):
            len(tp.from_items([7]).cycle())

    def test_empty_source_ends_instead_of_spinning(self):
        assert list(tp.from_items([]).cycle()) == []

    def test_each_pass_is_a_new_epoch(self):
        src = tp.from_items([1])
        list(src.cycle(3))
        assert src._next_epoch == 3

    def test_bad_count(self):
        with pytest.raises(tp.InvalidArgumentError):
            tp.from_items([1]).cycle(-2)


class TestEnumerate:
    def test_pairs(self):
        pipe = tp.from_items("xyz").enumerate()
        assert list(pipe) == [(0, "x"), (1, "y"), (2, "z")]
        assert len(pipe) == 3

    def test_start_restarts_each_pass(self):
        pipe = tp.from_items("ab").enumerate(start=5)
        assert list(pipe) == list(pipe) == [(5, "a"), (6, "b")]

    def test_bad_start(self):
        with pytest.raises(tp.InvalidArgumentError):
            tp.from_items("a").enumerate(start="0")
