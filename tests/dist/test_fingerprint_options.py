"""The fingerprint sees the options of search_stac, rasterize, clip_vector and to_tensor, never credentials.

These stages hold objects with no stable description (a search
backend, a spatial index, a settings object) and describe themselves with
``cache_config()``; before, they counted by class only, so a store written
with other options was resumed as if it were the same pipeline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import torch
import xarray as xr
from shapely.geometry import box

import terrapipe as tp
import terrapipe.dist
from terrapipe.cache.segment import describe_stage
from terrapipe.dist.fingerprint import pipe_fingerprint
from tests.dist.dist_helpers import segmentation_pipe

ROOT = Path(__file__).resolve().parents[2]
API = "http://127.0.0.1:9/stac"  # never contacted: building a search and fingerprinting it sends nothing


def chip(x0: float = 600_000.0) -> xr.DataArray:
    """A 1-band 4x4 chip of 10 m pixels in EPSG:32631."""
    data = np.arange(16, dtype="float32").reshape(1, 4, 4)
    coords = {"y": 5_000_035.0 - 10.0 * np.arange(4), "x": x0 + 5.0 + 10.0 * np.arange(4)}
    return xr.DataArray(data, dims=("band", "y", "x"), coords=coords).rio.write_crs("EPSG:32631")


def layer() -> gpd.GeoDataFrame:
    """Two fields over the chip, with a burnt ``class`` and a ``note`` that is not burnt."""
    return gpd.GeoDataFrame(
        {"class": [3, 5], "note": ["a", "b"]},
        geometry=[box(600_000, 5_000_000, 600_020, 5_000_020), box(600_020, 5_000_020, 600_040, 5_000_040)],
        crs="EPSG:32631",
    )


def labelled(vector: Any = None, *, rasterize: dict[str, Any] | None = None, **to_tensor: Any) -> Any:
    """chips -> rasterize -> to_tensor."""
    options = {"column": "class", **(rasterize or {})}
    vector = layer() if vector is None else vector
    return tp.from_items([chip(), chip(600_040.0)]).rasterize(vector, **options).to_tensor(**to_tensor)


def search(**options: Any) -> Any:
    """A STAC API search (built offline)."""
    source = options.pop("source", API)
    transport = {
        k: options.pop(k) for k in ("headers", "request_modifier", "timeout", "retries") if k in options
    }
    if transport:  # how requests are made is a tp.Storage
        options["storage"] = tp.Storage(**transport)
    return tp.search_stac(source, **{"collections": ["demo-s2"], **options})


def fingerprint_of(make: Callable[[], Any]) -> str:
    return pipe_fingerprint(make())


def config_of(stage: Any) -> dict[str, Any]:
    """The stage's described options, as a dict (canonical form)."""
    described = describe_stage(stage)
    assert isinstance(described, dict)
    config = described["config"]
    assert isinstance(config, dict)
    return {str(key): value for key, value in config["dict"]}  # type: ignore[union-attr]


