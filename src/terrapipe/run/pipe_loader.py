"""``tp.loader``: batches from a pipe in worker threads or processes, resumable mid-epoch.

Design
------
A pipe is a chain of generator stages; a generator cannot be split across
workers or checkpointed. The loader therefore parallelises at the level of
whole pipes and checkpoints at the level of the pipe's stateful stages:

1. **One copy of the pipe per worker.** Worker ``i`` (a thread, or a process
   when ``method="process"``) iterates its own copy with
   :func:`~terrapipe.core.shard.shard_info` reporting worker ``i`` of
   ``workers`` (and this process's DDP rank), so the pipe's sharding stage
   (``from_items``, a chipper, a torch ``sharding_filter``...) gives it shard
   ``rank * workers + i`` of ``world_size * workers``. Shards are disjoint and
   complete: over all workers and ranks every element comes once. The whole
   pipe, reads included, runs in the worker: GDAL, zarr/numcodecs and torch
   release the GIL, so threads are the default.
2. **A deterministic merge.** The main side takes elements from the shards
   round robin (:class:`~terrapipe.run.merge.ShardMerge`), never "whoever is
   first", so the order does not depend on thread timing: the same seed and
   epoch give the same batches on every run.
3. **Positions travel with elements.** With each element a worker sends the
   state of its copy's stateful stages (:mod:`~terrapipe.run.pipe_state`)
   right after that element. The loader's state after ``k`` batches is the
   epoch, whose turn it is, and each shard's position after the last element
   that went into those ``k`` batches, however far the workers have read
   ahead. A loader built the same way and given that state yields exactly the
   remaining batches, in the same order, then carries on with the next epochs.
   Pipes with stages that hold a position they cannot save (``header``,
   ``flatmap``, torch's ``shuffle``...) are resumed by re-running the epoch in
   each shard and skipping what was delivered; this is exact only for
   deterministic pipes and warns with :class:`~terrapipe.core.errors.ResumeWarning`.
4. **torchdata.nodes downstream.** The merge is a ``torchdata.nodes.BaseNode``;
   ``Batcher``, a ``Mapper`` for ``collate``, ``PinMemory`` (with CUDA) and
   ``Prefetcher`` follow, and ``torchdata.nodes.Loader`` drives them. Each
   prefetching node snapshots the state of its source with every element, so
   the state stays "after the last batch handed out" through every buffer.
5. **Process workers batch their own shards.** With ``method="process"``
   and a ``batch_size``, each worker batches and collates its shard itself,
   into shared memory, as torch's ``DataLoader`` workers do: a batch crosses
   processes once, with no copy, instead of each sample being pickled, copied
   and stacked again here. The merge then takes whole batches in turn and
   batches the shards' leftover tails itself (:mod:`~terrapipe.run.merge`):
   the number of batches is the same as with threads, but a batch holds
   consecutive elements of one shard, so with several workers batches
   differ from a thread loader's (they are as deterministic, and a state
   saved by one kind of loader is refused by the other mid-epoch; with one
   worker they are the same and states move freely). The collate runs in the
   workers, so with ``"spawn"`` or ``"forkserver"`` it must pickle.
6. **Collate on one intra-op thread.** With workers, each collate call runs
   with ``torch.set_num_threads(1)`` and the caller's count is restored
   after it (:mod:`~terrapipe.run.intra_op`), as in torch's ``DataLoader``
   workers: ``torch.stack``'s threads otherwise spin against the workers on
   busy cores. Without workers the collate runs as the caller set torch;
   the default collate (:func:`~terrapipe.tensor.collate.collate`) copies
   large CPU stacks with numpy on the calling thread, so it does not wake
   the intra-op pool either way.

Epochs: each ``iter()`` runs the next epoch (0, 1, 2, ...) unless
:meth:`PipeLoader.set_epoch` chose one; the epoch is set on every stage
(:func:`~terrapipe.core.pipe.set_epoch`), so seeded shuffles reshuffle per
epoch, identically on every worker and rank.

Skips: the stages run in the workers' copies of the pipe, so the copies
count what ``on_error="skip"`` drops; the workers send those counters back
with their elements (:mod:`~terrapipe.run.loader_stats`). They are added to
the stages of the pipe given to the loader (``stage.stats.skipped``), summed
in :attr:`PipeLoader.stats`, :attr:`PipeLoader.skipped` and
:meth:`PipeLoader.summary`, and every epoch that skipped elements ends with a
:class:`~terrapipe.core.errors.SkipsInEpochWarning`.

Memory: every buffer is bounded. At most ``workers * (buffer + 1)`` elements
wait in or for the worker queues, ``prefetch`` batches in the prefetcher, one
batch in the batcher and one in the consumer's hands (:attr:`PipeLoader.max_elements_ahead`).

DDP: the rank and world size are read from ``torch.distributed`` when the
loader is built (initialise the process group first). Ranks hold different
numbers of elements when the data does not split evenly; with
``even=True`` all ranks stop as soon as one runs out (one ``all_reduce`` of a
flag per batch on a gloo group of the loader's own), so every rank yields
the same number of batches and no sample is repeated: the few that the
longer ranks still held are dropped for that epoch. Padding (repeating
samples, like ``DistributedSampler``) is not offered: it would deliver some
samples twice and could not be resumed exactly.

Examples
--------
>>> import terrapipe as tp
>>> from terrapipe.run import loader
>>> batches = loader(tp.from_items(range(10)), batch_size=4, workers=2)
>>> [b.tolist() for b in batches]
[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
>>> batches.close()
"""

