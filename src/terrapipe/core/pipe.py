"""The pipe model: the one module that touches torch's ``IterDataPipe``.

Every terrapipe stage is a small :class:`Stage` (an ``IterDataPipe``) registered
under a functional name with :func:`register`, so both forms work::

    tp.from_items([1, 2, 3]).header(2)        # functional form
    tp.Header(tp.from_items([1, 2, 3]), 2)    # class form

torch core's own pipes (``map``, ``filter``, ``shuffle``, ``batch``, ``collate``,
``zip``, ``fork``, ``mux``, ``demux``, ``sharding_filter``) chain with ours.
torchdata removed its DataPipes in 0.10 and torch core keeps ``IterDataPipe``
frozen; keeping every direct use here means a move to another base touches one
file.

Sharding
--------
Stages that can split work across DataLoader workers and DDP ranks take
``shard="auto" | True | False``. In a chain, exactly one stage shards: the most
downstream one whose ``shard`` is not ``False`` (it claims sharding when its
iteration starts and tells the ones upstream to pass everything through). A
torch ``sharding_filter`` upstream takes precedence; do not put one downstream
of a terrapipe stage that shards.

Examples
--------
>>> import terrapipe as tp
>>> pipe = tp.from_items(range(5)).map(lambda x: x * 10).header(3)
>>> list(pipe)
[0, 10, 20]
>>> len(pipe)
3
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, ClassVar, Literal, TypeVar

from torch.utils.data import IterDataPipe
from torch.utils.data.datapipes._decorator import functional_datapipe
from torch.utils.data.datapipes.iter.sharding import ShardingFilterIterDataPipe
from torch.utils.data.graph import DataPipeGraph

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.stats import StageStats

__all__ = [
    "GRAPH_LOCK",
    "IterDataPipe",
    "ShardMode",
    "Stage",
    "iter_graph",
    "pipe_graph",
    "register",
    "registered_names",
    "set_epoch",
    "source_pipes",
]

T_co = TypeVar("T_co", covariant=True)
S = TypeVar("S", bound=type[IterDataPipe[Any]])

ShardMode = Literal["auto"] | bool


class _GraphLock:
    """A re-entrant lock, held across ``fork()`` and renewed in the child.

    torch's ``traverse_dps`` finds a pipe's sources by pickling it with a hook
    installed *on the IterDataPipe class*, for every thread, while it runs: two
    threads walking graphs at once fail ("Attempt to override existing
    reduce_ex_hook"), and a pipe copied by one thread while another walks comes
    out wrong. terrapipe walks graphs without pickling (:func:`pipe_graph`),
    but torch's own helpers (``apply_sharding``, the DataLoader's seeding)
    still use ``traverse_dps``: every call to them, and every deep copy or
    pickling of a pipe from a thread, takes :data:`GRAPH_LOCK`.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> _GraphLock:
        self._lock.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()

    def _before_fork(self) -> None:
        self._lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._lock.release()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.RLock()


#: Held while walking, copying or pickling pipe graphs (see :class:`_GraphLock`).
GRAPH_LOCK = _GraphLock()
os.register_at_fork(
    before=GRAPH_LOCK._before_fork,
    after_in_parent=GRAPH_LOCK._after_fork_in_parent,
    after_in_child=GRAPH_LOCK._after_fork_in_child,
)


def register(name: str) -> Callable[[S], S]:
    """Register a stage class under a functional name.

    Parameters
    ----------
    name
        The method name the stage gets on every pipe (``pipe.<name>(...)``).

    Returns
    -------
    Callable
        A class decorator.

    Raises
    ------
    InvalidArgumentError
        If the name is already taken (by torch or another stage).

    Examples
    --------
    >>> from terrapipe.core.pipe import register, Stage
    >>> @register("double_it_doctest")
    ... class DoubleIt(Stage[int]):
    ...     def __init__(self, source):
    ...         super().__init__()
    ...         self.source = source
    ...     def __iter__(self):
    ...         for x in self.source:
    ...             yield 2 * x
    >>> import terrapipe as tp
    >>> list(tp.from_items([1, 2]).double_it_doctest())
    [2, 4]
    """

    def decorate(cls: S) -> S:
        if name in IterDataPipe.functions:
            msg = f"functional name {name!r} is already registered; pick another name for {cls.__name__}"
            raise InvalidArgumentError(msg)
        functional_datapipe(name)(cls)
        return cls

    return decorate


