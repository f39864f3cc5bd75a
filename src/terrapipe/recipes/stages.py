"""Look up the stage a recipe step names and check its keyword arguments.

Only registered functional names (``pipe.<name>(...)``: terrapipe's stages
and torch's own pipes) can be named; their signature (``__init__``, or
``__new__`` for torch pipes such as ``fork`` and ``demux`` whose ``__init__``
is a bare ``*args, **kwargs``) says which keys a step may give. Annotated
simple types (``int``, ``float``, ``str``, ``bool``, sequences, mappings,
``None``) are checked here, so the error can name the line; everything else
is checked by the stage when it is built.

:func:`code_slot` says which parameters take code. It looks at the
evaluated annotation and the name, so a new stage is covered without a list
to keep: a parameter whose annotation holds a ``Callable`` anywhere (also
inside a union, a mapping or ``*args``), or whose name is ``fn``, ends in
``_fn`` or is one of :data:`FUNCTION_NAMES`, is a *function slot*: a recipe
may give it only an allowlisted recipe function
(:mod:`terrapipe.recipes.functions`). A parameter that takes a class, a
protocol object, an executor or a lock (:data:`CODE_NAMES`, ``type[...]``,
``Protocol``, ``Executor``, context managers) is a *code slot*: a recipe may
give it only ``null`` or the plain values its annotation also allows
(``lock: true``).

Examples
--------
>>> import terrapipe as tp
>>> sorted(stage_parameters("header"))
['limit']
>>> check_type(3, "int | None"), check_type("a", "int | None"), check_type([1], "Any")
(True, False, True)
"""

from __future__ import annotations

import collections.abc
import contextlib
import inspect
import re
import typing
from concurrent.futures import Executor
from typing import Any, Literal

from terrapipe.core.pipe import registered_class, registered_names

__all__ = [
    "CODE_NAMES",
    "FUNCTION_NAMES",
    "check_type",
    "code_slot",
    "stage_class",
    "stage_hints",
    "stage_names",
    "stage_parameters",
]

#: Parameter names that take a function whatever their annotation (besides ``fn`` and ``*_fn``).
FUNCTION_NAMES = frozenset({"key", "sort_key", "collate", "handlers", "conversion", "preprocess", "callback"})
#: Parameter names that take code a recipe can never give (objects, classes, hooks).
CODE_NAMES = frozenset(
    {"modifier", "request_modifier", "executor", "wrapper_class", "lock", "opener", "loader", "hook"}
)

SlotKind = Literal["function", "code"]


def stage_names() -> list[str]:
    """Every functional name a recipe step may use (private torch names excluded)."""
    return registered_names()


def stage_class(name: str) -> type[Any] | None:
    """Return the pipe class registered under ``name``, or ``None``."""
    return registered_class(name)


def _constructor(cls: type[Any]) -> Any:
    """``cls.__init__``, or ``cls.__new__`` when ``__init__`` only takes ``*args, **kwargs``."""
    init: Any = cls.__init__
    new: Any = cls.__new__
    kinds = {p.kind for p in list(inspect.signature(init).parameters.values())[1:]}
    if (
        kinds <= {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
        and new is not object.__new__
    ):
        return new
    return init


def stage_parameters(name: str) -> dict[str, inspect.Parameter]:
    """Return the parameters a step of stage ``name`` can set (the source pipe excluded).

    Examples
    --------
    >>> import terrapipe
    >>> sorted(stage_parameters("fork"))
    ['buffer_size', 'copy', 'num_instances']
    """
    cls = stage_class(name)
    if cls is None:
        return {}
    params = list(inspect.signature(_constructor(cls)).parameters.values())[1:]  # self / cls
    if params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]  # the source pipe
    # ``**deprecated`` holds a stage's old keywords only (a recipe's loader knows them by name)
    return {p.name: p for p in params if not (p.kind is p.VAR_KEYWORD and p.name == "deprecated")}


