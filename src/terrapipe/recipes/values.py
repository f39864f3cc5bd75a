"""Values in a recipe: ``${ENV}`` variables, paths, the recipe's root, and references.

A recipe is a file people share, so what its values can reach is fixed here
(the recipe sandbox, documented in ``docs/reliability.md``):

- ``${NAME}`` is replaced by the environment variable ``NAME`` **only when
  the user allows that name** (``load_recipe(path, allow_env={"NAME"})``,
  ``terrapipe run --allow-env NAME``). A recipe cannot choose to put your
  environment (a token, ``AWS_SECRET_ACCESS_KEY``, ``HOME``) into a URL, a
  host, a path, a header or a query it sends somewhere: any ``${NAME}`` the
  user did not allow is a :class:`~terrapipe.core.errors.RecipeError`
  naming the variable, the key and the line, raised when the file is loaded.
  A variable the user allowed may appear in any string value; a value that
  came from it is shown as ``${NAME}`` in messages, never expanded.
- Only the form ``${NAME}`` exists (``NAME``: letters, digits, ``_``, not
  starting with a digit). There are no defaults, no nesting and no escape:
  ``${X:-default}``, ``${}`` and a lone ``${`` are errors; ``$${X}`` is a
  ``$`` followed by the variable ``${X}``; ``$X`` is plain text. An
  environment value is never expanded again (a value holding ``${Y}`` stays
  as it is).
- A string that starts with ``./`` or ``../`` (after expansion) is a path
  relative to the recipe file's folder and becomes absolute. Other strings
  are kept (a plain relative name is relative to the working directory).
  Reading inputs anywhere (absolute paths, ``../``, URLs) is allowed: data
  often lives elsewhere, and no stage can send what it reads off the
  machine.
- **Writing** is confined to the recipe's *root*: its own folder, or the
  ``root=`` the user gives. A write destination (:data:`WRITE_PARAMETERS`:
  ``cache: {store: ...}``) resolves any relative path against the recipe's
  folder, follows symbolic links, and must end inside the root; ``~``,
  absolute paths outside it, ``..`` that climbs out, links that lead out,
  and URLs (``s3://``, ``redis://``, ``http://``; a ``file://`` URL is
  checked as the local path it names) are a ``RecipeError``. Remote stores
  are set in Python, not in a shared file. ``open_files`` only opens files
  for reading.
- ``storage_options`` (``read_zarr``, ``read_samples``, or passed on by
  ``open_xarray``) cannot name an endpoint, host, URL or proxy
  (:data:`ENDPOINT_KEYS`): the cloud libraries send your ambient
  credentials (AWS profile, Google token) with each request, so a recipe
  that chose the endpoint would receive them. Set endpoints in your own
  environment or in Python.
- ``{"$world": FIELD}`` is the path of a sample-world file
  (:class:`~terrapipe.datasets.SampleWorld` field, e.g. ``dem``,
  ``landcover_fgb``, ``catalog``, ``climate_zarr``).
- ``{"$input": NAME}`` is the pipe of another input of the recipe (for
  ``zip``, ``zip_grids`` and other multi-modal stages).

Examples
--------
>>> import os
>>> os.environ["TP_DOCTEST_BUCKET"] = "s3://secret"
>>> expand_env("${TP_DOCTEST_BUCKET}/a.tif", ("x",), "r.yaml", {}, {"TP_DOCTEST_BUCKET"})
's3://secret/a.tif'
>>> expand_env("${TP_DOCTEST_BUCKET}/a.tif", ("x",), "r.yaml", {}, frozenset())
Traceback (most recent call last):
...
terrapipe.core.errors.RecipeError: r.yaml: environment variable TP_DOCTEST_BUCKET is not allowed at x: ...
>>> is_reference({"$input": "dem"}), is_reference({"a": 1})
(True, False)
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Set
from pathlib import Path
from typing import Any

from terrapipe.core.errors import RecipeError
from terrapipe.recipes.yaml_source import Lines, Path_

__all__ = [
    "ENDPOINT_KEYS",
    "ENV_PATTERN",
    "LIMITS",
    "READ_MODES",
    "REFERENCE_KEYS",
    "WRITE_PARAMETERS",
    "check_limit",
    "check_write_path",
    "env_names",
    "expand_env",
    "is_reference",
    "resolve_path",
    "where",
]

ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_OPENING = re.compile(r"\$\{")
#: The keys of a one-key mapping that refers to something instead of being data.
REFERENCE_KEYS = ("$input", "$world")
#: Stage parameters a recipe gives that name a place terrapipe writes to (checked against the root).
WRITE_PARAMETERS: dict[str, tuple[str, ...]] = {"cache": ("store",)}
#: Keys of ``storage_options`` that would point requests (and your ambient cloud credentials) elsewhere.
ENDPOINT_KEYS = re.compile(r"endpoint|host|url|prox|domain|server|address|socket", re.IGNORECASE)
#: The largest value a recipe may give these keys (its ``storage:`` section, a step's, the loader's): a
#: shared recipe cannot make reads wait without end (``timeout: .inf``, ``retries: 1000000000``) or start
#: a thread per element (``workers: 100000000``); more is set in Python (``tp.Storage(...)``, arguments).
LIMITS: dict[str, float] = {
    "timeout": 3600.0,
    "deadline": 86400.0,
    "backoff": 3600.0,
    "max_backoff": 3600.0,
    "retries": 100,
    "concurrency": 1024,
    "workers": 1024,
}
#: The ``mode`` values ``open_files`` may be given in a recipe (never writing, appending or creating).
READ_MODES = ("r", "rb", "rt", "br", "tr")


def check_limit(key: str, value: Any, at: str) -> None:
    """Refuse a number over :data:`LIMITS` for ``key`` (infinity and NaN too); ``at`` starts the message.

    Raises
    ------
    RecipeError
        Naming the key, the value and the limit.

    Examples
    --------
    >>> check_limit("retries", 5, "r.yaml, line 3: storage.retries")
    >>> check_limit("timeout", float("inf"), "r.yaml, line 3: storage.timeout")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.RecipeError: r.yaml, line 3: storage.timeout: inf is over the most a recipe may set (3600); ...
    """
    limit = LIMITS.get(key)
    if limit is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    if value != value:  # NaN
        raise RecipeError(f"{at}: {value!r} is not a number")
    if value > limit:
        raise RecipeError(
            f"{at}: {value!r} is over the most a recipe may set ({limit:g}); a shared recipe cannot make "
            "reads wait without end or start that many threads: set more in Python"
        )


def where(file: str, lines: Lines, path: Path_) -> str:
    """``"file, line N"`` for the value at ``path`` (its nearest known parent's line)."""
    probe = path
    while probe and probe not in lines:
        probe = probe[:-1]
    line = lines.get(probe)
    return f"{file}, line {line}" if line is not None else file


def env_names(text: str, path: Path_, file: str, lines: Lines) -> list[str]:
    """Return the variables ``${NAME}`` in ``text``, in order.

    Raises
    ------
    RecipeError
        For any ``${`` that does not start a ``${NAME}`` (``${X:-d}``, ``${}``, ``${1X}``, ``${X``).
    """
    names: list[str] = []
    for opening in _OPENING.finditer(text):
        match = ENV_PATTERN.match(text, opening.start())
        if match is None:
            shown = text[opening.start() : opening.start() + 24]
            msg = (
                f"{where(file, lines, path)}: {shown!r} at {_dotted(path)} is not a variable: recipes only"
                " know ${NAME} (no defaults, no nesting, no escapes)"
            )
            raise RecipeError(msg)
        names.append(match.group(1))
    return names


def expand_env(text: str, path: Path_, file: str, lines: Lines, allowed: Set[str]) -> str:
    """Replace ``${NAME}`` with the environment variable ``NAME``, for allowed names only.

    Parameters
    ----------
    text
        A string value of the recipe.
    path, file, lines
        Where it is (for messages).
    allowed
        The variable names the user allowed (``load_recipe(allow_env=...)``).

    Returns
    -------
    str
        The text with every variable replaced (replacements are not expanded again).

    Raises
    ------
    RecipeError
        If a variable is not allowed or not set, or a ``${`` is not a
        variable (names the variable, the key and the line, never a value).
    """
    for name in env_names(text, path, file, lines):
        if os.environ.get(name) is None:
            also = "" if name in allowed else f" and allow it (allow_env={{{name!r}}}, --allow-env {name})"
            msg = (
                f"{where(file, lines, path)}: environment variable {name} is not set"
                f" (used at {_dotted(path)}); set it: export {name}=...{also}"
            )
            raise RecipeError(msg)
        if name not in allowed:
            msg = (
                f"{where(file, lines, path)}: environment variable {name} is not allowed at {_dotted(path)}:"
                f" a shared recipe cannot put your environment into what it reads, writes or sends; if"
                f" you trust this recipe with {name}, allow it: load_recipe(..., allow_env={{{name!r}}})"
                f" or terrapipe run --allow-env {name}"
            )
            raise RecipeError(msg)
    return ENV_PATTERN.sub(lambda m: os.environ[m.group(1)], text)


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


def check_write_path(value: Any, folder: Path, root: Path, at: str, key: str, shown: Any = None) -> str:
    """Resolve a place a recipe writes to and check that it lies inside ``root``.

    Parameters
    ----------
    value
        The value from the recipe (after ``${NAME}`` expansion).
    folder
        The recipe's folder: relative paths resolve against it.
    root
        The folder writes must stay in (resolved).
    at, key
        ``"file, line N"`` and the key's name, for messages.
    shown
        The value as written in the recipe (``${NAME}`` unexpanded), for
        messages; default ``value``.

    Returns
    -------
    str
        The absolute, resolved path.

    Raises
    ------
    RecipeError
        If the value is not a string, is a URL other than ``file://``,
        starts with ``~``, or resolves (symbolic links followed) outside ``root``.

    Examples
    --------
    >>> check_write_path("cache.zarr", Path("/data/r"), Path("/data"), "r.yaml", "store")
    '/data/r/cache.zarr'
    >>> check_write_path("../../x", Path("/data/r"), Path("/data/r"), "r.yaml, line 3", "store")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.RecipeError: r.yaml, line 3: store '../../x' is outside the recipe's root /data/r: ...
    """
    if not isinstance(value, str) or not value:
        raise RecipeError(f"{at}: {key} must be a folder (a non-empty string), got {value!r}")
    value_shown = value if shown is None else shown
    text = value
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme == "file":
        parsed = urllib.parse.urlsplit(text)
        if parsed.netloc not in ("", "localhost"):
            raise RecipeError(
                f"{at}: {key} {value_shown!r} names another host; a recipe writes only under its root"
            )
        text = urllib.parse.unquote(parsed.path)
    elif "://" in text or (len(scheme) > 1 and text.startswith(f"{scheme}:")):
        msg = (
            f"{at}: {key} {value_shown!r} is a URL; a recipe writes only to local folders under its root ({root});"
            " give a remote store in Python (recipe.build().cache(store))"
        )
        raise RecipeError(msg)
    if text.startswith("~"):
        msg = f"{at}: {key} {value_shown!r} starts with ~ (your home folder); a recipe writes only under its root ({root})"
        raise RecipeError(msg)
    resolved = (folder / text).resolve()
    if not resolved.is_relative_to(root):
        msg = (
            f"{at}: {key} {value_shown!r} is outside the recipe's root {root}: a recipe writes only inside its own"
            " folder; give a path inside it, or pass root= (load_recipe(..., root=...)) to allow a wider folder"
        )
        raise RecipeError(msg)
    return str(resolved)


def is_reference(value: Any) -> bool:
    """Whether ``value`` is ``{"$input": ...}`` or ``{"$world": ...}``."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in REFERENCE_KEYS


def _dotted(path: Path_) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))
