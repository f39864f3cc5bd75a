r"""``tp.load_recipe``: a YAML recipe file to a checked :class:`Recipe` that builds the pipe.

Everything is checked when the file is loaded, before any data is read: the
YAML's size, nesting and alias expansion (:mod:`terrapipe.recipes.yaml_source`),
the schema (:mod:`terrapipe.recipes.schema`), every step's stage name, keys
and simple types, every parameter that takes code (only allowlisted recipe
functions, :func:`terrapipe.recipes.stages.code_slot`), every
``$input``/``$world`` reference, every ``${ENV}`` variable (only names the
user allows) and every place the recipe writes to (only inside its root;
:mod:`terrapipe.recipes.values`). Errors are a
:class:`~terrapipe.core.errors.RecipeError` naming the file, the line, the
input and step, and the key.

Examples
--------
>>> recipe = load_recipe(text="version: 1\nname: tiny\ninputs:\n  main:\n"
...                      "    source: {items: [3, 1, 2]}\n    steps: [{header: {limit: 2}}]\n")
>>> list(recipe.build())
[3, 1]
>>> load_recipe(text="version: 1\nname: t\ninputs:\n  main:\n    source: {items: [1]}\n"
...             "    steps: [{header: {limt: 2}}]\n", path="bad.yaml")
Traceback (most recent call last):
...
terrapipe.core.errors.RecipeError: bad.yaml, line 6: input 'main', step 0 (header): unknown key 'limt'; did you mean 'limit'?
"""

from __future__ import annotations

import difflib
import functools
import inspect
import os
import re
import typing
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terrapipe.core.errors import RecipeError, TerrapipeDeprecationWarning, TerrapipeError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe
from terrapipe.recipes.function_checks import argument_problem
from terrapipe.recipes.functions import recipe_functions
from terrapipe.recipes.seeding import step_keywords
from terrapipe.recipes.stages import (
    check_type,
    code_slot,
    describe,
    ensure_registered,
    plain_fit,
    stage_class,
    stage_hints,
    stage_names,
    stage_parameters,
)
from terrapipe.recipes.values import (
    ENDPOINT_KEYS,
    ENV_PATTERN,
    READ_MODES,
    WRITE_PARAMETERS,
    check_limit,
    check_write_path,
    env_names,
    expand_env,
    is_reference,
    resolve_path,
    where,
)
from terrapipe.recipes.yaml_source import MAX_RECIPE_BYTES, Lines, Path_, check_size, load_yaml

__all__ = ["Recipe", "Step", "load_recipe"]

#: Stages that pass ``storage=`` on to a reader through their ``**kwargs``.
_STORAGE_BY_KWARGS = ("open_xarray",)
#: Loader settings a recipe cannot set (they take code).
_LOADER_FORBIDDEN = ("pipe", "collate")
#: Shortest environment value hidden on its own in messages (a shorter one, ``1`` or ``eu``, would garble them).
_SCRUBBED_LENGTH = 4


@dataclass(frozen=True)
class Step:
    """One checked step: stage name, raw keyword arguments, ``*args``, and its place in the file.

    ``functions`` names the keys that are function slots (their values are
    allowlisted recipe functions); ``function_args`` says the ``*args`` are.
    """

    stage: str
    kwargs: dict[str, Any]
    args: list[Any]
    path: Path_
    functions: tuple[str, ...] = ()
    function_args: bool = False


