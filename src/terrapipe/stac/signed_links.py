"""Which links of a static catalog at a signed URL may carry the signature.

An Azure SAS (``?sv=...&sig=...``) signs a container (``sr=c``), a folder
(``sr=d``) or a whole account (``ss=...&srt=...``): the catalog's relative
links name other blobs of the same container, which the same token opens.
So a link carries the root's SAS when, and only when, it is an ``http(s)``
URL on the root's origin (scheme, host, port) whose path, decoded and with
``..`` resolved, stays in the root's container: on ``*.blob.core.windows.net``
(and the other Azure clouds) the first path segment, elsewhere (Azurite, a
private endpoint: ``/account/container/...``) the first two. A link to
another container, account, host, port or scheme, or one with a query of
its own, is read as written. The SAS is never added to a redirect's target
(the JSON client follows ``Location`` as the server wrote it).

A presigned S3 or GCS URL (``X-Amz-Signature``, ``X-Goog-Signature``) and a
blob SAS (``sr=b``) sign one object: nothing else may carry them, and a
catalog behind one can be read only as far as its first document.
:meth:`SignedRoot.hint` says what to do instead.

Examples
--------
>>> root = SignedRoot.of("https://acc.blob.core.windows.net/data/stac/catalog.json?sv=2024-08-04&sr=c&sig=k3y")
>>> root.unsigned
'https://acc.blob.core.windows.net/data/stac/catalog.json'
>>> root.sign("https://acc.blob.core.windows.net/data/stac/s2/collection.json")
'https://acc.blob.core.windows.net/data/stac/s2/collection.json?sv=2024-08-04&sr=c&sig=k3y'
>>> root.sign("https://acc.blob.core.windows.net/other/catalog.json")
'https://acc.blob.core.windows.net/other/catalog.json'
>>> root.sign("https://acc.blob.core.windows.net/data/%2e%2e/other/item.json")
'https://acc.blob.core.windows.net/data/%2e%2e/other/item.json'
>>> SignedRoot.of("https://h/b/catalog.json?X-Amz-Signature=ab").hint is not None
True
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from dataclasses import dataclass, field

from terrapipe.io.paths import Origin, origin_of

__all__ = ["SignedRoot"]

# Query parameters of a URL signed for one object (S3 SigV4, GCS V4, S3 SigV2 / GCS V2).
_OBJECT_SIGNATURES = frozenset({"x-amz-signature", "x-goog-signature", "signature"})
# An Azure blob host (public and sovereign clouds): the container is the first path segment.
_AZURE_HOST = re.compile(r"^[a-z0-9]+\.(?:blob|dfs)\.core\.[a-z0-9.]+$")
# A SAS whose resource is one blob (a version or snapshot of one): it opens nothing else.
_ONE_BLOB = frozenset({"b", "bs", "bv"})


def _segments(path: str) -> list[str] | None:
    """Return the decoded path's segments with ``.``/``..`` resolved; ``None`` if it climbs above the root."""
    decoded = urllib.parse.unquote(path)
    if "\\" in decoded or "\x00" in decoded:
        return None
    parts = [s for s in posixpath.normpath("/" + decoded).split("/") if s]
    raw = [s for s in decoded.split("/") if s and s != "."]
    depth = 0
    for segment in raw:  # ".." above the root would be dropped by normpath: refuse it instead
        depth += -1 if segment == ".." else 1
        if depth < 0:
            return None
    return parts


@dataclass(frozen=True)
class SignedRoot:
    """The signature of a catalog's root URL and the links it may go with.

    Attributes
    ----------
    unsigned
        The root URL without its query (what the walk names documents by).
    query
        The SAS to carry (``""``: none is carried).
    origin
        The root's ``(scheme, host, port)``.
    scope
        Decoded path segments every signed link starts with (the container,
        or the account and container).
    hint
        What to do when a linked document is refused (``None``: nothing to say).
    """

    unsigned: str
    query: str = field(default="", repr=False)
    origin: Origin | None = None
    scope: tuple[str, ...] = ()
    hint: str | None = None

    @classmethod
    def of(cls, url: str) -> SignedRoot:
        """Return how the links of a catalog at ``url`` are signed (a URL without a signature: not at all)."""
        parts = urllib.parse.urlsplit(url)
        origin = origin_of(url)
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        names = {name.lower() for name, _ in pairs}
        if origin is None or not parts.query:
            return cls(url)
        if names & _OBJECT_SIGNATURES or ({"sv", "sig"} <= names and dict(pairs).get("sr") in _ONE_BLOB):
            return cls(url, hint=_ONE_OBJECT)
        if not {"sv", "sig"} <= names:  # not a SAS: its query is the server's business, sent as given
            return cls(url)
        segments = _segments(parts.path) or []
        width = 1 if _AZURE_HOST.match(origin[1]) else 2  # Azurite, private endpoints: /account/container
        if len(segments) <= width:  # no container in the path: nothing may carry it
            return cls(url)
        unsigned = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return cls(unsigned, parts.query, origin, tuple(segments[:width]))

    def sign(self, url: str) -> str:
        """Return ``url`` with the SAS when it is in the root's container on the root's origin, else as given."""
        if not self.query or origin_of(url) != self.origin:
            return url
        parts = urllib.parse.urlsplit(url)
        if parts.query:  # a query of its own: sent as written
            return url
        segments = _segments(parts.path)
        if (
            segments is None
            or len(segments) <= len(self.scope)
            or tuple(segments[: len(self.scope)]) != self.scope
        ):
            return url
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, self.query, ""))


_ONE_OBJECT = (
    "the catalog's URL is signed for one object (a presigned URL or a blob SAS signs only the document it "
    "names), and its links name other objects, which it does not sign; give the catalog's s3://, gs:// "
    "or az:// URL with credentials that may read the bucket: storage=tp.Storage(...) (or an Azure "
    "container SAS)"
)
