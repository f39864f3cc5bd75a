"""A progress bar for loops over a loader (rich, an optional extra).

Examples
--------
>>> from terrapipe.run.progress import ProgressBar
>>> bar = ProgressBar(total=3, description="epoch 0", disable=True)
>>> for _ in range(3):
...     bar.advance()
>>> bar.close()
>>> bar.completed
3
"""

from __future__ import annotations

from typing import Any

from terrapipe.core.optional import require

__all__ = ["ProgressBar"]


class ProgressBar:
    """A rich progress bar showing batches done, rate and time left.

    Parameters
    ----------
    total
        Number of steps, or ``None`` when unknown (the bar then counts up).
    description
        The label left of the bar.
    disable
        Count without drawing (for tests and non-interactive runs).

    Raises
    ------
    MissingDependencyError
        When ``rich`` is not installed (``pip install 'terrapipe[cli]'``).
    """

    def __init__(self, total: int | None, description: str, *, disable: bool = False) -> None:
        self.completed = 0
        self._progress: Any = None
        self._task: Any = None
        if disable:
            return
        progress = require("rich.progress", extra="cli", feature="progress=True")
        self._progress = progress.Progress(
            progress.TextColumn("[bold]{task.description}"),
            progress.BarColumn(),
            progress.MofNCompleteColumn(),
            progress.TimeElapsedColumn(),
            progress.TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total)
        self._progress.start()

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more steps done."""
        self.completed += steps
        if self._progress is not None:
            self._progress.update(self._task, advance=steps)

    def close(self) -> None:
        """Stop drawing (idempotent)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