def stage_hints(name: str) -> dict[str, Any]:
    """Return the evaluated annotations of stage ``name``'s parameters (empty where they cannot be evaluated)."""
    cls = stage_class(name)
    if cls is None:
        return {}
    try:
        return typing.get_type_hints(_constructor(cls))
    except Exception:
        return {}


def code_slot(name: str, param: inspect.Parameter | None, hint: Any = None) -> SlotKind | None:
    """Whether parameter ``name`` takes code: ``"function"``, ``"code"`` or ``None`` (plain data).

    Parameters
    ----------
    name
        The parameter's name (also a key given to a stage's ``**kwargs``).
    param
        The parameter, or ``None`` for a key that goes to ``**kwargs``.
    hint
        Its evaluated annotation, when known (:func:`stage_hints`).

    Returns
    -------
    str or None
        ``"function"``: only an allowlisted recipe function may be given;
        ``"code"``: nothing but ``null`` or plain values the annotation also
        allows; ``None``: plain data.

    Examples
    --------
    >>> code_slot("fn", None), code_slot("classifier_fn", None), code_slot("limit", None)
    ('function', 'function', None)
    >>> code_slot("wrapper_class", None), code_slot("x", None, type[int])
    ('code', 'code')
    """
    kinds = set(_hint_kinds(hint)) if hint is not None else set()
    text = describe(param.annotation) if param is not None else ""
    if name in CODE_NAMES or "code" in kinds or re.search(r"\btype\b|Modifier|Executor|ContextManager", text):
        return "code"
    if (
        name == "fn"
        or name.endswith("_fn")
        or name in FUNCTION_NAMES
        or "function" in kinds
        or "Callable" in text
    ):
        return "function"
    return None


def _hint_kinds(hint: Any) -> list[SlotKind]:
    """Return the code kinds found anywhere inside an evaluated annotation."""
    origin = typing.get_origin(hint)
    if hint is collections.abc.Callable or hint is typing.Callable or origin is collections.abc.Callable:
        return ["function"]
    if hint is type or origin is type:
        return ["code"]
    if isinstance(hint, type):
        # the classes themselves, not ABC look-alikes (torch.device has __enter__ but is a plain value)
        if getattr(hint, "_is_protocol", False) or any(
            base in (Executor, contextlib.AbstractContextManager) for base in hint.__mro__
        ):
            return ["code"]
        return []
    if origin is Literal:
        return []
    return [kind for arg in typing.get_args(hint) for kind in _hint_kinds(arg)]


def plain_fit(value: Any, hint: Any) -> bool:
    """Whether ``value`` is plain data that a member of ``hint`` holding no code allows.

    ``None``, a bool/int/float/str of that type, a list for a sequence of
    simple values (each checked), or a mapping for a mapping of data.

    Examples
    --------
    >>> plain_fit(True, bool | contextlib.AbstractContextManager | None), plain_fit("x", bool | None)
    (True, False)
    >>> weights = collections.abc.Sequence[float] | collections.abc.Callable[[Any], float] | None
    >>> plain_fit([1, 2.5], weights), plain_fit(["os.system"], weights), plain_fit("os.system", weights)
    (True, False, False)
    """
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _UnionType) else (hint,)
    for member in members:
        if _hint_kinds(member):
            continue
        origin = typing.get_origin(member) or member
        if value is None and member is type(None):
            return True
        if isinstance(member, type) and member in (bool, int, float, str) and check_type(value, member):
            return True
        if isinstance(value, list) and origin in (list, tuple, collections.abc.Sequence):
            (item, *_) = typing.get_args(member) or (Any,)
            if item in (bool, int, float, str):
                if all(check_type(v, item) for v in value):
                    return True
            else:
                return True
        if isinstance(value, dict) and origin in (dict, collections.abc.Mapping):
            return True
    return False


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


_UnionType = type(int | None)


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
