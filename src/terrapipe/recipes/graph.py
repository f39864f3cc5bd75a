r"""A recipe as a Mermaid flowchart (``terrapipe graph RECIPE``).

One subgraph per input (its source, then its steps in order); an edge from
an input's last step to every step that refers to it with ``$input``; a
cylinder per sample-world file a step reads (``$world``); and the loader.

Examples
--------
>>> from terrapipe.recipes.recipe import load_recipe
>>> r = load_recipe(text="version: 1\nname: t\ninputs:\n  main:\n    source: {items: [1]}\n"
...                 "    steps: [{header: {limit: 1}}]\nloader: {batch_size: 2}\n")
>>> print(mermaid(r))
flowchart LR
  subgraph main
    main_source["items"]
    main_0["header"]
    main_source --> main_0
  end
  loader{{"loader batch_size=2"}}
  main_0 --> loader
"""

from __future__ import annotations

import itertools
from typing import Any

from terrapipe.recipes.recipe import Recipe
from terrapipe.recipes.values import is_reference

__all__ = ["mermaid"]


def mermaid(recipe: Recipe) -> str:
    """Draw the recipe's pipeline as Mermaid ``flowchart`` text.

    Parameters
    ----------
    recipe
        A loaded recipe.

    Returns
    -------
    str
        The diagram (paste it into a Markdown ``mermaid`` block).
    """
    lines = ["flowchart LR"]
    edges: list[str] = []
    worlds: set[str] = set()
    last: dict[str, str] = {}
    for name, (source, steps) in recipe.inputs.items():
        lines.append(f"  subgraph {name}")
        kind = next(iter(source))
        node = f"{name}_source"
        lines.append(f'    {node}["{kind}"]')
        for field in _refs(source, "$world") + ([source["sample_world"]] if kind == "sample_world" else []):
            worlds.add(field)
            edges.append(f"  world_{field} --> {node}")
        chain = [node]
        for index, step in enumerate(steps):
            node = f"{name}_{index}"
            lines.append(f'    {node}["{step.stage}"]')
            chain.append(node)
            for field in _refs([step.kwargs, step.args], "$world"):
                worlds.add(field)
                edges.append(f"  world_{field} --> {node}")
            for target in _refs([step.kwargs, step.args], "$input"):
                edges.append(f"  {{{target}}} --> {node}")
        lines.extend(f"    {a} --> {b}" for a, b in itertools.pairwise(chain))
        lines.append("  end")
        last[name] = chain[-1]
    lines.extend(f'  world_{field}[("{field}")]' for field in sorted(worlds))
    settings = " ".join(f"{k}={v}" for k, v in recipe.loader_settings.items())
    lines.append(f'  loader{{{{"loader{" " + settings if settings else ""}"}}}}')
    edges.append(f"  {last[recipe.output]} --> loader")
    for edge in edges:
        for name, node in last.items():
            edge = edge.replace(f"{{{name}}}", node)
        lines.append(edge)
    return "\n".join(lines)


def _refs(value: Any, kind: str) -> list[str]:
    if is_reference(value):
        ((key, target),) = value.items()
        return [str(target)] if key == kind else []
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v, kind)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v, kind)]
    return []
