"""The ``terrapipe`` command.

``terrapipe demo`` runs the end-to-end demo on the built-in sample world;
``terrapipe sample-world DIR`` writes the sample world; ``terrapipe serve-stac``
serves its STAC API. Recipes (a YAML file or a bundled recipe's name):
``terrapipe run RECIPE [--limit N]`` (progress bar, summary),
``terrapipe preview RECIPE --out chips.png`` (a grid of chips with masks or
boxes), ``terrapipe bench RECIPE`` (per-stage throughput),
``terrapipe graph RECIPE`` (Mermaid diagram) and ``terrapipe recipes`` (the
bundled ones). Errors print one readable line plus a hint and exit with a
non-zero code; ``--verbose`` shows the traceback.

The command needs the ``cli`` extra (typer, rich): ``pip install 'terrapipe[cli]'``.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terrapipe.core.errors import MissingDependencyError, TerrapipeError
from terrapipe.core.optional import require

__all__ = ["build_app", "main"]

_STATE = {"verbose": False}


_HINTS = {
    "RecipeError": "fix the recipe at the line shown (`terrapipe recipes --stages` lists stages and functions)",
}


def _fail(err: BaseException, code: int) -> None:
    if _STATE["verbose"]:
        traceback.print_exception(err)
    else:
        line = " ".join(str(err).split("\n")[0].split()) or type(err).__name__
        print(f"error: {line}", file=sys.stderr)
        hint = _HINTS.get(type(err).__name__)
        hint = (
            f"{hint}; run again with --verbose to see the traceback"
            if hint
            else "run again with --verbose to see the traceback"
        )
        print(f"hint: {hint}", file=sys.stderr)
    raise SystemExit(code)


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn terrapipe errors into one line + hint and a non-zero exit code."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TerrapipeError as err:
            _fail(err, 1)
        except KeyboardInterrupt:  # pragma: no cover - interactive
            raise SystemExit(130) from None
        return None

    return wrapper


def build_app() -> Any:
    """Build the typer application (imports typer lazily).

    Returns
    -------
    typer.Typer
        The ``terrapipe`` command.
    """
    typer = require("typer", feature="the terrapipe command")

    app = typer.Typer(
        name="terrapipe",
        help="Geospatial data to PyTorch tensors, in small composable stages.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
    ) -> None:
        _STATE["verbose"] = verbose

    @app.command()
    @_guarded
    def demo(
        root: Path | None = typer.Option(None, help="Where the sample world lives (default: the cache)."),
        steps: int = typer.Option(200, min=1, help="Training steps of the tiny model."),
        workers: int = typer.Option(2, min=0, help="Loader worker threads."),
        progress: bool = typer.Option(True, help="Show a progress bar per epoch."),
    ) -> None:
        """Run the end-to-end demo on the built-in sample world (offline)."""
        from terrapipe.demo import run_demo

        run_demo(root, steps=steps, workers=workers, progress=progress)

    @app.command("sample-world")
    @_guarded
    def sample_world_cmd(
        directory: Path = typer.Argument(..., help="Folder to write the sample world into."),
        scale: int = typer.Option(1, min=1, help="Make tiles this many times larger (benchmarks)."),
        overwrite: bool = typer.Option(False, help="Rebuild even if the folder holds a sample world."),
    ) -> None:
        """Write the built-in sample world (COGs, DEM, vectors, Zarr cube, STAC) to DIRECTORY."""
        from terrapipe.datasets import sample_world

        world = sample_world(directory, scale=scale, overwrite=overwrite)
        print(f"sample world ready in {world.root}")

    @app.command("serve-stac")
    @_guarded
    def serve_stac_cmd(
        directory: Path | None = typer.Argument(
            None, help="A sample world folder (default: the cached one)."
        ),
        port: int = typer.Option(8080, help="Port on 127.0.0.1."),
    ) -> None:
        """Serve the sample world's STAC API (rustac serve) on 127.0.0.1 until Ctrl-C."""
        import terrapipe as tp

        world = tp.datasets.sample_world(directory)
        server = tp.stac.start_stac_server(world, port=port)
        print(f"STAC API at {server.url} (Ctrl-C stops it)", flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:  # pragma: no cover - interactive
            pass
        finally:
            server.stop()

    _add_recipe_commands(app, typer)
    return app


def _add_recipe_commands(app: Any, typer: Any) -> None:
    """``run``, ``preview``, ``bench``, ``graph`` and ``recipes``."""
    recipe_arg = typer.Argument(
        ..., help="A recipe file (.yaml) or a bundled recipe's name (see `terrapipe recipes`)."
    )
    world_opt = typer.Option(
        None, "--world", help="Sample world folder for $world references (default: the cached one)."
    )

    @app.command("run")
    @_guarded
    def run_cmd(
        recipe: str = recipe_arg,
        limit: int | None = typer.Option(None, "--limit", min=1, help="Stop after this many batches."),
        batch_size: int | None = typer.Option(
            None, "--batch-size", min=1, help="Override the recipe's batch size."
        ),
        workers: int | None = typer.Option(
            None, "--workers", min=0, help="Override the recipe's loader workers."
        ),
        world: Path | None = world_opt,
        progress: bool = typer.Option(True, help="Show a progress bar."),
    ) -> None:
        """Run a recipe's loader and print a summary (batches, samples, time, shapes)."""
        from terrapipe.recipes.commands import run_recipe

        run_recipe(
            recipe, limit=limit, batch_size=batch_size, workers=workers, world=world, progress=progress
        )

    @app.command("preview")
    @_guarded
    def preview_cmd(
        recipe: str = recipe_arg,
        out: Path = typer.Option(Path("chips.png"), "--out", "-o", help="PNG to write."),
        n: int = typer.Option(8, "--n", min=1, help="Number of samples."),
        columns: int = typer.Option(4, min=1, help="Chips per row."),
        world: Path | None = world_opt,
    ) -> None:
        """Draw a grid of sample chips with masks or boxes overlaid into a PNG."""
        from terrapipe.recipes.commands import preview_recipe

        preview_recipe(recipe, out=out, n=n, columns=columns, world=world)

    @app.command("bench")
    @_guarded
    def bench_cmd(
        recipe: str = recipe_arg,
        n: int = typer.Option(20, "--n", min=1, help="Samples to pull through the pipe."),
        world: Path | None = world_opt,
    ) -> None:
        """Profile a recipe's pipe: per-stage elements, time and throughput."""
        from terrapipe.recipes.commands import bench_recipe

        bench_recipe(recipe, n=n, world=world)

    @app.command("graph")
    @_guarded
    def graph_cmd(recipe: str = recipe_arg) -> None:
        """Print a recipe's pipeline as a Mermaid flowchart."""
        from terrapipe.recipes import load_recipe, mermaid

        print(mermaid(load_recipe(recipe)))

    @app.command("recipes")
    @_guarded
    def recipes_cmd(
        stages: bool = typer.Option(
            False, "--stages", help="List the stages and functions recipes may name instead."
        ),
    ) -> None:
        """List the bundled recipes (run any of them by name)."""
        from terrapipe.recipes.commands import list_recipes

        list_recipes(stages=stages)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``terrapipe`` command."""
    try:
        app = build_app()
    except MissingDependencyError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    app(args=argv, prog_name="terrapipe")


if __name__ == "__main__":  # pragma: no cover
    main()