@dataclass
class Recipe:
    """A checked recipe: build its pipe with :meth:`build`, its loader with :meth:`loader`.

    Attributes
    ----------
    name, description, seed, output
        From the file.
    inputs
        Input name -> (source spec, list of :class:`Step`).
    loader_settings
        Keyword arguments of :func:`terrapipe.loader` (``seed`` defaults to the recipe's).
    file
        The recipe's path (or ``"<text>"``); relative paths resolve against its folder.
    folder
        The folder relative paths resolve against.
    root
        The folder the recipe may write in (its folder, or the ``root=`` given).
    allow_env
        The environment variables the user allowed the recipe to use.
    """

    name: str
    description: str
    seed: int
    output: str
    inputs: dict[str, tuple[dict[str, Any], list[Step]]]
    loader_settings: dict[str, Any]
    file: str
    folder: Path
    root: Path
    allow_env: frozenset[str]
    lines: Lines = field(repr=False)
    _secrets: dict[str, str] = field(default_factory=dict, repr=False)
    storage_spec: dict[str, Any] | None = field(default=None, repr=False)

    def storage(self) -> Any:
        """Return the :class:`terrapipe.Storage` of the recipe's ``storage:`` section (``None`` without one).

        Environment references are read now, so a changed variable is seen
        (see :mod:`terrapipe.recipes.storage_section`).
        """
        if self.storage_spec is None:
            return None
        from terrapipe.recipes.storage_section import build_storage

        return build_storage(self.storage_spec, self.file, self.lines, self.allow_env, self._secrets)

    # -- building ------------------------------------------------------------------------
    def build(self, world: Any = None) -> IterDataPipe[Any]:
        """Build the pipe of the ``output`` input (and the inputs it refers to).

        Parameters
        ----------
        world
            A :class:`~terrapipe.datasets.SampleWorld` or its folder for ``$world``
            references and ``sample_world`` sources (default: the cached sample world).

        Returns
        -------
        IterDataPipe
            The pipe; nothing is read until it is iterated.

        Raises
        ------
        RecipeError
            If a stage rejects its arguments (names the step and line) or a
            variable is missing.
        """
        return _Builder(self, world).pipe(self.output, ())

    def loader(self, world: Any = None, **overrides: Any) -> Any:
        """``tp.loader(self.build(), **loader_settings)``, with ``overrides`` on top.

        Returns
        -------
        terrapipe.run.PipeLoader
            The loader.
        """
        from terrapipe.run import loader

        settings = {"seed": self.seed, **self.loader_settings, **overrides}
        return loader(self.build(world), **settings)

    def scrub(self, text: str) -> str:
        """``text`` with every value that came from an environment variable shown as ``${NAME}``."""
        for value, template in sorted(self._secrets.items(), key=lambda kv: -len(kv[0])):
            if value:
                text = text.replace(value, template)
        return text


def load_recipe(
    path: str | os.PathLike[str] | None = None,
    *,
    text: str | None = None,
    allow_env: Iterable[str] = (),
    root: str | os.PathLike[str] | None = None,
) -> Recipe:
    """Read and check a recipe file.

    A recipe is untrusted input (someone else may have written it): it can
    only name registered stages and allowlisted recipe functions, use only
    the environment variables you allow, write only inside its root, and its
    YAML is read within fixed bounds. See :mod:`terrapipe.recipes.values`
    and the "Recipe sandbox" section of ``docs/reliability.md``.

    Parameters
    ----------
    path
        The YAML file (``.yaml``), or the name of a bundled recipe (see
        :func:`~terrapipe.recipes.bundled_recipes`).
    text
        The YAML text itself (then ``path`` only names it in messages and
        gives the folder relative paths resolve against).
    allow_env
        Names of the environment variables the recipe may use as
        ``${NAME}`` (default: none). Any other ``${NAME}`` is an error.
    root
        The folder the recipe may write in (default: the recipe's own folder;
        the working directory for ``text=`` without ``path``).

    Returns
    -------
    Recipe
        The checked recipe.

    Raises
    ------
    RecipeError
        Missing file, bad YAML, a file over the YAML bounds, schema error,
        unknown stage, unknown key, wrong type, bad reference or function,
        code given to a parameter, an environment variable not allowed or
        not set, a write outside the root.
    """
    allowed = _check_arguments(path, text, allow_env, root)
    if text is None:
        if path is None:
            raise RecipeError("load_recipe needs a path or text=")
        file = _find(path)
        try:
            text = _read_bounded(file, str(path))
        except OSError as err:
            msg = f"cannot read recipe {str(path)!r}: {err.strerror or err}; check the path"
            if not file.exists() and not file.suffix:
                from terrapipe.recipes.bundled import bundled_recipes

                names = ", ".join(bundled_recipes())
                msg = (
                    f"cannot read recipe {str(path)!r}: no such file, and no bundled recipe has that"
                    f" name (bundled: {names}); give a .yaml file or one of those names"
                )
            raise RecipeError(msg) from err
        name, folder = str(path), file.resolve().parent
    else:
        name = str(path) if path is not None else "<text>"
        folder = Path(path).resolve().parent if path is not None else Path.cwd().resolve()
    base = folder if root is None else Path(os.path.expanduser(os.fspath(root))).resolve()
    ensure_registered()
    data, lines = load_yaml(text, name)
    return _check(data, lines, name, folder, base, allowed)


