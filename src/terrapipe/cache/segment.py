"""The stages a cache covers, and the description of their configuration.

A cache covers the *segment* between the nearest
:class:`~terrapipe.cache.point.CachePoint` upstream of it and itself. The
segment must be a plain chain (each stage has exactly one source) of stages
that treat each element on its own: what they yield for one element must not
depend on the elements before or after it, since a miss runs them for one
element at a time. Stages that mix elements are refused with an error that
says where to move the cache: shuffles, batches, ``header``, ``cycle``,
``enumerate``, zips, forks, ``sharding_filter``, another cache, and any stage
class that sets ``element_wise = False``.

The configuration of a stage is described by :func:`describe_stage`: its class
and the public attributes it keeps its options in (and ``_name`` attributes
named like a constructor argument), minus execution-only options that do not
change what it yields (:data:`EXECUTION_ONLY`: worker counts, read-ahead,
locks, ``shard``, ``on_error``...) and its source pipes. A stage can describe
itself with a ``cache_config()`` method returning any
:func:`~terrapipe.cache.canonical.canonical`-able value.

Examples
--------
>>> import terrapipe as tp
>>> import terrapipe.cache
>>> point = tp.from_items(["a.tif"]).cache_point()
>>> segment = find_segment(point.map(str.upper).filter(bool))
>>> [type(s).__name__ for s in segment.stages]
['MapperIterDataPipe', 'FilterIterDataPipe']
>>> describe_stage(segment.stages[0])["stage"]
'torch.utils.data.datapipes.iter.callable.MapperIterDataPipe'
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from terrapipe.cache.canonical import Json, UnkeyableValueError, canonical
from terrapipe.cache.point import CachePoint
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import TORCH_MIXING_TYPES, IterDataPipe, source_pipes
from terrapipe.core.stats import StageStats

__all__ = ["EXECUTION_ONLY", "Segment", "SegmentCover", "describe_stage", "find_segment", "segment_config"]

#: Attribute names that never change what a stage yields, left out of its description.
EXECUTION_ONLY = frozenset(
    {
        "shard",
        "workers",
        "num_workers",
        "threads",
        "num_threads",
        "max_workers",
        "read_ahead",
        "prefetch",
        "block_cache_bytes",
        "lock",
        "on_error",
        "timeout",
        "stats",
        "counters",
    }
)


class SegmentCover:
    """Base of the stages that cover a segment (the cache stage): none may cover another.

    :func:`find_segment` stops at one with an error; it lives here, below the
    cache stage, so that this module never imports the stage's.
    """


@dataclass(frozen=True)
class Segment:
    """The stages a cache covers.

    Attributes
    ----------
    point
        The :class:`~terrapipe.cache.point.CachePoint` the segment starts at.
    stages
        The stages below it, from the point down to the cache's source.
    """

    point: CachePoint[Any]
    stages: tuple[IterDataPipe[Any], ...]


@functools.cache
def _mixing_types() -> tuple[type, ...]:
    from terrapipe.core.cycle import Cycle
    from terrapipe.core.enumerate import Enumerate
    from terrapipe.core.header import Header
    from terrapipe.core.zip_longest import ZipLongest

    return (*TORCH_MIXING_TYPES, Cycle, Enumerate, Header, ZipLongest)


def _parents(dp: IterDataPipe[Any]) -> list[IterDataPipe[Any]]:
    return source_pipes(dp)


def find_segment(source: IterDataPipe[Any]) -> Segment:
    """Walk up from a cache's source to the nearest ``cache_point`` and check the stages between.

    Parameters
    ----------
    source
        The pipe the cache reads.

    Returns
    -------
    Segment
        The point and the stages.

    Raises
    ------
    InvalidArgumentError
        When there is no ``cache_point`` upstream, nothing between it and the
        cache, a stage with several sources, or a stage that mixes elements.
    """
    chain: list[IterDataPipe[Any]] = []
    node = source
    while not isinstance(node, CachePoint):
        name = type(node).__name__
        if isinstance(node, SegmentCover):
            msg = f"a cache cannot cover another cache ({name}); put a cache_point() after the first cache"
            raise InvalidArgumentError(msg)
        if isinstance(node, _mixing_types()) or getattr(type(node), "element_wise", None) is False:
            msg = (
                f"the cache covers a {name}, which mixes elements (a miss runs the covered stages for one "
                f"element at a time); put the cache_point() after the {name}, or the cache before it"
            )
            raise InvalidArgumentError(msg)
        parents = _parents(node)
        if not parents:
            msg = (
                "cache() needs a cache_point() upstream: mark the pipe whose elements key the entries, e.g. "
                "tp.from_items(paths).cache_point().read_raster()....cache(store); the stages between the "
                "point and the cache are what is cached"
            )
            raise InvalidArgumentError(msg)
        if len(parents) > 1:
            msg = (
                f"the cache covers a {name}, which reads {len(parents)} pipes; a cache covers a chain of "
                f"stages with one source each: put the cache_point() after the {name}"
            )
            raise InvalidArgumentError(msg)
        chain.append(node)
        node = parents[0]
    if not chain:
        msg = "nothing to cache: the cache comes right after its cache_point(); put the stages to cache between them"
        raise InvalidArgumentError(msg)
    return Segment(point=node, stages=tuple(reversed(chain)))


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def describe_stage(stage: IterDataPipe[Any]) -> Json:
    """Describe one stage's configuration (see the module doc).

    Raises
    ------
    UnkeyableValueError
        For an option with no stable description.
    """
    cls = type(stage)
    method = getattr(stage, "cache_config", None)
    if callable(method):
        return {
            "stage": _qualname(cls),
            "config": canonical(method(), where=f"{cls.__name__}.cache_config()"),
        }
    try:
        params = set(inspect.signature(cls.__init__).parameters) - {"self"}
    except (TypeError, ValueError):
        params = set()
    options: dict[str, Json] = {}
    for attr, value in vars(stage).items():
        name = attr[1:] if attr.startswith("_") and attr[1:] in params else attr
        if name.startswith("_") or name in EXECUTION_ONLY:
            continue
        if isinstance(value, IterDataPipe | StageStats):
            continue
        options[name] = canonical(value, where=f"{cls.__name__}.{name}")
    return {"stage": _qualname(cls), "config": {"dict": sorted([k, v] for k, v in options.items())}}  # type: ignore[dict-item]


def segment_config(stages: Sequence[IterDataPipe[Any]], *, version: str | None = None) -> Json:
    """Describe the configuration of a segment's stages, top to bottom.

    Parameters
    ----------
    stages
        The stages.
    version
        A label the user gives the configuration; it is part of the
        description, and stands in for the stages that cannot be described.

    Returns
    -------
    Json
        The description.

    Raises
    ------
    UnkeyableValueError
        For a stage that cannot be described when no ``version`` is given.
    """
    described: list[Json] = []
    for stage in stages:
        try:
            described.append(describe_stage(stage))
        except UnkeyableValueError:
            if version is None:
                raise
            described.append({"stage": _qualname(type(stage)), "config": "described by version"})
    return {"stages": described, "version": version}
