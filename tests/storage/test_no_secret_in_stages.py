"""No registered stage shows a credential given to it (#19), whatever stage it is.

torch appends "This exception is thrown by __iter__ of Stage(name=value, ...)"
to every error raised through a pipe, listing each attribute named after a
parameter of the stage's class. So for every registered stage that takes
``storage=``, ``storage_options=`` or ``**kwargs``, built with a credential in
them, neither its ``repr``/``str`` nor any such attribute may show it.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.pipe import IterDataPipe
from terrapipe.io.storage import Storage
from terrapipe.recipes.stages import ensure_registered, stage_class, stage_names

COPC = Path(__file__).parents[1] / "conformance/files/data/laspy/simple.copc.laz"
SECRET = "stage-sweep-secret-9876543210"
STORAGE = Storage(
    key_id="AKID", secret=SECRET, account_key=SECRET, sas_token=f"sig={SECRET}", gcs_token=SECRET
)
#: Arguments a stage needs besides its source pipe.
EXTRA: dict[str, dict[str, Any]] = {
    "search_stac": {"catalog": "s3://bucket/stac/catalog.json"},
    # a local COPC file (opened at construction), read with the storage's keys held
    "rasterize_points": {"points": str(COPC)},
}
OPTIONS = {"key": "AKID", "secret": SECRET, "account_key": SECRET, "client_kwargs": {"token": SECRET}}


def _candidates() -> list[str]:
    ensure_registered()
    found = []
    for name in stage_names():
        cls = stage_class(name)
        if cls is None or not isinstance(cls, type):
            continue
        params = inspect.signature(cls).parameters
        # ``**deprecated`` (chip, sample_windows) takes old keyword names only, no storage
        if {"storage", "storage_options"} & set(params) or any(
            p.kind is p.VAR_KEYWORD and p.name != "deprecated" for p in params.values()
        ):
            found.append(name)
    return found


def _shown(stage: IterDataPipe[Any]) -> str:
    """What torch shows of a stage (its class's parameters, as attributes) and its repr and str."""
    names = set(inspect.signature(type(stage)).parameters)
    parts = [repr(stage), str(stage)]
    for name, value in inspect.getmembers(stage):
        if name in names:
            parts.append(f"{name}={value!r}")
    return "\n".join(parts)


@pytest.mark.parametrize("name", _candidates())
def test_a_stage_built_with_credentials_shows_none(name: str) -> None:
    cls = stage_class(name)
    params = inspect.signature(cls).parameters
    required = [
        p
        for n, p in params.items()
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    missing = (
        {p.name for p in required} - {"source", "source_dp", "source_datapipe"} - set(EXTRA.get(name, {}))
    )
    assert not missing, f"give {name}'s required {sorted(missing)} in EXTRA, so that the sweep covers it"
    tried = 0
    for key, value in (("storage", STORAGE), ("storage_options", OPTIONS)):
        if key not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        try:
            stage = getattr(tp.from_items([]), name)(**EXTRA.get(name, {}), **{key: value})
        except tp.TerrapipeError:
            continue  # refused (a stage that takes **kwargs for a reader that does not want this key)
        tried += 1
        assert SECRET not in _shown(stage), f"{name}({key}=...) shows a credential"
    assert tried or name == "open_xarray"


def test_the_sweep_covers_the_readers() -> None:
    assert {"read_zarr", "read_vector", "read_raster", "open_xarray"} <= set(_candidates())
