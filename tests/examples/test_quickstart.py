"""The README's example (examples/quickstart.py) runs as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


def test_quickstart_runs(sample_world):
    # The session's TERRAPIPE_DATA_DIR (root conftest) holds the built world already.
    env = {**os.environ, "TERRAPIPE_DATA_DIR": str(sample_world.root.parent)}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines
    assert all(line.startswith("torch.Size([") for line in lines)
    assert "EPSG:326" in lines[0]
