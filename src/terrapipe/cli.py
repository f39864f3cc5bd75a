"""The ``terrapipe`` command.

``terrapipe demo`` runs the end-to-end demo on the built-in sample world;
``terrapipe sample-world DIR`` writes the sample world; ``terrapipe serve-stac``
serves its STAC API. Recipes (a YAML file or a bundled recipe's name):
``terrapipe run RECIPE [--limit N]`` (progress bar, summary),
``terrapipe preview RECIPE --out chips.png`` (a grid of chips with masks or
boxes), ``terrapipe bench RECIPE`` (per-stage throughput),
``terrapipe graph RECIPE`` (Mermaid diagram) and ``terrapipe recipes`` (the
bundled ones). Errors — bad recipes, missing files or extras, bad option
values, unknown commands, and errors a recipe function raises — print one
readable line plus a hint and exit with a non-zero code (2 for usage
errors, 1 otherwise); ``--verbose`` shows the traceback.

The command needs the ``cli`` extra (typer, rich): ``pip install 'terrapipe[cli]'``.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terrapipe._compat import typer_click
from terrapipe.core.errors import MissingDependencyError, TerrapipeError
from terrapipe.core.optional import require

__all__ = ["build_app", "main"]

_STATE = {"verbose": False}


def _hint(err: BaseException) -> str:
    """Say what to do about ``err`` (the line after the error)."""
    name = type(err).__name__
    text = str(err)
    if name == "RecipeError" and text.startswith("cannot read recipe"):
        hint = "give a recipe file (.yaml) or a bundled recipe's name (`terrapipe recipes` lists them)"
    elif name == "RecipeError":
        hint = "fix the recipe at the line shown (`terrapipe recipes --stages` lists stages and functions)"
    elif name == "MissingDependencyError":
        hint = "install the extra named above"
    elif name == "ReadError":
        hint = "check the file or URL named above (and --world, if the recipe uses the sample world)"
    elif not isinstance(err, TerrapipeError):
        hint = "this came from a recipe function or a library, not from terrapipe's checks"
    else:
        return "run again with --verbose to see the traceback"
    return f"{hint}; run again with --verbose to see the traceback"


def _one_line(text: str) -> str:
    return " ".join(text.strip().split("\n")[0].split())


def _fail(err: BaseException, code: int) -> None:
    if _STATE["verbose"]:
        traceback.print_exception(err)
    else:
        line = _one_line(str(err))
        if not isinstance(err, TerrapipeError):
            line = f"{type(err).__name__}: {line}" if line else type(err).__name__
        print(f"error: {line or type(err).__name__}", file=sys.stderr)
        print(f"hint: {_hint(err)}", file=sys.stderr)
    raise SystemExit(code)


def _is_click_control(err: BaseException) -> bool:
    """Whether ``err`` is click's own flow control (``Exit``, ``Abort``, usage errors)."""
    return any(cls.__module__.split(".")[0] in {"click", "typer"} for cls in type(err).__mro__[:-2])


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors into one line + hint and a non-zero exit code (``--verbose``: the traceback)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TerrapipeError as err:
            _fail(err, 1)
        except KeyboardInterrupt:  # pragma: no cover - interactive
            raise SystemExit(130) from None
        except Exception as err:
            if _is_click_control(err):
                raise
            _fail(err, 1)
        return None

    return wrapper


def _group_class(typer: Any) -> type:
    """Make a typer group whose usage errors (bad option values, unknown commands) print one line + hint."""
    click = typer_click()
    no_args = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2

    class OneLineErrors(typer.core.TyperGroup):  # type: ignore[misc, name-defined]
        def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
            try:
                result = super().main(*args, standalone_mode=False, **kwargs)
            except Exception as err:
                code = _report_click_error(err, click, no_args, typer)
            else:
                if not standalone_mode:
                    return result
                code = result if isinstance(result, int) else 0
            if code:
                raise SystemExit(code)
            return None

    return OneLineErrors


