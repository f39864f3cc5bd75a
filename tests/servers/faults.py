"""Faults a test server is told to inject (``POST /__faults__``): which requests, and what they get.

A fault matches the requests whose path starts with its ``prefix``: the next ``count`` of them
(``None``: all), each with probability ``rate`` (seeded by ``seed``). It answers ``status`` (with
``Retry-After`` and ``body`` where given) after ``delay`` s, or drops the connection (``"drop"``), or
sends half the body it promised (``"truncate"``); a ``cycle`` of entries takes turns (the range server).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

FAULT_KINDS = ("status", "drop", "truncate")


@dataclass
class Fault:
    prefix: str
    status: int | None
    count: int | None
    delay: float
    retry_after: float | None
    kind: str = "status"
    rate: float = 1.0
    rng: random.Random = field(default_factory=random.Random)
    cycle: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    body: str | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Fault:
        """The fault a ``POST /__faults__`` body describes (``ValueError``/``KeyError``/``TypeError``: a bad one)."""
        fault = cls(
            prefix=str(spec["prefix"]),
            status=int(spec["status"]) if spec.get("status") else None,
            count=int(spec["count"]) if spec.get("count") is not None else None,
            delay=float(spec.get("delay") or 0.0),
            retry_after=float(spec["retry_after"]) if spec.get("retry_after") is not None else None,
            kind=str(spec.get("kind") or "status"),
            rate=float(spec["rate"]) if spec.get("rate") is not None else 1.0,
            rng=random.Random(int(spec.get("seed") or 0)),
            cycle=[dict(entry) for entry in spec.get("cycle") or []],
            body=spec.get("body"),
        )
        kinds = {fault.kind, *(str(e.get("kind") or "status") for e in fault.cycle)}
        if not kinds <= set(FAULT_KINDS) or not 0.0 < fault.rate <= 1.0:
            raise ValueError(f"kind must be one of {FAULT_KINDS} and 0 < rate <= 1")
        return fault

    def next_hit(self) -> Fault:
        """This fault, or for a ``cycle`` the next entry of it (status, kind and delay)."""
        self.hits += 1
        if not self.cycle:
            return self
        entry = self.cycle[(self.hits - 1) % len(self.cycle)]
        return replace(
            self,
            kind=str(entry.get("kind") or "status"),
            status=int(entry["status"]) if entry.get("status") else None,
            delay=float(entry.get("delay") or 0.0),
        )


def take_fault(faults: list[Fault], lock: threading.Lock, path: str) -> Fault | None:
    """The fault (a ``cycle``'s next entry) that hits a request for ``path``; one with a count is used up."""
    with lock:
        for fault in faults:
            if path.startswith(fault.prefix):
                if fault.rate < 1.0 and fault.rng.random() >= fault.rate:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        faults.remove(fault)
                return fault.next_hit()
    return None
