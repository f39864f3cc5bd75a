"""Start one Python process per DDP rank on 127.0.0.1 and collect what each wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from terrapipe.stac.server import free_port

SRC = Path(__file__).resolve().parents[2] / "src"


def run_ranks(
    script: Path, args: Sequence[str], out: Path, *, world_size: int = 2, timeout: float = 180
) -> list[Any]:
    """Run ``script RANK WORLD PORT *args OUT/RANK.json`` for every rank; return each rank's JSON.

    A rank that fails or outlives ``timeout`` fails the caller with its output;
    every process is killed by pid before this returns.
    """
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(rank),
                str(world_size),
                str(port),
                *args,
                str(out / f"{rank}.json"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in range(world_size)
    ]
    logs = []
    try:
        for proc in procs:
            stdout, _ = proc.communicate(timeout=timeout)
            logs.append(stdout.decode(errors="replace"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log
    return [json.loads((out / f"{rank}.json").read_text()) for rank in range(world_size)]
