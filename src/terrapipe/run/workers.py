"""Loader workers: one copy of the pipe per thread or process, each one shard of the data.

A :class:`WorkerPool` starts ``len(infos)`` persistent workers (thread
workers on the process's long-lived loader threads, :mod:`~terrapipe.run.worker_threads`,
warm from an earlier loader's workers when there are some). A thread worker
holds its thread for one pass at a time: when its pass is over and no next
one is queued, the thread goes back to the pool (its copy of the pipe stays
with the loader), so a loader that is done with its epoch, but not closed or
collected yet, does not keep its warm threads from the next loader (which
would otherwise start cold ones: PROJ, GDAL and dataset handles set up
again, 60-70 ms of CPU on the README flow). Worker ``i``
holds its own copy of the pipe (a deep copy for threads, a pickled copy for
processes) and iterates it inside :func:`~terrapipe.core.shard.shard_scope`
with its :class:`~terrapipe.core.shard.ShardInfo`, so the pipe's sharding
stage gives it shard ``rank * workers + i`` of ``world_size * workers``: the
workers of all ranks together see every element exactly once.

For each pass the parent sends ``(generation, epoch, position)``; the worker
sets the epoch on its copy, restores the position (or, for pipes that cannot
save one, re-runs and skips what was delivered), then puts
``(generation, kind, payload, position, stats)`` messages into a bounded queue:
every element travels with the position of the shard right after it
(``{"yielded": n, "pipe": [stage states] | None}``), captured by the thread
that drives the copy, and, when they changed, the counters of the copy's
stages (:mod:`~terrapipe.run.loader_stats`: skips reach the user). A new generation abandons the running pass; messages of
older generations are dropped by :meth:`WorkerPool.receive`.

Processes pickle each message themselves before queueing it, so an element
that cannot be sent fails with a clear error instead of disappearing in the
queue's feeder thread; tensors travel through shared memory.

Batches in worker processes: given a batch size and a collate, a process
worker batches its own shard and collates each batch itself, into shared
memory (:mod:`~terrapipe.run.shared_memory`), and sends one
``BATCH`` message per batch with the position after its last element: a
batch crosses processes once, as a few file descriptors, instead of every
sample being pickled and copied, then stacked again in the main process
(measured: the main process spent 3.5 ms of CPU per 256² sample doing that,
half of it stacking freshly mapped shared pages). Each worker stacks its
batches into shared-memory segments it reuses once the main process has
let go of a batch (:mod:`~terrapipe.run.shared_segments`): a segment's file
descriptor crosses once, later batches come as slot numbers, and no page is
faulted in again. The fewer than
``batch_size`` elements left at the end of a shard (its *tail*) are sent one
by one as ``ITEM`` messages whose position is marked ``"tail": True``;
:class:`~terrapipe.run.merge.ShardMerge` batches the tails of all shards
together, so an epoch has as many batches as with threads.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from typing import Any, Literal

import numpy as np
import torch
import torch.multiprocessing as torch_mp

from terrapipe.core.errors import ConcurrentIterationError, InvalidArgumentError, WorkerError
from terrapipe.core.pipe import IterDataPipe, check_not_iterated_elsewhere, set_epoch
from terrapipe.core.shard import ShardInfo, shard_scope, worker_seed
from terrapipe.run import worker_threads
from terrapipe.run._describe import describe_element
from terrapipe.run.graph_lock import GRAPH_LOCK, copy_pipe
from terrapipe.run.loader_stats import StatsReporter
from terrapipe.run.pipe_state import resume_plan
from terrapipe.run.sharding import apply_torch_sharding
from terrapipe.run.shared_memory import collate_into_shared_memory
from terrapipe.run.shared_segments import SLOTS, SegmentMaps, SegmentPool, encode

__all__ = ["BATCH", "END", "ERROR", "ITEM", "Method", "WorkerPool", "seed_globals"]

Method = Literal["thread", "process"]
ITEM, END, ERROR, BATCH = 0, 1, 2, 3
_POLL = 0.05

# (generation, kind, payload, position, stats report or None)
Message = tuple[int, int, Any, Any, Any]


@dataclass
class _Counter:
    """A shared integer for thread workers (processes use ``multiprocessing.Value``)."""

    value: int = 0


def seed_globals(seed: int) -> None:
    """Seed Python's, numpy's and torch's global random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _error_payload(err: BaseException, method: Method) -> tuple[BaseException | None, str, str]:
    text = "".join(traceback.format_exception(err))
    if method == "process":
        try:
            ForkingPickler.dumps(err)
        except Exception:
            return None, f"{type(err).__name__}: {err}", text
    return err, f"{type(err).__name__}: {err}", text


