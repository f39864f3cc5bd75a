"""Whether a URL's host is this machine's loopback, by one definition, judged without a DNS lookup.

A host is loopback when it is ``localhost`` or a name under it (``db.localhost``: RFC 6761 reserves
them for loopback; any case, a trailing dot allowed), or a numeric address the socket layer reads as
one in ``127.0.0.0/8`` or ``::1``, in every spelling it accepts: ``127.0.0.1``, ``127.1``,
``[::1]``, ``::ffff:127.0.0.1``. Any other name is not loopback, whatever it resolves
to: looking it up could take seconds, and the answer could change later. ``0.0.0.0`` and ``::``
are not counted (as a destination they mean this machine on Linux only).

Examples
--------
>>> [is_loopback_host(h) for h in ("localhost", "127.0.0.1", "127.1", "[::1]", "::ffff:127.0.0.1")]
[True, True, True, True, True]
>>> [is_loopback_host(h) for h in ("example.org", "10.0.0.5", "128.0.0.1", "0.0.0.0", "", None)]
[False, False, False, False, False, False]
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["is_loopback_host"]


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (a URL's host, with or without ``[ ]``) is this machine's loopback (see the module doc).

    Examples
    --------
    >>> is_loopback_host("LocalHost."), is_loopback_host("cache.localhost"), is_loopback_host("localhost.example.org")
    (True, True, False)
    """
    if not host or not host.isascii() or not host.isprintable() or " " in host:
        return False  # never a host; the socket layer reads "127.0.0.1\x00..." as 127.0.0.1
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    name = host.lower().removesuffix(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:  # numeric only (never a lookup): what connect() makes of the spelling
        found = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return False
    return bool(found) and all(_loopback(str(info[4][0])) for info in found)


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