def registered_names() -> list[str]:
    """Return every functional name any pipe answers to, sorted.

    Examples
    --------
    >>> from terrapipe.core.pipe import registered_names
    >>> {"header", "map", "sharding_filter"} <= set(registered_names())
    True
    """
    return sorted(name for name in IterDataPipe.functions if not name.startswith("_"))


class Stage(IterDataPipe[T_co]):
    """Base class of terrapipe stages.

    A stage takes its source pipe first and its own options as keywords; it
    keeps per-pass state in attributes. It offers:

    - ``stats``: a :class:`~terrapipe.core.stats.StageStats` counting elements,
      skipped errors and bytes read in this process;
    - ``set_epoch(epoch)``: the epoch the next pass uses (shuffles and samplers
      mix it into their seed); without a call, each pass uses the previous
      pass's epoch + 1, starting at 0;
    - sharding coordination for stages that split work (see the module doc).
    """

    #: Whether this stage can split its work across workers and ranks.
    can_shard: ClassVar[bool] = False
    #: Whether this stage holds no position at all (a pure function of its
    #: sources' elements), so resuming needs only its sources' states.
    stateless: ClassVar[bool] = False
    #: Attributes that hold data, never source pipes (skipped by :func:`source_pipes`).
    graph_ignore: ClassVar[frozenset[str]] = frozenset()
    # torch's iterator hook asks at every element whether a pipe is a fork/demux child
    # (``hasattr``, which goes through IterDataPipe.__getattr__ and raises inside when the
    # attribute is missing); answering from the class saves microseconds per element per stage.
    _is_child_datapipe: ClassVar[bool] = False

    def __init__(self) -> None:
        self.stats = StageStats(name=type(self).__name__)
        self._next_epoch = 0
        self._shard_superseded = False
        self.shard: ShardMode = False

    # -- epochs ---------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that the next pass over this stage uses."""
        if epoch < 0:
            raise InvalidArgumentError(f"epoch must be >= 0, got {epoch!r}")
        self._next_epoch = int(epoch)

    def _begin_epoch(self) -> int:
        epoch = self._next_epoch
        self._next_epoch += 1
        return epoch

    # -- sharding -------------------------------------------------------
    def _claim_sharding(self) -> bool:
        """Decide, at the start of a pass, whether this stage shards.

        Returns ``True`` when this stage must split its work. Stages upstream
        that could shard are told to pass everything through.
        """
        if not self.can_shard or self.shard is False or self._shard_superseded:
            return False
        upstream = [dp for dp in iter_graph(self) if dp is not self]
        if any(isinstance(dp, ShardingFilterIterDataPipe) for dp in upstream):
            return False
        for dp in upstream:
            if isinstance(dp, Stage) and dp.can_shard:
                dp._shard_superseded = True
        return True

    def __iter__(self) -> Iterator[T_co]:  # pragma: no cover - subclasses implement
        raise NotImplementedError


#: How deep :func:`source_pipes` looks into containers held by a pipe.
_CONTAINER_DEPTH = 3