def _check_arguments(path: Any, text: Any, allow_env: Any, root: Any) -> frozenset[str]:
    """Check ``load_recipe``'s own arguments; return the allowed variable names."""
    if path is not None and not isinstance(path, str | os.PathLike):
        raise RecipeError(
            f"load_recipe: path must be a file path or a bundled recipe's name, got {_shown(path)}"
        )
    if text is not None and not isinstance(text, str):
        raise RecipeError(f"load_recipe: text= must be the YAML text (str), got {type(text).__name__}")
    if root is not None and not isinstance(root, str | os.PathLike):
        raise RecipeError(f"load_recipe: root= must be a folder path, got a {type(root).__name__}")
    names = [allow_env] if isinstance(allow_env, str) else allow_env
    if not isinstance(names, Iterable) or isinstance(names, bytes | dict):
        raise RecipeError(f"load_recipe: allow_env= must be variable names, got a {type(allow_env).__name__}")
    names = list(names)
    bad = [n for n in names if not isinstance(n, str) or not ENV_PATTERN.fullmatch(f"${{{n}}}")]
    if bad:
        raise RecipeError(f"load_recipe: allow_env= takes variable names such as 'PC_TOKEN', got {bad[0]!r}")
    return frozenset(names)


def _read_bounded(file: Path, shown: str) -> str:
    """Read at most :data:`MAX_RECIPE_BYTES` + 1 bytes of a recipe (never a whole huge or endless file)."""
    if file.exists() and not file.is_file():
        raise RecipeError(f"cannot read recipe {shown!r}: not a regular file; give a .yaml file")
    with file.open("rb") as handle:
        raw = handle.read(MAX_RECIPE_BYTES + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if len(raw) > MAX_RECIPE_BYTES:
            check_size(raw.decode("utf-8", errors="replace"), shown)
        line = raw[: err.start].count(b"\n") + 1
        msg = f"{shown}, line {line}: a recipe is UTF-8 text; byte {err.start} is not ({err.reason})"
        raise RecipeError(msg) from None
    check_size(text, shown)
    return text


def _find(path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    if file.exists() or file.suffix:
        return file
    from terrapipe.recipes.bundled import bundled_recipes

    return bundled_recipes().get(str(path), file)


# -- checking ----------------------------------------------------------------------------
def _check(data: Any, lines: Lines, file: str, folder: Path, root: Path, allowed: frozenset[str]) -> Recipe:
    from terrapipe.recipes.schema import recipe_model

    pydantic = require("pydantic", extra="cli", feature="recipes")

    if not isinstance(data, dict):
        raise RecipeError(
            f"{file}: a recipe is a mapping with version, name and inputs; got {type(data).__name__}"
        )
    try:
        spec = recipe_model().model_validate(data)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p in ("str", "dict[str,any]")))
        problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        problem = problem.removeprefix("Value error, ")  # pydantic's prefix of the schema's own checks
        shown = ".".join(str(p) for p in loc) or "recipe"
        msg = f"{where(file, lines, loc)}: {shown}: {problem}"
        raise RecipeError(msg) from None
    recipe = Recipe(
        name=spec.name,
        description=spec.description,
        seed=spec.seed,
        output=spec.output,
        inputs={},
        loader_settings=dict(spec.loader),
        file=file,
        folder=folder,
        root=root,
        allow_env=allowed,
        lines=lines,
    )
    if spec.storage is not None:
        from terrapipe.recipes.storage_section import check_storage_section

        recipe.storage_spec = check_storage_section(spec.storage, file, lines, allowed, recipe._secrets)
    if spec.output not in spec.inputs:
        raise RecipeError(
            f"{where(file, lines, ('output',))}: output {spec.output!r} is not an input; inputs: {', '.join(spec.inputs)}"
        )
    for input_name, input_spec in spec.inputs.items():
        source = input_spec.source.model_dump(exclude_none=True)
        _check_source(recipe, input_name, source)
        steps = [_check_step(recipe, input_name, i, raw) for i, raw in enumerate(input_spec.steps)]
        recipe.inputs[input_name] = (source, steps)
    _check_loader(recipe)
    _check_cycles(recipe)
    _check_shared(recipe)
    return recipe


def _check_source(recipe: Recipe, input_name: str, source: dict[str, Any]) -> None:
    path: Path_ = ("inputs", input_name, "source")
    if "sample_world" in source:
        _check_world_field(recipe, source["sample_world"], (*path, "sample_world"))
    elif "search_stac" in source:
        params, hints = _search_parameters()
        search = source["search_stac"]
        if isinstance(search, dict) and "source" in search:
            at = where(recipe.file, recipe.lines, (*path, "search_stac", "source"))
            if "catalog" in search:
                raise RecipeError(f"{at}: source search_stac: give catalog: only (source: is its old name)")
            warnings.warn(
                f"{at}: search_stac's source: is deprecated; its new name is catalog:",
                TerrapipeDeprecationWarning,
                stacklevel=2,
            )
        _check_kwargs(
            recipe, search, params, (*path, "search_stac"), "source search_stac", "search_stac", hints
        )
        _check_headers(recipe, search.get("headers"), (*path, "search_stac", "headers"))
    _walk_values(recipe, source, path)


