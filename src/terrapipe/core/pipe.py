"""The pipe model: the one module that touches torch's ``IterDataPipe``.

Every terrapipe stage is a small :class:`Stage` (an ``IterDataPipe``) registered
under a functional name with :func:`register`, so both forms work::

    tp.from_items([1, 2, 3]).header(2)        # functional form
    tp.core.Header(tp.from_items([1, 2, 3]), 2)    # class form

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

One pass at a time
------------------
A stage runs one pass at a time: its per-pass state lives in attributes, and
torch allows one iterator per pipe. Every :class:`Stage` checks this when a
pass starts (at the first ``next()``):

- a pass started from another thread while one is running is refused at once
  with :class:`~terrapipe.core.errors.ConcurrentIterationError`, before it
  reads anything; the running pass goes on undisturbed (a pass whose thread
  has ended counts as abandoned);
- a pass started in the thread that runs the current one replaces it (torch's
  rule): the old iterator raises ``ConcurrentIterationError`` at its next
  element, never an element twice. Two branches reading one stage (a source
  shared by ``zip``-ped branches) therefore fail; use ``.fork()``.

:func:`check_not_iterated_elsewhere` refuses to copy a pipe that another
thread is iterating (``tp.loader`` copies pipes for its workers). torch's own
pipes (``map``, ``filter``, ``batch``...) keep only torch's rule: when one of
them is the last stage, a second thread's ``iter()`` still invalidates the
first thread's iterator (torch's ``RuntimeError``), while the second thread is
refused at the first terrapipe stage it reaches.

torch's internals
-----------------
This is the one module that touches torch's DataPipe machinery; the rest of
terrapipe goes through the names below. Each access is checked by a test in
``tests/core/test_pipe_internals.py`` that fails when a torch release changes
it, and an import that a torch release drops raises
:class:`~terrapipe.core.errors.MissingDependencyError` naming it (checked with
torch 2.4 to 2.13, :data:`TORCH_CHECKED`):

- ``IterDataPipe`` and ``functional_datapipe`` (public, ``torch.utils.data``);
  ``IterDataPipe.functions``, the registry of functional names, and the
  ``functools.partial(class_function, cls, ...)`` torch stores there
  (:func:`register`, :func:`registered_names`, :func:`registered_class`);
- the classes of torch core's pipes, from ``torch.utils.data.datapipes.iter``
  (:data:`TORCH_STATELESS_TYPES`, :data:`TORCH_MIXING_TYPES`,
  :func:`is_sharding_filter`), and the private ``_ChildDataPipe`` of
  ``fork``/``demux`` outputs (in :data:`TORCH_MIXING_TYPES`);
- ``torch.utils.data.graph_settings.apply_sharding``
  (:func:`shard_torch_filters`) and the ``{id: (pipe, sources)}`` form of
  ``torch.utils.data.graph.DataPipeGraph`` (:data:`PipeGraph`);
- torch's iterator hook: the private ``_is_child_datapipe`` attribute it asks
  every pipe for (answered from :class:`Stage`'s class), and the
  ``RuntimeError`` it raises in an iterator that a newer ``iter()`` of the same
  pipe invalidated (turned into ``ConcurrentIterationError``).

Other libraries' private names (and torch's outside the DataPipe machinery)
are reached from :mod:`terrapipe._compat` only.

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

import contextvars
import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, ClassVar, Literal, TypeAlias, TypeVar

import torch
from torch.utils.data import IterDataPipe, functional_datapipe

from terrapipe.core.errors import (
    ConcurrentIterationError,
    InvalidArgumentError,
    MissingDependencyError,
    TerrapipeError,
)
from terrapipe.core.stats import StageStats

#: The torch releases whose DataPipe machinery this module was checked against (lowest, highest).
TORCH_CHECKED = ("2.4", "2.13")


def _torch_changed(what: str) -> str:
    return (
        f"torch {torch.__version__} has no {what}, which terrapipe's pipe model uses (checked with torch "
        f"{TORCH_CHECKED[0]} to {TORCH_CHECKED[1]}); install a torch in that range, or a terrapipe release "
        "that supports this torch"
    )


try:
    from torch.utils.data.datapipes.iter import (
        Batcher,
        Concater,
        Demultiplexer,
        Filter,
        Forker,
        Grouper,
        Mapper,
        Multiplexer,
        Sampler,
        ShardingFilter,
        Shuffler,
        Zipper,
    )
    from torch.utils.data.datapipes.iter.combining import _ChildDataPipe
    from torch.utils.data.graph_settings import apply_sharding
except ImportError as _err:  # pragma: no cover - only with a torch that moved them
    raise MissingDependencyError(_torch_changed(f"{_err.name or 'name'} ({_err})")) from _err
if not isinstance(getattr(IterDataPipe, "functions", None), dict):  # pragma: no cover - same
    raise MissingDependencyError(_torch_changed("IterDataPipe.functions (the registry of functional names)"))

__all__ = [
    "GRAPH_LOCK",
    "TORCH_CHECKED",
    "TORCH_MIXING_TYPES",
    "TORCH_STATELESS_TYPES",
    "IterDataPipe",
    "PipeGraph",
    "ShardMode",
    "Stage",
    "check_not_iterated_elsewhere",
    "is_sharding_filter",
    "iter_graph",
    "pass_context",
    "pipe_graph",
    "register",
    "registered_class",
    "registered_names",
    "set_epoch",
    "shard_torch_filters",
    "source_pipes",
]

T_co = TypeVar("T_co", covariant=True)
S = TypeVar("S", bound=type[IterDataPipe[Any]])

ShardMode = Literal["auto"] | bool

#: A pipe graph in torch's ``DataPipeGraph`` form: ``{id(pipe): (pipe, graph of its sources)}``.
PipeGraph: TypeAlias = dict[int, tuple[IterDataPipe[Any], "PipeGraph"]]

#: torch core pipes that hold no position (``map``, ``filter``, ``zip``): element(s) in, element out in
#: lockstep, so resuming their sources resumes them.
TORCH_STATELESS_TYPES: tuple[type[IterDataPipe[Any]], ...] = (Mapper, Filter, Zipper)

#: torch core pipes whose output for one element depends on other elements, or that split or join
#: streams: ``batch``, ``concat``, ``demux``, ``fork`` (and the outputs of both, torch's private
#: ``_ChildDataPipe``), ``groupby``, ``mux``, ``sampler``, ``sharding_filter``, ``shuffle``, ``zip``.
TORCH_MIXING_TYPES: tuple[type[IterDataPipe[Any]], ...] = (
    Batcher,
    Concater,
    Demultiplexer,
    Forker,
    Grouper,
    Multiplexer,
    Sampler,
    ShardingFilter,
    Shuffler,
    Zipper,
    _ChildDataPipe,
)


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
        self._hooked = False

    def __enter__(self) -> _GraphLock:
        if not self._hooked:  # the fork hooks, on first use: importing terrapipe installs none
            self._hook()
        self._lock.acquire()
        return self

    def _hook(self) -> None:
        # No lock around this: two threads may both register, which is harmless (an RLock taken and
        # released twice around the fork, a lock renewed twice in the child).
        self._hooked = True
        os.register_at_fork(
            before=self._before_fork,
            after_in_parent=self._after_fork_in_parent,
            after_in_child=self._after_fork_in_child,
        )

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


class _Passes:
    """Which thread runs the current pass of each stage (weakly keyed: copies and pickles never see it)."""

    def __init__(self) -> None:
        # Re-entrant: the garbage collector can finalise an abandoned pass (its ``finally`` calls
        # _end_pass) on this thread while _begin_pass holds the lock, in the middle of the weak
        # dictionary's insert; a plain Lock deadlocked there (seen in CI, test_bare_errors).
        self._lock = threading.RLock()
        self._hooked = False
        self.running: weakref.WeakKeyDictionary[Any, _Pass] = weakref.WeakKeyDictionary()

    @property
    def lock(self) -> threading.RLock:
        """The lock, with its fork hook registered on first use (a repeated registration is harmless)."""
        if not self._hooked:
            self._hooked = True
            os.register_at_fork(after_in_child=self._after_fork_in_child)
        return self._lock

    def _after_fork_in_child(self) -> None:
        self._lock = threading.RLock()


class _Pass:
    """One pass over a stage, started by ``thread``."""

    __slots__ = ("thread",)

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread


_PASSES = _Passes()

#: The thread on whose behalf passes started in this context run (a stage's helper threads).
_OWNER: contextvars.ContextVar[threading.Thread | None] = contextvars.ContextVar(
    "terrapipe_pass_owner", default=None
)


def _current_owner() -> threading.Thread:
    owner = _OWNER.get()
    return owner if owner is not None else threading.current_thread()


def pass_context() -> contextvars.Context:
    """Return a copy of the current context in which passes belong to the calling thread.

    A stage that reads its source in a helper thread (``prefetch``) runs the
    helper in this context: the source's pass then belongs to the thread that
    runs the stage's own pass, so that thread may copy the pipe or restart it.

    Examples
    --------
    >>> import threading
    >>> pass_context().run(_current_owner) is threading.current_thread()
    True
    """
    context = contextvars.copy_context()
    context.run(_OWNER.set, _current_owner())
    return context


def _stage_name(pipe: Any) -> str:
    name = getattr(getattr(pipe, "stats", None), "name", None)
    return name if isinstance(name, str) else type(pipe).__name__


def _other_thread_pass(pipe: Any, me: threading.Thread) -> _Pass | None:
    running = _PASSES.running.get(pipe)
    if running is not None and running.thread is not me and running.thread.is_alive():
        return running
    return None


def _begin_pass(pipe: Any) -> _Pass:
    me = _current_owner()
    with _PASSES.lock:
        running = _other_thread_pass(pipe, me)
        if running is not None:
            msg = (
                f"{_stage_name(pipe)} is already being iterated by thread {running.thread.name!r}; a pipe "
                "runs one pass at a time, so this pass is refused before reading anything. Iterate it from "
                "one thread, give each thread its own pipe (build it again), or use "
                "tp.loader(pipe, workers=n), which gives each worker its own copy"
            )
            raise ConcurrentIterationError(msg)
        mine = _Pass(me)
        _PASSES.running[pipe] = mine
        return mine


def _end_pass(pipe: Any, mine: _Pass) -> None:
    with _PASSES.lock:
        if _PASSES.running.get(pipe) is mine:
            del _PASSES.running[pipe]


def _superseded(pipe: Any, mine: _Pass) -> bool:
    with _PASSES.lock:
        return _PASSES.running.get(pipe) is not mine


def _one_pass_at_a_time(iter_fn: Callable[[Any], Iterator[Any]]) -> Callable[[Any], Iterator[Any]]:
    """Wrap a stage's (torch-hooked) ``__iter__`` with the one-pass check (see the module doc)."""

    @functools.wraps(iter_fn)
    def guarded(self: Any) -> Iterator[Any]:
        mine = _begin_pass(self)
        try:
            yield from iter_fn(self)
        except RuntimeError as err:
            if isinstance(err, TerrapipeError) or not _superseded(self, mine):
                raise
            msg = (
                f"{_stage_name(self)} was iterated again while this pass over it was running, so this "
                "iterator stopped (one pass at a time). To read one stage from two branches use .fork(); "
                "to restart a pipe, drop the old iterator"
            )
            raise ConcurrentIterationError(msg) from err
        finally:
            _end_pass(self, mine)

    guarded._terrapipe_one_pass = True  # type: ignore[attr-defined]
    return guarded


