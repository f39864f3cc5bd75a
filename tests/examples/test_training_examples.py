"""The three training examples, shortened: each pipeline trains (loss falls) and beats its baseline.

They run with one torch thread: on 2 cores shared with other work, two
threads wait on each other and run several times slower.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str) -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))  # as when run as a script: the examples import _common
    spec = importlib.util.spec_from_file_location(f"terrapipe_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # DataLoader workers pickle its functions by module name
    spec.loader.exec_module(module)
    return module


def _quiet(_: str) -> None:
    return None


@pytest.mark.slow
def test_segmentation_learns(sample_world) -> None:  # type: ignore[no-untyped-def]
    example = _load("train_segmentation")
    result = example.main(
        40,
        root=sample_world.root,
        chip_size=128,
        windows_per_scene=8,
        batch_size=8,
        workers=2,
        threads=1,
        out=_quiet,
    )
    assert result["train_chips"] == 32
    assert result["val_chips"] == 16
    assert result["last_loss"] < 0.8 * result["first_loss"]
    assert result["miou"] > result["baseline_miou"] + 0.05, result
    assert result["miou"] > result["untrained_miou"]


@pytest.mark.slow
def test_detection_learns_and_boxes_round_trip(sample_world) -> None:  # type: ignore[no-untyped-def]
    example = _load("train_detection")
    # training windows centred on random buildings (sample_windows(points=...)); validation: every June chip
    result = example.main(
        40, root=sample_world.root, windows_per_scene=16, batch_size=8, workers=0, threads=1, out=_quiet
    )
    assert result["val_chips"] == 14
    assert result["last_loss"] < 0.7 * result["first_loss"]
    assert result["f1"] > max(0.5, result["baseline_f1"] + 0.2), result
    assert result["f1"] > result["untrained_f1"]
    # pixel boxes of the Samples, back on the map, land on the footprints' boxes (10 m pixels)
    assert result["roundtrip_m"] < 0.05


@pytest.mark.slow
def test_change_detection_learns(sample_world) -> None:  # type: ignore[no-untyped-def]
    example = _load("train_change_detection")
    result = example.main(
        30,
        root=sample_world.root,
        chip_size=128,
        windows_per_scene=8,
        batch_size=4,
        workers=0,
        threads=1,
        out=_quiet,
    )
    assert result["train_pairs"] == result["val_pairs"] == 8 * 4  # 8 windows a tile, 4 pairs of dates each
    assert result["changed_share"] > 0.01
    assert result["last_loss"] < 0.5 * result["first_loss"]
    assert result["change_iou"] > 0.5, result
    assert result["miou"] > result["baseline_miou"] + 0.1
