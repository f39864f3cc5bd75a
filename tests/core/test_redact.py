"""What a message may show of a URL: an allowlist (``scheme://host/path``), tried on URLs made here.

Presigned S3 URLs and Azure SAS URLs are signed by obstore with keys made up
for the test; userinfo, tokens in path parameters and header values are ours
too. Every form a library may print a URL in (plain, decoded,
percent-encoded once or twice, in GDAL's ``/vsicurl?url=``) is tried, and
short harmless values (``sp=r``, ``sr=b``) must never garble a message.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse

import pytest

from terrapipe.core.redact import (
    MASK,
    public_url,
    redact_headers,
    redact_text,
    redact_url,
    redact_urls,
    secrets_of,
)

KEY = "s3cretKeyValue/abc+def"
ACCOUNT_KEY = "QUNDT1VOVC1LRVktbWFkZS11cC1mb3ItdGhlLXRlc3Qtb25seS0wMTIzNDU2Nzg5"


def _presigned_s3() -> str:
    obstore = pytest.importorskip("obstore")
    from obstore.store import S3Store

    store = S3Store(
        "bucket",
        config={
            "access_key_id": "AKIAEXAMPLEKEY1",
            "secret_access_key": KEY,
            "region": "us-east-1",
            "endpoint": "http://127.0.0.1:9000",
            "virtual_hosted_style_request": False,
        },
        client_options={"allow_http": True},
    )
    return str(obstore.sign(store, "GET", "stac/catalog.json", dt.timedelta(hours=1)))


def _sas() -> str:
    obstore = pytest.importorskip("obstore")
    from obstore.store import AzureStore

    store = AzureStore("container", config={"account_name": "acc", "account_key": ACCOUNT_KEY})
    return str(obstore.sign(store, "GET", "stac/catalog.json", dt.timedelta(hours=1)))


def _urls() -> dict[str, tuple[str, str]]:
    """name -> (URL, what public_url must give)."""
    return {
        "presigned-s3": (_presigned_s3(), "http://127.0.0.1:9000/bucket/stac/catalog.json"),
        "azure-sas": (_sas(), "https://acc.blob.core.windows.net/container/stac/catalog.json"),
        "userinfo": (
            "https://stac-user:p4ssw0rd-XYZ@Example.com:8443/stac/search",
            "https://example.com:8443/stac/search",
        ),
        "path-token": (
            "https://h.example/app;jsessionid=0A1B2C3D4E5F/items/a.json;token=tok-998877?x=1#frag",
            "https://h.example/app/items/a.json",
        ),
        "api-key": (
            "https://pc.example/api/stac/v1/search?collections=s2&subscription-key=Zs3cr3tKey&limit=2",
            "https://pc.example/api/stac/v1/search",
        ),
    }


def _secrets(url: str) -> list[str]:
    """The parts of ``url`` that must never be shown (long enough to look for)."""
    parts = urllib.parse.urlsplit(url)
    found = [v for v in secrets_of(url) if len(v) >= 6 and not v.isdigit()]
    found += [seg.split("=", 1)[1] for seg in parts.path.split(";")[1:]]
    # up to the first slash (a path parameter runs on into the path), skipping empty pieces: a base64
    # signature may start with "/", and its first piece "" is in every text (CI failed on it once)
    pieces = [[p for p in urllib.parse.unquote(v).split("/") if p] for v in found]
    return [p[0] for p in pieces if p]


@pytest.mark.parametrize("name", ["presigned-s3", "azure-sas", "userinfo", "path-token", "api-key"])
def test_a_url_shows_scheme_host_and_path_only(name: str) -> None:
    url, expected = _urls()[name]
    assert public_url(url) == redact_url(url) == expected
    secrets = _secrets(url)
    assert secrets, "the case has secrets to look for"
    forms = {
        "plain": url,
        "decoded": urllib.parse.unquote(url),
        "encoded": urllib.parse.quote(url, safe=""),
        "encoded twice": urllib.parse.quote(urllib.parse.quote(url, safe=""), safe=""),
        "gdal": "/vsicurl?list_dir=no&url=" + urllib.parse.quote(url, safe=""),
    }
    for form, written in forms.items():
        message = f"HTTP 403 for {written}. Retrying (sp=r sr=b)"
        for shown in (redact_text(message, url), redact_urls(message) if form != "encoded twice" else None):
            if shown is None:
                continue
            for secret in secrets:
                assert secret not in shown, (form, secret, shown)
            assert "?" not in shown.replace("?***", "").replace("/vsicurl?list_dir", ""), (form, shown)
            assert "HTTP 403 for" in shown
            assert shown.endswith("Retrying (sp=r sr=b)"), shown  # short values never garbled


def test_a_secret_a_server_echoes_alone_is_masked_but_short_values_are_not() -> None:
    url = _sas()
    sig = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["sig"][0]
    echoed = f"AuthenticationFailed: signature {sig} did not match; sp=r sr=b sv=2023-11-03 are read, bar"
    shown = redact_text(echoed, url)
    assert sig not in shown
    assert MASK in shown
    assert "sp=r sr=b" in shown
    assert shown.endswith(", bar")  # every 'r' and 'b' where it was
    header = "Bearer eyJhbGciOiJIUzI1NiJ9.cGF5bG9hZA.c2lnbmF0dXJl"
    text = f"401 for /items/{header.split()[1]}/a.json (Authorization: {header})"
    shown = redact_text(text, values=[header])
    assert header.split()[1] not in shown
    assert shown == "401 for /items/***/a.json (Authorization: ***)"


def test_request_lines_and_unknown_urls_lose_their_queries() -> None:
    line = '127.0.0.1 - "GET /search?collections=s2&token=abc123xyz HTTP/1.1" 200 - https://u:pw@h/x?sig=1'
    shown = redact_urls(line)
    assert "abc123xyz" not in shown
    assert "pw@" not in shown
    assert shown == '127.0.0.1 - "GET /search?*** HTTP/1.1" 200 - https://h/x?***'
    plain = "cannot open /data/a.tif: what? no such file; see https://h.example/docs."
    assert redact_urls(plain) == plain  # nothing to cut: left as written


def test_headers_show_names_only() -> None:
    assert redact_headers({"Authorization": "Bearer abc", "X-Api-Key": "k"}) == {
        "Authorization": MASK,
        "X-Api-Key": MASK,
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("abfs://data@acct.dfs.core.windows.net/matrix/a.tif", "abfs://data@acct.dfs.core.windows.net/matrix/a.tif"),
        ("ABFSS://Data@Acct.DFS.core.windows.net/a b/c%20d@e.tif", "abfss://Data@acct.dfs.core.windows.net/a b/c%20d@e.tif"),
        ("wasbs://c@acct.blob.core.windows.net/k.tif?sv=2024&sig=s1gnatureXYZ", "wasbs://c@acct.blob.core.windows.net/k.tif"),
        ("abfs://fs@ws.dfs.fabric.microsoft.com/Files/x.zarr", "abfs://fs@ws.dfs.fabric.microsoft.com/Files/x.zarr"),
    ],
)  # fmt: skip
def test_an_azure_container_at_account_is_shown(url: str, expected: str) -> None:
    """``container@account`` names where the data is (not a credential): messages keep it."""
    assert public_url(url) == expected
    assert secrets_of(url) == ([] if "?" not in url else ["2024", "s1gnatureXYZ"])
    message = f"cannot read {url}: 403 access denied."
    cut = expected if "?" not in url else f"{expected}?{MASK}"
    for shown in (redact_urls(message), redact_text(message, url)):  # (a scheme or host's case may stay)
        assert shown.lower() == f"cannot read {cut}: 403 access denied.".lower(), shown
        assert "@" in shown.split("://")[1], shown  # the container is shown
        assert shown.startswith(f"cannot read {url.split('/')[0]}"), shown


@pytest.mark.parametrize(
    "url",
    [
        "abfs://user:pa55w0rd-XYZ@acct.dfs.core.windows.net/a.tif",
        "https://user:pa55w0rd-XYZ@acct.blob.core.windows.net/c/a.tif",
        "http://user:pa55w0rd-XYZ@127.0.0.1:9000/bucket/a@b.tif",
        "s3://AKIAEXAMPLE:pa55w0rd-XYZ@bucket/a@b.tif",
        "gs://user:pa55w0rd-XYZ@bucket/a.tif",
    ],
)
def test_a_user_and_password_are_always_cut(url: str) -> None:
    """A real ``user:password@`` is cut on every scheme, Azure's container form included."""
    shown = public_url(url)
    assert not any(word in shown for word in ("pa55w0rd", "user", "AKIA")), shown
    assert shown.endswith(urllib.parse.urlsplit(url).path)
    for text in (redact_urls(f"denied: {url}."), redact_text(f"denied: {url} (pa55w0rd-XYZ)", url)):
        assert not any(word in text for word in ("pa55w0rd", "AKIA")), text
        assert text.startswith(f"denied: {shown}?{MASK}"), text


ODD_KEYS = ["my file.tif", "a%20b%2Fc.tif", "user@example.com/scene.tif", "a@b:c/x y@z.tif", "100%.tif"]


@pytest.mark.parametrize("key", ODD_KEYS)
@pytest.mark.parametrize(
    "base", ["s3://bucket", "gs://bucket", "az://container", "abfs://c@acct.dfs.core.windows.net"]
)
def test_odd_keys_are_shown_as_written_and_their_signature_cut(base: str, key: str) -> None:
    """Spaces, %-escapes and ``@`` in a key are part of the path: kept; a query after it is cut."""
    url = f"{base}/{key}"
    assert public_url(url) == url
    assert secrets_of(url) == []
    signed = f"{url}?X-Amz-Signature=0123456789abcdef&sig=s1gnatureXYZ"
    assert public_url(signed) == url
    for text in (
        redact_text(f"cannot read {signed}: 403", signed),
        redact_urls(f"cannot read {signed}: 403"),
    ):
        assert not any(word in text for word in ("0123456789abcdef", "s1gnatureXYZ")), text
        assert text.endswith(": 403"), text
    assert redact_text(f"cannot read {signed}: 403", signed) == f"cannot read {url}?{MASK}: 403"