# -- each option counts ---------------------------------------------------------
SEARCH_CHANGES: dict[str, dict[str, Any]] = {
    "bbox": {"bbox": [5.9, 45.7, 6.0, 45.8]},
    "other bbox": {"bbox": [5.9, 45.7, 6.0, 45.9]},
    "intersects": {"intersects": box(5.9, 45.7, 6.0, 45.8)},
    "datetime": {"datetime": "2024-06"},
    "collections": {"collections": ["demo-dem"]},
    "ids": {"ids": ["S2A_31TGL_20240619_0_L2A"]},
    "query": {"query": {"eo:cloud_cover": {"lt": 10}}},
    "filter": {"filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 10]}},
    "sortby": {"sortby": "-datetime"},
    "max_items": {"max_items": 3},
    "source": {"source": "http://127.0.0.1:9/other-stac"},
    "source parameter": {"source": API + "?tier=premium"},
    "kind": {"source": "http://127.0.0.1:9/stac/catalog.json"},
    "modifier": {"modifier": str},
}


def test_every_search_option_changes_the_fingerprint():
    base = fingerprint_of(search)
    prints = {name: fingerprint_of(lambda o=options: search(**o)) for name, options in SEARCH_CHANGES.items()}
    assert base not in prints.values()
    assert len(set(prints.values())) == len(prints), prints
    assert fingerprint_of(search) == base


def test_a_static_catalog_counts_by_its_path_and_its_root_document(sample_world: Any, tmp_path: Path):
    catalog = Path(sample_world.catalog)
    base = fingerprint_of(lambda: search(source=str(catalog)))
    assert fingerprint_of(lambda: search(source=str(catalog))) == base
    assert fingerprint_of(lambda: search(source=str(catalog), datetime="2024-06")) != base
    copy = tmp_path / "catalog.json"
    copy.write_bytes(catalog.read_bytes())
    assert fingerprint_of(lambda: search(source=str(copy))) != base
    before = fingerprint_of(lambda: search(source=str(copy)))
    document = json.loads(copy.read_text())
    document["description"] = "edited"
    copy.write_text(json.dumps(document))
    assert fingerprint_of(lambda: search(source=str(copy))) != before


RASTERIZE_CHANGES: dict[str, dict[str, Any]] = {
    "column": {"column": None},
    "all_touched": {"all_touched": True},
    "fill": {"fill": 9},
    "merge": {"merge": "add"},
    "dtype": {"dtype": "int64"},
    "name": {"name": "labels"},
}


def moved() -> gpd.GeoDataFrame:
    frame = layer()
    frame.geometry = [box(600_000, 5_000_000, 600_030, 5_000_020), frame.geometry.iloc[1]]
    return frame


def reordered() -> gpd.GeoDataFrame:
    return layer().iloc[::-1].reset_index(drop=True)  # merge="replace": the later feature wins


LAYER_CHANGES: dict[str, Callable[[], gpd.GeoDataFrame]] = {
    "geometry": moved,
    "row order": reordered,
    "burnt values": lambda: layer().assign(**{"class": [3, 6]}),
    "crs": lambda: layer().set_crs("EPSG:32632", allow_override=True),
    "a feature less": lambda: layer().iloc[:1],
}


def test_every_rasterize_option_and_the_layer_content_change_the_fingerprint():
    base = fingerprint_of(labelled)
    prints = {
        name: fingerprint_of(lambda o=options: labelled(rasterize=o))
        for name, options in RASTERIZE_CHANGES.items()
    }
    prints |= {name: fingerprint_of(lambda m=make: labelled(m())) for name, make in LAYER_CHANGES.items()}
    assert base not in prints.values()
    assert len(set(prints.values())) == len(prints), prints


def test_the_layer_counts_by_content_not_by_identity_or_file():
    base = fingerprint_of(labelled)
    assert fingerprint_of(lambda: labelled(layer().copy())) == base
    # columns that are not burnt, and the index, do not change the mask
    assert fingerprint_of(lambda: labelled(layer().assign(note=["x", "y"]))) == base
    assert fingerprint_of(lambda: labelled(layer().set_index(np.array([7, 8])))) == base


def test_a_layer_read_from_a_file_counts_by_its_content(tmp_path: Path):
    a, b, c = tmp_path / "a.geojson", tmp_path / "b.geojson", tmp_path / "c.geojson"
    layer().to_file(a)
    layer().to_file(b)
    moved().to_file(c)
    for make in (labelled, clipped):
        assert fingerprint_of(lambda m=make: m(str(a))) == fingerprint_of(lambda m=make: m(str(b)))
        assert fingerprint_of(lambda m=make: m(str(a))) != fingerprint_of(lambda m=make: m(str(c)))


TO_TENSOR_CHANGES: dict[str, dict[str, Any]] = {
    "dtype": {"dtype": torch.float32},
    "other dtype": {"dtype": torch.float64},
    "mask_dtype": {"mask_dtype": torch.int32},
    "nodata": {"nodata": "fill"},
    "fill_value": {"fill_value": -1.0},
    "image": {"image": "bands"},
    "channels": {"channels": ["dem"]},
    "mask": {"mask": None},
    "boxes": {"boxes": "fields"},
    "labels": {"labels": "class"},
}


def test_every_to_tensor_option_changes_the_fingerprint():
    base = fingerprint_of(labelled)
    prints = {
        name: fingerprint_of(lambda o=options: labelled(**o)) for name, options in TO_TENSOR_CHANGES.items()
    }
    assert base not in prints.values()
    assert len(set(prints.values())) == len(prints), prints


# -- credentials -------------------------------------------------------------------
SECRETS = ("s3cr3t-token", "0ther-token", "hunter2", "Bearer abc.def", "sig-xyz")


def signer(request: Any) -> Any:
    return request


def other_signer(request: Any) -> Any:
    request.headers["X-Signed"] = "1"
    return request


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"source": API + "?token=s3cr3t-token"}, {"source": API + "?token=0ther-token"}),
        ({"source": API + "?token=s3cr3t-token"}, {"source": API}),
        (
            {"source": "http://me:hunter2@127.0.0.1:9/stac"},
            {"source": "http://me:0ther-token@127.0.0.1:9/stac"},
        ),
        (
            {"headers": {"Authorization": "Bearer abc.def"}},
            {"headers": {"Authorization": "Bearer 0ther-token"}},
        ),
        ({"headers": {"Authorization": "Bearer abc.def"}}, {}),
        ({"request_modifier": signer}, {"request_modifier": other_signer}),
        (
            {"source": "http://127.0.0.1:9/stac/items.parquet?sig=sig-xyz"},
            {"source": "http://127.0.0.1:9/stac/items.parquet?sig=0"},
        ),
        ({"timeout": 5.0, "retries": 0, "limit": 10, "method": "GET"}, {}),
    ],
    ids=[
        "token",
        "token dropped",
        "password",
        "header",
        "header dropped",
        "request modifier",
        "signed file",
        "execution",
    ],
)
def test_credentials_and_execution_options_do_not_count(first: dict[str, Any], second: dict[str, Any]):
    one, two = search(**first), search(**second)
    assert pipe_fingerprint(one) == pipe_fingerprint(two)
    text = json.dumps(describe_stage(one))
    assert not [secret for secret in SECRETS if secret in text]
    assert "token" not in text
    assert "Authorization" not in text