def _report_click_error(err: Exception, click: Any, no_args: Any, typer: Any) -> int:
    """Print a click error (usage, unknown command, abort) as one line + hint; return the exit code."""
    if no_args and isinstance(err, no_args):
        err.show()
        return int(err.exit_code)
    if isinstance(err, click.exceptions.UsageError):
        command = err.ctx.command_path if err.ctx is not None else "terrapipe"
        print(f"error: {_one_line(err.format_message())}", file=sys.stderr)
        print(f"hint: see `{command} --help`", file=sys.stderr)
        return int(err.exit_code)
    if isinstance(err, click.exceptions.ClickException):
        print(f"error: {_one_line(err.format_message())}", file=sys.stderr)
        print("hint: see `terrapipe --help`", file=sys.stderr)
        return int(err.exit_code)
    if isinstance(err, typer.Abort):  # pragma: no cover - interactive (Ctrl-C at a prompt)
        print("error: aborted", file=sys.stderr)
        return 1
    raise err


def build_app() -> Any:
    """Build the typer application (imports typer lazily).

    Returns
    -------
    typer.Typer
        The ``terrapipe`` command.
    """
    typer = require("typer", feature="the terrapipe command")

    app = typer.Typer(
        cls=_group_class(typer),
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
    allow_env_opt = typer.Option(
        [],
        "--allow-env",
        help="An environment variable the recipe may use as ${NAME} (repeat for more).",
        callback=_variable_names,
    )
    root_opt = typer.Option(
        None, "--root", help="The folder the recipe may write in (default: its own).", callback=_folder
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
        allow_env: list[str] = allow_env_opt,
        root: Path | None = root_opt,
    ) -> None:
        """Run a recipe's loader and print a summary (batches, samples, time, shapes)."""
        from terrapipe.recipes.commands import run_recipe

        run_recipe(
            recipe,
            limit=limit,
            batch_size=batch_size,
            workers=workers,
            world=world,
            progress=progress,
            allow_env=allow_env,
            root=root,
        )

    @app.command("preview")
    @_guarded
    def preview_cmd(
        recipe: str = recipe_arg,
        out: Path = typer.Option(Path("chips.png"), "--out", "-o", help="PNG to write."),
        n: int = typer.Option(8, "--n", min=1, help="Number of samples."),
        columns: int = typer.Option(4, min=1, help="Chips per row."),
        world: Path | None = world_opt,
        allow_env: list[str] = allow_env_opt,
        root: Path | None = root_opt,
    ) -> None:
        """Draw a grid of sample chips with masks or boxes overlaid into a PNG."""
        from terrapipe.recipes.commands import preview_recipe

        preview_recipe(recipe, out=out, n=n, columns=columns, world=world, allow_env=allow_env, root=root)

    @app.command("bench")
    @_guarded
    def bench_cmd(
        recipe: str = recipe_arg,
        n: int = typer.Option(20, "--n", min=1, help="Samples to pull through the pipe."),
        world: Path | None = world_opt,
        allow_env: list[str] = allow_env_opt,
        root: Path | None = root_opt,
    ) -> None:
        """Profile a recipe's pipe: per-stage elements, time and throughput."""
        from terrapipe.recipes.commands import bench_recipe

        bench_recipe(recipe, n=n, world=world, allow_env=allow_env, root=root)

    @app.command("graph")
    @_guarded
    def graph_cmd(
        recipe: str = recipe_arg, allow_env: list[str] = allow_env_opt, root: Path | None = root_opt
    ) -> None:
        """Print a recipe's pipeline as a Mermaid flowchart."""
        from terrapipe.recipes import load_recipe, mermaid

        print(mermaid(load_recipe(recipe, allow_env=allow_env, root=root)))

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


def _variable_names(names: list[str]) -> list[str]:
    """Check ``--allow-env`` values as a usage error (exit 2), before any recipe is read."""
    from terrapipe.recipes.values import ENV_PATTERN

    for name in names:
        if not ENV_PATTERN.fullmatch(f"${{{name}}}"):
            raise typer_click().exceptions.BadParameter(
                f"{name!r} is not a variable name (letters, digits and _, not starting with a digit); "
                "give the name alone, e.g. --allow-env PC_TOKEN"
            )
    return names


def _folder(root: Path | None) -> Path | None:
    """Check ``--root``: a folder (it may not exist yet), never a file."""
    if root is not None and root.exists() and not root.is_dir():
        raise typer_click().exceptions.BadParameter(
            f"{str(root)!r} is a file; give the folder the recipe may write in"
        )
    return root


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``terrapipe`` command."""
    try:
        app = build_app()
    except MissingDependencyError as err:
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        print(f"hint: {_hint(err)}", file=sys.stderr)
        raise SystemExit(2) from None
    app(args=argv, prog_name="terrapipe")


if __name__ == "__main__":  # pragma: no cover
    main()
