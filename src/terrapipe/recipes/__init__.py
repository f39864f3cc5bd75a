"""Recipes: pipelines as YAML data, checked with pydantic, built into pipes.

A recipe names inputs (a source plus ordered steps, each a registered
functional name with keyword arguments), the loader settings and a seed. It
is data, never code: only registered stages and allowlisted recipe functions
(:mod:`terrapipe.recipes.functions`) can be named. See
:mod:`terrapipe.recipes.schema` for the format and
:mod:`terrapipe.recipes.values` for ``${ENV}``, relative paths and
``$input``/``$world`` references.

Examples
--------
>>> import terrapipe.recipes as recipes
>>> sorted(recipes.bundled_recipes())[:2]
['building-detection', 'change-detection']
"""

from terrapipe.recipes.bundled import BUNDLED_DIR, bundled_recipes
from terrapipe.recipes.functions import recipe_function, recipe_functions
from terrapipe.recipes.graph import mermaid
from terrapipe.recipes.recipe import Recipe, Step, load_recipe

__all__ = [
    "BUNDLED_DIR",
    "Recipe",
    "Step",
    "bundled_recipes",
    "load_recipe",
    "mermaid",
    "recipe_function",
    "recipe_functions",
]
