"""One DDP rank reading a materialized store: ``python ddp_reader.py RANK WORLD PORT STORE OUT``.

Writes what the rank saw as JSON: the samples' ids with ``tp.loader`` (2 worker
threads, shuffled), the batches with ``even=True``, and whether a resume from
a saved loader state gives the rest of the epoch.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta


def main(rank: int, world: int, port: int, store: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),
    )
    import terrapipe as tp
    import terrapipe.dist

    def ids(batch: dict) -> list[str]:
        return [meta["source_ids"][0] for meta in batch["meta"]]

    seen: dict[str, object] = {"rank": rank}
    with tp.loader(tp.dist.read_samples(store, shuffle=True, seed=1), batch_size=3, workers=2) as batches:
        seen["ids"] = [i for b in batches for i in ids(b)]
    with tp.loader(tp.dist.read_samples(store, shuffle=True), batch_size=2, workers=2, even=True) as batches:
        seen["even"] = [ids(b) for b in batches]
    with tp.loader(tp.dist.read_samples(store, shuffle=True), batch_size=2, workers=2) as first:
        full = [ids(b) for b in first]
        first.set_epoch(0)
        it = iter(first)
        head = [ids(next(it)) for _ in range(2)]
        state = first.state_dict()
    with tp.loader(tp.dist.read_samples(store, shuffle=True), batch_size=2, workers=2) as second:
        second.load_state_dict(state)
        seen["resume_equal"] = head + [ids(b) for b in second] == full
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
