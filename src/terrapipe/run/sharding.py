"""Whether a pipe can be split into shards, and telling torch's ``sharding_filter`` which shard to keep.

A pipe is split among loader workers, DDP ranks and materialize partitions
by its own sharding stages: terrapipe's shard-capable stages (``from_items``,
a chipper, ``sample_windows``...) ask :func:`~terrapipe.core.shard.shard_info`
which shard they are in, while torch's ``sharding_filter`` must be told
(:func:`~terrapipe.core.pipe.shard_torch_filters`). Whoever runs a copy of
a pipe as one shard (a loader worker, :class:`~terrapipe.run.inline.InlineShard`,
a materialize partition) calls :func:`apply_torch_sharding` on it first;
:func:`can_shard` says whether splitting it can work at all, and
:func:`check_single_sharding` refuses a pipe that would be split twice (a
``sharding_filter`` downstream of a terrapipe stage that shards: each shard
would keep a share of its share).

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

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe, Stage, is_sharding_filter, iter_graph, shard_torch_filters
from terrapipe.core.shard import ShardInfo

__all__ = ["apply_torch_sharding", "can_shard", "check_single_sharding"]


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


def _shards_itself(stage: IterDataPipe[Any]) -> bool:
    """Whether ``stage`` splits its work when run as a shard (no ``sharding_filter`` upstream of it)."""
    if not (isinstance(stage, Stage) and stage.can_shard and stage.shard is not False):
        return False
    return not any(is_sharding_filter(dp) for dp in iter_graph(stage) if dp is not stage)


def check_single_sharding(pipe: IterDataPipe[Any]) -> None:
    """Refuse a pipe that a torch ``sharding_filter`` would split a second time.

    A terrapipe stage that shards (``from_items``, a chipper...) already
    hands each shard its share; a ``sharding_filter`` downstream of it would
    then keep one element in ``count`` of that share, and the rest of the
    data would be lost silently. (A ``sharding_filter`` upstream of the
    stage takes precedence: the stage passes everything through.)

    Parameters
    ----------
    pipe
        The pipe to run in several shards.

    Raises
    ------
    InvalidArgumentError
        Naming the stage and what to change.

    Examples
    --------
    >>> import terrapipe as tp
    >>> check_single_sharding(tp.from_items([1, 2], shard=False).sharding_filter())
    >>> check_single_sharding(tp.from_items([1, 2]).sharding_filter())
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: the pipe would be sharded twice: FromItems shards ...
    """
    for dp in iter_graph(pipe):
        if not is_sharding_filter(dp):
            continue
        for stage in iter_graph(dp):
            if stage is not dp and _shards_itself(stage):
                name = type(stage).__name__
                raise InvalidArgumentError(
                    f"the pipe would be sharded twice: {name} shards its work among the workers and ranks, "
                    f"and the sharding_filter after it would keep only a share of each share (the rest "
                    f"lost); drop the sharding_filter ({name} shards by itself), or build {name} with "
                    "shard=False so that the sharding_filter alone splits the elements"
                )


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

    Raises
    ------
    InvalidArgumentError
        When ``info`` is one of several shards and the pipe would be split
        twice (:func:`check_single_sharding`).

    Examples
    --------
    >>> import terrapipe as tp
    >>> from terrapipe.core.shard import ShardInfo
    >>> pipe = tp.from_items(range(5), shard=False).sharding_filter()
    >>> apply_torch_sharding(pipe, ShardInfo(rank=1, world_size=2))
    >>> list(pipe)
    [1, 3]
    """
    if info.count > 1:
        check_single_sharding(pipe)
    shard_torch_filters(pipe, info.count, info.index)
