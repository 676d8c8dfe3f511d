"""Which ``Host`` headers the viewer answers (a guard against DNS rebinding).

A web page on another site can make the browser send requests to the viewer's
loopback address under its own host name (DNS rebinding); checking the ``Host``
header is what stops it from reading results, slide paths and tiles. The viewer
answers loopback names (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``::1``)
and the host names it was told to serve on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

__all__ = ["host_allowed", "is_loopback_host", "split_host", "well_formed_host"]

#: ``name[:port]`` or ``[ipv6][:port]``: nothing else belongs in a ``Host`` header
#: (no user info, path, comma or space, which could smuggle another host past us).
_HOST_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


def well_formed_host(header: str) -> bool:
    """Whether a ``Host`` header is a host name or address and an optional port.

    Examples
    --------
    >>> well_formed_host("localhost:8050"), well_formed_host("[::1]:80")
    (True, True)
    >>> well_formed_host("localhost:8050@evil.example"), well_formed_host("a b")
    (False, False)
    """
    if _HOST_RE.fullmatch(header):
        return True
    try:  # a bare IPv6 address (no brackets, no port)
        ipaddress.IPv6Address(header)
    except ValueError:
        return False
    return True


def split_host(header: str) -> str:
    """The host name of a ``Host`` header, lower case, without port or brackets.

    Examples
    --------
    >>> split_host("LocalHost:8050"), split_host("[::1]:80"), split_host("::1")
    ('localhost', '::1', '::1')
    """
    host = header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address) names this machine's loopback.

    Examples
    --------
    >>> [is_loopback_host(h) for h in ("127.0.0.1", "::1", "app.localhost",
    ...                                "0.0.0.0", "192.168.1.5", "evil.example")]
    [True, True, True, False, False, False]
    """
    name = split_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(header: str | None, extra_hosts: Iterable[str] = ()) -> bool:
    """Whether to answer a request with this ``Host`` header.

    Parameters
    ----------
    header
        The request's ``Host`` header (None when absent: refused).
    extra_hosts
        Host names besides loopback, e.g. the ``--host`` the server binds.

    Examples
    --------
    >>> host_allowed("127.0.0.1:8050"), host_allowed("evil.example:8050")
    (True, False)
    >>> host_allowed("10.0.0.7:8050", ["10.0.0.7"]), host_allowed(None)
    (True, False)
    >>> host_allowed("localhost:8050@evil.example")
    False
    """
    if not header or not well_formed_host(header.strip()):
        return False
    name = split_host(header)
    if is_loopback_host(name):
        return True
    return name in {split_host(h) for h in extra_hosts if h}
