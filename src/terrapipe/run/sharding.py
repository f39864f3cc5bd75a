"""Whether a pipe can be split into shards, and telling torch's ``sharding_filter`` which shard to keep.

A pipe is split among loader workers, DDP ranks and materialize partitions
by its own sharding stages: terrapipe's shard-capable stages (``from_items``,
a chipper, ``sample_windows``...) ask :func:`~terrapipe.core.shard.shard_info`
which shard they are in, while torch's ``sharding_filter`` must be told
(:func:`~terrapipe.core.pipe.shard_torch_filters`). Whoever runs a copy of
a pipe as one shard (a loader worker, :class:`~terrapipe.run.inline.InlineShard`,
a materialize partition) calls :func:`apply_torch_sharding` on it first;
:func:`can_shard` says whether splitting it can work at all.

Examples
--------
>>> import terrapipe as tp
>>> from terrapipe.core.shard import ShardInfo
>>> pipe = tp.from_items(range(6), shard=False).sharding_filter()
>>> can_shard(pipe)
True
>>> apply_torch_sharding(pipe, ShardInfo(worker_id=1, num_workers=2))
>>> list(pipe)
[1, 3, 5]
"""

from __future__ import annotations

from typing import Any

from terrapipe.core.pipe import IterDataPipe, Stage, is_sharding_filter, iter_graph, shard_torch_filters
from terrapipe.core.shard import ShardInfo

__all__ = ["apply_torch_sharding", "can_shard"]


def can_shard(pipe: IterDataPipe[Any]) -> bool:
    """Whether some stage of ``pipe`` splits its work into shards.

    A pipe without one yields every element in every shard, so running it
    in several workers, ranks or partitions would repeat its elements.

    Parameters
    ----------
    pipe
        The pipe.

    Returns
    -------
    bool
        ``True`` when the graph holds a torch ``sharding_filter`` or a
        shard-capable stage (``can_shard = True``) not built with ``shard=False``.

    Examples
    --------
    >>> import terrapipe as tp
    >>> can_shard(tp.from_items([1, 2])), can_shard(tp.from_items([1, 2], shard=False))
    (True, False)
    >>> can_shard(tp.from_items([1, 2], shard=False).sharding_filter())
    True
    """
    for dp in iter_graph(pipe):
        if is_sharding_filter(dp):
            return True
        if isinstance(dp, Stage) and dp.can_shard and dp.shard is not False:
            return True
    return False


def apply_torch_sharding(pipe: IterDataPipe[Any], info: ShardInfo) -> None:
    """Make every torch ``sharding_filter`` in ``pipe`` keep shard ``info.index`` of ``info.count``.

    terrapipe's own sharding stages read their shard from
    :func:`~terrapipe.core.shard.shard_info` and need nothing; pipes without
    a ``sharding_filter`` are left untouched. The graph is changed in place,
    under :data:`~terrapipe.core.pipe.GRAPH_LOCK`, so call it on the copy the
    shard runs.

    Parameters
    ----------
    pipe
        The pipe (changed in place).
    info
        The shard this copy runs.

    Examples
    --------
    >>> import terrapipe as tp
    >>> from terrapipe.core.shard import ShardInfo
    >>> pipe = tp.from_items(range(5), shard=False).sharding_filter()
    >>> apply_torch_sharding(pipe, ShardInfo(rank=1, world_size=2))
    >>> list(pipe)
    [1, 3]
    """
    shard_torch_filters(pipe, info.count, info.index)
