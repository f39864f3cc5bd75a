"""DDP: two ranks on the gloo backend (CPU, 127.0.0.1) share the data exactly once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter as Multiset
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SRC = HERE.parent.parent / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "ddp_worker.py"),
                str(rank),
                "2",
                str(port),
                str(out / f"{rank}.json"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in range(2)
    ]
    logs = []
    try:
        for proc in procs:
            stdout, _ = proc.communicate(timeout=120)
            logs.append(stdout.decode(errors="replace"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log
    return [json.loads((out / f"{rank}.json").read_text()) for rank in range(2)]


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
