"""DDP training from a materialized store: two gloo ranks on 127.0.0.1 read it, each sample once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
import terrapipe.dist
from tests.dist.dist_helpers import small_pipe
from tests.run.test_run_ddp import free_port

HERE = Path(__file__).parent
SRC = HERE.parent.parent / "src"


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ddp-read")
    store = out / "samples.zarr"
    tp.dist.materialize(small_pipe(37), store, partitions=5, chunk_samples=2)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(HERE / "ddp_reader.py")]
    procs = [
        subprocess.Popen(
            [*command, str(rank), "2", str(port), str(store), str(out / f"{rank}.json")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in range(2)
    ]
    logs = []
    try:
        for proc in procs:
            stdout, _ = proc.communicate(timeout=180)
            logs.append(stdout.decode(errors="replace"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log
    return [json.loads((out / f"{rank}.json").read_text()) for rank in range(2)]


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
