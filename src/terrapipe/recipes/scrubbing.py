r"""Keep environment values out of what a recipe's commands print when the pipe fails or warns.

A recipe may use the environment variables the user allows (``${NAME}``,
:mod:`terrapipe.recipes.values`), and a value that came from one is shown
as ``${NAME}`` in messages. The recipe's own checks keep that promise when
the file is loaded and the pipe built (:meth:`~terrapipe.recipes.Recipe.scrub`);
the errors and warnings of the stages themselves, raised while the pipe
runs, know nothing of the recipe: a path or URL built from a token
(``https://host/${TOKEN}/a.tif``) came back whole in a ``ReadError`` or a
``SkippedElementWarning`` printed by ``terrapipe run``, ``preview`` or
``bench``. :func:`scrubbed` wraps those runs: every warning shown and every
error raised (with its causes, shown by ``--verbose``) has each value
replaced by its ``${NAME}``.

Examples
--------
>>> import os, warnings
>>> from terrapipe.recipes import load_recipe
>>> os.environ["TP_DOC_TOKEN"] = "t0k3n"
>>> recipe = load_recipe(text="version: 1\nname: x\ninputs:\n  main:\n    source: {items: ['${TP_DOC_TOKEN}']}\n",
...                      allow_env={"TP_DOC_TOKEN"})
>>> try:
...     with scrubbed(recipe):
...         raise OSError("cannot open /data/t0k3n/a.tif")
... except OSError as err:
...     print(err)
cannot open /data/${TP_DOC_TOKEN}/a.tif
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from terrapipe.core.errors import RecipeError

__all__ = ["scrub_error", "scrubbed"]


@contextlib.contextmanager
def scrubbed(recipe: Any) -> Iterator[None]:
    """Show the warnings and raise the errors of the block with the recipe's environment values hidden.

    Parameters
    ----------
    recipe
        A :class:`~terrapipe.recipes.Recipe` (its :meth:`~terrapipe.recipes.Recipe.scrub`).

    Raises
    ------
    BaseException
        What the block raised, its message (and its causes') scrubbed; a
        :class:`~terrapipe.core.errors.RecipeError` with the scrubbed message
        where the error's own text cannot be rewritten.
    """
    scrub: Callable[[str], str] = recipe.scrub
    shown = warnings.showwarning

    def show(
        message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        shown(scrub(str(message)), category, filename, lineno, file, line)

    warnings.showwarning = show  # module-wide, as warnings.catch_warnings does: loader threads warn too
    try:
        yield
    except Exception as err:
        kept = scrub_error(err, scrub)
        if kept is not err:
            raise kept from None
        raise
    finally:
        warnings.showwarning = shown


def scrub_error(err: BaseException, scrub: Callable[[str], str]) -> BaseException:
    """Rewrite the messages of ``err`` and its causes with ``scrub``; return the error to raise.

    ``err`` itself where its text could be rewritten (``args``, an
    ``OSError``'s file names), else a :class:`~terrapipe.core.errors.RecipeError`
    with the scrubbed text. A cause whose text cannot be rewritten is cut
    from the chain.

    Examples
    --------
    >>> err = OSError(2, "No such file", "/data/t0k3n/a.tif")
    >>> str(scrub_error(err, lambda text: text.replace("t0k3n", "${T}")))
    "[Errno 2] No such file: '/data/${T}/a.tif'"
    """
    seen: set[int] = set()
    current: BaseException | None = err
    previous: BaseException | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if not _rewrite(current, scrub):
            if previous is None:
                return RecipeError(scrub(str(current)))
            previous.__cause__ = None
            previous.__context__ = None
            previous.__suppress_context__ = True
            break
        previous = current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return err


def _rewrite(err: BaseException, scrub: Callable[[str], str]) -> bool:
    """Scrub ``err``'s text in place; return whether it is clean now."""
    text = str(err)
    if scrub(text) == text and not _notes_leak(err, scrub):
        return True
    try:  # some errors' text is read-only (rasterio's CPLE_* keep theirs in properties)
        if isinstance(err, OSError):
            for name in ("filename", "filename2"):
                value = getattr(err, name, None)
                if isinstance(value, str):
                    setattr(err, name, scrub(value))
        if scrub(str(err)) != str(err):
            err.args = tuple(scrub(a) if isinstance(a, str) else a for a in err.args)
        if scrub(str(err)) != str(err):
            err.args = (scrub(text),)
    except (AttributeError, TypeError):
        return False
    notes = getattr(err, "__notes__", None)
    if isinstance(notes, list):
        notes[:] = [scrub(n) if isinstance(n, str) else n for n in notes]
    return scrub(str(err)) == str(err) and not _notes_leak(err, scrub)


def _notes_leak(err: BaseException, scrub: Callable[[str], str]) -> bool:
    notes = getattr(err, "__notes__", None)
    return isinstance(notes, list) and any(isinstance(n, str) and scrub(n) != n for n in notes)
