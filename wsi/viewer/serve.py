"""Serve the viewer with waitress, a pure-Python production WSGI server.

`ViewerServer` binds at once (``port=0`` picks a free port, as the tests do), so its
`url` is known before `serve_forever` starts answering; `close` stops it from another
thread.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

import flask

__all__ = ["ViewerServer"]

logger = logging.getLogger(__name__)


#: Open connections the server keeps (idle ones included) before refusing more.
CONNECTION_LIMIT = 1000
#: Seconds a connection may stay idle (no request, or half a request) before closing.
CHANNEL_TIMEOUT_S = 10
#: How often, in seconds, idle connections are looked for.
CLEANUP_INTERVAL_S = 2


class ViewerServer:
    """A waitress server of the viewer app on one host and port.

    Parameters
    ----------
    app
        From `wsi.viewer.create_app`.
    host
        Address or name to bind (``127.0.0.1``: this machine only).
    port
        TCP port; 0 picks a free one.
    threads
        Request threads (tiles are requested many at a time).

    Raises
    ------
    OSError
        If the address cannot be bound (port in use, unknown host).
    """

    def __init__(
        self, app: flask.Flask, *, host: str, port: int, threads: int = 8
    ) -> None:
        from waitress.server import create_server

        self._map: dict[Any, Any] = {}
        self._server: Any = create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=threads,
            ident="wsi-heatmap",
            clear_untrusted_proxy_headers=True,
            # Idle or half-open connections (a stuck or hostile client) are closed
            # after CHANNEL_TIMEOUT_S and cannot use up the connection slots.
            connection_limit=CONNECTION_LIMIT,
            channel_timeout=CHANNEL_TIMEOUT_S,
            cleanup_interval=CLEANUP_INTERVAL_S,
        )
        self._thread: threading.Thread | None = None
        listen = getattr(self._server, "effective_listen", None)
        if listen:  # several sockets (a name with IPv4 and IPv6 addresses)
            bound_host, self.port = listen[0][0], int(listen[0][1])
        else:
            bound_host = self._server.effective_host
            self.port = int(self._server.effective_port)
        self.host = host if host else str(bound_host)

    @property
    def url(self) -> str:
        """The address to open in a browser, e.g. ``http://127.0.0.1:8050/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        """Answer requests until `close` (or Ctrl-C)."""
        self._server.run()

    def start(self) -> ViewerServer:
        """Serve from a background thread; returns ``self``."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="wsi-viewer", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop answering and close every socket.

        The sockets are closed by the thread that serves them (through waitress's
        trigger), so its ``select`` never sees a closed descriptor.
        """
        from waitress import wasyncore
        from waitress.trigger import trigger

        thread, self._thread = self._thread, None
        triggers = [t for t in self._map.values() if isinstance(t, trigger)]
        if thread is not None and thread.is_alive() and triggers:
            triggers[0].pull_trigger(lambda: wasyncore.close_all(self._map))
            thread.join(timeout=10)
        else:
            wasyncore.close_all(self._map)
        self._server.task_dispatcher.shutdown()

    def __enter__(self) -> ViewerServer:
        """Start in the background (``with ViewerServer(...) as server:``)."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.close()
