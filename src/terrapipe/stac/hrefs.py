"""Hrefs of STAC documents: local paths, ``file://`` URIs and HTTP URLs, joined like browsers do.

Pure string work, no I/O.

Examples
--------
>>> join_href("/data/stac/catalog.json", "./demo-s2/collection.json")
'/data/stac/demo-s2/collection.json'
>>> join_href("http://127.0.0.1:8000/stac/demo/collection.json", "../catalog.json")
'http://127.0.0.1:8000/stac/catalog.json'
>>> join_href("/data/stac/a/item.json", "file:///data/cogs/B04.tif")
'/data/cogs/B04.tif'
>>> join_href("s3://bucket/stac/a/item.json", "../b/B04.tif")
's3://bucket/stac/b/B04.tif'
>>> is_http("https://example.com/catalog.json"), is_http("/data/catalog.json")
(True, False)
"""

from __future__ import annotations

import os
import posixpath
import urllib.parse
from urllib.request import url2pathname

__all__ = ["is_absolute", "is_http", "join_href", "local_path"]


def is_http(href: str) -> bool:
    """Whether ``href`` is an ``http://`` or ``https://`` URL."""
    return href.lower().startswith(("http://", "https://"))


def is_absolute(href: str) -> bool:
    """Whether ``href`` is a URL (``https://``, ``s3://``, ``file://``, ...) or an absolute local path.

    Examples
    --------
    >>> [is_absolute(h) for h in ("s3://b/a.tif", "file:///a.tif", "/a.tif", "./a.tif", "../a.tif", "a.tif")]
    [True, True, True, False, False, False]
    """
    parts = urllib.parse.urlsplit(href)
    if parts.scheme and len(parts.scheme) > 1:  # one letter would be a Windows drive
        return True
    return os.path.isabs(href)


def local_path(href: str) -> str:
    """Return the local path of a ``file://`` URI (other hrefs unchanged).

    Examples
    --------
    >>> local_path("file:///tmp/a%20b.tif"), local_path("rel/a.tif")
    ('/tmp/a b.tif', 'rel/a.tif')
    """
    if href.lower().startswith("file://"):
        return url2pathname(urllib.parse.urlsplit(href).path)
    return href


def join_href(base: str, href: str) -> str:
    """Resolve ``href`` (relative or absolute) against the document at ``base``.

    Parameters
    ----------
    base
        Href of the document the link is in (path, ``file://`` URI or URL).
    href
        The link's href.

    Returns
    -------
    str
        An absolute URL, or a normalised local path (``file://`` URIs become paths).
        Against a bucket URL (``s3://``, ``gs://``, ``az://``, ...) the result
        stays in the bucket: ``..`` stops at its root, ``/key`` starts there.

    Examples
    --------
    >>> join_href("gs://b/stac/item.json", "./B04.tif"), join_href("s3://b/a/item.json", "../../../x.tif")
    ('gs://b/stac/B04.tif', 's3://b/x.tif')
    >>> join_href("az://container/a/item.json", "/cogs/B04.tif")
    'az://container/cogs/B04.tif'
    """
    parts = urllib.parse.urlsplit(href)
    if parts.scheme and len(parts.scheme) > 1:  # a URL (one letter would be a Windows drive)
        return local_path(href)
    if is_http(base):
        return urllib.parse.urljoin(base, href)
    base_parts = urllib.parse.urlsplit(base)
    if len(base_parts.scheme) > 1 and base_parts.scheme.lower() != "file":
        # a bucket URL: a path joined as a local one would lose the '//' after the scheme (s3:/b/k)
        path = href if href.startswith("/") else posixpath.join(posixpath.dirname(base_parts.path), href)
        return f"{base_parts.scheme}://{base_parts.netloc}{posixpath.normpath('/' + path.lstrip('/'))}"
    base_path = local_path(base)
    if os.path.isabs(href):
        return os.path.normpath(href)
    joined = posixpath.join(posixpath.dirname(base_path.replace(os.sep, "/")), href.replace(os.sep, "/"))
    return os.path.normpath(joined)
