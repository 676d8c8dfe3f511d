"""The viewer in a real headless Chromium (Debian ``chromium`` + ``chromium-driver``).

One page load checks what only a browser shows: no console errors, slide tiles drawn,
the heatmap's transparent cells leaving the slide's pixels exactly as they are (the
WebGL drawer lightened them), the opacity slider changing the view, and the
ground-truth outline drawn. The screenshots are kept in ``$WSI_TEST_ARTIFACTS`` (or
the test's tmp_path). Skipped, saying why, only where no Chromium is installed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.wsi.viewer_data import STEM, build_out_dir, make_grid
from wsi.viewer import ViewerConfig, create_app
from wsi.viewer.serve import ViewerServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no headless browser: install Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver; .ci/run does)",
)

#: Ground truth drawn by the test: a rectangle on plain background (level-0 px).
TRUTH = [[140, 140], [250, 140], [250, 260], [140, 260], [140, 140]]
TRUTH_RGB = (255, 208, 0)  # --truth in viewer.css


def _heatmap() -> np.ndarray:
    """Columns 0-2 without tissue (transparent), columns 3-5 at probability 0.9."""
    values = np.full(make_grid().shape, 0.9, np.float32)
    values[:, :3] = np.nan
    return values


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("viewer-browser")
    out = build_out_dir(root, heatmap=_heatmap())
    truth = root / f"{STEM}.geojson"
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [TRUTH]},
    }
    truth.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    app = create_app(ViewerConfig(out, annotations=truth))
    with ViewerServer(app, host="127.0.0.1", port=0) as server:
        yield f"{server.url}slides/{STEM}"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--force-device-scale-factor=1",
        "--window-size=1200,800",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    browser.set_page_load_timeout(60)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("WSI_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait(condition: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _screenshot(driver: Any, path: Path | None = None) -> np.ndarray:
    time.sleep(0.4)  # a few animation frames: OpenSeadragon redraws on the next one
    png = driver.get_screenshot_as_png()
    if path is not None:
        path.write_bytes(png)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)


def _screen_box(driver: Any, x0: float, y0: float, x1: float, y1: float) -> list[int]:
    """Level-0 box -> page pixels [left, top, right, bottom] (inside by 3 px)."""
    box: list[float] = driver.execute_script(
        "var item = wsiViewer.world.getItemAt(0);"
        "var r = document.getElementById('osd').getBoundingClientRect();"
        "var a = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(arguments[0], arguments[1]));"
        "var b = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(arguments[2], arguments[3]));"
        "return [a.x + r.left, a.y + r.top, b.x + r.left, b.y + r.top];",
        x0,
        y0,
        x1,
        y1,
    )
    left, top, right, bottom = box
    return [int(left) + 3, int(top) + 3, int(right) - 3, int(bottom) - 3]


def _crop(image: np.ndarray, box: list[int]) -> np.ndarray:
    left, top, right, bottom = box
    assert right > left, box
    assert bottom > top, box
    return image[top:bottom, left:right]


def _set_slider(driver: Any, element_id: str, value: int) -> None:
    driver.execute_script(
        "var e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('input'));",
        element_id,
        value,
    )


def test_the_slide_page_in_chromium(
    driver: Any, page_url: str, artifacts: Path
) -> None:
    driver.get(page_url)
    _wait(
        lambda: driver.execute_script(
            "return window.wsiViewer && wsiViewer.world.getItemCount() === 2 &&"
            " wsiViewer.world.getItemAt(0).getFullyLoaded() &&"
            " wsiViewer.world.getItemAt(1).getFullyLoaded();"
        ),
        "the slide tiles and the heatmap image",
    )
    _wait(
        lambda: driver.execute_script("return document.body.dataset.truthOutlines;"),
        "the ground-truth outlines",
    )
    assert driver.execute_script("return wsiViewer.drawer.getType();") == "canvas"

    # Heatmap fully opaque, then hidden: cells without tissue must not change a pixel.
    _set_slider(driver, "heatmap-opacity", 100)
    shown = _screenshot(driver, artifacts / "viewer-heatmap-100.png")
    grid = make_grid()
    ox, oy = grid.cell_origin_l0
    cell = grid.cell_size_l0
    assert (ox, oy, cell) == (128, 128, 128)  # columns 0-2: x 128..512, transparent
    # Transparent cells over background (right of the truth outline) and over the
    # purple square; scored cells (x >= 512) above the square, over background.
    transparent = _screen_box(driver, 270, 140, 395, 630)
    transparent_square = _screen_box(driver, 405, 310, 505, 490)
    tumour = _screen_box(driver, 525, 140, 890, 290)
    driver.find_element("id", "heatmap-on").click()
    hidden = _screenshot(driver, artifacts / "viewer-heatmap-off.png")

    # Tiles render: the slide's background and its purple square are on screen.
    background = _crop(hidden, transparent)
    assert np.abs(background - 240).max() <= 6, "slide background not drawn"
    square = _crop(hidden, _screen_box(driver, 420, 320, 680, 480))
    assert np.abs(square.mean(axis=(0, 1)) - [110, 40, 150]).max() < 12

    # Transparent heatmap cells leave the slide exactly as it is.
    assert np.array_equal(_crop(shown, transparent), background)
    assert np.array_equal(
        _crop(shown, transparent_square), _crop(hidden, transparent_square)
    )
    # Scored cells do tint it.
    assert np.abs(_crop(shown, tumour) - _crop(hidden, tumour)).mean() > 40

    # The opacity slider changes the view.
    driver.find_element("id", "heatmap-on").click()
    _set_slider(driver, "heatmap-opacity", 30)
    faint = _screenshot(driver, artifacts / "viewer-heatmap-30.png")
    assert np.array_equal(_crop(faint, transparent), background)
    difference = np.abs(_crop(faint, tumour) - _crop(shown, tumour)).mean()
    assert difference > 20, difference
    between = np.abs(_crop(faint, tumour) - _crop(hidden, tumour)).mean()
    assert 5 < between < np.abs(_crop(shown, tumour) - _crop(hidden, tumour)).mean()

    # The truth outline is drawn along its left edge, in its colour.
    edge = _screen_box(driver, TRUTH[0][0], 150, TRUTH[0][0], 250)
    left = edge[0] - 3
    strip = faint[edge[1] : edge[3], left - 3 : left + 4]
    near = np.abs(strip - TRUTH_RGB).max(axis=2) < 40
    assert near.any(axis=1).mean() > 0.4, "no ground-truth stroke on screen"
    assert (
        np.abs(_crop(faint, [left + 8, edge[1], left + 40, edge[3]]) - 240).max() <= 6
    )

    _screenshot(driver, artifacts / "viewer.png")
    errors = [
        entry
        for entry in driver.get_log("browser")
        if entry["level"] in ("SEVERE", "ERROR")
    ]
    assert errors == [], errors
