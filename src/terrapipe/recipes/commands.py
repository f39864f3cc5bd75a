"""What the recipe commands of ``terrapipe`` do (``run``, ``preview``, ``bench``, ``recipes``).

Kept out of :mod:`terrapipe.cli` so that each is a plain function to call
and test; they print with rich and raise
:class:`~terrapipe.core.errors.TerrapipeError` subclasses on bad input.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require
from terrapipe.recipes.recipe import Recipe, load_recipe
from terrapipe.recipes.scrubbing import scrubbed
from terrapipe.recipes.stages import ensure_registered

__all__ = ["bench_recipe", "describe_batch", "list_recipes", "preview_recipe", "run_recipe"]


def _load(
    recipe: str | Path, allow_env: Iterable[str] = (), root: str | os.PathLike[str] | None = None
) -> Recipe:
    """Load a recipe with the user's sandbox settings (``--allow-env``, ``--root``)."""
    ensure_registered()
    return load_recipe(recipe, allow_env=allow_env, root=root)


def describe_batch(batch: Any) -> str:
    """Shapes of a batch's tensors, e.g. ``image [4, 5, 128, 128] float32, mask [4, 128, 128] int64``.

    Examples
    --------
    >>> import torch
    >>> describe_batch({"image": torch.zeros(2, 3), "meta": {"crs": "EPSG:4326"}})
    'image [2, 3] float32'
    """
    parts: list[str] = []

    def walk(value: Any, name: str) -> None:
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            parts.append(f"{name} {list(value.shape)} {str(value.dtype).removeprefix('torch.')}")
        elif isinstance(value, dict):
            for key, item in value.items():
                if key != "meta":
                    walk(item, f"{name}.{key}" if name else str(key))
        elif isinstance(value, (list, tuple)) and value and not isinstance(value[0], (int, float, str)):
            walk(value[0], f"{name}[0]")

    walk(batch, "")
    return ", ".join(parts) or type(batch).__name__


def _count(batch: Any, batched: bool) -> int:
    if not batched:
        return 1
    if isinstance(batch, dict):
        for value in batch.values():
            if hasattr(value, "shape") and len(value.shape):
                return int(value.shape[0])
            if isinstance(value, list):
                return len(value)
            if isinstance(value, dict):
                return _count(value, batched)
    return len(batch) if hasattr(batch, "__len__") else 1


