"""URL and host spellings this session's code judges: ``paths.quote_url`` (ab83466) and ``is_loopback_host``.

quote_url must never change a URL a signer made (S3 SigV4, GCS V4 and Azure SAS percent-encode every
byte but ``A-Za-z0-9-._~`` in the path and query; CloudFront signs with ``-_~``), must be idempotent,
and must leave every name that is no http(s) URL as given (local, ``/vsi``, ``NETCDF:"...":var``,
``zip://``, Windows-like). is_loopback_host must not take a name that only starts or ends like loopback
for this machine, and RedisStore's default compression follows it. All hold.
"""

from __future__ import annotations

import string
import urllib.parse

import pytest

from terrapipe.cache.redis_store import RedisStore
from terrapipe.core.loopback import is_loopback_host
from terrapipe.io.paths import gdal_path, quote_url

_UNRESERVED = string.ascii_letters + string.digits + "-._~"


def _sigv4_encode(text: str, *, keep_slash: bool) -> str:
    """Encode as SigV4's UriEncode does: every byte but the unreserved ones as %XX (uppercase)."""
    return urllib.parse.quote(text, safe=_UNRESERVED + ("/" if keep_slash else ""))


KEYS = [
    "a (1).tif",
    "x!*'~+.tif",
    "my file.tif",
    "a%2Fb.tif",
    "€/é.tif",
    'a"<>^`{|}\\.tif',
    "a#b?.tif",
    "100%.tif",
]


@pytest.mark.parametrize("key", KEYS)
def test_a_presigned_url_is_never_changed(key: str) -> None:
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": "AKIDEXAMPLE/20261206/us-east-1/s3/aws4_request",
        "X-Amz-Date": "20261206T000000Z",
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Security-Token": "IQoJb3JpZ2luX2VjE+/=//a b",
        "X-Amz-Signature": "0f" * 32,
    }
    signed = "https://bucket.s3.amazonaws.com/" + _sigv4_encode(key, keep_slash=True) + "?"
    signed += "&".join(
        f"{_sigv4_encode(k, keep_slash=False)}={_sigv4_encode(v, keep_slash=False)}" for k, v in query.items()
    )
    assert quote_url(signed) == signed
    sas = "https://acct.blob.core.windows.net/c/" + _sigv4_encode(key, keep_slash=True)
    sas += "?sv=2024-05-04&se=2026-12-07T00%3A00%3A00Z&sr=b&sp=r&sig=AbC%2Bd%2Fe%3D"
    assert quote_url(sas) == sas
    cloudfront = f"https://d1.cloudfront.net/{_sigv4_encode(key, keep_slash=True)}?Expires=1&Signature=a~b-c_&Key-Pair-Id=K"
    assert quote_url(cloudfront) == cloudfront


@pytest.mark.parametrize(
    "url",
    [
        "https://h/my file.tif?sig=a+b%2Fc",
        "https://h/€/100%.tif",
        "https://h/a%2fb%ZZ.tif#frag ment",
        "HTTPS://u:p%40ss@[::1]:8443/a b/c.tif",
        "https://h/%",
        "https://h/a\tb\x7f.tif",
    ],
)
def test_quoting_twice_is_quoting_once(url: str) -> None:
    once = quote_url(url)
    assert quote_url(once) == once
    assert " " not in once
    assert "\t" not in once
    assert once.isascii()


@pytest.mark.parametrize(
    "name",
    [
        "/data/my file.tif",
        "relative dir/100%.tif",
        'NETCDF:"/data/my file.nc":sst',
        'HDF5:"/data/a b.h5"://grp/var',
        "/vsizip//data/a b.zip/x.tif",
        "zip://a b.zip!x.tif",
        "C:\\data\\my file.tif",
        "s3://b/my file (1).tif",
        "ftp://h/a b.tif",
    ],
)
def test_a_name_that_is_no_http_url_is_left_as_given(name: str) -> None:
    assert quote_url(name) == name
    if name.startswith(("/", "NETCDF:", "HDF5:", "zip://")):
        assert gdal_path(name) == name


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1.evil.com", "localhost.evil.com", "localhost.", "evil-localhost", "0.0.0.0", "::", "[::]",
        "127.0.0.1:6379", "[::ffff:10.0.0.1]", "128.0.0.1", "127.256.0.1", "localhost\x00.evil.com",
        "127.0.0.1 evil.com", "\uff4cocalhost", "127.0.0.1\n",
    ],
)  # fmt: skip
def test_a_name_that_only_looks_like_loopback_is_not(host: str) -> None:
    expected = host == "localhost."  # a trailing dot: the same name
    assert is_loopback_host(host) is expected
    if not expected and ":" not in host and host.isprintable() and host.isascii() and " " not in host:
        assert RedisStore(f"redis://{host}:6379/0").codec is not None  # compressed: not this machine


@pytest.mark.parametrize(
    "host", ["0x7f000001", "2130706433", "0177.0.0.1", "127.1", "[::ffff:7f00:1]", "[0:0:0:0:0:0:0:1]"]
)
def test_numeric_loopback_spellings_the_socket_layer_accepts_are_loopback(host: str) -> None:
    assert is_loopback_host(host)
    assert RedisStore(f"redis://{host}:6379/0").codec is None
