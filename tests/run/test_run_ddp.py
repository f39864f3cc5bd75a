"""DDP: two ranks on the gloo backend (CPU, 127.0.0.1) share the data exactly once."""

from __future__ import annotations

from collections import Counter as Multiset
from pathlib import Path

import pytest

from tests.servers.ranks import run_ranks

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return run_ranks(HERE / "ddp_worker.py", [], tmp_path_factory.mktemp("ddp"), timeout=120)


@pytest.mark.parametrize("key", ["threads", "inline", "processes"])
def test_union_over_ranks_is_every_sample_exactly_once(ranks, key):
    union = Multiset(ranks[0][key]) + Multiset(ranks[1][key])
    assert union == Multiset(range(50))
    assert ranks[0][key]
    assert ranks[1][key]


def test_even_gives_equal_counts_and_no_duplicates(ranks):
    for epoch_key in ("even", "even_epoch1"):
        counts = [len(r[epoch_key]) for r in ranks]
        assert counts[0] == counts[1] == ranks[0]["even_len"] == ranks[1]["even_len"] == 12
        samples = [x for r in ranks for batch in r[epoch_key] for x in batch]
        assert len(samples) == len(set(samples)) == 48  # 26 + 24 samples: rank 0's surplus batch is dropped
    assert ranks[0]["even"] != ranks[0]["even_epoch1"]


def test_resume_under_ddp(ranks):
    assert all(r["resume_equal"] for r in ranks)
