"""A recipe's storage: section (#19): one tp.Storage for every reading step, credentials by reference only."""

from __future__ import annotations

import functools
import inspect
import textwrap

import pytest
import yaml

import terrapipe as tp
import terrapipe.stac.search
from terrapipe.core.errors import RecipeError
from terrapipe.recipes import load_recipe

SECRET = "recipe-secret-value-0123456789"


def recipe_text(storage: object, steps: object = ({"read_zarr": {"variables": "t"}},)) -> str:
    """A recipe reading a bucket Zarr store, with ``storage`` as its storage: section."""
    return yaml.safe_dump(
        {
            "version": 1,
            "name": "with-storage",
            "inputs": {"main": {"source": {"items": ["s3://private/cube.zarr"]}, "steps": list(steps)}},  # type: ignore[call-overload]
            "storage": storage,
        },
        sort_keys=False,
    )


@pytest.fixture(autouse=True)
def _variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TP_TEST_KEY_ID", "AKID-recipe")
    monkeypatch.setenv("TP_TEST_SECRET", SECRET)
    monkeypatch.setenv("TP_TEST_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("TP_NOT_ALLOWED", "x")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


ALLOWED = {"TP_TEST_KEY_ID", "TP_TEST_SECRET", "TP_TEST_ENDPOINT"}


def test_settings_and_referenced_credentials_reach_the_reading_steps() -> None:
    section = {
        "s3_endpoint": "http://127.0.0.1:9000",
        "region": "eu-west-1",
        "requester_pays": True,
        "timeout": 5,
        "deadline": 60,
        "retries": 1,
        "concurrency": 4,
        "key_id": "${TP_TEST_KEY_ID}",
        "secret": "${env:TP_TEST_SECRET}",
    }
    steps = ({"read_zarr": {"variables": "t"}}, {"read_vector": {}}, {"read_raster": {}})
    text = recipe_text(section, steps)
    recipe = load_recipe(text=text, allow_env=ALLOWED)
    storage = recipe.storage()
    assert storage == tp.Storage(
        s3_endpoint="http://127.0.0.1:9000", region="eu-west-1", requester_pays=True, timeout=5,
        deadline=60, retries=1, concurrency=4, key_id="AKID-recipe", secret=SECRET,
    )  # fmt: skip
    assert SECRET not in repr(recipe) + repr(storage)
    pipe = recipe.build()
    stages = []
    node = pipe
    while hasattr(node, "source"):
        stages.append(node)
        node = node.source
    assert {type(s).__name__ for s in stages} == {"ReadZarr", "ReadVector", "ReadRaster"}
    for stage in stages:
        assert stage.storage == storage, type(stage).__name__


def test_search_stac_source_gets_the_storage_when_it_takes_it(sample_world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real = tp.search_stac
    seen: dict[str, object] = {}

    @functools.wraps(real)
    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(terrapipe.stac.search, "search_stac", spy)  # where the recipe builder finds it
    text = textwrap.dedent(
        f"""
        version: 1
        name: s
        inputs:
          main:
            source: {{search_stac: {{catalog: "{sample_world.catalog}", collections: [demo-s2]}}}}
        storage:
          anonymous: true
          timeout: 7
        """
    ).lstrip()
    pipe = load_recipe(text=text).build()
    if "storage" in inspect.signature(real).parameters:
        assert seen["storage"] == tp.Storage(anonymous=True, timeout=7)
    else:  # its owner is adding it: nothing is passed that it would refuse
        assert "storage" not in seen
    assert sorted(i.id for i in pipe)  # and the local catalog still reads


@pytest.mark.parametrize(
    "field", ["secret", "key_id", "session_token", "account_key", "sas_token", "gcs_token", "gcs_credentials"]
)
def test_a_literal_secret_is_refused_without_showing_it(field: str) -> None:
    with pytest.raises(RecipeError, match="must never hold a secret") as info:
        load_recipe(text=recipe_text({field: SECRET}), path="shared.yaml")
    text = str(info.value)
    assert SECRET not in text
    assert f"storage.{field}" in text
    assert "${MY_VARIABLE}" in text  # says how to reference one
    assert "allow_env" in text
    assert "shared.yaml, line" in text


@pytest.mark.parametrize(
    ("storage", "match"),
    [
        ({"secret": "prefix-${TP_TEST_SECRET}"}, "must never hold a secret"),  # only a whole reference
        ({"secret": "${TP_NOT_ALLOWED}"}, "not allowed"),
        ({"headers": {"Authorization": "x"}}, "unknown key"),
        ({"request_modifier": "x"}, "unknown key"),
        ({"timeout": "fast"}, "must be a int or float"),
        ({"retries": 1.5}, "must be a int"),
        ({"anonymous": 1}, "must be a bool"),
        ({"timeout": -1}, "positive number"),
        ({"s3_endpoint": "ftp://h", "anonymous": True}, "http"),
        ({"from_env": True, "s3_endpoint": "http://127.0.0.1:9"}, "would choose where"),
        ({"s3_endpoint": "http://127.0.0.1:9"}, "says which credentials go"),
        ([1, 2], "dictionary"),
    ],
)
def test_bad_sections_are_refused_when_loaded(storage: str, match: str) -> None:
    with pytest.raises(RecipeError, match=match):
        load_recipe(text=recipe_text(storage), allow_env=ALLOWED)


def test_allowed_endpoint_forms() -> None:
    for storage in (
        {"s3_endpoint": "http://127.0.0.1:9", "anonymous": True},
        {"s3_endpoint": "http://127.0.0.1:9", "key_id": "${TP_TEST_KEY_ID}", "secret": "${TP_TEST_SECRET}"},
        {"from_env": True, "s3_endpoint": "${TP_TEST_ENDPOINT}"},
        {"from_env": True, "region": "eu-west-1"},
    ):
        assert isinstance(load_recipe(text=recipe_text(storage), allow_env=ALLOWED).storage(), tp.Storage)


def test_from_env_reads_the_environment_at_build(monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = load_recipe(text=recipe_text({"from_env": True, "timeout": 3}))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID-env")
    storage = recipe.storage()
    assert (storage.key_id, storage.timeout) == ("AKID-env", 3)


def test_a_step_cannot_set_its_own_storage() -> None:
    text = recipe_text({"anonymous": True}, ({"read_zarr": {"storage": {"anonymous": True}}},))
    with pytest.raises(RecipeError, match="top-level storage: section"):
        load_recipe(text=text)


def test_fsspec_storage_options_of_a_step_win() -> None:
    text = recipe_text({"anonymous": True}, ({"read_zarr": {"storage_options": {"anon": True}}},))
    (stage,) = [load_recipe(text=text).build()]
    assert stage.storage is None  # the step reads with fsspec's options, as it asked
