"""`import terrapipe` works with the core set alone; extras fail with what to install."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import terrapipe as tp
from terrapipe.core.optional import EXTRA_OF, require

# Every optional top-level module, blocked at once in a subprocess.
# A ``None`` in sys.modules makes ``import x`` raise ModuleNotFoundError and
# ``importlib.util.find_spec(x)`` return None: exactly what a missing package does.
BLOCKER = textwrap.dedent(
    """
    import sys
    for name in {blocked!r}:
        sys.modules[name] = None
    """
)


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    blocked = sorted(EXTRA_OF)
    script = BLOCKER.format(blocked=blocked) + textwrap.dedent(code)
    # The package may come from a source tree (PYTHONPATH=src) rather than an install.
    src = str(Path(tp.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )


def test_import_terrapipe_with_core_dependencies_only(tmp_path):
    proc = _run(
        """
        import terrapipe as tp
        assert "header" in tp.core.registered_names()
        for mod in ("pystac", "zarr", "geopandas", "redis", "dask", "typer"):
            assert sys.modules.get(mod) is None, mod
        print("ok", len(tp.__all__))
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_sample_world_without_extras_names_the_extra(tmp_path):
    proc = _run(
        """
        import terrapipe as tp
        try:
            tp.datasets.sample_world("world")
        except tp.MissingDependencyError as err:
            print("missing:", err)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'terrapipe[" in proc.stdout


def test_require_names_the_extra():
    with pytest.raises(tp.MissingDependencyError, match=r"pip install 'terrapipe\[gpu\]'"):
        require("cupy_not_installed_here", extra="gpu", feature="GPU chipping")


def test_require_unknown_module_suggests_pip():
    with pytest.raises(tp.MissingDependencyError, match="pip install nothere_xyz"):
        require("nothere_xyz")


def test_require_returns_module():
    assert require("numpy").__name__ == "numpy"
