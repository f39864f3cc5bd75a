from __future__ import annotations

from typing import Any

import pytest

from tests.adapters.common import landcover_samples


@pytest.fixture(scope="session")
def samples(sample_world: Any) -> list[dict[str, Any]]:
    """The landcover recipe's samples, read once per session (a from_items pipe over them shards exactly)."""
    return landcover_samples(sample_world)
