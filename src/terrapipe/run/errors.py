"""Errors and warnings of the run layer (they live in :mod:`terrapipe.core.errors`).

Examples
--------
>>> from terrapipe.run.errors import ResumeWarning, WorkerError
>>> from terrapipe.core.errors import TerrapipeError, TerrapipeWarning
>>> issubclass(WorkerError, TerrapipeError), issubclass(WorkerError, RuntimeError)
(True, True)
>>> issubclass(ResumeWarning, TerrapipeWarning)
True
"""

from __future__ import annotations

from terrapipe.core.errors import ResumeWarning, WorkerError

__all__ = ["ResumeWarning", "WorkerError"]