def run_recipe(
    recipe: str | Path,
    *,
    limit: int | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    world: Any = None,
    progress: bool = True,
    allow_env: Iterable[str] = (),
    root: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Run a recipe's loader (at most ``limit`` batches), show a progress bar, print a summary.

    ``allow_env`` and ``root`` go to :func:`~terrapipe.recipes.load_recipe`
    (the environment variables the recipe may use, the folder it may write in).

    Returns
    -------
    dict
        ``batches``, ``samples``, ``seconds``, ``first`` (shapes of the first batch).
    """
    rich_console = require("rich.console", extra="cli", feature="terrapipe run")
    rich_progress = require("rich.progress", extra="cli", feature="terrapipe run")
    console = rich_console.Console()
    loaded = _load(recipe, allow_env, root)
    overrides: dict[str, Any] = {}
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    if workers is not None:
        overrides["workers"] = workers
    with scrubbed(loaded):  # errors and warnings of the running pipe show ${NAME}, never its value
        loader = loaded.loader(world, **overrides)
        batched = {**loaded.loader_settings, **overrides}.get("batch_size") is not None
        batches = samples = 0
        first = ""
        start = time.perf_counter()
        columns = (
            rich_progress.TextColumn("{task.description}"),
            rich_progress.BarColumn(),
            rich_progress.MofNCompleteColumn(),
            rich_progress.TimeElapsedColumn(),
        )
        with rich_progress.Progress(*columns, console=console, disable=not progress, transient=True) as bar:
            task = bar.add_task(f"run {loaded.name}", total=limit)
            for batch in itertools.islice(loader, limit):
                if not first:
                    first = describe_batch(batch)
                batches += 1
                samples += _count(batch, batched)
                bar.advance(task)
    seconds = time.perf_counter() - start
    rate = samples / seconds if seconds > 0 else float("inf")
    console.print(
        f"[bold]{loaded.name}[/bold]: {batches} batches, {samples} samples in {seconds:.2f} s ({rate:.1f} samples/s)",
        highlight=False,
    )
    console.print(f"first batch: {first or 'none'}", highlight=False)
    return {"batches": batches, "samples": samples, "seconds": seconds, "first": first}


def preview_recipe(
    recipe: str | Path,
    *,
    out: str | Path,
    n: int = 8,
    columns: int = 4,
    world: Any = None,
    allow_env: Iterable[str] = (),
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a PNG grid of the first ``n`` samples of a recipe's pipe.

    ``out`` is the user's own choice (not the recipe's), so it may be anywhere.

    Returns
    -------
    pathlib.Path
        The PNG written.
    """
    from terrapipe.recipes.preview import preview_samples

    if not str(out).lower().endswith(".png"):
        raise InvalidArgumentError(f"preview writes a PNG: --out must end in .png, got {str(out)!r}")
    loaded = _load(recipe, allow_env, root)
    with scrubbed(loaded):
        samples = list(itertools.islice(loaded.build(world), n))
        path = preview_samples(samples, out, columns=columns, title=loaded.name)
    print(f"wrote {path} ({len(samples)} samples)")
    return path


def bench_recipe(
    recipe: str | Path,
    *,
    n: int = 20,
    world: Any = None,
    allow_env: Iterable[str] = (),
    root: str | os.PathLike[str] | None = None,
) -> Any:
    """Profile a recipe's pipe (:func:`terrapipe.run.profile`) and print a per-stage table.

    Returns
    -------
    terrapipe.run.PipeProfile
        The profile.
    """
    from terrapipe.run import profile

    rich_console = require("rich.console", extra="cli", feature="terrapipe bench")
    rich_table = require("rich.table", extra="cli", feature="terrapipe bench")
    loaded = _load(recipe, allow_env, root)
    with scrubbed(loaded):
        report = profile(loaded.build(world), n=n, show=False)
    table = rich_table.Table(title=f"{loaded.name}: {report.elements} samples in {report.wall_seconds:.2f} s")
    for name in ("stage", "elements", "self s", "total s", "elem/s", "bytes read", "skipped"):
        table.add_column(name, justify="left" if name == "stage" else "right")
    for stage in report.stages:
        table.add_row(
            stage.name,
            str(stage.elements),
            f"{stage.seconds:.3f}",
            f"{stage.total_seconds:.3f}",
            f"{stage.throughput:.1f}",
            "-" if stage.bytes_read is None else str(stage.bytes_read),
            "-" if stage.skipped is None else str(stage.skipped),
        )
    rich_console.Console().print(table)
    return report


def list_recipes(*, stages: bool = False) -> None:
    """Print the bundled recipes (or, with ``stages``, the stages and functions recipes may name)."""
    rich_console = require("rich.console", extra="cli", feature="terrapipe recipes")
    rich_table = require("rich.table", extra="cli", feature="terrapipe recipes")
    console = rich_console.Console()
    if stages:
        from terrapipe.recipes.functions import recipe_functions
        from terrapipe.recipes.stages import stage_names

        ensure_registered()
        console.print("stages: " + ", ".join(stage_names()), highlight=False)
        console.print(
            "functions (fn, filter_fn, any *_fn or Callable parameter): "
            + ", ".join(sorted(recipe_functions())),
            highlight=False,
        )
        return
    from terrapipe.recipes.bundled import bundled_recipes

    table = rich_table.Table(title="bundled recipes (terrapipe run NAME)")
    table.add_column("name")
    table.add_column("description")
    for name, path in bundled_recipes().items():
        table.add_row(name, load_recipe(path).description)
    console.print(table)
