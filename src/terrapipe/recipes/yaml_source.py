r"""Read a recipe's YAML into plain Python data plus the line of every key, within fixed bounds.

:func:`load_yaml` uses ``yaml.compose`` (safe: no tags that build objects,
no code) and walks the node tree itself, so every value keeps the line it was
written on. Lines are 1-based and keyed by the value's path, a tuple of
mapping keys and list indices.

A recipe is a file someone else may have written, so reading it is bounded
before any of it is built: at most :data:`MAX_RECIPE_BYTES` of text, nesting
at most :data:`MAX_DEPTH` deep, at most :data:`MAX_NODES` values and keys
and :data:`MAX_TEXT` characters of scalars once anchors and aliases are
expanded (a "billion laughs" file of a few hundred bytes would otherwise grow
to gigabytes). An alias of an anchor that contains
it (a self-referencing anchor) is refused. Each of these is a
:class:`~terrapipe.core.errors.RecipeError` naming the file and line, raised
in bounded time and memory. Nesting is checked on the event stream, before
the composer (which recurses once per level) sees the document. Parsing uses
PyYAML's safe loader, the libyaml one (``CSafeLoader``) where installed.

Examples
--------
>>> data, lines = load_yaml("a:\n  b: [1, 2]\n", "<doc>")
>>> data, lines[("a", "b", 1)]
({'a': {'b': [1, 2]}}, 2)
>>> load_yaml("a: &x [*x]\n", "r.yaml")
Traceback (most recent call last):
...
terrapipe.core.errors.RecipeError: r.yaml, line 1: anchor 'x' refers to itself (an alias inside its own anchor); write the value out
"""

from __future__ import annotations

from typing import Any

from terrapipe.core.errors import RecipeError
from terrapipe.core.optional import require

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_RECIPE_BYTES",
    "MAX_TEXT",
    "Lines",
    "Path_",
    "check_size",
    "load_yaml",
]

#: A value's place in the document: mapping keys and list indices.
Path_ = tuple[str | int, ...]
#: 1-based line of every path.
Lines = dict[Path_, int]

#: Largest recipe text read (bytes of UTF-8): recipes are a few KiB; this leaves room for long item lists.
MAX_RECIPE_BYTES = 256 * 1024
#: Deepest nesting of mappings and lists (a recipe needs about 8), aliases expanded.
MAX_DEPTH = 64
#: Most values and keys (mappings, lists, scalars) in the document once aliases are expanded.
MAX_NODES = 50_000
#: Most characters in all scalars once aliases are expanded (an anchored long string repeated by aliases).
MAX_TEXT = 4 * MAX_RECIPE_BYTES


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
        If the text is not valid YAML, uses tags or merge keys, is larger than
        :data:`MAX_RECIPE_BYTES`, nests deeper than :data:`MAX_DEPTH`, expands
        to more than :data:`MAX_NODES` values, or has an anchor that refers to
        itself.
    """
    yaml = require("yaml", extra="cli", feature="recipes")
    check_size(text, where)
    try:
        try:
            anchors = _check_depth(text, where, _loader(yaml))
            node = yaml.compose(text, Loader=_loader(yaml))
        except yaml.YAMLError:
            # libyaml's messages point at the end of an unclosed bracket: PyYAML's name where it opened
            # (the depth check comes first, so the pure-Python composer never recurses deeply)
            anchors = _check_depth(text, where, yaml.SafeLoader)
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
    walker = _Walker(where, lines, yaml, anchors)
    try:
        return walker.convert(node, (), 0), lines
    except yaml.YAMLError as err:  # e.g. a merge key (<<): recipes are plain data
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        msg = f"{where}{line}: not a plain-data recipe: {problem}; write the values out instead of merging"
        raise RecipeError(msg) from err


def _loader(yaml: Any) -> Any:
    """PyYAML's safe loader, in C (libyaml) where the wheel has it: about 20 times faster on big files."""
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check_size(text: str, where: str) -> None:
    """Refuse a recipe text over :data:`MAX_RECIPE_BYTES` (UTF-8), naming the line where it crosses it.

    Raises
    ------
    RecipeError
        If the text is too large.
    """
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_RECIPE_BYTES:
        line = text[:MAX_RECIPE_BYTES].count("\n") + 1
        msg = (
            f"{where}, line {line}: the recipe is {size:,} bytes, over the limit of {MAX_RECIPE_BYTES:,}"
            " (MAX_RECIPE_BYTES); a recipe is a short file: put long lists of items in a file it reads"
        )
        raise RecipeError(msg)


