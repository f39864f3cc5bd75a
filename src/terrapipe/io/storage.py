"""Where data lives, configured once: :class:`Storage` (endpoints, credentials, time-outs, retries).

One :class:`Storage` describes how to reach object stores (``s3://``,
``az://``/``abfs://``, ``gs://``) and HTTP servers, and translates itself,
per URL and per open, into what each library needs:

* :meth:`Storage.gdal_options` -- a dict for ``rasterio.Env(**options)``
  (GDAL's ``/vsis3/``, ``/vsiaz/``, ``/vsigs/`` configuration options; set for
  one open, never process-wide);
* :meth:`Storage.store_for` -- an `obstore <https://developmentseed.org/obstore>`_
  store for the bucket of the URL (the byte layer, :mod:`terrapipe.io.object_store`);
* :meth:`Storage.fsspec_options` -- ``storage_options`` for s3fs, adlfs or gcsfs.

:meth:`Storage.from_env` reads the standard environment variables the way
each cloud's own SDK reads them (``AWS_ENDPOINT_URL``, ``AZURE_STORAGE_CONNECTION_STRING``,
``STORAGE_EMULATOR_HOST``, ...). Creating or using a :class:`Storage` never
changes the process's environment.

Its ``repr`` and ``str`` show an allowlist of fields: endpoints (scheme, host,
port and path only), the region, which kinds of credential are set (never
their values), time-outs, retries, concurrency and the body cap.

Examples
--------
>>> s = Storage(endpoint="http://127.0.0.1:9000", key_id="AKID", secret="very-secret", region="eu-west-1")
>>> s
Storage(s3_endpoint='http://127.0.0.1:9000', azure_endpoint='http://127.0.0.1:9000', gcs_endpoint='http://127.0.0.1:9000', region='eu-west-1', credentials=['s3 key'], timeout=30.0, deadline=None, retries=3, concurrency=16, max_bytes=None)
>>> "very-secret" in repr(s) + str(s)
False
>>> opts = Storage(s3_endpoint="http://127.0.0.1:9000").gdal_options("s3://bucket/a.tif")
>>> opts["AWS_S3_ENDPOINT"], opts["AWS_HTTPS"], opts["AWS_VIRTUAL_HOSTING"], opts["GDAL_DISABLE_READDIR_ON_OPEN"]
('127.0.0.1:9000', 'NO', 'FALSE', 'EMPTY_DIR')
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url
from terrapipe.io.gdal_cache import thread_local_options
from terrapipe.io.gdal_env import header_options, open_options

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "CLOUD_OF_SCHEME",
    "STORAGE_GDAL_OPTIONS",
    "Storage",
    "cloud_of",
    "split_url",
]

#: The cloud each URL scheme belongs to.
CLOUD_OF_SCHEME: dict[str, str] = {
    "s3": "s3",
    "s3a": "s3",
    "az": "azure",
    "azure": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "gs": "gcs",
    "gcs": "gcs",
    "http": "http",
    "https": "http",
    "file": "file",
}
#: The Azure storage emulator's well-known account (published by Microsoft for Azurite; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
#: The Azure storage emulator's well-known key (published by Microsoft for Azurite; not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_AZURITE_BLOB = "http://127.0.0.1:10000/devstoreaccount1"
_TRUE = ("1", "true", "yes", "on")


#: Every GDAL option :meth:`Storage.gdal_options` may set: what one storage's block says, and nothing of
#: another's (:meth:`Storage.rasterio_env` removes an enclosing block's values of them for its own).
STORAGE_GDAL_OPTIONS = (
    "GDAL_HTTP_HEADERS",
    "CPL_VSIL_CURL_AUTHORIZATION_HEADER_ALLOWED_IF_REDIRECT",
    "AWS_REQUEST_PAYER",
    "AWS_S3_ENDPOINT",
    "AWS_HTTPS",
    "AWS_VIRTUAL_HOSTING",
    "AWS_REGION",
    "AWS_NO_SIGN_REQUEST",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_NO_SIGN_REQUEST",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "CPL_GS_ENDPOINT",
    "GS_NO_SIGN_REQUEST",
    "GS_OAUTH2_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


class _Blocks(threading.local):
    """How many :meth:`Storage.rasterio_env` blocks the thread is in."""

    depth = 0


_BLOCKS = _Blocks()


def cloud_of(url: str) -> str:
    """Return ``"s3"``, ``"azure"``, ``"gcs"``, ``"http"``, ``"file"`` or ``"local"`` for ``url``.

    Examples
    --------
    >>> [cloud_of(u) for u in ("s3://b/k", "abfs://c@acc.dfs.core.windows.net/k", "gs://b", "/tmp/a")]
    ['s3', 'azure', 'gcs', 'local']
    """
    if "://" not in url:
        return "local"
    scheme = url.split("://", 1)[0].lower()
    try:
        return CLOUD_OF_SCHEME[scheme]
    except KeyError:
        raise InvalidArgumentError(
            f"unknown storage scheme {scheme!r} in {public_url(url)!r}; use one of "
            f"{sorted(CLOUD_OF_SCHEME)} or a local path"
        ) from None


def split_url(url: str) -> tuple[str, str, str | None]:
    """Split an object-store URL into ``(bucket, key, account)``.

    ``account`` is the Azure account an ``abfs://container@account.dfs.core.windows.net/``
    URL names (``None`` elsewhere). The key has no leading slash.

    Examples
    --------
    >>> split_url("s3://bucket/a/b.tif")
    ('bucket', 'a/b.tif', None)
    >>> split_url("abfs://data@myacc.dfs.core.windows.net/x/y.json")
    ('data', 'x/y.json', 'myacc')
    """
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    account = None
    if "@" in netloc:  # abfs://container@account.dfs.core.windows.net
        netloc, host = netloc.split("@", 1)
        account = host.split(".", 1)[0] or None
    if not netloc:
        raise InvalidArgumentError(
            f"{public_url(url)!r} names no bucket or container; write scheme://bucket/key"
        )
    return netloc, urllib.parse.unquote(parts.path.lstrip("/")), account


def _seconds(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise InvalidArgumentError(f"Storage({name}=...) must be a positive number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True, repr=False)
class Storage:
    """How to reach data: endpoints, credentials or anonymous, time-outs, retries, concurrency.

    Parameters
    ----------
    endpoint
        One endpoint for every cloud (a local test server); the per-cloud
        endpoints below take precedence.
    s3_endpoint, azure_endpoint, gcs_endpoint
        Per-cloud endpoints (``http://127.0.0.1:9000``; for Azure the blob
        endpoint with the account: ``http://127.0.0.1:10000/devstoreaccount1``).
    region
        S3 region.
    anonymous
        Send unsigned requests (public buckets).
    gcs_anonymous
        Send unsigned requests to GCS only (S3 and Azure keep their
        credentials): what :meth:`from_env` sets under ``STORAGE_EMULATOR_HOST``,
        as google-cloud-storage's client does there.
    key_id, secret, session_token
        S3 credentials.
    account_name, account_key, sas_token
        Azure account and its key, or a SAS token (with or without the ``?``).
    gcs_credentials, gcs_token
        Path of a Google service-account JSON file, or an OAuth2 bearer token.
    timeout
        Seconds one request may take.
    deadline
        Seconds one read may take in all, retries included (``None``: no overall limit).
    retries
        Retries of a failed request (connection errors, 5xx, 429).
    concurrency
        Requests in flight at once for one reader; the byte layer keeps this
        many idle connections per host (the readers are not wired to it yet).
    max_bytes
        Refuse a whole-object read larger than this (``None``: no cap).
    backoff, max_backoff
        Seconds before the first retry, doubled on each further one up to
        ``max_backoff`` (a server's ``Retry-After`` is honoured up to ``max_backoff``).
    headers
        Extra HTTP headers sent with every request to the origin of the URL
        being read (``(("Authorization", "Bearer ..."),)``); never sent to
        another host after a redirect. Only their names are ever shown. GDAL
        reads (COGs over ``http(s)://``) send ``Authorization`` and ``Cookie``
        only (curl keeps those two at the origin); other headers are an
        ``InvalidArgumentError`` there.
    request_modifier
        A request signing hook for ``http(s)://`` URLs: called with each
        outgoing request (a ``requests.Request``, as pystac-client's
        ``request_modifier``) before it is sent, possibly from several
        threads at once; returns the request to send, or ``None`` after
        changing it in place (headers, or a query added to its ``url``).
        STAC requests to the API or catalog the storage is given for, and
        every read of the byte layer (Zarr, vector files by ranges, NetCDF,
        point clouds, ``HTTPFile``, ``HTTPStore``) of the URL being read, are
        signed, once per try (a retry is signed anew); nothing it adds is
        shown, nor sent on to another host after a redirect. GDAL calls no Python per request: a
        COG read through GDAL of an ``http(s)://`` URL with it set is an
        :class:`~terrapipe.core.errors.InvalidArgumentError`. Bucket URLs
        (``s3://``...) are signed with the credentials above, not with it.
    requester_pays
        Send the requester-pays flag (S3 ``x-amz-request-payer``, GDAL
        ``AWS_REQUEST_PAYER``): the reader's account pays for the transfer.
    sidecars
        The side-car files next to a raster at a URL or in a bucket
        (``.aux.xml``: nodata, scale/offset; ``.msk``: a mask; ``.ovr``:
        overviews), which GDAL reads next to a local file. ``None`` (default):
        asked for only where the opened file lacks what one would add (a band
        without nodata or scale/offset; no internal mask; no overviews), and
        read where found (:mod:`terrapipe.io.sidecars`: a COG with nodata and
        overviews costs 2 ``HEAD`` requests per open). ``True``: GDAL asks for each side-car name it knows at every
        open (a COG window: 2 requests, 11 with them; GDAL 3.10). ``False``:
        never asked for. Not at a URL with a query string (it signs the file only).
    """

    endpoint: str | None = None
    s3_endpoint: str | None = None
    azure_endpoint: str | None = None
    gcs_endpoint: str | None = None
    region: str | None = None
    anonymous: bool = False
    key_id: str | None = None
    secret: str | None = None
    session_token: str | None = None
    account_name: str | None = None
    account_key: str | None = None
    sas_token: str | None = None
    gcs_credentials: str | None = None
    gcs_token: str | None = None
    timeout: float = 30.0
    deadline: float | None = None
    retries: int = 3
    concurrency: int = 16
    max_bytes: int | None = None
    backoff: float = 0.5
    max_backoff: float = 30.0
    headers: tuple[tuple[str, str], ...] = ()
    request_modifier: Callable[[Any], Any] | None = field(default=None, compare=False)
    requester_pays: bool = False
    gcs_anonymous: bool = False
    sidecars: bool | None = None

    def __post_init__(self) -> None:
        _seconds(self.timeout, "timeout")
        for name in ("anonymous", "gcs_anonymous", "requester_pays", "sidecars"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (name == "sidecars" and value is None):
                raise InvalidArgumentError(
                    f"Storage({name}=...) must be True or False{' or None' if name == 'sidecars' else ''}, "
                    f"got {type(value).__name__}"
                )
        for name in ("backoff", "max_backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise InvalidArgumentError(
                    f"Storage({name}=...) must be a number of seconds >= 0, got {value!r}"
                )
        if isinstance(self.headers, Mapping):  # a dict is the natural spelling; keep it hashable
            object.__setattr__(self, "headers", tuple(self.headers.items()))
        if not isinstance(self.headers, tuple) or not all(
            isinstance(h, tuple) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in self.headers
        ):
            raise InvalidArgumentError(
                "Storage(headers=...) must be a mapping or pairs of strings, got a "
                f"{type(self.headers).__name__} (values not shown)"
            )
        if self.request_modifier is not None and not callable(self.request_modifier):
            raise InvalidArgumentError(
                f"Storage(request_modifier=...) must be callable, got {type(self.request_modifier).__name__}"
            )
        _seconds(self.deadline, "deadline")
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise InvalidArgumentError(f"Storage(retries=...) must be an integer >= 0, got {self.retries!r}")
        if (
            not isinstance(self.concurrency, int)
            or isinstance(self.concurrency, bool)
            or self.concurrency < 1
        ):
            raise InvalidArgumentError(
                f"Storage(concurrency=...) must be an integer >= 1, got {self.concurrency!r}"
            )
        if self.max_bytes is not None and (
            not isinstance(self.max_bytes, int) or isinstance(self.max_bytes, bool) or self.max_bytes < 1
        ):
            raise InvalidArgumentError(
                f"Storage(max_bytes=...) must be an integer >= 1, got {self.max_bytes!r}"
            )
        for name in ("endpoint", "s3_endpoint", "azure_endpoint", "gcs_endpoint"):
            value = getattr(self, name)
            if value is not None:
                parts = urllib.parse.urlsplit(value)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise InvalidArgumentError(
                        f"Storage({name}=...) must be an http(s):// URL, got {public_url(value)!r}"
                    )
                if parts.query or parts.username or parts.password:
                    raise InvalidArgumentError(
                        f"Storage({name}=...) must not carry credentials or a query; give them as "
                        "key_id/secret, account_key or sas_token"
                    )

    # --- what may be shown -------------------------------------------------------------------
    def credential_kinds(self) -> list[str]:
        """Which kinds of credential are set (names only, for messages and reprs)."""
        kinds = []
        if self.anonymous:
            kinds.append("anonymous")
        elif self.gcs_anonymous:
            kinds.append("gcs anonymous")
        if self.key_id or self.secret:
            kinds.append("s3 key")
        if self.session_token:
            kinds.append("s3 session token")
        if self.account_key:
            kinds.append("azure account key")
        if self.sas_token:
            kinds.append("azure sas")
        if self.gcs_credentials:
            kinds.append("gcs service account")
        if self.gcs_token:
            kinds.append("gcs token")
        return kinds

    def __repr__(self) -> str:
        def url(value: str | None) -> str | None:
            return public_url(value) if value else None

        shown = {
            "s3_endpoint": url(self.endpoint_for("s3")),
            "azure_endpoint": url(self.endpoint_for("azure")),
            "gcs_endpoint": url(self.endpoint_for("gcs")),
            "region": self.region,
            "credentials": self.credential_kinds(),
            "timeout": self.timeout,
            "deadline": self.deadline,
            "retries": self.retries,
            "concurrency": self.concurrency,
            "max_bytes": self.max_bytes,
        }
        if self.headers:
            shown["headers"] = sorted({name for name, _ in self.headers})
        if self.request_modifier is not None:
            shown["request_modifier"] = "set"
        if self.requester_pays:
            shown["requester_pays"] = True
        if self.sidecars is not None:
            shown["sidecars"] = self.sidecars
        return "Storage(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    __str__ = __repr__

    def endpoint_for(self, cloud: str) -> str | None:
        """Return the endpoint for ``cloud`` (``"s3"``, ``"azure"``, ``"gcs"``), if one is set."""
        specific = {"s3": self.s3_endpoint, "azure": self.azure_endpoint, "gcs": self.gcs_endpoint}.get(cloud)
        return specific or self.endpoint

    def with_options(self, **changes: Any) -> Storage:
        """Return a copy with ``changes`` applied (``Storage.from_env().with_options(timeout=5)``)."""
        return replace(self, **changes)

    # --- from the environment ----------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Storage:
        """Read the standard environment variables, as each cloud's own SDK does.

        S3: ``AWS_ENDPOINT_URL_S3`` (else ``AWS_ENDPOINT_URL``), ``AWS_ACCESS_KEY_ID``,
        ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` (else
        ``AWS_DEFAULT_REGION``), ``AWS_NO_SIGN_REQUEST`` (GDAL's; makes every
        request unsigned). Azure: ``AZURE_STORAGE_CONNECTION_STRING`` (its
        ``AccountName``, ``AccountKey``, ``SharedAccessSignature``,
        ``BlobEndpoint``, or ``UseDevelopmentStorage=true`` for the emulator),
        then ``AZURE_STORAGE_ACCOUNT_NAME`` (or ``AZURE_STORAGE_ACCOUNT``),
        ``AZURE_STORAGE_ACCOUNT_KEY`` (or ``AZURE_STORAGE_KEY``),
        ``AZURE_STORAGE_SAS_TOKEN``. GCS: ``GOOGLE_APPLICATION_CREDENTIALS``,
        ``STORAGE_EMULATOR_HOST`` (the emulator's endpoint; GCS requests are
        then unsigned, ``gcs_anonymous=True``, and ``GOOGLE_APPLICATION_CREDENTIALS``
        is not used, as google-cloud-storage's ``Client`` does under it: an
        emulator checks no credentials; S3 and Azure are not affected; a
        ``gcs_token=``/``gcs_credentials=`` override signs again).

        Parameters
        ----------
        environ
            The variables (default: ``os.environ``; never changed).
        **overrides
            Fields that replace what the environment says.

        Returns
        -------
        Storage
            The configuration.

        Examples
        --------
        >>> Storage.from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1"}).s3_endpoint
        'http://127.0.0.1:9000'
        >>> Storage.from_env({"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}).account_name
        'devstoreaccount1'
        >>> emulated = Storage.from_env({"STORAGE_EMULATOR_HOST": "127.0.0.1:9023", "AWS_ACCESS_KEY_ID": "k"})
        >>> emulated.gcs_endpoint, emulated.credential_kinds()
        ('http://127.0.0.1:9023', ['gcs anonymous', 's3 key'])
        """
        env = os.environ if environ is None else environ

        def get(*names: str) -> str | None:
            for name in names:
                value = env.get(name)
                if value is not None and value.strip():
                    return value.strip()
            return None

        values: dict[str, Any] = {
            "s3_endpoint": get("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            "region": get("AWS_REGION", "AWS_DEFAULT_REGION"),
            "key_id": get("AWS_ACCESS_KEY_ID"),
            "secret": get("AWS_SECRET_ACCESS_KEY"),
            "session_token": get("AWS_SESSION_TOKEN"),
            "anonymous": (get("AWS_NO_SIGN_REQUEST") or "").lower() in _TRUE,
            "account_name": get("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"),
            "account_key": get("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY"),
            "sas_token": get("AZURE_STORAGE_SAS_TOKEN"),
            "gcs_credentials": get("GOOGLE_APPLICATION_CREDENTIALS"),
        }
        connection = get("AZURE_STORAGE_CONNECTION_STRING")
        if connection:
            values.update({k: v for k, v in _parse_connection_string(connection).items() if v})
        emulator = get("STORAGE_EMULATOR_HOST")
        if emulator:  # google-cloud-storage's Client: AnonymousCredentials, whatever the environment holds
            values["gcs_endpoint"] = emulator if "://" in emulator else f"http://{emulator}"
            values["gcs_credentials"] = None
            values["gcs_anonymous"] = not (overrides.get("gcs_token") or overrides.get("gcs_credentials"))
        values.update(overrides)
        return cls(**values)

    # --- GDAL ---------------------------------------------------------------------------------
    def gdal_options(self, url: str) -> dict[str, str]:
        """GDAL configuration options for opening ``url`` (pass to ``rasterio.Env(**options)``).

        Always ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` (no listing of the
        "directory" before an open, no side-car files; ``TRUE`` with
        ``sidecars=True``: no listing, each side-car file asked for, except at
        an ``http(s)://`` URL with a query string), ``GDAL_HTTP_TIMEOUT``,
        ``GDAL_HTTP_MAX_RETRY`` and ``GDAL_HTTP_RETRY_DELAY``; then per cloud:
        S3 ``AWS_S3_ENDPOINT`` (host and port), ``AWS_HTTPS``,
        ``AWS_VIRTUAL_HOSTING=FALSE`` for a custom endpoint, ``AWS_REGION``,
        keys or ``AWS_NO_SIGN_REQUEST=YES``; Azure ``AZURE_STORAGE_ACCOUNT``
        with ``AZURE_STORAGE_ACCESS_KEY`` or ``AZURE_STORAGE_SAS_TOKEN`` (or
        ``AZURE_NO_SIGN_REQUEST=YES``), a custom endpoint through
        ``AZURE_STORAGE_CONNECTION_STRING``; GCS ``CPL_GS_ENDPOINT``,
        ``GOOGLE_APPLICATION_CREDENTIALS``, ``GS_OAUTH2_TOKEN`` or ``GS_NO_SIGN_REQUEST=YES``.

        Parameters
        ----------
        url
            The URL to be opened (``s3://``, ``az://``, ``gs://``, ``https://`` or a path).

        Returns
        -------
        dict
            Option name to value (strings). ``rasterio.Env`` refuses the AWS
            key options; open through :meth:`rasterio_env`, which sets them.

        Raises
        ------
        InvalidArgumentError
            For an ``http(s)://`` URL when ``request_modifier`` is set (GDAL
            cannot call it: the read would go unsigned), or ``headers`` holds
            others than ``Authorization`` and ``Cookie`` (GDAL would send them
            on to another host after a redirect: :func:`~terrapipe.io.gdal_env.header_options`).
        """
        cloud = cloud_of(url)
        if cloud == "http" and self.request_modifier is not None:
            raise InvalidArgumentError(
                f"cannot read {public_url(url)!r} through GDAL with Storage(request_modifier=...): GDAL "
                "sends its own requests and cannot call a Python hook on each; sign the URL before the read "
                "(a presigned or SAS href) and pass storage.with_options(request_modifier=None), or read it "
                "as a bucket URL (s3://, az://, gs://) with the Storage's keys"
            )
        # sidecars: no listing, each side-car asked for (not at a URL with a query: the suffix would land in it)
        sidecars = self.sidecars is True and not (cloud == "http" and urllib.parse.urlsplit(url).query)
        opts: dict[str, str] = {
            "GDAL_DISABLE_READDIR_ON_OPEN": "TRUE" if sidecars else "EMPTY_DIR",
            "GDAL_HTTP_TIMEOUT": str(max(1, round(self.timeout))),
            "GDAL_HTTP_MAX_RETRY": str(self.retries),
            "GDAL_HTTP_RETRY_DELAY": str(self.backoff),
        }
        if cloud == "http":  # Authorization/Cookie, which curl keeps at the origin; others refused
            opts.update(header_options(url, self.headers))
        if cloud == "s3":
            if self.requester_pays:
                opts["AWS_REQUEST_PAYER"] = "requester"
            endpoint = self.endpoint_for("s3")
            if endpoint:
                parts = urllib.parse.urlsplit(endpoint)
                opts["AWS_S3_ENDPOINT"] = parts.netloc + parts.path.rstrip("/")
                opts["AWS_HTTPS"] = "YES" if parts.scheme == "https" else "NO"
                opts["AWS_VIRTUAL_HOSTING"] = "FALSE"
            if self.region:
                opts["AWS_REGION"] = self.region
            if self.anonymous:
                opts["AWS_NO_SIGN_REQUEST"] = "YES"
            else:
                if self.key_id:
                    opts["AWS_ACCESS_KEY_ID"] = self.key_id
                if self.secret:
                    opts["AWS_SECRET_ACCESS_KEY"] = self.secret
                if self.session_token:
                    opts["AWS_SESSION_TOKEN"] = self.session_token
        elif cloud == "azure":
            account = self._azure_account(url)
            endpoint = self.endpoint_for("azure")
            if account:
                opts["AZURE_STORAGE_ACCOUNT"] = account
            if self.anonymous:
                opts["AZURE_NO_SIGN_REQUEST"] = "YES"
            elif self.sas_token:
                opts["AZURE_STORAGE_SAS_TOKEN"] = self.sas_token.lstrip("?")
            elif self.account_key:
                opts["AZURE_STORAGE_ACCESS_KEY"] = self.account_key
            if endpoint:  # GDAL takes a custom blob endpoint only from a connection string
                fields = [f"BlobEndpoint={endpoint.rstrip('/')}", f"AccountName={account or ''}"]
                if self.sas_token and not self.anonymous:
                    fields.append(f"SharedAccessSignature={self.sas_token.lstrip('?')}")
                elif self.account_key and not self.anonymous:
                    fields.append(f"AccountKey={self.account_key}")
                opts["AZURE_STORAGE_CONNECTION_STRING"] = ";".join(fields)
        elif cloud == "gcs":
            endpoint = self.endpoint_for("gcs")
            if endpoint:
                opts["CPL_GS_ENDPOINT"] = endpoint.rstrip("/") + "/"
            if self.anonymous or self.gcs_anonymous:
                opts["GS_NO_SIGN_REQUEST"] = "YES"
            elif self.gcs_token:
                opts["GS_OAUTH2_TOKEN"] = self.gcs_token
            elif self.gcs_credentials:
                opts["GOOGLE_APPLICATION_CREDENTIALS"] = self.gcs_credentials
        return opts

    @contextlib.contextmanager
    def rasterio_env(self, url: str) -> Iterator[None]:
        """Open ``url`` with rasterio inside this: ``rasterio.Env`` with :meth:`gdal_options`.

        The storage's options (keys, tokens, headers, endpoint) are set as
        GDAL options of the calling thread only
        (:func:`terrapipe.io.gdal_cache.thread_local_options`), gone when the
        block ends, never in ``os.environ``: in the main thread a
        ``rasterio.Env`` sets process-wide options, which every other thread
        would read (and keep) while the block runs. The defaults of
        :func:`terrapipe.io.gdal_env.open_options` (range merging, HTTP/2,
        connect time-out) are a ``rasterio.Env`` around them.

        Examples
        --------
        >>> with Storage(s3_endpoint="http://127.0.0.1:9000", key_id="k", secret="s").rasterio_env("s3://b/a.tif"):
        ...     pass
        """
        rasterio = require("rasterio", feature="reading rasters")
        # Inside another storage's block (a read of host b inside host a's), that block's credentials,
        # headers and endpoints are removed for this one, so that b's read never carries a's
        enclosing = dict.fromkeys(STORAGE_GDAL_OPTIONS) if _BLOCKS.depth > 0 else {}
        with thread_local_options(enclosing) if enclosing else contextlib.nullcontext():
            mine = self.gdal_options(url)  # credentials: this thread's only, never rasterio.Env's (see below)
            defaults = {k: v for k, v in open_options().items() if k not in mine}
            with rasterio.Env(**defaults), thread_local_options(mine) as done:
                if not done:  # no GDAL library found to set them in: rasterio's way
                    rasterio.env.setenv(**mine)
                _BLOCKS.depth += 1
                try:
                    yield
                finally:
                    _BLOCKS.depth -= 1

    def _azure_account(self, url: str) -> str | None:
        if "://" in url:
            _, _, account = split_url(url)
            if account:
                return account
        return self.account_name

    # --- fsspec -------------------------------------------------------------------------------
    def fsspec_options(self, url: str) -> dict[str, Any]:
        """``storage_options`` for s3fs, adlfs or gcsfs (``fsspec.open(url, **options)``).

        Examples
        --------
        >>> Storage(s3_endpoint="http://127.0.0.1:9000", anonymous=True).fsspec_options("s3://b/k")
        {'anon': True, 'client_kwargs': {'endpoint_url': 'http://127.0.0.1:9000'}}
        """
        cloud = cloud_of(url)
        opts: dict[str, Any] = {}
        if cloud == "s3":
            client: dict[str, Any] = {}
            if self.anonymous:
                opts["anon"] = True
            else:
                if self.key_id:
                    opts["key"] = self.key_id
                if self.secret:
                    opts["secret"] = self.secret
                if self.session_token:
                    opts["token"] = self.session_token
            if self.endpoint_for("s3"):
                client["endpoint_url"] = self.endpoint_for("s3")
            if self.region:
                client["region_name"] = self.region
            if client:
                opts["client_kwargs"] = client
            if self.requester_pays:
                opts["requester_pays"] = True
        elif cloud == "azure":
            account = self._azure_account(url)
            if account:
                opts["account_name"] = account
            if self.anonymous:
                opts["anon"] = True
            elif self.sas_token:
                opts["sas_token"] = self.sas_token.lstrip("?")
            elif self.account_key:
                opts["account_key"] = self.account_key
            endpoint = self.endpoint_for("azure")
            if endpoint:
                fields = [f"BlobEndpoint={endpoint.rstrip('/')}", f"AccountName={account or ''}"]
                if self.account_key and not self.anonymous and not self.sas_token:
                    fields.append(f"AccountKey={self.account_key}")
                opts["connection_string"] = ";".join(fields)
        elif cloud == "gcs":
            if self.endpoint_for("gcs"):
                opts["endpoint_url"] = self.endpoint_for("gcs")
            if self.anonymous or self.gcs_anonymous:
                opts["token"] = "anon"  # gcsfs's word for unsigned requests
            elif self.gcs_token:
                opts["token"] = self.gcs_token
            elif self.gcs_credentials:
                opts["token"] = self.gcs_credentials
        elif cloud == "http":
            opts["client_kwargs"] = {"timeout": self.timeout}
        return opts

    # --- obstore ------------------------------------------------------------------------------
    def store_for(self, url: str) -> Any:
        """Return an obstore store for the bucket (container, server) of ``url``.

        ``s3://bucket/...`` gives an ``S3Store`` of ``bucket``; ``az://container/...``
        or ``abfs://container@account.dfs.core.windows.net/...`` an ``AzureStore``;
        ``gs://bucket/...`` a ``GCSStore``; ``http(s)://host/...`` an ``HTTPStore``
        of ``scheme://host``; a path or ``file://`` URI a ``LocalStore`` of ``/``.
        Keys within it come from :func:`split_url`.

        Parameters
        ----------
        url
            The URL to be read.

        Returns
        -------
        obstore.store.ObjectStore
            The store (made anew on each call; it holds the credentials).
        """
        store = require("obstore.store", extra="cloud", feature="object storage")
        cloud = cloud_of(url)
        client: dict[str, Any] = {
            "pool_max_idle_per_host": str(self.concurrency),
            "timeout": dt.timedelta(seconds=self.timeout),
            "connect_timeout": dt.timedelta(seconds=min(self.timeout, 10.0)),
        }
        retry: dict[str, Any] = {
            "max_retries": self.retries,
            "backoff": {
                "init_backoff": dt.timedelta(seconds=self.backoff),
                "max_backoff": dt.timedelta(seconds=self.max_backoff),
            },
            "retry_timeout": dt.timedelta(seconds=self.deadline or 180.0),
        }
        if cloud in ("local", "file"):
            return store.LocalStore("/")
        if cloud == "http":
            parts = urllib.parse.urlsplit(url)
            client["allow_http"] = parts.scheme == "http"
            return store.HTTPStore.from_url(
                f"{parts.scheme}://{parts.netloc}", client_options=client, retry_config=retry
            )
        bucket, _, account = split_url(url)
        endpoint = self.endpoint_for(cloud)
        if endpoint and endpoint.startswith("http://"):
            client["allow_http"] = True
        if cloud == "s3":
            config: dict[str, Any] = {"region": self.region or "us-east-1"}
            if endpoint:
                config["endpoint"] = endpoint
                config["virtual_hosted_style_request"] = False
            if self.requester_pays:
                config["request_payer"] = True
            if self.anonymous:
                config["skip_signature"] = True
            else:
                if self.key_id:
                    config["access_key_id"] = self.key_id
                if self.secret:
                    config["secret_access_key"] = self.secret
                if self.session_token:
                    config["session_token"] = self.session_token
            return store.S3Store(bucket, config=config, client_options=client, retry_config=retry)
        if cloud == "azure":
            config = {}
            name = account or self.account_name
            if name:
                config["account_name"] = name
            if endpoint:
                config["endpoint"] = endpoint.rstrip("/")
            if self.anonymous:
                config["skip_signature"] = True
            elif self.sas_token:
                config["sas_key"] = self.sas_token.lstrip("?")
            elif self.account_key:
                config["account_key"] = self.account_key
            return store.AzureStore(bucket, config=config, client_options=client, retry_config=retry)
        config = {}
        if endpoint:
            config["base_url"] = endpoint.rstrip("/")
        provider = None
        if self.anonymous or self.gcs_anonymous:
            config["skip_signature"] = True
        elif self.gcs_token:
            token = self.gcs_token

            def provider() -> dict[str, Any]:
                return {"token": token, "expires_at": None}

        elif self.gcs_credentials:
            config["service_account"] = self.gcs_credentials
        return store.GCSStore(
            bucket, config=config, client_options=client, retry_config=retry, credential_provider=provider
        )


def _parse_connection_string(text: str) -> dict[str, str | None]:
    """Return the fields of an Azure storage connection string that :class:`Storage` uses.

    Examples
    --------
    >>> _parse_connection_string("AccountName=a;AccountKey=k;BlobEndpoint=http://127.0.0.1:1/a")["azure_endpoint"]
    'http://127.0.0.1:1/a'
    """
    fields: dict[str, str] = {}
    for part in text.split(";"):
        if "=" in part:
            name, value = part.split("=", 1)
            fields[name.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        proxy = fields.get("developmentstorageproxyuri")
        return {
            "account_name": AZURITE_ACCOUNT,
            "account_key": AZURITE_KEY,
            "azure_endpoint": f"{proxy.rstrip('/')}:10000/{AZURITE_ACCOUNT}" if proxy else _AZURITE_BLOB,
        }
    endpoint = fields.get("blobendpoint")
    if not endpoint and fields.get("accountname"):
        protocol = fields.get("defaultendpointsprotocol", "https")
        suffix = fields.get("endpointsuffix", "core.windows.net")
        if suffix != "core.windows.net":
            endpoint = f"{protocol}://{fields['accountname']}.blob.{suffix}"
    return {
        "account_name": fields.get("accountname"),
        "account_key": fields.get("accountkey"),
        "sas_token": fields.get("sharedaccesssignature"),
        "azure_endpoint": endpoint,
    }