def _encode_process(message: Message, segments: SegmentPool | None = None) -> tuple[bytes, dict[int, int]]:
    """Pickle a message for the main process; also return the pooled segments it lends (see shared_segments)."""
    try:
        return encode(message, segments)
    except Exception as err:
        generation, kind, payload, _, report = message
        what = {ITEM: describe_element(payload), BATCH: "a collated batch"}.get(kind, "its result")
        wrapped = WorkerError(
            f"a loader worker process cannot send {what} to the main process ({type(err).__name__}: {err}); "
            "with method='process' elements and batches must pickle (tensors, arrays, dicts of them): "
            "convert them earlier in the pipe or use method='thread'"
        )
        return bytes(ForkingPickler.dumps((generation, ERROR, (wrapped, str(wrapped), ""), None, report))), {}


def _send(results: Any, data: Any, alive: Callable[[], bool]) -> bool:
    while alive():
        try:
            results.put(data, timeout=_POLL)
        except queue.Full:
            continue
        return True
    return False


def _run_pass(
    pipe: IterDataPipe[Any],
    info: ShardInfo,
    method: Method,
    seed: int | None,
    command: tuple[int, int, dict[str, Any] | None],
    results: Any,
    generation: Any,
    stop: Any,
    reporter: StatsReporter,
    batching: tuple[int, Callable[[list[Any]], Any]] | None = None,
    progress: Any = None,
    segments: SegmentPool | None = None,
) -> None:
    gen, epoch, position = command

    def alive() -> bool:
        return bool(generation.value == gen) and not stop.is_set()

    def send(message: Message) -> bool:
        if method != "process":
            return _send(results, message, alive)
        data, lent = _encode_process(message, segments)
        del message  # the worker's hold on a batch's segments ends here (shared_segments)
        if _send(results, data, alive):
            return True
        if segments is not None:  # never sent: its segments were not lent
            segments.unsend(lent)
        return False

    if not alive():
        return
    iterator: Any = None
    try:
        set_epoch(pipe, epoch)
        plan = resume_plan(pipe)
        yielded = skip = 0
        if position is not None:
            yielded = int(position["yielded"])
            if position["pipe"] is not None and plan.exact:
                plan.restore(position["pipe"])
            else:
                skip = yielded
        if seed is not None and method == "process":
            seed_globals(worker_seed(seed, epoch=epoch, info=info))
        iterator = iter(pipe)
        pending: list[tuple[Any, dict[str, Any]]] = []
        for element in iterator:
            if skip:
                skip -= 1
                continue
            yielded += 1
            if progress is not None:  # the main side's timeout counts from the last element made
                progress.value += 1
            here = {"yielded": yielded, "pipe": plan.capture()}
            if batching is None:
                message: Message = (gen, ITEM, element, here, reporter.poll())
            else:
                pending.append((element, here))
                if len(pending) < batching[0]:
                    continue
                message = (gen, BATCH, _collate(batching[1], pending, info, segments), here, reporter.poll())
                pending = []
            if not send(message):
                return
            del message
        for element, here in pending:  # the shard's tail, fewer than batch_size: the merge batches tails
            tail = (gen, ITEM, element, {**here, "tail": True}, reporter.poll())
            if not send(tail):
                return
        end = (gen, END, None, {"yielded": yielded, "pipe": plan.capture()}, reporter.poll(force=True))
        send(end)
    except Exception as err:
        report = reporter.poll(force=True)
        send((gen, ERROR, _error_payload(err, method), None, report))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _collate(
    collate: Callable[[list[Any]], Any],
    pending: list[tuple[Any, dict[str, Any]]],
    info: ShardInfo,
    segments: SegmentPool | None = None,
) -> Any:
    try:
        with segments.batch() if segments is not None else contextlib.nullcontext():
            return collate([element for element, _ in pending])
    except Exception as err:
        first = int(pending[0][1]["yielded"])
        err.add_note(
            f"while collating elements {first}..{first + len(pending) - 1} of shard {info.worker_id} "
            f"in its loader worker process (first element: {describe_element(pending[0][0])})"
        )
        raise


