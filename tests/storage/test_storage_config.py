"""tp.Storage: environment variables, translations to GDAL / fsspec / obstore, no secret in reprs."""

from __future__ import annotations

import pickle

import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.io.storage import AZURITE_ACCOUNT, AZURITE_KEY, Storage, split_url

SECRETS = (
    "s3-secret-value",
    "sess-token-value",
    "azure-key-value==",
    "sv=2021&sig=sas-sig-value",
    "gcs-token-value",
)


def full() -> Storage:
    return Storage(
        endpoint="http://127.0.0.1:9000",
        region="eu-west-1",
        key_id="AKIDEXAMPLE",
        secret=SECRETS[0],
        session_token=SECRETS[1],
        account_name="acc",
        account_key=SECRETS[2],
        sas_token=SECRETS[3],
        gcs_token=SECRETS[4],
    )


def test_exported() -> None:
    assert tp.Storage is Storage
    assert tp.io.Storage is Storage


def test_repr_and_str_show_no_secret() -> None:
    s = full()
    shown = repr(s) + str(s) + repr([s]) + f"{s}"
    for secret in SECRETS:
        assert secret not in shown
    assert "s3 key" in shown
    assert "azure account key" in shown
    assert "127.0.0.1:9000" in shown


def test_pickles_with_its_credentials() -> None:
    s = full()
    assert pickle.loads(pickle.dumps(s)).secret == SECRETS[0]


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, "s3_endpoint", "http://127.0.0.1:1"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:2"}, "s3_endpoint",
         "http://127.0.0.1:2"),
        ({"AWS_DEFAULT_REGION": "eu-west-3"}, "region", "eu-west-3"),
        ({"AWS_DEFAULT_REGION": "eu-west-3", "AWS_REGION": "us-west-2"}, "region", "us-west-2"),
        ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, "secret", "s"),
        ({"AWS_SESSION_TOKEN": "t"}, "session_token", "t"),
        ({"AWS_NO_SIGN_REQUEST": "YES"}, "anonymous", True),
        ({"AWS_NO_SIGN_REQUEST": "no"}, "anonymous", False),
        ({"AZURE_STORAGE_ACCOUNT_NAME": "a", "AZURE_STORAGE_ACCOUNT_KEY": "k"}, "account_key", "k"),
        ({"AZURE_STORAGE_SAS_TOKEN": "sv=1&sig=x"}, "sas_token", "sv=1&sig=x"),
        ({"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}, "azure_endpoint",
         "http://127.0.0.1:10000/devstoreaccount1"),
        ({"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}, "account_key", AZURITE_KEY),
        ({"AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=acc;AccountKey=k==;"
          "BlobEndpoint=http://127.0.0.1:10000/acc;"}, "azure_endpoint", "http://127.0.0.1:10000/acc"),
        ({"AZURE_STORAGE_CONNECTION_STRING": "AccountName=acc;AccountKey=k=="}, "account_key", "k=="),
        ({"AZURE_STORAGE_CONNECTION_STRING": "BlobEndpoint=https://acc.blob.core.windows.net;"
          "SharedAccessSignature=sv=1&sig=x"}, "sas_token", "sv=1&sig=x"),
        ({"GOOGLE_APPLICATION_CREDENTIALS": "/k.json"}, "gcs_credentials", "/k.json"),
        ({"STORAGE_EMULATOR_HOST": "127.0.0.1:4443"}, "gcs_endpoint", "http://127.0.0.1:4443"),
        ({"STORAGE_EMULATOR_HOST": "http://127.0.0.1:4443"}, "gcs_endpoint", "http://127.0.0.1:4443"),
    ],
)  # fmt: skip
def test_from_env(env: dict[str, str], field: str, value: object) -> None:
    assert getattr(Storage.from_env(env), field) == value


def test_from_env_reads_os_environ_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert Storage.from_env().region == "ap-south-1"
    assert Storage.from_env(region="x").region == "x"


def test_gdal_options_s3_custom_endpoint() -> None:
    opts = Storage.from_env(
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
         "AWS_REGION": "eu-west-1"}
    ).gdal_options("s3://bucket/a.tif")  # fmt: skip
    assert opts["AWS_S3_ENDPOINT"] == "127.0.0.1:9000"
    assert opts["AWS_HTTPS"] == "NO"
    assert opts["AWS_VIRTUAL_HOSTING"] == "FALSE"
    assert opts["AWS_ACCESS_KEY_ID"] == "k"
    assert opts["AWS_SECRET_ACCESS_KEY"] == "s"
    assert opts["AWS_REGION"] == "eu-west-1"
    assert opts["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    https = Storage(s3_endpoint="https://minio.example:9000").gdal_options("s3://b/k")
    assert https["AWS_HTTPS"] == "YES"
    assert "AWS_S3_ENDPOINT" not in Storage().gdal_options("s3://b/k")  # AWS itself: GDAL's default


def test_gdal_options_anonymous_sends_no_keys() -> None:
    opts = Storage(anonymous=True, key_id="k", secret="s").gdal_options("s3://b/k")
    assert opts["AWS_NO_SIGN_REQUEST"] == "YES"
    assert "AWS_SECRET_ACCESS_KEY" not in opts
    assert Storage(anonymous=True).gdal_options("gs://b/k")["GS_NO_SIGN_REQUEST"] == "YES"
    assert (
        Storage(anonymous=True, account_name="a").gdal_options("az://c/k")["AZURE_NO_SIGN_REQUEST"] == "YES"
    )


def test_gdal_options_azure() -> None:
    key = Storage(account_name="acc", account_key="k==").gdal_options("az://c/a.tif")
    assert key["AZURE_STORAGE_ACCOUNT"] == "acc"
    assert key["AZURE_STORAGE_ACCESS_KEY"] == "k=="
    sas = Storage(account_name="acc", sas_token="?sv=1&sig=x").gdal_options("az://c/a.tif")
    assert sas["AZURE_STORAGE_SAS_TOKEN"] == "sv=1&sig=x"
    emulator = Storage.from_env({"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
    opts = emulator.gdal_options("az://c/a.tif")
    assert "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1" in opts["AZURE_STORAGE_CONNECTION_STRING"]
    assert opts["AZURE_STORAGE_ACCOUNT"] == AZURITE_ACCOUNT
    abfs = Storage(account_name="other").gdal_options("abfs://c@acc2.dfs.core.windows.net/a.tif")
    assert abfs["AZURE_STORAGE_ACCOUNT"] == "acc2"  # the URL's account wins


def test_gdal_options_gcs_and_http() -> None:
    opts = Storage.from_env({"STORAGE_EMULATOR_HOST": "127.0.0.1:4443"}).gdal_options("gs://b/a.tif")
    assert opts["CPL_GS_ENDPOINT"] == "http://127.0.0.1:4443/"
    assert Storage(gcs_token="t").gdal_options("gs://b/k")["GS_OAUTH2_TOKEN"] == "t"
    http = Storage(timeout=7, retries=2).gdal_options("https://h/a.tif")
    assert http["GDAL_HTTP_TIMEOUT"] == "7"
    assert http["GDAL_HTTP_MAX_RETRY"] == "2"
    assert not any(k.startswith(("AWS_", "AZURE_", "GS_")) for k in http)  # no key goes to an HTTP server


def test_gdal_options_do_not_touch_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    before = dict(os.environ)
    full().gdal_options("s3://b/k")
    full().store_for("s3://b/k")
    assert dict(os.environ) == before


def test_fsspec_options() -> None:
    s3 = full().fsspec_options("s3://b/k")
    assert s3["key"] == "AKIDEXAMPLE"
    assert s3["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:9000"
    az = Storage(account_name="a", account_key="k").fsspec_options("az://c/k")
    assert az == {"account_name": "a", "account_key": "k"}
    assert Storage(anonymous=True).fsspec_options("gs://b/k") == {"token": "anon"}


def test_store_for_each_scheme() -> None:
    s = full()
    names = {
        u: type(s.store_for(u)).__name__
        for u in ("s3://b/k", "az://c/k", "gs://b/k", "https://h/a", "/tmp/a")
    }
    assert names == {"s3://b/k": "S3Store", "az://c/k": "AzureStore", "gs://b/k": "GCSStore",
                     "https://h/a": "HTTPStore", "/tmp/a": "LocalStore"}  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout": 0}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"concurrency": 0}, "concurrency"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"endpoint": "127.0.0.1:9000"}, "http"),
        ({"s3_endpoint": "http://u:pw@127.0.0.1:9000"}, "credentials"),
    ],
)
def test_bad_values_are_named(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        Storage(**kwargs)  # type: ignore[arg-type]


def test_bad_endpoint_message_hides_password() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        Storage(s3_endpoint="http://u:hunter2@127.0.0.1:9000?x=1")
    assert "hunter2" not in str(info.value)


def test_split_url_and_unknown_scheme() -> None:
    assert split_url("gs://b/a%20b.tif") == ("b", "a b.tif", None)
    with pytest.raises(InvalidArgumentError, match="unknown storage scheme"):
        Storage().gdal_options("ftp://h/a.tif")
