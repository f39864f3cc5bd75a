"""The README's main job, shortened: terrapipe demo on the sample world."""

from __future__ import annotations

import math

from terrapipe.demo import run_demo


def test_demo_runs_end_to_end(sample_world):
    lines: list[str] = []
    result = run_demo(sample_world.root, steps=4, workers=1, batch_size=4, out=lines.append)
    assert result["items"] == 6  # 3 dates x 2 tiles, found through the STAC API
    assert result["validation_chips"] > 0
    assert math.isfinite(result["first_loss"])
    assert math.isfinite(result["last_loss"])
    assert 0.0 < result["baseline"] < 1.0
    assert any("search_stac found 6 demo-s2 items in 2 CRSs" in line for line in lines)
