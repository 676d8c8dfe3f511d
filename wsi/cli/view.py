"""What ``wsi-heatmap view`` does: warn about exposed hosts, serve, open a browser."""

from __future__ import annotations

import logging
import threading
import webbrowser
from pathlib import Path

import click

from wsi.errors import OutputError
from wsi.viewer._hosts import is_loopback_host
from wsi.viewer.app import ViewerConfig, create_app
from wsi.viewer.serve import ViewerServer

__all__ = ["serve_viewer"]

logger = logging.getLogger(__name__)


def serve_viewer(
    out_dir: Path,
    *,
    annotations: Path | None,
    host: str,
    port: int,
    browser: bool,
) -> None:
    """Serve ``out_dir`` until Ctrl-C, opening the page in a browser if ``browser``.

    Raises
    ------
    OutputError
        If the address cannot be bound (port in use, unknown host).
    """
    if not is_loopback_host(host):
        click.echo(
            f"warning: --host {host} is not a loopback address: other machines on "
            "the network can reach the viewer; it answers only requests for "
            f"localhost or {host}, with no login",
            err=True,
        )
    try:
        app = create_app(
            ViewerConfig(out_dir, annotations=annotations, allowed_hosts=(host,))
        )
    except ValueError as err:
        raise click.BadParameter(str(err)) from err
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # busy-tile chatter
    try:
        server = ViewerServer(app, host=host, port=port)
    except OSError as err:
        raise OutputError(
            f"cannot serve on {host}:{port} ({err.strerror or err}); choose another "
            "--port, or stop the program using it"
        ) from err
    click.echo(f"wsi-heatmap viewer on {server.url} (Ctrl-C stops it)")
    if browser:
        threading.Timer(0.5, _open_browser, args=(server.url,)).start()
    try:
        server.serve_forever()
    finally:
        server.close()


def _open_browser(url: str) -> None:
    try:
        if not webbrowser.open(url):
            logger.info("no web browser found; open %s yourself", url)
    except webbrowser.Error as err:
        logger.info("cannot start a web browser (%s); open %s yourself", err, url)