from __future__ import annotations

import copy
import math
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

import torch
from torchdata.nodes import BaseNode, Batcher, Mapper, PinMemory
from torchdata.nodes import Loader as NodesLoader
from torchdata.nodes import Prefetcher as NodesPrefetcher

from terrapipe.core.checks import check_int
from terrapipe.core.device import move_to, pin, resolve_device
from terrapipe.core.errors import (
    ConcurrentIterationError,
    InvalidArgumentError,
    PipelineStateError,
    ResumeWarning,
    SkipsInEpochWarning,
)
from terrapipe.core.pipe import IterDataPipe, check_not_iterated_elsewhere
from terrapipe.core.shard import ShardInfo, shard_info, shard_range
from terrapipe.core.state import expect_keys
from terrapipe.core.stats import StageStats
from terrapipe.run.graph_lock import copy_pipe
from terrapipe.run.inline import InlineShard
from terrapipe.run.intra_op import OneThreadCollate
from terrapipe.run.loader_stats import LoaderStats
from terrapipe.run.merge import ShardMerge
from terrapipe.run.pipe_state import resume_plan
from terrapipe.run.progress import ProgressBar
from terrapipe.run.sharding import can_shard, check_single_sharding
from terrapipe.run.workers import Method, WorkerPool
from terrapipe.tensor.collate import collate as collate_tensors

__all__ = ["PipeLoader", "loader"]

T = TypeVar("T")

_MERGE_KEYS = frozenset(ShardMerge.KEYS)

#: Most workers a loader starts (each is a thread or a process with its own copy of the pipe).
MAX_WORKERS = 1024


def _check_int(name: str, value: Any, *, minimum: int | None, allow_none: bool = False) -> Any:
    """``value`` as an int (numpy integers taken: :func:`~terrapipe.core.checks.check_int`), or ``None`` if allowed."""
    if value is None and allow_none:
        return None
    try:
        return check_int(value, f"loader {name}", minimum=minimum)
    except InvalidArgumentError:
        if not allow_none:
            raise
    bounds = "" if minimum is None else f" >= {minimum}"
    raise InvalidArgumentError(f"loader {name} must be an int{bounds} or None, got {value!r}")


