"""The viewer over real HTTP on loopback, served by waitress as ``wsi-heatmap view``."""

from __future__ import annotations

import http.client
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from tests.wsi.viewer_data import REGION, STEM, build_out_dir, make_grid
from wsi.viewer import ViewerConfig, create_app
from wsi.viewer.serve import ViewerServer

ANNOTATIONS = Path(__file__).parents[1] / "fixtures" / "annotations"


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_out_dir(tmp_path_factory.mktemp("viewer-http"))


@pytest.fixture(scope="module")
def truth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of truth files named after the slides: tiny.xml (ASAP)."""
    folder = tmp_path_factory.mktemp("truth")
    shutil.copy(ANNOTATIONS / "patient_004_node_4.xml", folder / f"{STEM}.xml")
    return folder


@pytest.fixture(scope="module")
def server(out_dir: Path, truth_dir: Path) -> Iterator[ViewerServer]:
    app = create_app(ViewerConfig(out_dir, annotations=truth_dir))
    with ViewerServer(app, host="127.0.0.1", port=0) as running:
        yield running


def _get(
    server: ViewerServer, path: str, host: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader(
            "Host", f"127.0.0.1:{server.port}" if host is None else host
        )
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_served_by_waitress_on_loopback(server: ViewerServer) -> None:
    status, headers, body = _get(server, "/")
    assert status == 200
    assert headers["Server"] == "wsi-heatmap"
    assert f'href="/slides/{STEM}"'.encode() in body
    assert server.url == f"http://127.0.0.1:{server.port}/"


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8050", "127.0.0.1", "[::1]:8050", "a.localhost"]
)
def test_loopback_host_names_are_answered(server: ViewerServer, host: str) -> None:
    assert _get(server, "/api/slides", host=host)[0] == 200


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8050",
        "192.168.1.20:8050",
        "0.0.0.0",
        "",
        "localhost:8050@evil.example",  # user info smuggling another host (issue 30)
        "localhost/evil.example",
        "localhost, evil.example",
    ],
)
def test_foreign_host_is_refused(server: ViewerServer, host: str) -> None:
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host.
    for path in ("/", "/api/slides", f"/slides/{STEM}_files/10/0_0.jpeg"):
        status, _, body = _get(server, path, host=host)
        assert status == 403, (host, path)
        assert STEM.encode() not in body
        assert b"slide_path" not in body


def test_the_host_given_to_the_server_is_answered(out_dir: Path) -> None:
    app = create_app(ViewerConfig(out_dir, allowed_hosts=("pathology-pc",)))
    with ViewerServer(app, host="127.0.0.1", port=0) as server:
        assert _get(server, "/api/slides", host="pathology-pc:8050")[0] == 200
        assert _get(server, "/api/slides", host="other-pc:8050")[0] == 403


@pytest.mark.parametrize(
    "path",
    [
        "/slides/" + "a" * 300,
        "/slides/" + "a" * 300 + ".dzi",
        "/slides/" + "a" * 300 + "_files/0/0_0.jpeg",
        "/api/slides/" + "a" * 300 + "/summary",
        "/slides/" + quote("é" * 200) + "/heatmap.png",
        f"/slides/{STEM}_files/%D9%A1%D9%A0/0_0.jpeg",  # Arabic-Indic "10"
        f"/slides/{STEM}_files/10/%EF%BC%91_0.jpeg",  # fullwidth "1"
        f"/slides/{STEM}_files/10/0_%C2%B2.jpeg",  # superscript two
    ],
)
def test_long_names_and_odd_digits_are_404(server: ViewerServer, path: str) -> None:
    assert _get(server, path)[0] == 404


def test_tiles_are_aligned_with_the_slide_grid(server: ViewerServer) -> None:
    # Full resolution is level 10; tile (1, 1) starts at level-0 (253, 253) (254 px
    # tiles, 1 px overlap). The purple square starts at x = 400, y = 300.
    status, headers, body = _get(server, f"/slides/{STEM}_files/10/1_1.jpeg")
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    rgb = np.asarray(Image.open(io.BytesIO(body)), dtype=int)
    x0 = y0 = 253
    inside_x, inside_y = REGION[0][0] - x0, REGION[0][1] - y0
    assert rgb[inside_y + 20, inside_x - 4].min() > 215  # left of the square
    assert rgb[inside_y + 20, inside_x + 4].tolist() == pytest.approx(
        [110, 40, 150], abs=16
    )
    assert rgb[inside_y - 4, inside_x + 20].min() > 215  # above it
    assert rgb[inside_y + 4, inside_x + 20].tolist() == pytest.approx(
        [110, 40, 150], abs=16
    )
    # The heatmap is placed with the grid's own origin and cell size.
    grid = make_grid()
    geometry = json.loads(_get(server, f"/api/slides/{STEM}/heatmap")[2])
    assert geometry["origin_l0_px"] == list(grid.cell_origin_l0)
    assert geometry["cell_size_l0_px"] == grid.cell_size_l0
    png = Image.open(io.BytesIO(_get(server, geometry["image_url"])[2]))
    rows, cols = grid.shape
    assert png.width * rows == png.height * cols  # square cells


def test_truth_layer_is_served(server: ViewerServer) -> None:
    status, headers, body = _get(server, f"/api/slides/{STEM}/truth")
    assert status == 200
    assert headers["Content-Type"].startswith("application/geo+json")
    collection = json.loads(body)
    assert collection["source"] == f"{STEM}.xml"
    assert len(collection["features"]) == 3  # the 3 polygons of patient_004_node_4
    ring = collection["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    page = _get(server, f"/slides/{STEM}")[2].decode()
    assert f"/api/slides/{STEM}/truth" in page
    assert "Ground truth" in page
    assert _get(server, "/api/slides/partial/truth")[0] == 404


def test_two_host_headers_are_refused(server: ViewerServer) -> None:
    """A request naming two hosts is refused, whichever comes first (issue 30)."""
    for first, second in (("localhost", "evil.example"), ("evil.example", "localhost")):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.putrequest("GET", "/api/slides", skip_host=True)
            connection.putheader("Host", first)
            connection.putheader("Host", second)
            connection.endheaders()
            response = connection.getresponse()
            assert response.status in (400, 403), (first, second)
            assert STEM.encode() not in response.read()
        finally:
            connection.close()


def test_issue_30_idle_connections_do_not_starve_the_viewer(out_dir: Path) -> None:
    """Many half-open connections: a real request is still answered (bounded loop)."""
    import socket

    app = create_app(ViewerConfig(out_dir))
    with ViewerServer(app, host="127.0.0.1", port=0) as server:
        idle = []
        try:
            for _ in range(150):  # more than waitress's default limit of 100
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                sock.sendall(b"GET / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n")  # never ends
                idle.append(sock)
            # Answered while the idle ones are still open or being closed (the
            # client gives up after 30 s; waitress's default held them for 120 s).
            assert _get(server, "/api/slides")[0] == 200
        finally:
            for sock in idle:
                sock.close()
