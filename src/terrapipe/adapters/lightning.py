"""``DataModule``: a Lightning ``LightningDataModule`` whose loaders are terrapipe loaders.

:meth:`DataModule.from_recipe` builds train/val/test loaders from one recipe
and its spatial split (:class:`~terrapipe.chip.split.SpatialSplit`): the
recipe's chipping step (``chip``, or any step whose stage's ``split=`` takes
a :class:`~terrapipe.chip.split.SplitSubset`) is given, for each loader, the
subset ``split.select(name)``, so the three loaders read disjoint windows that never share pixels (and are
at least the split's ``buffer`` apart). The split is the chipping step's
``split:`` mapping in the recipe file (``{fractions: {train: 0.8, val: 0.1,
test: 0.1}, cell_size: 2560, buffer: 0, seed: 0}``), or ``split=`` given here.

Guarantees: each loader is :func:`terrapipe.loader` (built when Lightning
asks for it, after the process group is set up), so under DDP every window of
a subset is in exactly one batch across ranks and workers (the chipper
shards by block), with ``even=True`` by default under DDP so that every rank
runs the same number of steps without repeating a sample. :meth:`DataModule.state_dict`
(saved by Lightning in every checkpoint) holds the train loader's state after
the last batch the model was *given* (counted in ``on_after_batch_transfer``,
so Lightning's one batch fetched ahead is not counted); a run resumed from
the checkpoint continues the epoch with the next batch. ``meta`` stays a list
of :class:`~terrapipe.core.sample.GeoMeta` in each batch (Lightning moves only
tensors to the device).

What it cannot do: the val/test loaders restart at each validation or test
run (as Lightning's do); a pipe with stages that cannot save their position
resumes by re-running the epoch (``ResumeWarning``, see :func:`terrapipe.loader`).

Examples
--------
Skipped here (Lightning is the ``lightning`` extra; ``tests/adapters/test_lightning.py`` runs it):

>>> data = DataModule.from_recipe("landcover-split.yaml")  # doctest: +SKIP
>>> lightning.Trainer(fast_dev_run=True).fit(model, datamodule=data)  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from terrapipe.chip.split import SpatialSplit, SplitSubset
from terrapipe.core.errors import InvalidArgumentError, RecipeError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe
from terrapipe.core.state import expect_keys
from terrapipe.run.pipe_loader import PipeLoader, loader

__all__ = [
    "TrackedLoader",
    "recipe_subsets",
    "takes_split_subset",
]  # and DataModule, built when first asked for (Lightning is imported then)

#: Lightning's stage names and the loaders they use.
STAGES = ("train", "val", "test")
_SPLIT_KEYS = frozenset({"fractions", "cell_size", "buffer", "seed", "origin"})
_CLASS: Any = None


class TrackedLoader:
    """A loader that remembers its state after each batch until the model is given that batch.

    Lightning fetches one batch ahead; :meth:`given` (called when a batch
    reaches the model) moves the saved state on by one batch, so
    :meth:`state_dict` is the state after the last batch the model got.
    """

    def __init__(self, batches: PipeLoader[Any]) -> None:
        self.loader = batches
        self._ahead: collections.deque[dict[str, Any]] = collections.deque()
        self._state: dict[str, Any] = batches.state_dict()

    def __iter__(self) -> Iterator[Any]:
        self._ahead.clear()
        self._state = self.loader.state_dict()
        for batch in self.loader:
            self._ahead.append(self.loader.state_dict())
            yield batch
        self._ahead.append(self.loader.state_dict())  # the pass's end: the next epoch

    def __len__(self) -> int:
        return len(self.loader)

    def given(self) -> None:
        """One more batch reached the model."""
        if self._ahead:
            self._state = self._ahead.popleft()
            if len(self._ahead) == 1 and self._ahead[0]["position"] is None:
                self._state = self._ahead.popleft()  # that was the pass's last batch

    def state_dict(self) -> dict[str, Any]:
        """Return the loader's state after the last batch given to the model."""
        return dict(self._state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue after the batch where ``state`` was saved."""
        self.loader.load_state_dict(state)
        self._ahead.clear()
        self._state = dict(state)


def _make_split(value: Any, where: str) -> SpatialSplit:
    if isinstance(value, SpatialSplit):
        return value
    if not isinstance(value, Mapping) or not set(value) <= _SPLIT_KEYS or "fractions" not in value:
        raise InvalidArgumentError(
            f"{where}: a split is a SpatialSplit or a mapping with fractions and cell_size "
            f"(and optionally buffer, seed, origin), got {value!r}"
        )
    kwargs = dict(value)
    for key in ("cell_size", "origin"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    try:
        return SpatialSplit(**kwargs)
    except TypeError as err:
        raise InvalidArgumentError(f"{where}: {err}") from err


def takes_split_subset(stage: str) -> bool:
    """Whether stage ``stage``'s ``split=`` takes a :class:`~terrapipe.chip.split.SplitSubset`.

    Examples
    --------
    >>> import terrapipe
    >>> takes_split_subset("chip"), takes_split_subset("sample_windows"), takes_split_subset("map")
    (True, True, False)
    """
    import typing

    from terrapipe.recipes.stages import stage_hints

    hint = stage_hints(stage).get("split")
    return hint is not None and (hint is SplitSubset or SplitSubset in typing.get_args(hint))


def _split_steps(recipe: Any) -> list[tuple[str, int]]:
    found = []
    for name, (_, steps) in recipe.inputs.items():
        for index, step in enumerate(steps):
            if takes_split_subset(step.stage):
                found.append((name, index))
    return found


def recipe_subsets(
    recipe: Any, split: SpatialSplit | Mapping[str, Any] | None
) -> tuple[SpatialSplit, Callable[[str], Any]]:
    """Return the recipe's split and a function giving the recipe restricted to one subset.

    Raises
    ------
    RecipeError
        For a recipe without a chipping step that takes ``split=``, or without a split
        (in the file or given).
    """
    places = _split_steps(recipe)
    if not places:
        raise RecipeError(
            f"{recipe.file}: no step takes split= (chip does): a DataModule needs one to "
            "cut the train/val/test subsets"
        )
    in_file = [recipe.inputs[n][1][i].kwargs.get("split") for n, i in places]
    given = [s for s in in_file if s is not None]
    if split is None:
        if not given:
            raise RecipeError(
                f"{recipe.file}: the recipe has no split: give its chip step "
                "'split: {fractions: {train: 0.8, val: 0.1, test: 0.1}, cell_size: ...}' or pass split="
            )
        split = given[0]
        if any(g != split for g in given):
            raise RecipeError(f"{recipe.file}: the chipping steps name different splits: {given}")
    made = _make_split(split, recipe.file)

    def restricted(subset: str) -> Any:
        made.subset_number(subset)
        inputs = dict(recipe.inputs)
        for name, index in places:
            source, steps = inputs[name]
            steps = list(steps)
            step = steps[index]
            kwargs = {k: v for k, v in step.kwargs.items() if k != "subset"}  # subset: its old key
            kwargs["split"] = made.select(subset)
            steps[index] = dataclasses.replace(step, kwargs=kwargs)
            inputs[name] = (source, steps)
        return dataclasses.replace(recipe, inputs=inputs)

    return made, restricted


def _data_module_class() -> Any:
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    lightning = require("lightning", extra="lightning", feature="terrapipe.adapters.lightning")

    class DataModule(lightning.LightningDataModule):  # type: ignore[misc,name-defined]
        r"""Train/val/test :func:`terrapipe.loader`\\ s as a ``LightningDataModule``.

        Parameters
        ----------
        pipes
            Stage name (``"train"``, ``"val"``, ``"test"``; ``"predict"`` too)
            -> a function building that stage's pipe (called once, when Lightning
            asks for the loader).
        loader_settings
            :func:`terrapipe.loader`'s keywords for every loader.
        eval_settings
            Overrides for the val/test/predict loaders (default: ``drop_last=False``).
        """

        def __init__(
            self,
            pipes: Mapping[str, Callable[[], IterDataPipe[Any]]],
            *,
            loader_settings: Mapping[str, Any] | None = None,
            eval_settings: Mapping[str, Any] | None = None,
        ) -> None:
            super().__init__()
            unknown = sorted(set(pipes) - {*STAGES, "predict"})
            if unknown:
                raise InvalidArgumentError(f"DataModule stages are train, val, test, predict; got {unknown}")
            self.pipes = dict(pipes)
            self.loader_settings = dict(loader_settings or {})
            self.eval_settings = {"drop_last": False, **dict(eval_settings or {})}
            self.loaders: dict[str, TrackedLoader] = {}
            self._pending: dict[str, Any] | None = None

        @classmethod
        def from_recipe(
            cls,
            path: str | os.PathLike[str],
            *,
            split: SpatialSplit | Mapping[str, Any] | None = None,
            subsets: Mapping[str, str] | None = None,
            world: Any = None,
            allow_env: tuple[str, ...] = (),
            **loader_overrides: Any,
        ) -> Any:
            """Build train/val/test loaders from a recipe and its spatial split.

            Parameters
            ----------
            path
                The recipe file (or a bundled recipe's name).
            split
                The split, when the recipe's chipping step has none (a
                :class:`~terrapipe.chip.split.SpatialSplit` or its keywords).
            subsets
                Lightning stage -> subset name; default: each of ``train``, ``val``,
                ``test`` that the split has.
            world
                The sample world for ``$world`` references (default: the cached one).
            allow_env
                Environment variables the recipe may read (see :func:`terrapipe.load_recipe`).
            **loader_overrides
                :func:`terrapipe.loader` keywords over the recipe's ``loader:`` section.

            Raises
            ------
            RecipeError
                For a recipe with no chipping step that takes a split, or no split.
            """
            from terrapipe.recipes import load_recipe

            recipe = load_recipe(path, allow_env=allow_env)
            made, restricted = recipe_subsets(recipe, split)
            chosen = dict(subsets) if subsets is not None else {s: s for s in STAGES if s in made.names}
            for stage, subset in chosen.items():
                made.subset_number(subset)
                if stage not in (*STAGES, "predict"):
                    raise InvalidArgumentError(f"subsets keys are Lightning stages {STAGES}, got {stage!r}")
            pipes = {stage: (lambda s=subset: restricted(s).build(world)) for stage, subset in chosen.items()}
            settings = {"seed": recipe.seed, **recipe.loader_settings, **loader_overrides}
            return cls(pipes, loader_settings=settings)

        def _loader(self, stage: str) -> TrackedLoader:
            if stage not in self.pipes:
                raise InvalidArgumentError(
                    f"this DataModule has no {stage!r} pipe (it has {sorted(self.pipes)})"
                )
            if stage not in self.loaders:
                settings = dict(self.loader_settings)
                if stage != "train":
                    settings.update(self.eval_settings)
                import torch.distributed as dist

                if "even" not in settings and dist.is_available() and dist.is_initialized():
                    settings["even"] = dist.get_world_size() > 1
                self.loaders[stage] = TrackedLoader(loader(self.pipes[stage](), **settings))
                if stage == "train" and self._pending is not None:
                    self.loaders[stage].load_state_dict(self._pending)
                    self._pending = None
            return self.loaders[stage]

        def train_dataloader(self) -> Any:
            return self._loader("train")

        def val_dataloader(self) -> Any:
            return self._loader("val")

        def test_dataloader(self) -> Any:
            return self._loader("test")

        def predict_dataloader(self) -> Any:
            return self._loader("predict")

        def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            trainer = self.trainer
            if trainer is not None and trainer.training and "train" in self.loaders:
                self.loaders["train"].given()
            return batch

        def state_dict(self) -> dict[str, Any]:
            """Return the train loader's state after the last batch given to the model (Lightning checkpoints it)."""
            if "train" in self.loaders:
                return {"train": self.loaders["train"].state_dict()}
            return {"train": self._pending}

        def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
            """Make the train loader continue where the checkpoint was saved."""
            expect_keys(state_dict, ("train",), owner="DataModule")
            state = state_dict["train"]
            if state is None:
                return
            if "train" in self.loaders:
                self.loaders["train"].load_state_dict(state)
            else:
                self._pending = dict(state)

        def teardown(self, stage: str) -> None:
            for tracked in self.loaders.values():
                tracked.loader.close()

    DataModule.__qualname__ = "DataModule"  # Lightning files its state under the class's qualname
    _CLASS = DataModule
    return _CLASS


def __getattr__(name: str) -> Any:
    if name == "DataModule":
        return _data_module_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