def _find_position(state: Any) -> dict[str, Any] | None:
    """Find the merge's state inside the nested state of the torchdata nodes."""
    if not isinstance(state, Mapping):
        return None
    if set(state) >= _MERGE_KEYS:
        return dict(state)
    for value in state.values():
        found = _find_position(value)
        if found is not None:
            return found
    return None


class PipeLoader(Generic[T]):
    """An iterable of batches over a pipe, with workers, prefetching and exact resume.

    Build it with :func:`loader` (the parameters are documented there).
    """

    def __init__(
        self,
        pipe: IterDataPipe[Any],
        *,
        batch_size: int | None,
        collate: Callable[[list[Any]], T] | None,
        workers: int,
        method: Method,
        prefetch: int,
        pin_memory: bool,
        device: str | torch.device | None,
        seed: int | None,
        drop_last: bool,
        even: bool,
        buffer: int,
        multiprocessing_context: str | None,
        timeout: float | None,
        progress: bool,
    ) -> None:
        if not isinstance(pipe, IterDataPipe):
            msg = (
                f"loader needs a pipe (an IterDataPipe), got {type(pipe).__name__}; "
                "start it with tp.from_items(...)"
            )
            raise InvalidArgumentError(msg)
        self.batch_size: int | None = _check_int("batch_size", batch_size, minimum=1, allow_none=True)
        self.workers: int = _check_int("workers", workers, minimum=0)
        if self.workers > MAX_WORKERS:
            msg = (
                f"loader workers must be at most {MAX_WORKERS} (one thread or process each), got {workers!r}"
            )
            raise InvalidArgumentError(msg)
        self.prefetch: int = _check_int("prefetch", prefetch, minimum=0)
        self.buffer: int = _check_int("buffer", buffer, minimum=1)
        if method not in ("thread", "process"):
            raise InvalidArgumentError(f"loader method must be 'thread' or 'process', got {method!r}")
        if collate is not None and not callable(collate):
            raise InvalidArgumentError(f"loader collate must be callable or None, got {collate!r}")
        seed = _check_int("seed", seed, minimum=None, allow_none=True)
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise InvalidArgumentError(f"loader timeout must be a positive number or None, got {timeout!r}")
        contexts = (None, "fork", "spawn", "forkserver")
        if multiprocessing_context not in contexts:
            msg = f"loader multiprocessing_context must be one of {contexts}, got {multiprocessing_context!r}"
            raise InvalidArgumentError(msg)
        self.pipe = pipe
        self.method: Method = method
        self.drop_last = bool(drop_last)
        self.even = bool(even)
        self.progress = bool(progress)
        self.seed = seed
        self.device = None if device is None else resolve_device(device)
        self.pin_memory = bool(pin_memory) and torch.cuda.is_available()
        self.collate = (
            collate if collate is not None else (collate_tensors if batch_size is not None else None)
        )

        check_not_iterated_elsewhere(pipe, "tp.loader cannot take a copy of the pipe for its workers")
        here = shard_info()
        self.rank, self.world_size = here.rank, here.world_size
        self._shards = max(self.workers, 1)
        self._infos = [ShardInfo(self.rank, self.world_size, i, self._shards) for i in range(self._shards)]
        if self._shards * self.world_size > 1 and not can_shard(pipe):
            msg = (
                "the pipe has no stage that shards (from_items, shuffled_items, a chipper, "
                f"sharding_filter...), so each of the {self._shards} worker(s) on each of the "
                f"{self.world_size} rank(s) would yield every element; start the pipe with "
                "tp.from_items(...) or add .sharding_filter()"
            )
            raise InvalidArgumentError(msg)
        if self._shards * self.world_size > 1:
            check_single_sharding(pipe)  # a sharding_filter after a stage that shards: data would be lost
        plan = resume_plan(pipe)
        self.exact_resume = plan.exact
        self._blockers = plan.blockers
        self.layout = {"shards_per_rank": self._shards, "rank": self.rank, "world_size": self.world_size}
        # process workers batch and collate their own shards (one shared-memory crossing per batch)
        self._batch_in_workers = self.workers > 0 and method == "process" and self.batch_size is not None
        if self._batch_in_workers and self._shards > 1:  # one shard: the same batches either way
            self.layout["batches_in_workers"] = int(self.batch_size or 0)

        self._stats = LoaderStats(pipe, self._shards)
        # with workers, collate on one intra-op thread (as DataLoader workers do; intra_op.py)
        collate = (
            OneThreadCollate(self.collate) if self.workers > 0 and self.collate is not None else self.collate
        )
        self._source: ShardMerge | InlineShard
        if self.workers == 0:
            self._source = InlineShard(copy_pipe(pipe), self._infos[0], self.layout, seed, self._stats)
        else:
            pool = WorkerPool(
                pipe,
                self._infos,
                method=method,
                context=multiprocessing_context,
                buffer=self.buffer,
                seed=seed,
                timeout=timeout,
                batch_size=self.batch_size if self._batch_in_workers else None,
                collate=collate if self._batch_in_workers else None,
                # the batches on their way: worker queue, prefetch, the consumer's current and last
                in_flight=self.buffer + self.prefetch + 4,
            )
            self._source = ShardMerge(pool, self.layout, self._stats, drop_last=self.drop_last)
        node: BaseNode[Any] = self._source
        if self.batch_size is not None and not self._batch_in_workers:
            node = Batcher(node, self.batch_size, drop_last=self.drop_last)
        if collate is not None and not self._batch_in_workers:
            node = Mapper(node, collate)
        if self.pin_memory:
            node = PinMemory(node) if self.prefetch else Mapper(node, pin)
        if self.prefetch:
            node = NodesPrefetcher(node, prefetch_factor=self.prefetch)
        self._nodes = NodesLoader(node)
        self._group: Any = None
        self._next_epoch = 0
        self._epoch = 0
        self._in_pass = False
        self._pending: dict[str, Any] | None = None
        self._token: object | None = None
        self._lock = threading.Lock()
        # the thread that started the current pass, and that pass's iterator (alive until it ends)
        self._owner: tuple[threading.Thread, weakref.ref[Iterator[Any]]] | None = None

    # -- sizes ----------------------------------------------------------
    @property
    def max_elements_ahead(self) -> int:
        """Most elements read by the workers and not yet handed to the consumer (see the module docs)."""
        batch = self.batch_size or 1
        waiting = self._shards * (self.buffer + 1) if self.workers else 1
        if self._batch_in_workers:  # workers queue batches; the merge holds a tail element per shard
            waiting = self._shards * ((self.buffer + 1) * batch + 1)
        return waiting + (self.prefetch + 2) * batch

    def _batches(self, n_elements: int) -> int:
        if self.batch_size is None:
            return n_elements
        if self.drop_last:
            return n_elements // self.batch_size
        return math.ceil(n_elements / self.batch_size)

    def __len__(self) -> int:
        """Batches per epoch on this rank, from ``len(pipe)`` split by shard.

        Raises ``TypeError`` when the pipe's length is unknown. Exact when the
        sharding stage's output maps one to one to the pipe's output.
        """
        n: int = len(self.pipe)  # type: ignore[arg-type]

        def on_rank(rank: int) -> int:
            shards = [ShardInfo(rank, self.world_size, i, self._shards) for i in range(self._shards)]
            return self._batches(sum(len(shard_range(n, info)) for info in shards))

        if self.even and self.world_size > 1:
            return min(on_rank(r) for r in range(self.world_size))
        return on_rank(self.rank)

    # -- counters ---------------------------------------------------------
    @property
    def stats(self) -> list[StageStats]:
        """The counters of the pipe's stages summed over every worker and pass of this loader.

        One :class:`~terrapipe.core.stats.StageStats` per stage that keeps
        counters, downstream first (torch's own pipes keep none). The same
        counts are added to the stages of the pipe given to the loader.
        Workers report when their skips change and with the end of each
        pass, so the counts are exact at the end of an epoch.
        """
        return self._stats.stages()

    @property
    def skipped(self) -> int:
        """Elements skipped on error (``on_error="skip"`` or ``"warn"``) over all workers and passes."""
        return self._stats.skipped

    def summary(self) -> dict[str, Any]:
        """Return ``{"epoch", "skipped", "stages": [StageStats.as_dict() + "last_errors"]}``."""
        stats = self._stats.stages()
        stages = [{**s.as_dict(), "last_errors": list(s.last_errors)} for s in stats]
        return {"epoch": self._epoch, "skipped": sum(s.skipped for s in stats), "stages": stages}

    def _warn_skips(self, epoch: int, before: list[StageStats]) -> None:
        after = self._stats.stages()
        counts = [(a.name, a.skipped - b.skipped, a.last_errors) for a, b in zip(after, before, strict=True)]
        counts = [c for c in counts if c[1]]
        if not counts:
            return
        total = sum(c[1] for c in counts)
        where = ", ".join(f"{name}: {n}" for name, n, _ in counts)
        last = counts[0][2][-1] if counts[0][2] else "?"
        warnings.warn(
            f"epoch {epoch}: {total} element(s) skipped on error ({where}); last error: {last}. "
            "loader.summary() and each stage's stats hold the counts and messages; on_error='raise' "
            "stops at the first error instead",
            SkipsInEpochWarning,
            stacklevel=3,
        )

    # -- epochs and state -------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Run ``epoch`` on the next ``iter()`` (drops a loaded but unused state)."""
        _check_int("epoch", epoch, minimum=0)
        self._next_epoch = epoch
        self._pending = None

    @property
    def epoch(self) -> int:
        """The epoch of the current (or last) pass."""
        return self._epoch

    def state_dict(self) -> dict[str, Any]:
        """Return where this loader stands: ``{"epoch", "position"}``.

        Mid-pass, ``position`` holds the merge's state after the last batch
        handed out; between passes it is ``None`` and ``epoch`` is the next
        pass's. Plain ints, lists and dicts (stage states): it pickles and
        JSON-serialises.
        """
        if self._pending is not None:
            return copy.deepcopy(self._pending)
        if self._in_pass:
            position = _find_position(self._nodes.state_dict())
            if position is None:  # pragma: no cover - only if torchdata changes its state layout
                raise PipelineStateError("the loader cannot find its position in the torchdata nodes' state")
            if all(position["done"]):  # every shard ended: the next pass is a new epoch
                return {"epoch": self._epoch + 1, "position": None}
            return {"epoch": self._epoch, "position": position}
        return {"epoch": self._next_epoch, "position": None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next ``iter()`` continue where ``state`` was saved.

        Raises
        ------
        PipelineStateError
            For a state of another shape, or saved with other workers, rank or world size.
        """
        expect_keys(state, ("epoch", "position"), owner=type(self).__name__)
        position = state["position"]
        if position is not None:
            expect_keys(position, ShardMerge.KEYS, owner=type(self).__name__)
            if dict(position["layout"]) != self.layout:
                msg = (
                    f"the loader state was saved with {dict(position['layout'])} and this loader has "
                    f"{self.layout}; "
                    "an exact resume mid-epoch needs the same workers, rank and world size"
                )
                raise PipelineStateError(msg)
            if not self.exact_resume and any(p and p["yielded"] for p in position["positions"]):
                warnings.warn(
                    f"the pipe's stages {list(self._blockers)} cannot save their position: resuming "
                    "re-runs the epoch in each shard and skips what was already delivered, which is exact "
                    "only when the pipe is deterministic for a given epoch",
                    ResumeWarning,
                    stacklevel=2,
                )
        self._pending = {"epoch": int(state["epoch"]), "position": copy.deepcopy(position)}

    # -- iteration --------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        """Run one epoch (or the rest of a loaded one).

        Raises
        ------
        ConcurrentIterationError
            When another thread's pass over this loader is still running (one
            pass at a time; a new pass from the same thread replaces the old one).
        """
        with self._lock:
            self._refuse_other_thread()
            pending, self._pending = self._pending, None
            position = None if pending is None else pending["position"]
            epoch = self._next_epoch if pending is None else int(pending["epoch"])
            if position is not None and all(position["done"]):
                position, epoch = None, epoch + 1  # saved at the very end of a pass
            self._source.planned_epoch = epoch
            self._source.resume_from = position
            token = self._token = object()
            # The counters before the workers start: they may skip (and report) before the first next().
            before = self._stats.stages()
            iterator = iter(self._nodes)
            self._epoch = self._source.epoch
            self._next_epoch = self._epoch + 1
            self._in_pass = True
            run = self._run(iterator, token, before)
            self._owner = (threading.current_thread(), weakref.ref(run))
        return run

    def _refuse_other_thread(self) -> None:
        if self._owner is None:
            return
        thread, ref = self._owner
        running = ref()
        alive = running is not None and getattr(running, "gi_frame", None) is not None
        if alive and thread is not threading.current_thread() and thread.is_alive():
            msg = (
                f"this loader is already being iterated by thread {thread.name!r}; a loader runs one pass "
                "at a time, so this pass is refused before it starts. Iterate it from one thread, or "
                "build one loader per thread"
            )
            raise ConcurrentIterationError(msg)

    def _run(self, iterator: Iterator[T], token: object, before: list[StageStats]) -> Iterator[T]:
        total: int | None
        try:
            total = len(self)
        except TypeError:
            total = None
        bar = ProgressBar(total, f"epoch {self._epoch}", disable=not self.progress)
        agree = self.even and self.world_size > 1
        epoch = self._epoch
        try:
            while True:
                if self._token is not token:
                    raise PipelineStateError(
                        "this loader was iterated again: an iterator from an earlier iter() is void"
                    )
                try:
                    batch = next(iterator)
                    have = True
                except StopIteration:
                    have = False
                except Exception as err:
                    original = self._source.error
                    if original is not None and original is not err:
                        raise original from None
                    raise
                if agree and not self._all_ranks_have(have):
                    break
                if not have:
                    break
                if self.device is not None:
                    batch = move_to(batch, self.device, non_blocking=self.pin_memory)
                bar.advance()
                yield batch
            self._in_pass = False
            self._warn_skips(epoch, before)
        finally:
            bar.close()

    def _all_ranks_have(self, have: bool) -> bool:
        import torch.distributed as dist

        if self._group is None:
            self._group = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
        flag = torch.tensor([1 if have else 0], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=self._group)
        return bool(flag.item())

    # -- life cycle -------------------------------------------------------
    def close(self) -> None:
        """Stop the worker threads or processes (a later ``iter()`` starts new ones)."""
        if isinstance(self._source, ShardMerge):
            self._source.pool.close()

    def __enter__(self) -> PipeLoader[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def loader(
    pipe: IterDataPipe[Any],
    *,
    batch_size: int | None = None,
    collate: Callable[[list[Any]], Any] | None = None,
    workers: int = 0,
    method: Literal["thread", "process"] = "thread",
    prefetch: int = 2,
    pin_memory: bool = False,
    device: str | torch.device | None = None,
    seed: int | None = None,
    drop_last: bool = False,
    even: bool = False,
    buffer: int = 2,
    multiprocessing_context: str | None = None,
    timeout: float | None = None,
    progress: bool = False,
) -> PipeLoader[Any]:
    """Iterate a pipe in batches, with workers, prefetching, device transfer and exact resume.

    Parameters
    ----------
    pipe
        The pipe. With ``workers > 1`` or under DDP it must contain a stage
        that shards (``from_items``, ``shuffled_items``, a chipper, a torch
        ``sharding_filter``).
    batch_size
        Elements per batch; ``None`` yields elements one by one (no collate).
    collate
        Turns a list of elements into a batch; default
        :func:`~terrapipe.tensor.collate.collate` (stacks tensors, keeps
        ``meta`` as a list). With ``batch_size=None`` it is applied to each
        element when given.
    workers
        Number of worker threads or processes, each running its own copy of
        the pipe on its own shard; ``0`` runs the pipe in the prefetch thread
        (or the caller's thread with ``prefetch=0``).
    method
        ``"thread"`` (default: I/O releases the GIL) or ``"process"`` (for
        pure-Python work; the pipe must pickle with the start method chosen).
        Process workers with a ``batch_size`` batch and collate their own
        shards and send each batch once, through shared memory (see the
        module docs: batches then hold consecutive elements of one shard).
    prefetch
        Batches prepared ahead in a background thread (0: none).
    pin_memory
        Put batches in page-locked memory for faster copies to the GPU. A
        no-op without CUDA.
    device
        Move every batch there (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    seed
        Seeds Python's, numpy's and torch's global generators at the start of
        each pass, per worker process (``worker_seed(seed, epoch, shard)``), for
        random augmentations in map functions. Threads share the process's
        generators, so with ``method="thread"`` and several workers such
        randomness is not reproducible: use stages with their own ``seed``.
        Shuffling stages take their own seed (e.g. ``shuffled_items(seed=)``).
    drop_last
        Drop the last batch of the epoch when it is short.
    even
        Under DDP, make all ranks yield the same number of batches by stopping
        all of them when the first runs out (see the module docs).
    buffer
        Finished elements waiting per worker (>= 1).
    multiprocessing_context
        Start method for ``method="process"``: ``"fork"``, ``"spawn"``,
        ``"forkserver"`` or ``None`` (the platform default).
    timeout
        Seconds to wait for one element from a worker before raising
        :class:`~terrapipe.core.errors.WorkerError`; ``None`` waits as long as
        the worker is alive. Process workers that batch are timed per element
        they make, not per batch they send.
    progress
        Draw a rich progress bar per epoch (needs ``rich``: ``terrapipe[cli]``).

    Returns
    -------
    PipeLoader
        Iterable over batches with ``state_dict()``, ``load_state_dict()``,
        ``set_epoch()``, ``len()`` and ``close()`` (also a context manager).

    Raises
    ------
    InvalidArgumentError
        For bad options, or several shards and no sharding stage in the pipe.
    DeviceError
        For a device this machine does not have.

    Examples
    --------
    >>> import terrapipe as tp
    >>> from terrapipe.run import loader, shuffled_items
    >>> make = lambda: shuffled_items(range(8), seed=0)  # a seeded shuffle, new every epoch
    >>> with loader(make(), batch_size=3, workers=2) as batches:
    ...     it = iter(batches)
    ...     first = next(it).tolist()
    ...     state = batches.state_dict()  # after one batch
    ...     rest = [b.tolist() for b in it]
    >>> sorted(first + sum(rest, []))
    [0, 1, 2, 3, 4, 5, 6, 7]
    >>> with loader(make(), batch_size=3, workers=2) as resumed:
    ...     resumed.load_state_dict(state)
    ...     [b.tolist() for b in resumed] == rest
    True
    """
    return PipeLoader(
        pipe,
        batch_size=batch_size,
        collate=collate,
        workers=workers,
        method=method,
        prefetch=prefetch,
        pin_memory=pin_memory,
        device=device,
        seed=seed,
        drop_last=drop_last,
        even=even,
        buffer=buffer,
        multiprocessing_context=multiprocessing_context,
        timeout=timeout,
        progress=progress,
    )
