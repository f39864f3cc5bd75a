"""Hostile URLs for the redactor: what a URL may show is scheme://host/path, whatever else it carries."""

from __future__ import annotations

import urllib.parse

import pytest

from terrapipe.core import errors
from terrapipe.core.errors import TerrapipeError
from terrapipe.core.redact import public_url, redact_text, redact_urls

SECRET = "Zk3ySecr3tValue"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq=="


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://user:{SECRET}@h.example/a.tif", "https://h.example/a.tif"),
        (f"https://{SECRET}@h.example/a.tif", "https://h.example/a.tif"),  # a token as the user name
        (f"https://h.example/a.tif#access_token={SECRET}", "https://h.example/a.tif"),
        (f"https://[::1]:8080/a.tif?sig={SECRET}", "https://[::1]:8080/a.tif"),
        (f"s3://AKIAEXAMPLE:{SECRET}@bucket/a.tif", "s3://bucket/a.tif"),
        (f"HTTPS://H.EXAMPLE/A.tif?X-Amz-Signature={SECRET}", "https://h.example/A.tif"),
        (
            f"https://acc.blob.core.windows.net/c/a.tif;sig={SECRET}",
            "https://acc.blob.core.windows.net/c/a.tif",
        ),
        (f"https://h.example/app;jsessionid={SECRET}/a.tif", "https://h.example/app/a.tif"),
        (f"abfs://ctr:{SECRET}@acc.dfs.core.windows.net/a", "abfs://acc.dfs.core.windows.net/a"),
        (f"redis://:{SECRET}@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (f"ftp://u:{SECRET}@h.example/a", "ftp://h.example/a"),
        # leaked before:
        (f"//user:{SECRET}@h.example/a.tif", "//h.example/a.tif"),  # scheme-relative
        (f"user:{SECRET}@h.example/a.tif", "***@h.example/a.tif"),  # no scheme: urlsplit reads 'user' as one
        # identifiers are not URLs: shown as written (a source id, a CRS), less any query or path parameter
        ("stac:sentinel-2-l2a", "stac:sentinel-2-l2a"),
        ("EPSG:4326", "EPSG:4326"),
        ("urn:ogc:def:crs:EPSG::4326", "urn:ogc:def:crs:EPSG::4326"),
        (f"stac:items?token={SECRET}", "stac:items"),
        (f"stac:items;sig={SECRET}", "stac:items"),
        (f"data:text/plain;base64,{SECRET}", "data:***"),
        (f"data:,{SECRET}", "data:***"),
        (f"file:///data/a.tif?token={SECRET}#x", "file:///data/a.tif"),
        (f"unix:///run/redis.sock?password={SECRET}", "unix:///run/redis.sock"),
        (
            f"/vsicurl/https://user:{SECRET}@h.example/a.tif?sig={SECRET}",
            "/vsicurl/https://h.example/a.tif?***",
        ),
        (
            f"DefaultEndpointsProtocol=https;AccountName=acc;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=acc;AccountKey=***;EndpointSuffix=core.windows.net",
        ),
        (
            f"BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sv=2024&sig={SECRET}",
            "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=***",
        ),
        # kept as written:
        ("/data/cube.zarr", "/data/cube.zarr"),
        ("relative/a.tif", "relative/a.tif"),
        ("C:\\data\\a.tif", "C:\\data\\a.tif"),
        ("file:///data/a.tif", "file:///data/a.tif"),
    ],
)
def test_public_url_shows_nothing_but_where(url: str, shown: str) -> None:
    assert public_url(url) == shown
    assert SECRET not in public_url(url)
    assert ACCOUNT_KEY not in public_url(url)


@pytest.mark.parametrize(
    "message",
    [
        f"cannot open ftp://u:{SECRET}@h.example/a.tif",
        f"cannot open file://u:{SECRET}@h.example/a.tif",
        f"connection refused: redis://:{SECRET}@127.0.0.1:6379/0",
        f"rediss://user:{SECRET}@cache.example:6380 timed out",
        f"unix:///run/redis.sock?password={SECRET} refused",
        f"GDAL: /vsicurl?url={urllib.parse.quote(urllib.parse.quote(f'https://h.example/a?sig={SECRET}', safe=''), safe='')}",
        f"GDAL: /vsicurl?url={urllib.parse.quote(f'https://u:{SECRET}@h.example/a', safe='')}",
        f"see //user:{SECRET}@h.example/a.tif",
        f"azure: DefaultEndpointsProtocol=https;AccountName=acc;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net",
        f"azure: bad AccountKey={ACCOUNT_KEY}",
        f"azure: SharedAccessSignature={SECRET} rejected",
        f"HtTpS://h.example/a?sig={SECRET}",
        f"fragment https://h.example/a#token={SECRET} lost",
    ],
)
def test_texts_of_others_lose_every_secret(message: str) -> None:
    cleaned = redact_urls(message)
    assert SECRET not in cleaned, cleaned
    assert ACCOUNT_KEY not in cleaned, cleaned
    assert urllib.parse.quote(SECRET) not in cleaned


def test_text_without_secrets_is_unchanged() -> None:
    for text in (
        "a=b;c=d plain text",
        "read /data/a.tif: no such file",
        "s3://bucket/a.tif not found",
        "AccountName=acc;EndpointSuffix=core.windows.net",
    ):
        assert redact_urls(text) == text


def test_a_url_in_any_error_class_is_cleaned_by_redact_text() -> None:
    url = f"https://user:{SECRET}@h.example/a.tif?X-Amz-Signature={SECRET}"
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, TerrapipeError)]
    assert len(classes) > 5
    for cls in classes:
        with pytest.raises(cls) as caught:
            raise cls(redact_text(f"cannot read {url}: 403", url))
        assert SECRET not in str(caught.value)
        assert SECRET not in repr(caught.value)
        assert "https://h.example/a.tif" in str(caught.value)
