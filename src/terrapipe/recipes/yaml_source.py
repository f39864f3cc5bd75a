r"""Read a recipe's YAML into plain Python data plus the line of every key.

:func:`load_yaml` uses ``yaml.compose`` (safe: no tags that build objects,
no code) and walks the node tree itself, so every value keeps the line it was
written on. Lines are 1-based and keyed by the value's path, a tuple of
mapping keys and list indices.

Examples
--------
>>> data, lines = load_yaml("a:\n  b: [1, 2]\n", "<doc>")
>>> data, lines[("a", "b", 1)]
({'a': {'b': [1, 2]}}, 2)
"""

from __future__ import annotations

from typing import Any

from terrapipe.core.errors import RecipeError
from terrapipe.core.optional import require

__all__ = ["Lines", "Path_", "load_yaml"]

#: A value's place in the document: mapping keys and list indices.
Path_ = tuple[str | int, ...]
#: 1-based line of every path.
Lines = dict[Path_, int]


def load_yaml(text: str, where: str) -> tuple[Any, Lines]:
    """Parse YAML text into plain data and the line of every value.

    Parameters
    ----------
    text
        The YAML document.
    where
        Name of the document for messages (the file path).

    Returns
    -------
    tuple
        ``(data, lines)``.

    Raises
    ------
    RecipeError
        If the text is not valid YAML, or uses tags or anchors-with-merge keys.
    """
    yaml = require("yaml", extra="cli", feature="recipes")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        msg = f"{where}{line}: not valid YAML: {problem}"
        raise RecipeError(msg) from err
    lines: Lines = {}
    if node is None:
        return None, lines
    constructor = yaml.SafeLoader("")
    try:
        return _convert(node, (), lines, constructor, where), lines
    except yaml.YAMLError as err:  # e.g. a merge key (<<): recipes are plain data
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        msg = f"{where}{line}: not a plain-data recipe: {problem}; write the values out instead of merging"
        raise RecipeError(msg) from err


def _convert(node: Any, path: Path_, lines: Lines, constructor: Any, where: str) -> Any:
    yaml = require("yaml", extra="cli", feature="recipes")
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                msg = f"{where}, line {key_node.start_mark.line + 1}: keys must be strings, got {key!r}"
                raise RecipeError(msg)
            if key in out:
                msg = f"{where}, line {key_node.start_mark.line + 1}: key {key!r} given twice"
                raise RecipeError(msg)
            out[key] = _convert(value_node, (*path, key), lines, constructor, where)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(v, (*path, i), lines, constructor, where) for i, v in enumerate(node.value)]
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.YAMLError as err:
        msg = f"{where}, line {lines[path]}: cannot read value: {err}"
        raise RecipeError(msg) from err
