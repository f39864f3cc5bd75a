"""Values in a recipe: ``${ENV}`` variables, relative paths and references.

Rules (documented for recipe authors):

- ``${NAME}`` anywhere in a string is replaced by the environment variable
  ``NAME``; a missing variable is a :class:`~terrapipe.core.errors.RecipeError`.
  Messages never show an expanded value: they show the ``${NAME}`` text.
- A string that starts with ``./`` or ``../`` (after expansion) is a path
  relative to the recipe file's folder and becomes absolute.
- ``{"$world": FIELD}`` is the path of a sample-world file
  (:class:`~terrapipe.datasets.SampleWorld` field, e.g. ``dem``,
  ``landcover_fgb``, ``catalog``, ``climate_zarr``).
- ``{"$input": NAME}`` is the pipe of another input of the recipe (for
  ``zip``, ``zip_grids`` and other multi-modal stages).

Examples
--------
>>> import os
>>> os.environ["TP_DOCTEST_BUCKET"] = "s3://secret"
>>> expand_env("${TP_DOCTEST_BUCKET}/a.tif", ("x",), "r.yaml", {})
's3://secret/a.tif'
>>> is_reference({"$input": "dem"}), is_reference({"a": 1})
(True, False)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from terrapipe.core.errors import RecipeError
from terrapipe.recipes.yaml_source import Lines, Path_

__all__ = ["ENV_PATTERN", "REFERENCE_KEYS", "expand_env", "is_reference", "resolve_path", "where"]

ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: The keys of a one-key mapping that refers to something instead of being data.
REFERENCE_KEYS = ("$input", "$world")


def where(file: str, lines: Lines, path: Path_) -> str:
    """``"file, line N"`` for the value at ``path`` (its nearest known parent's line)."""
    probe = path
    while probe and probe not in lines:
        probe = probe[:-1]
    line = lines.get(probe)
    return f"{file}, line {line}" if line is not None else file


def expand_env(text: str, path: Path_, file: str, lines: Lines) -> str:
    """Replace ``${NAME}`` with the environment variable ``NAME``.

    Raises
    ------
    RecipeError
        If a variable is not set (names the variable and the line, never a value).
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        value = os.environ.get(name)
        if value is None:
            msg = (
                f"{where(file, lines, path)}: environment variable {name} is not set"
                f" (used at {_dotted(path)}); set it: export {name}=..."
            )
            raise RecipeError(msg)
        return value

    return ENV_PATTERN.sub(replace, text)


def resolve_path(text: str, folder: Path) -> str:
    """Make ``./x`` and ``../x`` absolute against ``folder``; other strings are kept.

    Examples
    --------
    >>> resolve_path("./a.tif", Path("/data/recipes"))
    '/data/recipes/a.tif'
    >>> resolve_path("a.tif", Path("/data"))
    'a.tif'
    """
    if text.startswith(("./", "../")):
        return str((folder / text).resolve())
    return text


def is_reference(value: Any) -> bool:
    """Whether ``value`` is ``{"$input": ...}`` or ``{"$world": ...}``."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in REFERENCE_KEYS


def _dotted(path: Path_) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))
