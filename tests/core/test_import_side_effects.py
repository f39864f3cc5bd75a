"""Importing terrapipe changes nothing in the process; the first read installs what reading needs, once.

Each check runs in a fresh interpreter. The third-party modules terrapipe's
import pulls in are imported first (their own import-time effects are theirs,
not ours); then the state of the process is recorded, every terrapipe module
is imported, and the state is recorded again: the environment, the filters,
handlers and levels of every logger, ``warnings.filters``, the shared objects
loaded (``/proc/self/maps``), ``os.register_at_fork`` calls, signal handlers,
exception hooks and the multiprocessing start method must be the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

#: Imports every terrapipe module; prints the modules of other packages that are then loaded.
_LIST_DEPENDENCIES = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import terrapipe
    for info in pkgutil.walk_packages(terrapipe.__path__, "terrapipe."):
        if not info.name.endswith("__main__"):
            try:
                importlib.import_module(info.name)
            except ImportError:
                pass
    print(json.dumps([m for m in sys.modules if m.split(".")[0] != "terrapipe"]))
    """
)

_PROBE = textwrap.dedent(
    """
    import atexit, importlib, json, logging, multiprocessing, os, pkgutil, signal, sys, threading, warnings

    for name in json.loads(sys.argv[1]):
        try:
            importlib.import_module(name)
        except Exception:
            pass

    def state():
        loggers = {"": logging.root, **logging.root.manager.loggerDict}
        return {
            "environ": dict(os.environ),
            "loggers": {
                name: [[repr(f) for f in lg.filters], [repr(h) for h in lg.handlers], lg.level, lg.disabled]
                for name, lg in loggers.items() if isinstance(lg, logging.Logger)
            },
            "warnings.filters": [repr(f) for f in warnings.filters],
            "shared objects": sorted({
                line.split(maxsplit=5)[5].strip()
                for line in open("/proc/self/maps") if len(line.split(maxsplit=5)) == 6
            }),
            "signals": {s.name: repr(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)},
            "hooks": [repr(sys.excepthook), repr(threading.excepthook), atexit._ncallbacks()],
            "start method": multiprocessing.get_start_method(allow_none=True),
        }

    fork_hooks = []
    register = os.register_at_fork

    def recording(**hooks):
        fork_hooks.append(sys._getframe(1).f_globals.get("__name__"))
        register(**hooks)

    before = state()
    os.register_at_fork = recording
    for name in sys.argv[2].split(","):
        importlib.import_module(name)
    import terrapipe
    for info in pkgutil.walk_packages(terrapipe.__path__, "terrapipe."):
        if not info.name.endswith("__main__"):
            try:
                importlib.import_module(info.name)
            except ImportError:
                pass
    after = state()
    from terrapipe.io import gdal_fork, gdal_log, gdal_setup
    flags = [gdal_fork.hook_installed(), gdal_log.log_redaction_installed(), gdal_setup.gdal_setup_done()]
    result = {"before": before, "after": after, "fork_hooks": list(fork_hooks), "flags_after_import": flags}

    if len(sys.argv) > 3:  # then read a raster, twice
        path = sys.argv[3]
        terrapipe.open_raster(path).values
        first = [gdal_fork.hook_installed(), gdal_log.log_redaction_installed(), gdal_setup.gdal_setup_done()]
        calls = list(fork_hooks)
        terrapipe.open_raster(path).values
        with terrapipe.io.gdal_env.gdal_env():
            pass
        result["flags_after_read"] = first
        result["fork_hooks_after_read"] = calls
        result["fork_hooks_after_second_read"] = list(fork_hooks)
        result["filters_after_read"] = {
            name: [repr(f) for f in logging.getLogger(name).filters] for name in gdal_log.REDACTED_LOGGERS
        }
        result["environ_after_read"] = dict(os.environ)
    print("RESULT" + json.dumps(result))
    """
)

#: Modules still registering a fork hook at import: none (core.pipe's lock resets register on the
#: locks' first use, stack_stac's read pool reset with the first pool). Keep it empty.
_PENDING_FORK_HOOKS: set[str] = set()


def _run(code: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="module")
def dependencies() -> str:
    names = json.loads(_run(_LIST_DEPENDENCIES).strip().splitlines()[-1])
    return json.dumps([name for name in names if name != "__main__"])


@pytest.fixture(scope="module")
def raster(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("import") / "a.tif"
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint8", "crs": "EPSG:32631"}
    with rasterio.open(path, "w", transform=from_origin(0, 80, 10, 10), **profile) as dst:
        dst.write(np.ones((1, 8, 8), "uint8"))
    return str(path)


def _probe(dependencies: str, first: str, *args: str) -> dict[str, Any]:
    line = [
        text for text in _run(_PROBE, dependencies, first, *args).splitlines() if text.startswith("RESULT")
    ]
    result: dict[str, Any] = json.loads(line[-1][len("RESULT") :])
    return result


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    for key in before:
        if isinstance(before[key], dict):
            diff = {
                name: (before[key].get(name), after[key].get(name))
                for name in set(before[key]) | set(after[key])
                if before[key].get(name) != after[key].get(name)
                and not (
                    key == "loggers"
                    and before[key].get(name) is None
                    and after[key][name] == [[], [], 0, False]
                )
            }
        else:
            diff = before[key] != after[key] and {"before": before[key], "after": after[key]}
        if diff:
            changed[key] = diff
    return changed


@pytest.mark.parametrize(
    "first", ["terrapipe", "terrapipe.io", "terrapipe.stac,terrapipe.cache,terrapipe.run"]
)
def test_import_changes_nothing(dependencies: str, first: str) -> None:
    """A new logger with no filter, handler or level (``logging.getLogger(__name__)``) is the only thing allowed."""
    result = _probe(dependencies, first)
    assert _changes(result["before"], result["after"]) == {}
    assert set(result["fork_hooks"]) <= _PENDING_FORK_HOOKS, result["fork_hooks"]
    assert result["flags_after_import"] == [False, False, False]


def test_the_first_read_installs_the_hooks_once(dependencies: str, raster: str) -> None:
    result = _probe(dependencies, "terrapipe", raster)
    assert result["flags_after_read"] == [True, True, True]
    ours = result["fork_hooks_after_read"][len(result["fork_hooks"]) :]
    assert ours == ["terrapipe.io.gdal_fork"]  # one hook, registered by the first read
    assert result["fork_hooks_after_second_read"] == result["fork_hooks_after_read"]  # and never again
    for name, filters in result["filters_after_read"].items():
        assert len(filters) == 1, name
        assert "RedactAndKeep" in filters[0], name
    # GDAL's settings are given per open, never put into os.environ
    assert result["environ_after_read"] == result["before"]["environ"]