def _worker_main(
    pipe: IterDataPipe[Any],
    info: ShardInfo,
    method: Method,
    seed: int | None,
    commands: Any,
    results: Any,
    generation: Any,
    stop: Any,
    batching: tuple[int, Callable[[list[Any]], Any]] | None = None,
    progress: Any = None,
    slots: tuple[Any, int] | None = None,
) -> None:
    parent = os.getppid()
    if method == "process":
        torch.set_num_threads(1)
    # batches are stacked into segments the worker reuses once the main process released them
    segments = SegmentPool(slots[0], batches=slots[1]) if slots is not None else None
    shared: Any = contextlib.nullcontext()
    if method == "process":
        shared = collate_into_shared_memory(segments.allocate if segments is not None else None)
    with shard_scope(info), shared:
        apply_torch_sharding(pipe, info)
        reporter = StatsReporter(pipe)
        while not stop.is_set():
            try:
                command = commands.get(timeout=_POLL)
            except queue.Empty:
                if method == "process" and os.getppid() != parent:
                    break  # the parent died
                continue
            if command is None:
                break
            _run_pass(
                pipe,
                info,
                method,
                seed,
                command,
                results,
                generation,
                stop,
                reporter,
                batching,
                progress,
                segments,
            )
    if method == "process":
        results.cancel_join_thread()


class _NoJob:
    """A thread worker between passes: no job runs it."""

    def is_alive(self) -> bool:
        return False

    def join(self, timeout: float | None = None) -> None:
        return None


_NO_JOB = _NoJob()


@dataclass
class _ThreadSlot:
    """One thread worker of a pool: its pipe copy, and whether a job runs it (under ``lock``)."""

    pipe: IterDataPipe[Any]
    info: ShardInfo
    commands: queue.Queue[Any]
    results: queue.Queue[Any]
    lock: threading.Lock
    running: bool = False
    reporter: StatsReporter | None = None  # made by the first job: counts from the copy's first pass


def _thread_job(slot: _ThreadSlot, seed: int | None, generation: Any, stop: Any) -> None:
    """Run the passes queued for a thread worker, then give the thread back (see the module docs).

    The job ends, under ``slot.lock``, only when no command is queued, so a
    pass queued by :meth:`WorkerPool.start_pass` is run by this job or by
    the next one, which starts only once this one has stopped.
    """
    handed_back = False
    try:
        with shard_scope(slot.info):
            apply_torch_sharding(slot.pipe, slot.info)
            if slot.reporter is None:
                slot.reporter = StatsReporter(slot.pipe)
            while not stop.is_set():
                with slot.lock:
                    try:
                        command = slot.commands.get_nowait()
                    except queue.Empty:
                        slot.running, handed_back = False, True
                        return
                if command is None:
                    break
                _run_pass(
                    slot.pipe,
                    slot.info,
                    "thread",
                    seed,
                    command,
                    slot.results,
                    generation,
                    stop,
                    slot.reporter,
                )
    finally:
        if not handed_back:  # stopped or failed (a next job may already run once handed back)
            with slot.lock:
                slot.running = False


def _shutdown(method: Method, stop: Any, commands: list[Any], results: list[Any], workers: list[Any]) -> None:
    stop.set()
    for command_queue in commands:
        with contextlib.suppress(Exception):  # a closed queue: the stop event still works
            command_queue.put_nowait(None)
    for worker in workers:
        worker.join(timeout=5.0)
    if method == "process":
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5.0)
        for mp_queue in [*commands, *results]:
            mp_queue.cancel_join_thread()
            mp_queue.close()


