"""DataModule.from_recipe: train/val/test loaders from a recipe's spatial split, Lightning's Trainer, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import terrapipe as tp
from terrapipe import adapters
from terrapipe.recipes import bundled_recipes
from tests.adapters.common import MEAN, N_CLASSES, STD, need

L = need("lightning")

SPLIT = "split: {fractions: {train: 0.6, val: 0.2, test: 0.2}, cell_size: 2560, seed: 3}"


def split_recipe(folder: Path, split: str = SPLIT, loader: str = "batch_size: 4\n  workers: 2") -> Path:
    """The bundled landcover-segmentation recipe with a spatial split on its chip step."""
    text = bundled_recipes()["landcover-segmentation"].read_text(encoding="utf-8")
    chip = "- chip: {size: {y: 128, x: 128}, boundary: drop}"
    assert chip in text
    text = text.replace(chip, f"- chip: {{size: {{y: 128, x: 128}}, boundary: drop, {split}}}")
    text = text.replace("  batch_size: 4\n  workers: 2", f"  {loader}")
    path = folder / "landcover-split.yaml"
    path.write_text(text, encoding="utf-8")
    return path


class PixelClassifier(L.LightningModule):  # type: ignore[misc,name-defined]
    """A 1x1 convolution over normalised channels: land-cover class per pixel."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(MEAN)[None, :, None, None])
        self.register_buffer("std", torch.from_numpy(STD)[None, :, None, None])
        self.conv = torch.nn.Conv2d(5, N_CLASSES, 1)
        self.lr = lr
        self.losses: list[float] = []
        self.seen: dict[str, list[tuple[float, ...]]] = {"train": [], "val": [], "test": []}

    def loss(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        self.seen[stage] += [tuple(m["bounds"]) for m in batch["meta"]]
        logits = self.conv((batch["image"] - self.mean) / self.std)
        return torch.nn.functional.cross_entropy(logits, batch["mask"])

    def training_step(self, batch: dict[str, Any], index: int) -> torch.Tensor:
        loss = self.loss(batch, "train")
        self.losses.append(float(loss.detach()))
        return loss

    def validation_step(self, batch: dict[str, Any], index: int) -> None:
        self.log("val_loss", self.loss(batch, "val"), batch_size=len(batch["meta"]))

    def test_step(self, batch: dict[str, Any], index: int) -> None:
        self.log("test_loss", self.loss(batch, "test"), batch_size=len(batch["meta"]))

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def trainer(tmp_path: Path, **kwargs: Any) -> Any:
    options = {
        "accelerator": "cpu",
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "default_root_dir": tmp_path,
    }
    return L.Trainer(**{**options, **kwargs})


@pytest.fixture(scope="module")
def windows(
    sample_world: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[tuple[float, ...]]]:
    """The bounds of each subset's windows, read straight from the recipe's pipe with split= and subset=."""
    recipe = tp.load_recipe(split_recipe(tmp_path_factory.mktemp("split")))
    split = tp.chip.SpatialSplit({"train": 0.6, "val": 0.2, "test": 0.2}, cell_size=2560, seed=3)
    from terrapipe.adapters.lightning import recipe_subsets

    made, restricted = recipe_subsets(recipe, None)
    assert made == split
    return {s: [tuple(x["meta"]["bounds"]) for x in restricted(s).build(sample_world)] for s in made.names}


def test_the_split_cuts_disjoint_non_empty_subsets_of_the_recipes_windows(
    windows: dict[str, list[Any]], sample_world: Any
) -> None:
    everything = [
        tuple(x["meta"]["bounds"]) for x in tp.load_recipe("landcover-segmentation").build(sample_world)
    ]
    subsets = [set(w) for w in windows.values()]
    assert all(subsets)
    assert all(len(set(w)) == len(w) for w in windows.values())
    assert sum(len(s) for s in subsets) <= len(everything)
    assert set().union(*subsets) <= set(everything)
    for i, a in enumerate(subsets):
        for b in subsets[i + 1 :]:
            assert not a & b


def test_fast_dev_run_on_the_sample_world(tmp_path: Path, sample_world: Any) -> None:
    data = adapters.DataModule.from_recipe(split_recipe(tmp_path), world=sample_world)
    model = PixelClassifier()
    run = trainer(tmp_path, fast_dev_run=True)
    run.fit(model, datamodule=data)
    run.test(model, datamodule=data)
    assert len(model.losses) == 1
    assert np.isfinite(model.losses[0])
    assert model.seen["val"]
    assert model.seen["test"]
    assert isinstance(data.train_dataloader().loader, tp.run.PipeLoader)


def test_training_lowers_the_loss_and_each_loader_reads_its_subset_once_per_epoch(
    tmp_path: Path, sample_world: Any, windows: dict[str, list[Any]]
) -> None:
    data = adapters.DataModule.from_recipe(split_recipe(tmp_path), world=sample_world)
    model = PixelClassifier()
    run = trainer(tmp_path, max_epochs=3, num_sanity_val_steps=0)
    run.fit(model, datamodule=data)
    per_epoch = len(model.losses) // 3
    assert per_epoch == -(-len(windows["train"]) // 4)
    first, last = np.mean(model.losses[:per_epoch]), np.mean(model.losses[-per_epoch:])
    assert last < 0.8 * first, (first, last)
    for epoch in range(3):  # every train window once per epoch
        assert sorted(
            model.seen["train"][epoch * len(windows["train"]) :][: len(windows["train"])]
        ) == sorted(windows["train"])
    assert sorted(model.seen["val"]) == sorted(windows["val"] * 3)  # one validation run per epoch
    assert data.state_dict() == {"train": {"epoch": 3, "position": None}}


def test_a_checkpoint_mid_epoch_resumes_with_the_next_batch(
    tmp_path: Path, sample_world: Any, windows: dict[str, list[Any]]
) -> None:
    recipe = split_recipe(tmp_path)
    data = adapters.DataModule.from_recipe(recipe, world=sample_world)
    model = PixelClassifier()
    every_2 = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1
    )
    run = trainer(
        tmp_path,
        max_steps=3,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        enable_checkpointing=True,
        callbacks=[every_2],
    )
    run.fit(model, datamodule=data)
    first = list(model.seen["train"][:8])  # what the model saw up to the checkpoint at step 2
    (checkpoint,) = (tmp_path / "ckpt").glob("*step=2*.ckpt")
    saved = torch.load(checkpoint, weights_only=False)["DataModule"]["train"]
    assert saved["position"] is not None  # mid-epoch: after the second batch, not the third fetched ahead

    resumed_data = adapters.DataModule.from_recipe(recipe, world=sample_world)
    resumed = PixelClassifier()
    again = trainer(tmp_path, max_epochs=1, num_sanity_val_steps=0, limit_val_batches=0)
    again.fit(resumed, datamodule=resumed_data, ckpt_path=checkpoint)
    rest = resumed.seen["train"]
    assert rest, "the resumed run trained on nothing"
    assert sorted(first + rest) == sorted(windows["train"])  # nothing repeated, nothing lost


def test_a_recipe_without_a_split_is_refused_or_takes_one(tmp_path: Path, sample_world: Any) -> None:
    data_module = adapters.DataModule
    plain = bundled_recipes()["landcover-segmentation"]
    with pytest.raises(tp.RecipeError, match="has no split"):
        data_module.from_recipe(plain)
    data = data_module.from_recipe(
        plain,
        split={"fractions": {"train": 0.5, "val": 0.5}, "cell_size": 2560},
        world=sample_world,
        batch_size=8,
    )
    assert sorted(data.pipes) == ["train", "val"]
    assert len(list(data.val_dataloader())) >= 1
    with pytest.raises(tp.InvalidArgumentError, match="fractions"):
        data_module.from_recipe(plain, split={"cell_size": 10})
    with pytest.raises(tp.RecipeError, match="no step takes split"):
        data_module.from_recipe(bundled_recipes()["climate-forecasting"])


def test_the_states_kept_ahead_of_the_model_are_bounded_by_the_batches_fetched_ahead() -> None:
    """TrackedLoader keeps one state per batch fetched but not yet given to the model."""
    from terrapipe.adapters.lightning import TrackedLoader

    tracked = TrackedLoader(tp.loader(tp.from_items(list(range(40))), batch_size=2))
    most = 0
    pending: list[Any] = []
    for batch in tracked:
        pending.append(batch)
        if len(pending) > 1:  # the model gets each batch one fetch later, as Lightning's prefetch does
            pending.pop(0)
            tracked.given()
        most = max(most, len(tracked._ahead))
    assert most <= 2
    tracked.given()
    assert len(tracked._ahead) == 0
    assert tracked.state_dict()["position"] is None or tracked.state_dict() == tracked.loader.state_dict()