def _check_depth(text: str, where: str, loader: Any) -> dict[tuple[int, int], str]:
    """Walk the event stream (no recursion), refuse nesting deeper than :data:`MAX_DEPTH`.

    Returns
    -------
    dict
        The anchor name of every anchored mapping or list, by ``(line, column)``.
    """
    yaml = require("yaml", extra="cli", feature="recipes")
    depth = 0
    anchors: dict[tuple[int, int], str] = {}
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if event.anchor is not None:
                anchors[(event.start_mark.line, event.start_mark.column)] = event.anchor
            depth += 1
            if depth > MAX_DEPTH:
                msg = (
                    f"{where}, line {event.start_mark.line + 1}: mappings and lists nest more than"
                    f" {MAX_DEPTH} deep (MAX_DEPTH); a recipe needs a few levels"
                )
                raise RecipeError(msg)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return anchors


#: The tags a mapping or list may carry (the implicit ones): any other (``!!python/...``, ``!!set``) is refused.
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _Walker:
    """Node tree to plain data, counting every value as aliases expand it."""

    def __init__(self, where: str, lines: Lines, yaml: Any, anchors: dict[tuple[int, int], str]) -> None:
        self.where = where
        self.anchors = anchors
        self.lines = lines
        self.yaml = yaml
        self.constructor = yaml.SafeLoader("")
        self.nodes = 0
        self.text = 0
        self.active: set[int] = set()  # the nodes being converted: an alias to one is a cycle

    def at(self, node: Any) -> str:
        return f"{self.where}, line {node.start_mark.line + 1}"

    def convert(self, node: Any, path: Path_, depth: int) -> Any:
        yaml = self.yaml
        self.nodes += 1
        if self.nodes > MAX_NODES:
            msg = (
                f"{self.at(node)}: the recipe expands to more than {MAX_NODES:,} values (MAX_NODES);"
                " anchors and aliases (&a, *a) repeat values: write a short recipe"
            )
            raise RecipeError(msg)
        if depth > MAX_DEPTH:
            msg = (
                f"{self.at(node)}: values nest more than {MAX_DEPTH} deep once aliases are expanded"
                " (MAX_DEPTH); a recipe needs a few levels"
            )
            raise RecipeError(msg)
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in self.active:
                anchor = self.anchors.get((node.start_mark.line, node.start_mark.column))
                shown = f"anchor {anchor!r}" if anchor else "an anchor"
                msg = f"{self.at(node)}: {shown} refers to itself (an alias inside its own anchor); write the value out"
                raise RecipeError(msg)
            if node.tag not in _PLAIN_TAGS:
                msg = f"{self.at(node)}: tag {node.tag!r} is not plain data; recipes are plain mappings and lists"
                raise RecipeError(msg)
            self.active.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self.mapping(node, path, depth)
                return [self.convert(v, (*path, i), depth + 1) for i, v in enumerate(node.value)]
            finally:
                self.active.discard(id(node))
        self.text += len(node.value)
        if self.text > MAX_TEXT:
            msg = (
                f"{self.at(node)}: the recipe's text expands to more than {MAX_TEXT:,} characters (MAX_TEXT);"
                " anchors and aliases (&a, *a) repeat values: write a short recipe"
            )
            raise RecipeError(msg)
        return self.scalar(node)

    def scalar(self, node: Any) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except self.yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            msg = f"{self.at(node)}: cannot read value: {problem}"
            raise RecipeError(msg) from err
        except (ValueError, OverflowError) as err:  # e.g. an integer of more than 4,300 digits
            msg = f"{self.at(node)}: cannot read value {node.value[:40]!r}...: {str(err).splitlines()[0]}"
            raise RecipeError(msg) from err

    def mapping(self, node: Any, path: Path_, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, self.yaml.ScalarNode):
                kind = type(key_node).__name__.removesuffix("Node").lower()
                msg = f"{self.at(key_node)}: keys must be strings, got a {kind}"
                raise RecipeError(msg)
            key = self.scalar(key_node)
            if not isinstance(key, str):
                msg = f"{self.at(key_node)}: keys must be strings, got {key!r}"
                raise RecipeError(msg)
            if key in out:
                msg = f"{self.at(key_node)}: key {key!r} given twice"
                raise RecipeError(msg)
            self.nodes += 1  # keys count too: a file of many short keys is bounded like one of many values
            out[key] = self.convert(value_node, (*path, key), depth + 1)
        return out