class WorkerPool:
    """Persistent loader workers, one per shard (see the module docs).

    Parameters
    ----------
    pipe
        The pipe; each worker gets a copy.
    infos
        One :class:`~terrapipe.core.shard.ShardInfo` per worker.
    method
        ``"thread"`` or ``"process"``.
    context
        Multiprocessing start method for processes (``"fork"``, ``"spawn"``,
        ``"forkserver"``; ``None``: the platform default).
    buffer
        Most finished elements waiting per worker (>= 1).
    seed
        Seeds the global random generators of process workers every pass.
    timeout
        Seconds to wait for one element of a worker before giving up; ``None``: no limit.
        A worker that batches counts as waited for from the last element it made.
    batch_size, collate
        With ``method="process"``, each worker batches its shard and collates
        the batches itself (see the module docs); ``None``: workers send
        elements.
    in_flight
        Batches that may be on their way or in the consumer's hands at once
        (default ``buffer + 4``): each worker that batches keeps at most that
        many batches' worth of shared-memory segments for reuse
        (:mod:`~terrapipe.run.shared_segments`).
    """

    def __init__(
        self,
        pipe: IterDataPipe[Any],
        infos: Sequence[ShardInfo],
        *,
        method: Method,
        context: str | None = None,
        buffer: int = 2,
        seed: int | None = None,
        timeout: float | None = None,
        batch_size: int | None = None,
        collate: Callable[[list[Any]], Any] | None = None,
        in_flight: int | None = None,
    ) -> None:
        self.pipe = pipe
        self.in_flight = buffer + 4 if in_flight is None else max(1, int(in_flight))
        self.batching: tuple[int, Callable[[list[Any]], Any]] | None = None
        if method == "process" and batch_size is not None and collate is not None:
            self.batching = (batch_size, collate)
        self.infos = list(infos)
        self.method = method
        self.context = context
        self.buffer = buffer
        self.seed = seed
        self.timeout = timeout
        self._workers: list[Any] = []
        self._commands: list[Any] = []
        self._results: list[Any] = []
        self._progress: list[Any] = []  # elements made per worker (processes that batch)
        self._maps: list[SegmentMaps | None] = []  # the segments of workers that batch, as mapped here
        self._slots: list[_ThreadSlot] = []  # thread workers: their pipe copies, run one pass at a time
        self._generation: Any = None
        self._stop: Any = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def size(self) -> int:
        """Number of workers."""
        return len(self.infos)

    # -- life cycle -----------------------------------------------------
    def _start(self) -> None:
        if self._workers:
            return
        if self.method == "thread":
            self._start_threads()
        else:
            self._start_processes()
        self._finalizer = weakref.finalize(
            self, _shutdown, self.method, self._stop, self._commands, self._results, self._workers
        )

    def _start_threads(self) -> None:
        self._generation, self._stop = _Counter(), threading.Event()
        for info in self.infos:
            try:
                pipe = copy_pipe(self.pipe)
            except ConcurrentIterationError:
                raise
            except Exception as err:
                msg = (
                    f"the loader cannot copy the pipe for its worker threads ({type(err).__name__}: {err}); "
                    "stages must not hold open files or locks between passes (open them inside __iter__)"
                )
                raise InvalidArgumentError(msg) from err
            commands: queue.Queue[Any] = queue.Queue()
            results: queue.Queue[Any] = queue.Queue(maxsize=self.buffer)
            self._commands.append(commands)
            self._results.append(results)
            self._slots.append(_ThreadSlot(pipe, info, commands, results, threading.Lock()))
            self._workers.append(_NO_JOB)  # start_pass starts a job when a pass is queued

    def _start_processes(self) -> None:
        check_not_iterated_elsewhere(
            self.pipe, "the loader cannot start worker processes with a copy of the pipe"
        )
        ctx: Any = torch_mp.get_context(self.context)
        if self.context is None:  # obstore ran here: a forked worker could not read a bucket (#19)
            from terrapipe.io.object_store import worker_start_method

            with GRAPH_LOCK:
                ctx = torch_mp.get_context(worker_start_method(ctx.get_start_method(), self.pipe))
        self._generation, self._stop = ctx.Value("q", 0), ctx.Event()
        for index, info in enumerate(self.infos):
            commands, results = ctx.Queue(), ctx.Queue(maxsize=self.buffer)
            progress = ctx.Value("q", 0, lock=False) if self.batching is not None else None
            self._progress.append(progress)
            returns = ctx.RawArray("q", SLOTS) if self.batching is not None else None
            self._maps.append(SegmentMaps(returns, index) if returns is not None else None)
            worker = ctx.Process(
                target=_worker_main,
                args=(
                    self.pipe,
                    info,
                    "process",
                    self.seed,
                    commands,
                    results,
                    self._generation,
                    self._stop,
                    self.batching,
                    progress,
                    None if returns is None else (returns, self.in_flight),
                ),
                name=f"terrapipe-loader-{index}",
                daemon=True,
            )
            self._commands.append(commands)
            self._results.append(results)
            try:
                with GRAPH_LOCK:  # spawn and forkserver pickle the pipe here
                    worker.start()
            except Exception as err:
                self.close()
                msg = (
                    f"cannot start loader worker processes with the {self.context or 'default'!r} start "
                    f"method ({type(err).__name__}: {err}); the pipe (and the collate) must pickle (use "
                    "functions defined at module level, not lambdas or local functions) or use "
                    "method='thread'"
                )
                raise InvalidArgumentError(msg) from err
            self._workers.append(worker)

    def close(self) -> None:
        """Stop the workers (they finish the element they are on)."""
        if self._finalizer is not None:
            self._finalizer()
        elif self._stop is not None:
            _shutdown(self.method, self._stop, self._commands, self._results, self._workers)
        self._workers, self._commands, self._results, self._progress = [], [], [], []
        self._maps = []
        self._slots = []
        self._finalizer = None

    # -- passes ---------------------------------------------------------
    def start_pass(
        self, generation: int, epoch: int, positions: Sequence[dict[str, Any] | None], done: Sequence[bool]
    ) -> None:
        """Abandon any running pass and start pass ``generation`` of ``epoch`` on the shards not done."""
        self._start()
        self._generation.value = generation
        if self.method == "thread" and self.seed is not None:
            first = self.infos[0]
            seed_globals(worker_seed(self.seed, epoch=epoch, info=ShardInfo(first.rank, first.world_size)))
        for index, command_queue in enumerate(self._commands):
            if done[index]:
                continue
            if self.method != "thread":
                command_queue.put((generation, epoch, positions[index]))
                continue
            slot = self._slots[index]
            with slot.lock:
                command_queue.put((generation, epoch, positions[index]))
                # a job runs this pass once the last one has ended: on a thread an earlier worker
                # left warm (run/worker_threads.py), or a new one
                if not slot.running:
                    slot.running = True
                    self._workers[index] = worker_threads.start(
                        _thread_job,
                        (slot, self.seed, self._generation, self._stop),
                        name=f"terrapipe-loader-{index}",
                    )

    def cancel(self, generation: int) -> None:
        """Abandon the running pass: workers stop at their next element."""
        if self._generation is not None:
            self._generation.value = generation

    def _decode(self, data: Any, index: int) -> Message:
        if self.method != "process":
            return data  # type: ignore[no-any-return]
        maps = self._maps[index] if index < len(self._maps) else None
        try:
            with maps.receiving() if maps is not None else contextlib.nullcontext():
                message: Message = ForkingPickler.loads(data)
        except Exception as err:
            # tensors come as file descriptors handed over by the worker: a worker that died after
            # queueing a message can no longer hand them over (ConnectionResetError, EOFError...)
            worker = self._workers[index] if index < len(self._workers) else None
            if worker is not None:
                worker.join(timeout=1.0)
            code = getattr(worker, "exitcode", None)
            state = f"stopped unexpectedly with exit code {code}" if code is not None else "failed"
            msg = (
                f"loader worker {index} (process) {state} before the main process received what it had "
                f"sent ({type(err).__name__}: {err}); if it was killed for memory, lower workers, "
                "prefetch or batch_size"
            )
            raise WorkerError(msg) from err
        return message

    def receive(self, index: int, generation: int, cancelled: Callable[[], bool]) -> Message | None:
        """Wait for the next message of worker ``index`` in pass ``generation``.

        Returns ``None`` when ``cancelled()`` turns true while waiting.

        Raises
        ------
        WorkerError
            If the worker died or sent nothing within ``timeout`` seconds.
        """
        results, worker = self._results[index], self._workers[index]
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        progress = self._progress[index] if index < len(self._progress) else None
        made = None if progress is None else progress.value
        while True:
            try:
                message = self._decode(results.get(timeout=_POLL), index)
            except queue.Empty:
                if cancelled():
                    return None
                if not self._workers:
                    raise WorkerError("the loader was closed while a pass was running") from None
                if not worker.is_alive():
                    try:
                        message = self._decode(results.get(timeout=_POLL), index)
                    except queue.Empty:
                        code = getattr(worker, "exitcode", None)
                        detail = f" with exit code {code}" if code is not None else ""
                        msg = (
                            f"loader worker {index} ({self.method}) stopped unexpectedly{detail}; if it was "
                            "killed for memory, lower workers, prefetch or batch_size"
                        )
                        raise WorkerError(msg) from None
                elif deadline is not None and progress is not None and progress.value != made:
                    made = progress.value  # a batching worker made an element: it is not stuck
                    deadline = time.monotonic() + float(self.timeout or 0)
                    continue
                elif deadline is not None and time.monotonic() > deadline:
                    msg = (
                        f"loader worker {index} ({self.method}) sent nothing for {self.timeout} s "
                        "(the loader's timeout); a read may hang: check the data source or raise timeout"
                    )
                    raise WorkerError(msg) from None
                else:
                    continue
            if message[0] == generation:
                return message
