"""The old keywords of ``chip`` and ``sample_windows``, kept for one release.

Each old keyword still works, with one
:class:`~terrapipe.core.errors.TerrapipeDeprecationWarning` per call that
names the new form with the values given:

=========================================  ===================================================
old                                        new
=========================================  ===================================================
``chip(shuffle=True, shuffle_buffer=b)``   ``chip(shuffle=tp.chip.WindowShuffle(buffer=b))``
``chip(shuffle=True, seed=s)``             ``chip(shuffle=tp.chip.WindowShuffle(seed=s))``
``split=split, subset="train"``            ``split=split.select("train")``
``block_cache_bytes=n``                    ``reads=tp.chip.Reads(block_cache_bytes=n)``
``chip(read_ahead=k)``                     ``chip(reads=tp.chip.Reads(read_ahead=k))``
=========================================  ===================================================

``sample_windows`` keeps ``seed=`` (its draws need it) and ``shuffle=True``
(points mode); its ``subset=`` and ``block_cache_bytes=`` moved as above.
:func:`upgrade` turns old keywords into new ones without warning (a recipe's
loader warns in its own way, naming the file and line).

Examples
--------
>>> import warnings
>>> with warnings.catch_warnings(record=True) as seen:
...     warnings.simplefilter("always")
...     new = upgrade("chip", {"shuffle": True, "seed": 3, "shuffle_buffer": 8}, warn=True)
>>> new.kwargs["shuffle"], str(seen[0].message)
(WindowShuffle(buffer=8, seed=3), 'chip(shuffle_buffer=..., seed=...) is deprecated and will be removed in the next release; pass shuffle=tp.chip.WindowShuffle(buffer=8, seed=3)')
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from terrapipe.chip.reads import DEFAULT_BLOCK_CACHE_BYTES, Reads
from terrapipe.chip.split import SpatialSplit, SplitSubset
from terrapipe.chip.window_shuffle import DEFAULT_SHUFFLE_BUFFER, WindowShuffle
from terrapipe.core.checks import check_int
from terrapipe.core.errors import InvalidArgumentError, TerrapipeDeprecationWarning
from terrapipe.core.renamed import outside_stacklevel

__all__ = ["OLD_KEYWORDS", "Upgraded", "upgrade"]

#: Stage -> its old keywords (one release) and the new keyword each moved into.
OLD_KEYWORDS: dict[str, dict[str, str]] = {
    "chip": {
        "shuffle_buffer": "shuffle",
        "seed": "shuffle",
        "subset": "split",
        "block_cache_bytes": "reads",
        "read_ahead": "reads",
    },
    "sample_windows": {"subset": "split", "block_cache_bytes": "reads"},
}


@dataclass(frozen=True)
class Upgraded:
    """Keywords in the new form, and what was old in them.

    Attributes
    ----------
    kwargs
        The keywords given, old ones replaced by the new ones they moved into.
    old
        The old keywords that were given, in the order of :data:`OLD_KEYWORDS`.
    unshuffled
        ``chip`` only: the old ``seed=`` / ``shuffle_buffer=`` given with
        ``shuffle=False``, which do nothing; a chip keeps them all the same,
        so that its cache key is the one it had. Else ``None``.
    """

    kwargs: dict[str, Any]
    old: tuple[str, ...]
    unshuffled: WindowShuffle | None = None


def upgrade(stage: str, kwargs: Mapping[str, Any], *, warn: bool = False) -> Upgraded:
    """Return ``kwargs`` of ``stage`` (``"chip"`` or ``"sample_windows"``) with old keywords moved into new ones.

    Parameters
    ----------
    stage
        The functional name.
    kwargs
        Its keywords as given (new and old; others are passed through).
    warn
        Warn once, naming the new form, when an old keyword was given.

    Raises
    ------
    InvalidArgumentError
        For an old keyword given with the new one it moved into (``seed=``
        with ``shuffle=WindowShuffle(...)``), or a bad old value.
    """
    table = OLD_KEYWORDS[stage]
    old = tuple(k for k in table if k in kwargs)
    if not old:
        return Upgraded(dict(kwargs), ())
    new = {k: v for k, v in kwargs.items() if k not in table}
    shown: list[str] = []
    unshuffled: WindowShuffle | None = None
    if "seed" in old or "shuffle_buffer" in old:
        unshuffled = _shuffle(stage, kwargs, new, shown)
    if "subset" in old:
        _split(stage, kwargs, new, shown)
    if "block_cache_bytes" in old or "read_ahead" in old:
        _reads(stage, kwargs, new, shown)
    if warn:
        names = ", ".join(f"{k}=..." for k in old)
        warnings.warn(
            f"{stage}({names}) is deprecated and will be removed in the next release; pass {' and '.join(shown)}",
            TerrapipeDeprecationWarning,
            stacklevel=outside_stacklevel(),
        )
    return Upgraded(new, old, unshuffled)


def _shuffle(
    stage: str, kwargs: Mapping[str, Any], new: dict[str, Any], shown: list[str]
) -> WindowShuffle | None:
    """Move ``seed=`` / ``shuffle_buffer=`` into ``shuffle=``; return the settings an unshuffled chip keeps."""
    shuffle = kwargs.get("shuffle", False)
    if not isinstance(shuffle, bool | np.bool_):
        raise InvalidArgumentError(
            f"{stage}: give the shuffle's settings in shuffle=tp.chip.WindowShuffle(buffer=..., seed=...) only, "
            f"not also seed= or shuffle_buffer= (got shuffle={shuffle!r:.80})"
        )
    buffer = check_int(kwargs.get("shuffle_buffer", DEFAULT_SHUFFLE_BUFFER), "shuffle_buffer", minimum=1)
    seed = check_int(kwargs.get("seed", 0), f"{stage} seed", minimum=0)
    settings = WindowShuffle(buffer=buffer, seed=seed)
    if not shuffle:
        shown.append(
            "them in shuffle=tp.chip.WindowShuffle(...) when shuffling (without a shuffle they do nothing)"
        )
        return settings
    new["shuffle"] = settings
    shown.append(f"shuffle=tp.chip.{new['shuffle']!r}")
    return None


def _split(stage: str, kwargs: Mapping[str, Any], new: dict[str, Any], shown: list[str]) -> None:
    split, subset = kwargs.get("split"), kwargs["subset"]
    if split is None and subset is None:
        shown.append("nothing for subset=None (split=split.select(name) to keep one subset)")
        return
    if not isinstance(split, SpatialSplit):
        raise InvalidArgumentError(
            f"{stage}: subset= goes with a tp.chip.SpatialSplit as split=; pass split=split.select(name) "
            f"alone (got split={type(split).__name__}, subset={subset!r:.40})"
        )
    if not isinstance(subset, str):
        raise InvalidArgumentError(f"{stage}: subset must be a subset name (str), got {subset!r:.80}")
    new["split"] = SplitSubset(split, subset)
    shown.append(f"split=split.select({subset!r})")


def _reads(stage: str, kwargs: Mapping[str, Any], new: dict[str, Any], shown: list[str]) -> None:
    if kwargs.get("reads") is not None:
        raise InvalidArgumentError(
            f"{stage}: give block_cache_bytes and read_ahead in reads=tp.chip.Reads(...) only, not also as keywords"
        )
    block = kwargs.get("block_cache_bytes", DEFAULT_BLOCK_CACHE_BYTES)
    fields = {"block_cache_bytes": check_int(block, "block_cache_bytes", minimum=0)}
    if kwargs.get("read_ahead") is not None:
        fields["read_ahead"] = check_int(kwargs["read_ahead"], "read_ahead", minimum=0)
    new["reads"] = Reads(**fields)
    shown.append("reads=tp.chip.Reads(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")")