def check_not_iterated_elsewhere(pipe: IterDataPipe[Any], action: str) -> None:
    """Raise if another live thread is running a pass over any stage of ``pipe``.

    Copying or pickling a pipe while another thread iterates it would catch
    its stages mid-pass; ``tp.loader`` (which copies the pipe for its workers)
    calls this first.

    Parameters
    ----------
    pipe
        The pipe about to be copied.
    action
        What is about to happen, for the message (e.g. ``"tp.loader cannot copy the pipe"``).

    Raises
    ------
    ConcurrentIterationError
        Naming the stage and the thread iterating it.

    Examples
    --------
    >>> import terrapipe as tp
    >>> check_not_iterated_elsewhere(tp.from_items([1]), "copy")
    """
    me = _current_owner()
    for dp in iter_graph(pipe):
        with _PASSES.lock:
            running = _other_thread_pass(dp, me)
        if running is not None:
            msg = (
                f"{action}: its stage {_stage_name(dp)} is being iterated by thread {running.thread.name!r} "
                "right now; finish or close that iteration first, or build a second pipe"
            )
            raise ConcurrentIterationError(msg)


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


def registered_class(name: str) -> type[Any] | None:
    """Return the pipe class registered under a functional name, or ``None``.

    torch keeps ``functools.partial(class_function, cls, ...)`` in
    ``IterDataPipe.functions``; this reads the class back from it. Names
    starting with ``_`` (torch's private ones) are never returned.

    Examples
    --------
    >>> import terrapipe as tp
    >>> registered_class("header") is tp.core.Header, registered_class("no_such_stage")
    (True, None)
    """
    if name.startswith("_"):
        return None
    function = IterDataPipe.functions.get(name)
    if function is None:
        return None
    args = getattr(function, "args", ())
    cls = args[0] if args else function
    return cls if isinstance(cls, type) else None


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__iter__")
        if own is not None and not getattr(own, "_terrapipe_one_pass", False):
            cls.__iter__ = _one_pass_at_a_time(own)  # type: ignore[method-assign]

    def __init__(self) -> None:
        self.stats = StageStats(name=type(self).__name__)
        self._next_epoch = 0
        self._shard_superseded = False
        self.shard: ShardMode = False

    # -- epochs ---------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that the next pass over this stage uses."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
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
        if any(is_sharding_filter(dp) for dp in upstream):
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


