"""Look up the stage a recipe step names and check its keyword arguments.

Only registered functional names (``pipe.<name>(...)``: terrapipe's stages
and torch's own pipes) can be named; their ``__init__`` signature says which
keys a step may give. Annotated simple types (``int``, ``float``, ``str``,
``bool``, sequences, mappings, ``None``) are checked here, so the error can
name the line; everything else is checked by the stage when it is built.

Examples
--------
>>> import terrapipe as tp
>>> sorted(stage_parameters("header"))
['limit']
>>> check_type(3, "int | None"), check_type("a", "int | None"), check_type([1], "Any")
(True, False, True)
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from terrapipe.core.pipe import IterDataPipe

__all__ = ["CALLABLE_PARAMETERS", "check_type", "stage_class", "stage_names", "stage_parameters"]

#: Parameters that take a function: a recipe gives a registered recipe function name.
CALLABLE_PARAMETERS = ("fn", "filter_fn")


def stage_names() -> list[str]:
    """Every functional name a recipe step may use (private torch names excluded)."""
    return sorted(name for name in IterDataPipe.functions if not name.startswith("_"))


def stage_class(name: str) -> type[Any] | None:
    """Return the pipe class registered under ``name``, or ``None``."""
    if name.startswith("_"):
        return None
    function = IterDataPipe.functions.get(name)
    if function is None:
        return None
    args = getattr(function, "args", ())
    cls = args[0] if args else function
    return cls if isinstance(cls, type) else None


def stage_parameters(name: str) -> dict[str, inspect.Parameter]:
    """Return the parameters a step of stage ``name`` can set (the source pipe excluded)."""
    cls = stage_class(name)
    if cls is None:
        return {}
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # self
    if params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]  # the source pipe
    return {p.name: p for p in params}


_SIMPLE: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "None": (type(None),),
    "list": (list,),
    "dict": (dict,),
    "tuple": (list,),
    "Sequence": (list, str),
    "Mapping": (dict,),
    "dict[str, Any]": (dict,),
}


def check_type(value: Any, annotation: Any) -> bool:
    """Whether a YAML value fits a simple annotation (``True`` when the annotation is not simple).

    Parameters
    ----------
    value
        The value from the recipe.
    annotation
        The parameter's annotation (a string under postponed evaluation).

    Returns
    -------
    bool
        ``False`` only when the annotation is made of simple types none of which fits.
    """
    if annotation is inspect.Parameter.empty:
        return True
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
    parts = [_outer(p.strip()) for p in _split_union(text)]
    allowed: list[type] = []
    for part in parts:
        if part not in _SIMPLE:
            return True
        allowed.extend(_SIMPLE[part])
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, tuple(allowed))


def describe(annotation: Any) -> str:
    """Return the annotation as text for messages."""
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))


def _split_union(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "["
        depth -= char == "]"
        if char == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _outer(part: str) -> str:
    match = re.fullmatch(r"(Sequence|Mapping|list|dict|tuple)\[.*\]", part)
    return match.group(1) if match else part


#: Layers whose import registers stages (``terrapipe`` itself imports the others).
_LAYERS = (
    "terrapipe.chip",
    "terrapipe.fuse",
    "terrapipe.tensor",
    "terrapipe.run",
    "terrapipe.stac",
    "terrapipe.io",
)


def ensure_registered() -> None:
    """Import terrapipe's layers so that every functional name is registered."""
    import importlib

    for name in ("terrapipe", *_LAYERS):
        importlib.import_module(name)
