"""One rank of the DDP test: ``python ddp_worker.py RANK WORLD PORT OUT``; writes what it saw as JSON."""

from __future__ import annotations

import json
import sys
from datetime import timedelta


def main(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),
    )
    import terrapipe as tp
    from terrapipe.run import loader, shuffled_items

    seen: dict[str, object] = {"rank": rank}
    with loader(tp.from_items(range(50)), workers=2) as items:
        seen["threads"] = [int(x) for x in items]
    with loader(tp.from_items(range(50)), workers=0) as items:
        seen["inline"] = [int(x) for x in items]
    with loader(tp.from_items(range(50)), workers=2, method="process") as items:
        seen["processes"] = [int(x) for x in items]
    with loader(
        shuffled_items(range(50), seed=3), workers=2, batch_size=2, drop_last=True, even=True
    ) as batches:
        seen["even_len"] = len(batches)
        seen["even"] = [b.tolist() for b in batches]
        seen["even_epoch1"] = [b.tolist() for b in batches]
    # resume under DDP: stop after 3 batches, resume in a new loader
    with loader(shuffled_items(range(50), seed=3), workers=2, batch_size=4) as first:
        full = [b.tolist() for b in first]
        first.set_epoch(0)
        it = iter(first)
        head = [next(it).tolist() for _ in range(3)]
        state = first.state_dict()
    with loader(shuffled_items(range(50), seed=3), workers=2, batch_size=4) as second:
        second.load_state_dict(state)
        seen["resume_equal"] = head + [b.tolist() for b in second] == full
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