#: Header names that carry a credential: in a recipe, only as a ``${NAME}`` reference (as ``storage:``'s).
_SECRET_HEADER = re.compile(r"auth|token|key|secret|cookie|passw|signature|session|credential", re.IGNORECASE)
_ONE_REFERENCE = re.compile(r"(?:Bearer |Basic |Token )?\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def _check_headers(recipe: Recipe, headers: Any, path: Path_) -> None:
    """Refuse a literal credential in ``search_stac``'s ``headers`` (a shared recipe must never hold one).

    The value is never shown: the message names the header and the line.
    """
    if not isinstance(headers, dict):
        return
    for name, value in headers.items():
        if _SECRET_HEADER.search(str(name)) and not (
            isinstance(value, str) and _ONE_REFERENCE.fullmatch(value.strip())
        ):
            raise RecipeError(
                f"{where(recipe.file, recipe.lines, (*path, name))}: source search_stac: header {str(name)!r} holds "
                "a credential, and a shared recipe must never hold one; reference an environment variable "
                f"instead ({name}: ${{MY_TOKEN}}, or 'Bearer ${{MY_TOKEN}}') and allow it "
                "(terrapipe run --allow-env MY_TOKEN) (the value given is not shown)"
            )


def _check_step(recipe: Recipe, input_name: str, index: int, raw: Any) -> Step:
    path: Path_ = ("inputs", input_name, "steps", index)
    label = f"input {input_name!r}, step {index}"
    if isinstance(raw, str):
        name, kwargs = raw, {}
    elif len(raw) == 1:
        name, kwargs = next(iter(raw.items()))
        kwargs = {} if kwargs is None else kwargs
    else:
        raise RecipeError(
            f"{where(recipe.file, recipe.lines, path)}: {label}: a step is one stage name with its arguments, got keys {sorted(raw)}"
        )
    label = f"{label} ({name})"
    if stage_class(name) is None:
        close = difflib.get_close_matches(name, stage_names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; `terrapipe recipes --stages` lists them"
        raise RecipeError(f"{where(recipe.file, recipe.lines, path)}: {label}: unknown stage {name!r}{hint}")
    if not isinstance(kwargs, dict):
        raise RecipeError(
            f"{where(recipe.file, recipe.lines, path)}: {label}: arguments must be a mapping of key: value, got {kwargs!r}"
        )
    params = stage_parameters(name)
    hints = stage_hints(name)
    var_positional = next((p for p in params.values() if p.kind is p.VAR_POSITIONAL), None)
    args = kwargs.pop("args", []) if var_positional is not None else []
    if not isinstance(args, list):
        raise RecipeError(
            f"{where(recipe.file, recipe.lines, (*path, name, 'args'))}: {label}: args must be a list"
        )
    old = _old_keys(recipe, name, kwargs, (*path, name), label)
    checked = {k: v for k, v in kwargs.items() if k not in old}
    functions = _check_kwargs(recipe, checked, params, (*path, name), label, name, hints)
    function_args = False
    if var_positional is not None:
        slot = code_slot(var_positional.name, var_positional, hints.get(var_positional.name))
        for i, arg in enumerate(args):
            if slot is not None and not is_reference(arg):
                _check_function(recipe, arg, (*path, name, "args", i), f"{label} args")
        function_args = slot is not None
    _walk_values(recipe, args, (*path, name, "args"))
    return Step(name, kwargs, args, (*path, name), functions, function_args)


def _old_keys(recipe: Recipe, stage: str, kwargs: dict[str, Any], path: Path_, label: str) -> tuple[str, ...]:
    """Warn for a step's old keywords (one release: see :mod:`terrapipe.recipes.seeding`); return them."""
    from terrapipe.recipes.seeding import old_keys

    try:
        old, new_form = old_keys(stage, kwargs)
    except TerrapipeError as err:
        raise RecipeError(f"{where(recipe.file, recipe.lines, path)}: {label}: {err}") from err
    if old:
        at = where(recipe.file, recipe.lines, (*path, old[0]))
        keys = ", ".join(f"{k}:" for k in old)
        warnings.warn(
            f"{at}: {label}: {keys} deprecated and will be removed in the next release; give {new_form}",
            TerrapipeDeprecationWarning,
            stacklevel=2,
        )
    return old


def _search_parameters() -> tuple[dict[str, inspect.Parameter], dict[str, Any]]:
    """Return the keywords a recipe's ``search_stac:`` source takes and their types.

    ``search_stac``'s own parameters (``stac_query`` aside: a recipe gives the
    search parameters by name), one per field of ``STACQuery``, and the
    deprecated ones it still takes (``source``, the transport keywords).
    """
    from terrapipe.stac.query import STACQuery
    from terrapipe.stac.search import search_stac

    params = {
        name: p
        for name, p in inspect.signature(search_stac).parameters.items()
        if p.kind is not p.VAR_KEYWORD and name != "stac_query"
    }
    hints = {**_hints(STACQuery), **_DEPRECATED_SEARCH_HINTS, **_hints(search_stac)}
    for name in [*_hints(STACQuery), *_DEPRECATED_SEARCH_HINTS]:
        params[name] = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
    return params, hints


#: search_stac's deprecated keywords a recipe may still give (one release), with their old types.
_DEPRECATED_SEARCH_HINTS: dict[str, Any] = {
    "source": Any,
    "headers": dict[str, str] | None,
    "request_modifier": Callable[..., Any] | None,
    "timeout": float | None,
    "retries": int | None,
    "backoff": float | None,
    "max_backoff": float | None,
    "deadline": float | None,
    "max_bytes": int | None,
}


def _hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:
        return {}


def _check_kwargs(
    recipe: Recipe,
    kwargs: dict[str, Any],
    params: dict[str, inspect.Parameter],
    path: Path_,
    label: str,
    stage: str,
    hints: dict[str, Any],
) -> tuple[str, ...]:
    """Check a step's keyword arguments; return the keys that are function slots."""
    named = {k: p for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    functions: list[str] = []
    for key, value in kwargs.items():
        at = where(recipe.file, recipe.lines, (*path, key))
        if key not in named and not open_kwargs:
            close = difflib.get_close_matches(key, named, n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; {stage} takes: {', '.join(named) or 'no arguments'}"
            )
            raise RecipeError(f"{at}: {label}: unknown key {key!r}{hint}")
        if key == "storage":
            raise RecipeError(
                f"{at}: {label}: storage is set once for the whole recipe, in its top-level storage: "
                "section (endpoints, region, credentials as ${VARIABLE} references)"
            )
        if key in WRITE_PARAMETERS.get(stage, ()):
            continue  # a place to write: checked by _check_writes (a folder inside the root)
        param = named.get(key)
        hint_type = hints.get(key) if param is not None else None
        slot = code_slot(key, param, hint_type)
        if slot == "code":
            if not (value is None or (hint_type is not None and plain_fit(value, hint_type))):
                raise RecipeError(f"{at}: {label}: {key!r} takes code and cannot be set in a recipe")
            continue
        if slot == "function":
            if hint_type is not None and plain_fit(value, hint_type):
                continue  # data the parameter also takes (weights: [1, 2], key: null)
            if value is None and param is not None and param.default is None:
                continue
            _check_function(recipe, value, (*path, key), label)
            functions.append(key)
            continue
        if param is None:  # a key passed on to the stage's **kwargs: plain data
            continue
        # the resolved hint: search_stac's query fields are parameters made without an annotation
        annotation = hints.get(key, param.annotation)
        if not is_reference(value) and not check_type(value, annotation):
            shown = _shown(value)
            raise RecipeError(f"{at}: {label}: {key!r} must be {describe(annotation)}, got {shown}")
        check_limit(key, value, f"{at}: {label}: {key!r}")
    missing = [k for k, p in named.items() if p.default is p.empty and k not in kwargs]
    if missing:
        raise RecipeError(
            f"{where(recipe.file, recipe.lines, path)}: {label}: missing required key {missing[0]!r}"
        )
    _walk_values(recipe, kwargs, path)
    _check_writes(recipe, stage, kwargs, path, label)
    _check_storage_options(recipe, kwargs, path, label, inside=False)
    return tuple(functions)


def _check_storage_options(recipe: Recipe, value: Any, path: Path_, label: str, *, inside: bool) -> None:
    """Storage options in a recipe cannot send requests elsewhere (your ambient credentials go with them)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if inside and ENDPOINT_KEYS.search(str(key)):
                at = where(recipe.file, recipe.lines, (*path, key))
                msg = (
                    f"{at}: {label}: storage option {key!r} would send requests (with your cloud credentials)"
                    " to a host the recipe chose; a recipe cannot set endpoints: configure them in your own"
                    " environment (e.g. AWS_ENDPOINT_URL) or in Python"
                )
                raise RecipeError(msg)
            _check_storage_options(
                recipe, item, (*path, key), label, inside=inside or key == "storage_options"
            )
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_storage_options(recipe, item, (*path, i), label, inside=inside)


def _check_writes(recipe: Recipe, stage: str, kwargs: dict[str, Any], path: Path_, label: str) -> None:
    """Places a step writes to must lie inside the recipe's root; ``open_files`` only reads."""
    for key in WRITE_PARAMETERS.get(stage, ()):
        if key in kwargs:
            at = where(recipe.file, recipe.lines, (*path, key))
            value = kwargs[key]
            if isinstance(value, str):
                value = expand_env(value, (*path, key), recipe.file, recipe.lines, recipe.allow_env)
            check_write_path(value, recipe.folder, recipe.root, f"{at}: {label}:", key, kwargs[key])
    if stage == "open_files" and kwargs.get("mode", "r") not in READ_MODES:
        at = where(recipe.file, recipe.lines, (*path, "mode"))
        msg = (
            f"{at}: {label}: mode {kwargs['mode']!r} would write; a recipe opens files only for reading"
            f" ({', '.join(READ_MODES)})"
        )
        raise RecipeError(msg)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{text} ({type(value).__name__})"


def _check_function(recipe: Recipe, value: Any, path: Path_, label: str) -> None:
    """Check a function slot: an allowlisted name, or ``{name: {keyword: value}}`` with its keywords."""
    at = where(recipe.file, recipe.lines, path)
    key = next((p for p in reversed(path) if isinstance(p, str)), "fn")
    known = recipe_functions()
    kwargs: Any = None
    if isinstance(value, dict) and len(value) == 1:
        name, kwargs = next(iter(value.items()))
        if kwargs is not None and not isinstance(kwargs, dict):
            raise RecipeError(f"{at}: {label}: arguments of function {name!r} must be a mapping")
    elif isinstance(value, str):
        name = value
    else:
        raise RecipeError(
            f"{at}: {label}: {key} must name a recipe function ({', '.join(sorted(known))}), got {value!r}"
        )
    if name not in known:
        raise RecipeError(
            f"{at}: {label}: {name!r} is not a recipe function; recipes can only name: {', '.join(sorted(known))}"
        )
    params = list(inspect.signature(known[name]).parameters.values())[1:]  # the element
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    named = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for keyword, given in (kwargs or {}).items():
        if keyword not in named:
            close = difflib.get_close_matches(keyword, named, n=1)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; it takes: {', '.join(named) or 'nothing'}"
            )
            raise RecipeError(f"{at}: {label}: function {name!r} has no argument {keyword!r}{hint}")
        annotation = named[keyword].annotation
        if not is_reference(given) and not check_type(given, annotation):
            msg = f"{at}: {label}: function {name!r}: {keyword!r} must be {describe(annotation)}, got {_shown(given)}"
            raise RecipeError(msg)
    missing = [k for k, p in named.items() if p.default is p.empty and k not in (kwargs or {})]
    if missing:
        raise RecipeError(f"{at}: {label}: function {name!r} needs {missing[0]!r}")
    judged = {k: v for k, v in (kwargs or {}).items() if not is_reference(v)}
    problem = argument_problem(name, judged)
    if problem is not None:
        raise RecipeError(f"{at}: {label}: function {name!r}: {problem}")


def _check_world_field(recipe: Recipe, value: Any, path: Path_) -> None:
    from terrapipe.datasets import SampleWorld

    fields = [f for f in SampleWorld.__dataclass_fields__ if f not in ("root", "scale", "seed")]
    if value not in fields:
        raise RecipeError(
            f"{where(recipe.file, recipe.lines, path)}: unknown sample-world file {value!r}; one of: {', '.join(fields)}"
        )


def _walk_values(recipe: Recipe, value: Any, path: Path_) -> None:
    """Check references and environment variables inside a value (raises early)."""
    if is_reference(value):
        ((kind, target),) = value.items()
        if kind == "$world":
            _check_world_field(recipe, target, path)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _walk_values(recipe, v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk_values(recipe, v, (*path, i))
    elif isinstance(value, str) and "${" in value:
        names = env_names(value, path, recipe.file, recipe.lines)
        expanded = expand_env(value, path, recipe.file, recipe.lines, recipe.allow_env)
        if names:
            recipe._secrets[expanded] = value
        for name in names:  # each value alone too: stages show it inside paths and URLs made from the string
            found = os.environ.get(name, "")
            if len(found) >= _SCRUBBED_LENGTH:
                recipe._secrets[found] = f"${{{name}}}"


def _check_loader(recipe: Recipe) -> None:
    from terrapipe.run import loader

    params = {k: p for k, p in inspect.signature(loader).parameters.items() if k not in _LOADER_FORBIDDEN}
    for key in recipe.loader_settings:
        if key in _LOADER_FORBIDDEN:
            raise RecipeError(
                f"{where(recipe.file, recipe.lines, ('loader', key))}: loader: {key!r} takes code and cannot be set in a recipe"
            )
    _check_kwargs(recipe, recipe.loader_settings, params, ("loader",), "loader", "loader", _hints(loader))


def _check_cycles(recipe: Recipe) -> None:
    def visit(name: str, stack: tuple[str, ...], path: Path_) -> None:
        if name not in recipe.inputs:
            raise RecipeError(
                f"{where(recipe.file, recipe.lines, path)}: $input {name!r} is not an input; inputs: {', '.join(recipe.inputs)}"
            )
        if name in stack:
            raise RecipeError(
                f"{recipe.file}: inputs refer to each other in a cycle: {' -> '.join((*stack, name))}"
            )
        source, steps = recipe.inputs[name]
        found = _input_refs(source, ("inputs", name, "source"))
        for step in steps:
            found += _input_refs(step.kwargs, step.path) + _input_refs(step.args, (*step.path, "args"))
        for target, at in found:
            visit(target, (*stack, name), at)

    visit(recipe.output, (), ("output",))
    for name in recipe.inputs:
        visit(name, (), ("inputs", name))


def _check_shared(recipe: Recipe) -> None:
    """Refuse an input read by two consumers of the built pipe (two ``$input`` references to it).

    An input is built once and a pipe is read by one consumer at a time:
    ``zip: {args: [{$input: a}, {$input: a}]}`` loaded, then stopped with a
    ``ConcurrentIterationError`` once the run had started, whose hint
    (``.fork()``) a recipe cannot follow.
    """
    refs: dict[str, list[Path_]] = {}
    seen: set[str] = set()
    pending = [recipe.output]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        source, steps = recipe.inputs[name]
        found = _input_refs(source, ("inputs", name, "source"))
        for step in steps:
            found += _input_refs(step.kwargs, step.path) + _input_refs(step.args, (*step.path, "args"))
        for target, at in found:
            refs.setdefault(target, []).append(at)
            pending.append(target)
    for target, places in refs.items():
        if len(places) > 1:
            lines = ", ".join(where(recipe.file, recipe.lines, at).rpartition(", ")[2] for at in places)
            raise RecipeError(
                f"{where(recipe.file, recipe.lines, places[1])}: input {target!r} is read {len(places)} times "
                f"({lines}); a pipe is read by one consumer: give each use its own input (a copy of "
                f"{target!r} under another name)"
            )


def _input_refs(value: Any, path: Path_) -> list[tuple[str, Path_]]:
    if is_reference(value):
        ((kind, target),) = value.items()
        return [(str(target), path)] if kind == "$input" else []
    if isinstance(value, dict):
        return [r for k, v in value.items() for r in _input_refs(v, (*path, k))]
    if isinstance(value, list):
        return [r for i, v in enumerate(value) for r in _input_refs(v, (*path, i))]
    return []


# -- building ----------------------------------------------------------------------------
class _Builder:
    def __init__(self, recipe: Recipe, world: Any) -> None:
        self.recipe = recipe
        self._world_arg = world
        self._world: Any = None
        self.built: dict[str, IterDataPipe[Any]] = {}
        self._storage = recipe.storage()

    def with_storage(self, kwargs: dict[str, Any], params: Any) -> dict[str, Any]:
        """Add the recipe's storage where the stage takes ``storage=`` (not over fsspec's ``storage_options``)."""
        if self._storage is None or "storage" in kwargs or kwargs.get("storage_options"):
            return kwargs
        takes = "storage" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        if takes:
            kwargs["storage"] = self._storage
        return kwargs

    def world(self) -> Any:
        if self._world is None:
            from terrapipe.datasets import SampleWorld, sample_world

            arg = self._world_arg
            self._world = arg if isinstance(arg, SampleWorld) else sample_world(arg)
        return self._world

    def value(self, value: Any, path: Path_) -> Any:
        recipe = self.recipe
        if is_reference(value):
            ((kind, target),) = value.items()
            if kind == "$input":
                return self.pipe(str(target), path)
            return str(getattr(self.world(), str(target)))
        if isinstance(value, dict):
            return {k: self.value(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str):
            expanded = expand_env(value, path, recipe.file, recipe.lines, recipe.allow_env)
            return resolve_path(expanded, recipe.folder)
        return value

    def pipe(self, name: str, path: Path_) -> IterDataPipe[Any]:
        if name in self.built:
            return self.built[name]
        source, steps = self.recipe.inputs[name]
        pipe = self.source(name, source)
        for step in steps:
            pipe = self.step(pipe, name, step)
        self.built[name] = pipe
        return pipe

    def source(self, name: str, source: dict[str, Any]) -> IterDataPipe[Any]:
        from terrapipe.core.sources import from_items
        from terrapipe.stac.search import search_stac

        path: Path_ = ("inputs", name, "source")
        values = self.value(source, path)
        if "items" in values:
            return from_items(values["items"])
        if "sample_world" in values:
            return from_items([str(getattr(self.world(), values["sample_world"]))])
        search_kwargs = self.with_storage(dict(values["search_stac"]), _search_parameters()[0])
        if "source" in search_kwargs:  # its old name (the load warned)
            search_kwargs["catalog"] = search_kwargs.pop("source")
        return self.guard(
            lambda: search_stac(**search_kwargs),
            (*path, "search_stac"),
            f"input {name!r}, source search_stac",
        )

    def step(self, pipe: IterDataPipe[Any], input_name: str, step: Step) -> IterDataPipe[Any]:
        params = stage_parameters(step.stage)
        recipe = self.recipe
        label = f"input {input_name!r}, step {step.path[3]} ({step.stage})"
        kwargs = {
            k: self.value(v, (*step.path, k)) for k, v in step.kwargs.items() if k not in step.functions
        }
        for key in step.functions:
            kwargs[key] = _function(self.value(step.kwargs[key], (*step.path, key)))
        for key in WRITE_PARAMETERS.get(step.stage, ()):
            if key in kwargs:  # again when built: a link may have appeared since the recipe was loaded
                at = f"{where(recipe.file, recipe.lines, (*step.path, key))}: {label}:"
                kwargs[key] = check_write_path(
                    kwargs[key], recipe.folder, recipe.root, at, key, step.kwargs[key]
                )
        for key, value in list(kwargs.items()):
            if isinstance(value, str) and "torch.dtype" in describe(
                params[key].annotation if key in params else ""
            ):
                kwargs[key] = _torch_dtype(value, self.recipe, (*step.path, key))
        if "storage" in params or step.stage in _STORAGE_BY_KWARGS:
            kwargs = self.with_storage(kwargs, params)
        args = self.value(step.args, (*step.path, "args"))
        if step.function_args:
            args = [a if isinstance(a, IterDataPipe) else _function(a) for a in args]

        def make() -> IterDataPipe[Any]:
            new, unshuffled = step_keywords(step.stage, kwargs, seed=recipe.seed)  # the recipe's seed
            stage = getattr(pipe, step.stage)(*args, **new)
            if unshuffled is not None:
                stage.keep_shuffle_settings(unshuffled)
            return stage  # type: ignore[no-any-return]

        return self.guard(make, step.path, label)

    def guard(self, make: Callable[[], IterDataPipe[Any]], path: Path_, label: str) -> IterDataPipe[Any]:
        try:
            return make()
        except RecipeError:
            raise
        except Exception as err:  # building takes only the recipe's values: any failure is the recipe's
            text = self.recipe.scrub(str(err).splitlines()[0] if str(err) else type(err).__name__)
            if not isinstance(err, TerrapipeError | TypeError | ValueError):  # e.g. torch's asserts
                text = f"{text} ({type(err).__name__})"
            msg = f"{where(self.recipe.file, self.recipe.lines, path)}: {label}: {text}"
            raise RecipeError(msg) from err


def _function(value: Any) -> Callable[..., Any]:
    known = recipe_functions()
    if isinstance(value, str):
        return known[value]
    ((name, kwargs),) = value.items()
    return functools.partial(known[name], **(kwargs or {}))


def _torch_dtype(name: str, recipe: Recipe, path: Path_) -> Any:
    import torch

    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise RecipeError(
            f"{where(recipe.file, recipe.lines, path)}: {name!r} is not a torch dtype (e.g. float32)"
        )
    return dtype