def source_pipes(pipe: IterDataPipe[Any]) -> list[IterDataPipe[Any]]:
    """Return the pipes that ``pipe`` reads from, in attribute order, without pickling.

    torch's ``traverse_dps`` finds sources by pickling a pipe with a hook,
    which copies every list and array the pipe holds and fails on elements
    that cannot be pickled. This walk looks at the pipe's attributes instead,
    and into the lists, tuples, sets and dict values they hold (three levels
    deep), which is where torch's and terrapipe's stages keep their sources. A
    stage can name attributes that never hold pipes in its
    ``graph_ignore`` class attribute (``from_items`` ignores its items).

    Examples
    --------
    >>> import terrapipe as tp
    >>> a, b = tp.from_items([1]), tp.from_items([2])
    >>> source_pipes(a.zip(b)) == [a, b]
    True
    """
    ignore: frozenset[str] = getattr(type(pipe), "graph_ignore", frozenset())
    found: list[IterDataPipe[Any]] = []
    seen: set[int] = set()

    def visit(value: Any, depth: int) -> None:
        if isinstance(value, IterDataPipe):
            if id(value) not in seen:
                seen.add(id(value))
                found.append(value)
        elif depth < _CONTAINER_DEPTH and isinstance(value, list | tuple | set | frozenset):
            for item in value:
                visit(item, depth + 1)
        elif depth < _CONTAINER_DEPTH and isinstance(value, dict):
            for item in value.values():
                visit(item, depth + 1)

    for name, value in vars(pipe).items():
        if name not in ignore and value is not pipe:
            visit(value, 0)
    return found


def pipe_graph(pipe: IterDataPipe[Any]) -> DataPipeGraph:
    """Return the graph ending at ``pipe`` in torch's ``DataPipeGraph`` form, without pickling.

    The graph maps ``id(pipe)`` to ``(pipe, graph of its sources)``, like
    ``torch.utils.data.graph.traverse_dps``; it is built with
    :func:`source_pipes`, so it works with unpicklable elements and costs
    nothing for large in-memory item lists.

    Examples
    --------
    >>> import terrapipe as tp
    >>> pipe = tp.from_items([1]).header(1)
    >>> [(type(dp).__name__, len(sub)) for dp, sub in pipe_graph(pipe).values()]
    [('Header', 1)]
    """
    cache: dict[int, DataPipeGraph] = {}

    def build(dp: IterDataPipe[Any], path: frozenset[int]) -> DataPipeGraph:
        key = id(dp)
        if key in cache:
            return {key: (dp, cache[key])}  # type: ignore[dict-item]
        sub: DataPipeGraph = {}
        for parent in source_pipes(dp):
            if id(parent) not in path:  # a pipe that refers back downstream is not its own source
                sub.update(build(parent, path | {key}))
        cache[key] = sub
        return {key: (dp, sub)}  # type: ignore[dict-item]

    return build(pipe, frozenset())


def iter_graph(pipe: IterDataPipe[Any]) -> list[IterDataPipe[Any]]:
    """Return every pipe in the graph ending at ``pipe``, downstream first.

    Examples
    --------
    >>> import terrapipe as tp
    >>> pipe = tp.from_items([1]).map(str).header(1)
    >>> [type(p).__name__ for p in iter_graph(pipe)]
    ['Header', 'MapperIterDataPipe', 'FromItems']
    """
    seen: set[int] = set()
    out: list[IterDataPipe[Any]] = []

    def walk(graph: DataPipeGraph) -> None:
        for key, (dp, sub) in graph.items():
            if key in seen:
                continue
            seen.add(key)
            out.append(dp)  # type: ignore[arg-type]
            walk(sub)

    walk(pipe_graph(pipe))
    return out


def set_epoch(pipe: IterDataPipe[Any], epoch: int) -> None:
    """Set the epoch on every stage of a pipe (like ``DistributedSampler.set_epoch``).

    Call it before each epoch when you drive a plain ``DataLoader``;
    ``tp.loader`` does it for you.

    Examples
    --------
    >>> import terrapipe as tp
    >>> pipe = tp.from_items([1, 2]).header(1)
    >>> tp.set_epoch(pipe, 3)
    >>> pipe._next_epoch
    3
    """
    for dp in iter_graph(pipe):
        method = getattr(type(dp), "set_epoch", None)
        if method is not None:
            method(dp, epoch)
