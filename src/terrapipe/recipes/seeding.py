"""A recipe's ``seed:`` and the old keywords of its chipping steps.

A recipe's seed goes to ``loader(seed=)`` and to every step whose stage takes
``seed=`` (``sample_windows``). ``chip`` took ``seed=`` and
``shuffle_buffer=`` until its shuffle became one value
(:class:`~terrapipe.chip.window_shuffle.WindowShuffle`); a recipe's seed now
goes into that value: ``shuffle: true`` shuffles with the recipe's seed, and
``shuffle: {buffer: 64}`` too, while ``shuffle: {seed: 3}`` keeps its own.
A chip that does not shuffle records the recipe's seed all the same
(:meth:`~terrapipe.chip.chipper.Chip.keep_shuffle_settings`), as it did when the seed
was its keyword: its cache key holds it, so a cache a recipe wrote before
is still found.

A recipe file may still give the old keywords (``seed:``,
``shuffle_buffer:``, ``subset:``, ``block_cache_bytes:``, ``read_ahead:``)
for one release: :func:`old_keys` warns when the recipe is loaded, naming
the file and line and the new form, and :func:`step_keywords` turns them
into the new form when the pipe is built.

Examples
--------
>>> kwargs, keep = step_keywords("chip", {"size": 4, "shuffle": True}, seed=7)
>>> kwargs["shuffle"], keep
(WindowShuffle(buffer=1024, seed=7), None)
>>> step_keywords("chip", {"size": 4, "shuffle_buffer": 8}, seed=7)[1]
WindowShuffle(buffer=8, seed=7)
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

from terrapipe.chip.deprecated import OLD_KEYWORDS, upgrade
from terrapipe.chip.reads import Reads
from terrapipe.chip.window_shuffle import WindowShuffle
from terrapipe.recipes.stages import stage_hints, stage_parameters

__all__ = ["old_keys", "shuffle_takes_seed", "step_keywords"]


def shuffle_takes_seed(stage: str) -> bool:
    """Whether stage ``stage``'s ``shuffle=`` takes a :class:`~terrapipe.chip.window_shuffle.WindowShuffle` (its seed).

    Examples
    --------
    >>> import terrapipe
    >>> shuffle_takes_seed("chip"), shuffle_takes_seed("sample_windows")
    (True, False)
    """
    hint = stage_hints(stage).get("shuffle")
    return hint is not None and WindowShuffle in typing.get_args(hint)


def old_keys(stage: str, kwargs: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    """Return the old keywords a step gives, and the new form to name in the warning (YAML).

    Raises
    ------
    InvalidArgumentError
        For old values that cannot be turned into the new form.

    Examples
    --------
    >>> old_keys("chip", {"shuffle": True, "seed": 3, "read_ahead": 0})
    (('seed', 'read_ahead'), 'shuffle: {buffer: 1024, seed: 3}, reads: {block_cache_bytes: 536870912, read_ahead: 0}')
    """
    table = OLD_KEYWORDS.get(stage, {})
    old = tuple(k for k in table if k in kwargs)
    if not old:
        return (), ""
    # a recipe's split: is a mapping that terrapipe.adapters.DataModule makes a split of: not checked here
    new = upgrade(stage, {k: v for k, v in kwargs.items() if k not in ("split", "subset")})
    shown = []
    for key in dict.fromkeys(table[k] for k in old):
        value = new.kwargs.get(key)
        if isinstance(value, WindowShuffle | Reads):
            fields = ", ".join(f"{f}: {v}" for f, v in vars(value).items() if v is not None)
            shown.append(f"{key}: {{{fields}}}")
        elif key == "split":
            shown.append("split: only (terrapipe.adapters.DataModule picks the subset)")
        else:  # seed:/shuffle_buffer: with no shuffle
            shown.append(
                "shuffle: {buffer: ..., seed: ...} when shuffling (without a shuffle they do nothing)"
            )
    return old, ", ".join(shown)


def step_keywords(
    stage: str, kwargs: dict[str, Any], *, seed: int
) -> tuple[dict[str, Any], WindowShuffle | None]:
    """Return a step's keywords in the new form with the recipe's seed, and what an unshuffled chip records.

    Parameters
    ----------
    stage
        The step's functional name.
    kwargs
        Its keywords (values resolved).
    seed
        The recipe's seed.

    Returns
    -------
    tuple
        The keywords, and for a ``chip`` that does not shuffle the settings it
        records (:meth:`~terrapipe.chip.chipper.Chip.keep_shuffle_settings`), else ``None``.
    """
    params = stage_parameters(stage)
    if "seed" in params and "seed" not in kwargs:
        kwargs = {**kwargs, "seed": seed}
    if not shuffle_takes_seed(stage):
        return upgrade(stage, kwargs).kwargs if stage in OLD_KEYWORDS else kwargs, None
    if ("shuffle_buffer" in kwargs or "seed" in kwargs) and "seed" not in kwargs:
        kwargs = {**kwargs, "seed": seed}  # the old keywords, as a recipe gave them before
    new = upgrade(stage, kwargs)
    kwargs = new.kwargs
    shuffle = kwargs.get("shuffle", False)
    if shuffle is True:
        kwargs["shuffle"] = WindowShuffle(seed=seed)
    elif isinstance(shuffle, Mapping) and "seed" not in shuffle:
        kwargs["shuffle"] = {**shuffle, "seed": seed}
    if WindowShuffle.of(kwargs.get("shuffle", False)) is None:
        return kwargs, new.unshuffled or WindowShuffle(seed=seed)
    return kwargs, None
