"""Fixtures of the dist tests: a Dask LocalCluster of two worker processes on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """A ``distributed.Client`` on a LocalCluster of 2 single-thread worker processes (closed at the end)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _executing(dask_worker: Any) -> int:
    return len(dask_worker.state.executing)


def wait_until_idle(client: Any, *, workers: int = 2, timeout: float = 120.0) -> None:
    """Wait for ``workers`` workers and for every task still running on them (cancelled ones too) to end."""
    client.wait_for_workers(workers, timeout=timeout)
    deadline = time.monotonic() + timeout
    while any(client.run(_executing).values()):
        if time.monotonic() > deadline:
            raise TimeoutError("the cluster's workers are still running tasks")
        time.sleep(0.1)
