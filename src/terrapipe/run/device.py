"""Moved to :mod:`terrapipe.core.device` (gpu/ needs it, and gpu/ sits below run/).

Kept until the last importers (``run/__init__.py``, ``run/pipe_loader.py``,
``tests/run/test_run_parts.py``) import from :mod:`terrapipe.core.device`;
then this file goes.
"""

from __future__ import annotations

from terrapipe.core.device import map_tensors, move_to, pin, resolve_device

__all__ = ["map_tensors", "move_to", "pin", "resolve_device"]
