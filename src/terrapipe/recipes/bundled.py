"""The recipes shipped with terrapipe (package data in ``terrapipe/recipes/bundled/``).

Each runs offline on the built-in sample world.

Examples
--------
>>> "landcover-segmentation" in bundled_recipes()
True
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUNDLED_DIR", "bundled_recipes"]

#: Folder of the bundled recipe files.
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"


def bundled_recipes() -> dict[str, Path]:
    """Name -> path of every bundled recipe, sorted by name.

    Returns
    -------
    dict
        ``{"landcover-segmentation": Path(...), ...}``; pass a name or a path to
        :func:`~terrapipe.recipes.load_recipe`.
    """
    return {p.stem: p for p in sorted(BUNDLED_DIR.glob("*.yaml"))}