def test_a_pystac_client_is_described_by_its_url_not_its_headers():
    pystac_client = pytest.importorskip("pystac_client")
    from pystac_client.stac_api_io import StacApiIO

    landing = {
        "type": "Catalog",
        "id": "api",
        "description": "offline",
        "stac_version": "1.0.0",
        "conformsTo": ["https://api.stacspec.org/v1.0.0/item-search"],
        "links": [
            {"rel": "self", "href": API},
            {"rel": "search", "type": "application/geo+json", "href": API + "/search", "method": "POST"},
        ],
    }
    stages = []
    for token in ("abc.def", "0ther-token"):
        client = pystac_client.Client.from_dict(landing)
        client._stac_io = StacApiIO(
            headers={"Authorization": f"Bearer {token}"}, parameters={"access_token": token, "tier": "1"}
        )
        stages.append(tp.search_stac(client, collections=["demo-s2"]))
    assert pipe_fingerprint(stages[0]) == pipe_fingerprint(stages[1])
    assert config_of(stages[0])["source"] == API + "?tier=1"
    assert config_of(stages[0])["kind"] == "api"


# -- the same in every process ---------------------------------------------------------
CHILD = """
import json, sys
import terrapipe as tp
from terrapipe.dist.fingerprint import pipe_fingerprint
from tests.dist.dist_helpers import segmentation_pipe
from tests.dist.test_fingerprint_options import clipped, labelled, search
world = tp.datasets.sample_world()
print(json.dumps([pipe_fingerprint(segmentation_pipe(world)), pipe_fingerprint(labelled()),
                  pipe_fingerprint(search(bbox=[5.9, 45.7, 6.0, 45.8], datetime="2024-06")),
                  pipe_fingerprint(clipped())]))
"""


