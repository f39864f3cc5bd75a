"""DDP training from a materialized store: two gloo ranks on 127.0.0.1 read it, each sample once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
import terrapipe.dist
from tests.dist.dist_helpers import small_pipe
from tests.servers.ranks import run_ranks

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ddp-read")
    store = out / "samples.zarr"
    tp.dist.materialize(small_pipe(37), store, partitions=5, chunk_samples=2)
    return run_ranks(HERE / "ddp_reader.py", [str(store)], out)


def test_ranks_read_every_sample_once(ranks: list[dict[str, Any]]):
    seen = [i for r in ranks for i in r["ids"]]
    assert sorted(seen) == sorted(f"item-{i}" for i in range(37))
    assert all(r["ids"] for r in ranks)


def test_even_ranks_get_as_many_batches_and_no_repeats(ranks: list[dict[str, Any]]):
    counts = [len(r["even"]) for r in ranks]
    assert counts[0] == counts[1] > 0
    ids = [i for r in ranks for b in r["even"] for i in b]
    assert len(ids) == len(set(ids))


def test_each_rank_resumes_exactly(ranks: list[dict[str, Any]]):
    assert [r["resume_equal"] for r in ranks] == [True, True]
