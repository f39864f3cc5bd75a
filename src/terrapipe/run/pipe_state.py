"""Save and restore the position of a whole pipe, not just of one stage.

A pipe is a graph of stages; only some of them hold a position
(:class:`~terrapipe.core.state.Stateful`: sources, chippers, samplers,
``pmap``, ``prefetch``). A :class:`ResumePlan` walks the graph from its end
and collects the *frontier*: the first stateful stage on every path, reached
through stages that hold no position of their own (``map``, ``filter``,
``zip``, ``collate`` and terrapipe stages that declare ``stateless = True``).
A stateful stage's state covers everything upstream of it, so the frontier's
states are the position of the pipe.

A stage on the way that holds a position but cannot save it (``header``,
``flatmap``, a torch ``shuffle``, ``batch``, ...) makes the plan *inexact*:
callers then resume by re-running the pass and skipping what was delivered
(see :class:`~terrapipe.core.errors.ResumeWarning`). A stage may also refuse
at run time by defining ``can_resume() -> False`` (``pmap(ordered=False)``).

Examples
--------
>>> import terrapipe as tp
>>> from terrapipe.run.pipe_state import resume_plan
>>> pipe = tp.from_items(range(5)).map(abs)
>>> plan = resume_plan(pipe)
>>> plan.exact, [type(n).__name__ for n in plan.nodes]
(True, ['FromItems'])
>>> it = iter(pipe); next(it), next(it)
(0, 1)
>>> plan.capture()
[{'epoch': 0, 'offset': 2}]
>>> resume_plan(tp.from_items(range(5)).header(3)).blockers
('Header',)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from terrapipe.core.errors import PipelineStateError
from terrapipe.core.pipe import TORCH_STATELESS_TYPES, IterDataPipe, PipeGraph
from terrapipe.core.state import Stateful, expect_keys
from terrapipe.run.graph_lock import traverse

__all__ = ["STATELESS_TYPES", "ReadAheadState", "ResumePlan", "is_stateless", "resume_plan"]

#: torch core pipes that hold no position: resuming their sources resumes them.
STATELESS_TYPES: tuple[type, ...] = TORCH_STATELESS_TYPES


def is_stateless(pipe: IterDataPipe[Any]) -> bool:
    """Whether ``pipe`` holds no position of its own (element in, element(s) out in lockstep)."""
    return isinstance(pipe, STATELESS_TYPES) or bool(getattr(type(pipe), "stateless", False))


def _refuses(pipe: IterDataPipe[Any]) -> bool:
    can_resume = getattr(pipe, "can_resume", None)
    return callable(can_resume) and not can_resume()


@dataclass(frozen=True)
class ResumePlan:
    """The stages whose states make up a pipe's position.

    Attributes
    ----------
    nodes
        The frontier of stateful stages, downstream first.
    blockers
        Names of the stages that hold a position they cannot save; empty when
        the plan is exact.
    """

    nodes: tuple[IterDataPipe[Any], ...]
    blockers: tuple[str, ...]

    @property
    def exact(self) -> bool:
        """Whether the frontier's states alone restore the pipe exactly."""
        return not self.blockers

    def capture(self) -> list[dict[str, Any]] | None:
        """Return the frontier's states (``None`` when the plan is not exact)."""
        if not self.exact:
            return None
        return [node.state_dict() for node in self.nodes]  # type: ignore[attr-defined]

    def restore(self, states: Sequence[dict[str, Any]]) -> None:
        """Load states saved by :meth:`capture` from a pipe of the same shape.

        Raises
        ------
        PipelineStateError
            If the plan is not exact or the number of states does not match.
        """
        if not self.exact:
            raise PipelineStateError(
                f"cannot restore a pipe whose stages {list(self.blockers)} hold no state"
            )
        if len(states) != len(self.nodes):
            msg = (
                f"saved position has {len(states)} stage states but this pipe has {len(self.nodes)} stateful "
                "stages; was it saved from the same pipeline?"
            )
            raise PipelineStateError(msg)
        for node, state in zip(self.nodes, states, strict=True):
            node.load_state_dict(state)  # type: ignore[attr-defined]


def resume_plan(pipe: IterDataPipe[Any]) -> ResumePlan:
    """Find the stateful frontier of ``pipe`` (see the module docs).

    Parameters
    ----------
    pipe
        The end of the pipe.

    Returns
    -------
    ResumePlan
        Frontier stages and, if any, the stages that block an exact resume.
    """
    nodes: list[IterDataPipe[Any]] = []
    blockers: list[str] = []
    seen: set[int] = set()

    def walk(graph: PipeGraph) -> None:
        for key, (dp, sub) in graph.items():
            if key in seen:
                continue
            seen.add(key)
            if _refuses(dp):  # type: ignore[arg-type]
                blockers.append(type(dp).__name__)
            elif isinstance(dp, Stateful):
                nodes.append(dp)  # type: ignore[arg-type]
            elif is_stateless(dp):  # type: ignore[arg-type]
                walk(sub)
            else:
                blockers.append(type(dp).__name__)

    walk(traverse(pipe))
    return ResumePlan(nodes=tuple(nodes), blockers=tuple(blockers))


class ReadAheadState:
    """Saved position of a stage that reads its source ahead of what it yields (``pmap``, ``prefetch``).

    The stage records, with each element it hands out, the frontier states of
    its source right after that element (``_snapshot``), so its own state is
    ``{"source": <that snapshot>}``; loading one restores the source and makes
    the next pass start from it. Subclasses set ``_state_label`` (for messages)
    and keep ``_snapshot``, ``_loaded`` and ``_in_pass`` up to date in ``__iter__``.
    """

    _state_label: ClassVar[str]
    source: IterDataPipe[Any]
    _snapshot: list[dict[str, Any]] | None
    _loaded: dict[str, Any] | None
    _in_pass: bool

    def _reset_read_ahead_state(self) -> None:
        self._snapshot = None
        self._loaded = None
        self._in_pass = False

    def _initial_snapshot(self, plan: ResumePlan | None) -> list[dict[str, Any]] | None:
        """Return the source position a pass starts from: a loaded state, else the live one."""
        if self._loaded is not None:
            loaded, self._loaded = self._loaded["source"], None
            return list(loaded)
        return plan.capture() if plan is not None else None

    def can_resume(self) -> bool:
        """Whether the source's position can be saved."""
        return resume_plan(self.source).exact

    def _check_resumable(self) -> ResumePlan:
        plan = resume_plan(self.source)
        if not plan.exact:
            msg = (
                f"{self._state_label} cannot save its position: upstream stages {list(plan.blockers)} "
                "hold no state"
            )
            raise PipelineStateError(msg)
        return plan

    def state_dict(self) -> dict[str, Any]:
        """Return ``{"source": [...]}``: the source's position right after the element last yielded."""
        plan = self._check_resumable()
        if self._loaded is not None:
            return dict(self._loaded)
        if self._in_pass:
            return {"source": list(self._snapshot or [])}
        return {"source": plan.capture()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next pass continue after the element the state was saved at."""
        expect_keys(state, ("source",), owner=type(self).__name__)
        self._check_resumable().restore(state["source"])
        self._loaded = {"source": list(state["source"])}

    def __len__(self) -> int:
        source: Any = self.source
        return len(source)