def test_the_fingerprint_is_the_same_in_another_process(sample_world: Any):
    here = [
        pipe_fingerprint(segmentation_pipe(sample_world)),
        pipe_fingerprint(labelled()),
        pipe_fingerprint(search(bbox=[5.9, 45.7, 6.0, 45.8], datetime="2024-06")),
        pipe_fingerprint(clipped()),  # the layer's attribute values are digested by pandas, not hash()
    ]
    seed = "7" if os.environ.get("PYTHONHASHSEED") != "7" else "8"  # a salt other than this process's
    env = {
        **os.environ,
        "PYTHONHASHSEED": seed,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == here


# -- what it protects ---------------------------------------------------------------------
def test_materialize_refuses_a_store_written_with_other_rasterize_or_to_tensor_options(tmp_path: Path):
    store = tmp_path / "labels.zarr"
    first = tp.dist.materialize(labelled(), store, partitions=2)
    assert first.samples == 2
    assert tp.dist.materialize(labelled(), store).skipped == [0, 1]
    for changed in (
        labelled(rasterize={"all_touched": True}),
        labelled(moved()),
        labelled(dtype=torch.float64),
    ):
        with pytest.raises(tp.PipelineStateError, match="another pipeline configuration"):
            tp.dist.materialize(changed, store)


# -- clip_vector ----------------------------------------------------------------------
def clipped(vector: Any = None, **options: Any) -> Any:
    """chips -> clip_vector (the layer's features attached to each chip, clipped)."""
    vector = layer() if vector is None else vector
    return tp.from_items([chip(), chip(600_040.0)]).clip_vector(vector, **{"name": "fields", **options})


CLIP_CHANGES: dict[str, Callable[[], Any]] = {
    "name": lambda: clipped(name="parcels"),
    "columns": lambda: clipped(columns=["class"]),
    "no columns": lambda: clipped(columns=[]),
    "geometry": lambda: clipped(moved()),
    "row order": lambda: clipped(reordered()),
    "values": lambda: clipped(layer().assign(**{"class": [3, 6]})),
    "other column's values": lambda: clipped(layer().assign(note=["x", "y"])),
    "dtype": lambda: clipped(layer().astype({"class": "int32"})),
    "index": lambda: clipped(layer().set_index(np.array([7, 8]))),  # clipped features keep it
    "crs": lambda: clipped(layer().set_crs("EPSG:32632", allow_override=True)),
    "a feature less": lambda: clipped(layer().iloc[:1]),
}


def test_clip_vector_is_described_by_its_layer_and_name_not_by_class_only():
    described = describe_stage(clipped())
    assert isinstance(described, dict)
    assert described["stage"] == "terrapipe.fuse.clip.ClipVector"
    assert sorted(config_of(clipped())) == ["layer", "name", "revision"]


def test_every_clip_vector_option_and_the_layer_content_change_the_fingerprint():
    base = fingerprint_of(clipped)
    prints = {name: fingerprint_of(make) for name, make in CLIP_CHANGES.items()}
    assert base not in prints.values()
    assert len(set(prints.values())) == len(prints), prints
    assert fingerprint_of(clipped) == base


def test_the_clipped_layer_counts_by_content_not_by_identity():
    base = fingerprint_of(clipped)
    assert fingerprint_of(lambda: clipped(layer().copy())) == base
    # a feature with no geometry is dropped: it is never attached
    with_empty = gpd.GeoDataFrame(
        {"class": [3, 5, 7], "note": ["a", "b", "c"]}, geometry=[*layer().geometry, None], crs="EPSG:32631"
    )
    assert fingerprint_of(lambda: clipped(with_empty)) == base
    # columns that are not kept do not count
    kept = fingerprint_of(lambda: clipped(columns=["class"]))
    assert fingerprint_of(lambda: clipped(layer().assign(note=["x", "y"]), columns=["class"])) == kept
    # read from a file: see test_a_layer_read_from_a_file_counts_by_its_content


def test_the_cache_key_of_a_clip_vector_segment_follows_its_layer():
    def digest(vector: gpd.GeoDataFrame) -> str:
        pipe = tp.from_items([chip()]).cache_point().clip_vector(vector).cache(tp.cache.MemoryLRU(2**20))
        return str(pipe.config_digest)

    assert digest(layer()) == digest(layer().copy())
    assert digest(layer()) != digest(moved())
    assert digest(layer()) != digest(layer().assign(note=["x", "y"]))


# -- more credential parameter names ---------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "subscription-key",
        "subscription_key",
        "api-key",
        "apikey",
        "x-api-key",
        "access_key",
        "AWSAccessKeyId",
    ],
)
def test_key_parameters_do_not_count_and_are_not_shown(name: str):
    one = search(source=f"{API}?{name}=s3cr3t-token&tier=1")
    two = search(source=f"{API}?{name}=0ther-token&tier=1")
    assert pipe_fingerprint(one) == pipe_fingerprint(two) == pipe_fingerprint(search(source=f"{API}?tier=1"))
    text = json.dumps(describe_stage(one))
    assert "s3cr3t-token" not in text
    assert name not in text
    assert config_of(one)["source"] == API + "?tier=1"


def test_harmless_parameters_that_contain_key_words_still_count():
    base = fingerprint_of(lambda: search(source=f"{API}?keyword=forest"))
    assert fingerprint_of(lambda: search(source=f"{API}?keyword=lake")) != base
    assert config_of(search(source=f"{API}?keyword=forest&sortby=date"))["source"] == (
        API + "?keyword=forest&sortby=date"
    )
