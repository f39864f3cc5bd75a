"""The adapters' shared parts, without any framework: lazy imports, numpy batches, meta strings, the batch stream."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

import terrapipe as tp
from terrapipe.adapters import decode_meta, encode_meta, numpy_batch
from terrapipe.adapters.stream import BatchStream, build_loader
from terrapipe.core.sample import geo_meta


def test_importing_terrapipe_and_the_adapters_imports_no_framework() -> None:
    code = (
        "import sys, terrapipe, terrapipe.adapters\n"
        "import terrapipe.adapters.keras, terrapipe.adapters.tensorflow, terrapipe.adapters.jax\n"
        "import terrapipe.adapters.lightning\n"
        "bad = [m for m in ('keras', 'tensorflow', 'jax', 'lightning', 'pytorch_lightning') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_a_missing_framework_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import terrapipe.adapters.keras as adapter

    monkeypatch.setitem(sys.modules, "keras", None)  # import keras now raises ImportError
    monkeypatch.setattr(adapter, "_CLASS", None)
    with pytest.raises(tp.MissingDependencyError, match=r"terrapipe\[frameworks\]"):
        adapter.keras_dataset(tp.from_items([1]), batch_size=1)


def test_numpy_batch_shares_cpu_memory_and_keeps_meta() -> None:
    meta = geo_meta(
        "EPSG:32631", (10, 0, 600000, 0, -10, 5100000), (4, 4), time="2024-06-19", source_ids=["x"]
    )
    batch = tp.collate(
        [{"image": torch.rand(3, 4, 4), "mask": torch.ones(4, 4, dtype=torch.int64), "meta": meta}] * 2
    )
    out = numpy_batch(batch)
    assert np.shares_memory(out["image"], batch["image"].numpy())
    assert out["meta"] == [meta, meta]
    last = numpy_batch(batch, channels_last=True)
    assert last["image"].shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(last["image"], np.moveaxis(batch["image"].numpy(), 1, -1))
    assert last["mask"].shape == (2, 4, 4)  # only image has a channel axis
    ragged = numpy_batch(tp.collate([{"boxes": torch.zeros(n, 4)} for n in (1, 3)]))
    assert [b.shape for b in ragged["boxes"]] == [(1, 4), (3, 4)]


def test_numpy_batch_refuses_bfloat16() -> None:
    with pytest.raises(tp.InvalidArgumentError, match="bfloat16"):
        numpy_batch({"image": torch.zeros(1, 2, dtype=torch.bfloat16)})


@pytest.mark.parametrize(
    "meta",
    [
        geo_meta("EPSG:32631", (10, 0, 600000, 0, -10, 5100000), (2, 2)),
        geo_meta(
            "EPSG:4326",
            (0.1, 0, -180.0, 0, -0.1, 90.0),
            (3, 1),
            time=("2024-01-01", "2024-02-01"),
            source_ids=["a, b", "ü/ç"],
        ),
    ],
)
def test_meta_round_trips_through_a_string(meta: Any) -> None:
    assert decode_meta(encode_meta(meta)) == meta
    assert decode_meta(encode_meta(meta).encode()) == meta


def test_meta_that_is_not_plain_python_is_refused() -> None:
    with pytest.raises(tp.InvalidArgumentError, match="plain Python"):
        encode_meta({"crs": object()})
    with pytest.raises(tp.InvalidArgumentError, match="not an encoded"):
        decode_meta("[1, 2]")


@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_together_yield_every_element_once(workers: int) -> None:
    seen: list[int] = []
    for rank in range(3):
        batches = build_loader(
            tp.from_items(range(20)), rank=rank, world_size=3, batch_size=4, workers=workers
        )
        with batches:
            seen += [x for b in batches for x in b.tolist()]
    assert sorted(seen) == list(range(20))


def test_build_loader_checks_its_arguments() -> None:
    made = tp.loader(tp.from_items(range(3)), batch_size=2)
    assert build_loader(made) is made
    with pytest.raises(tp.InvalidArgumentError, match="pass the pipe"):
        build_loader(made, batch_size=3)
    with pytest.raises(tp.InvalidArgumentError, match="both rank"):
        build_loader(tp.from_items(range(3)), rank=0)
    with pytest.raises(tp.InvalidArgumentError, match="even=True"):
        build_loader(tp.from_items(range(3)), rank=0, world_size=2, even=True)


def test_the_stream_runs_pass_after_pass_and_resumes_exactly() -> None:
    def make() -> BatchStream:
        return BatchStream(build_loader(tp.run.shuffled_items(range(10), seed=1), batch_size=3, workers=2))

    stream = make()
    got = [stream.next().tolist() for _ in range(5)]  # 4 batches per pass: one pass and one batch
    assert sorted(x for b in got[:4] for x in b) == list(range(10))
    assert got[4] != got[0]  # the second pass is shuffled anew
    state = stream.state_dict()
    rest = [stream.next().tolist() for _ in range(6)]
    stream.close()
    resumed = make()
    resumed.load_state_dict(state)
    assert [resumed.next().tolist() for _ in range(6)] == rest
    resumed.close()


def test_the_stream_refuses_an_empty_pass() -> None:
    stream = BatchStream(build_loader(tp.from_items([]), batch_size=2))
    with pytest.raises(tp.InvalidArgumentError, match="no batch"):
        stream.next()


def test_the_stream_hands_each_batch_to_one_thread() -> None:
    from concurrent.futures import ThreadPoolExecutor

    stream = BatchStream(build_loader(tp.from_items(range(40)), batch_size=2, workers=2))
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda _: stream.next().tolist(), range(20)))
    stream.close()
    assert sorted(x for b in batches for x in b) == list(range(40))
