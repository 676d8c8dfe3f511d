"""Which ``Host`` headers the viewer answers (a guard against DNS rebinding).

A web page on another site can make the browser send requests to the viewer's
loopback address under its own host name (DNS rebinding); checking the ``Host``
header is what stops it from reading results, slide paths and tiles. The viewer
answers loopback names (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``::1``)
and the host names it was told to serve on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["host_allowed", "is_loopback_host", "split_host"]


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
    """
    if not header:
        return False
    name = split_host(header)
    if is_loopback_host(name):
        return True
    return name in {split_host(h) for h in extra_hosts if h}