def pipe_graph(pipe: IterDataPipe[Any]) -> PipeGraph:
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
    cache: dict[int, PipeGraph] = {}

    def build(dp: IterDataPipe[Any], path: frozenset[int]) -> PipeGraph:
        key = id(dp)
        if key in cache:
            return {key: (dp, cache[key])}  # type: ignore[dict-item]
        sub: PipeGraph = {}
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
    _check_pipe(pipe, "iter_graph")
    seen: set[int] = set()
    out: list[IterDataPipe[Any]] = []

    def walk(graph: PipeGraph) -> None:
        for key, (dp, sub) in graph.items():
            if key in seen:
                continue
            seen.add(key)
            out.append(dp)  # type: ignore[arg-type]
            walk(sub)

    walk(pipe_graph(pipe))
    return out


def _check_pipe(pipe: Any, what: str) -> None:
    if not isinstance(pipe, IterDataPipe):
        raise InvalidArgumentError(f"{what} needs a pipe (an IterDataPipe), got {type(pipe).__name__}")


def is_sharding_filter(pipe: Any) -> bool:
    """Whether ``pipe`` is a torch ``sharding_filter``.

    Examples
    --------
    >>> import terrapipe as tp
    >>> is_sharding_filter(tp.from_items([1]).sharding_filter()), is_sharding_filter(tp.from_items([1]))
    (True, False)
    """
    return isinstance(pipe, ShardingFilter)


def shard_torch_filters(pipe: IterDataPipe[Any], count: int, index: int) -> None:
    """Make every torch ``sharding_filter`` in ``pipe`` keep shard ``index`` of ``count``.

    This is torch's ``apply_sharding``, called under :data:`GRAPH_LOCK` (it
    walks the graph with ``traverse_dps``) and only when the graph holds a
    ``sharding_filter``; the graph is changed in place.

    Examples
    --------
    >>> import terrapipe as tp
    >>> pipe = tp.from_items(range(5), shard=False).sharding_filter()
    >>> shard_torch_filters(pipe, 2, 1)
    >>> list(pipe)
    [1, 3]
    """
    if any(is_sharding_filter(dp) for dp in iter_graph(pipe)):
        with GRAPH_LOCK:
            apply_sharding(pipe, count, index)


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
    _check_pipe(pipe, "set_epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise InvalidArgumentError(f"set_epoch needs an epoch that is an int >= 0, got {epoch!r}")
    for dp in iter_graph(pipe):
        method = getattr(type(dp), "set_epoch", None)
        if method is not None:
            method(dp, epoch)
