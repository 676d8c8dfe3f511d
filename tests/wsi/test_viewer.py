"""The web viewer through Flask's test client, on a tiny output folder built here."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import zarr
from flask.testing import FlaskClient
from PIL import Image

from tests.wsi.viewer_data import (
    HEIGHT_PX,
    REGION,
    STEM,
    WIDTH_PX,
    build_out_dir,
    make_grid,
    make_heatmap,
    write_slide,
)
from wsi.heatmap.colormap import TINT_FLOOR, TINT_OPACITY, tint
from wsi.store.layout import SlideOutputs
from wsi.viewer import ViewerConfig, create_app

ANNOTATIONS = Path(__file__).parents[1] / "fixtures" / "annotations"


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_out_dir(tmp_path_factory.mktemp("viewer"))


@pytest.fixture(scope="module")
def client(out_dir: Path) -> FlaskClient:
    return create_app(ViewerConfig(out_dir)).test_client()


def test_index_lists_slides(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'href="/slides/tiny"' in html
    assert 'href="/slides/partial"' in html
    assert "0.875" in html
    assert "0.004" in html
    assert "micro (0.43 mm)" in html  # the node's size class and longest lesion
    assert "not-a-slide" not in html
    page = client.get("/slides/tiny").get_data(as_text=True)
    assert "Node class" in page
    assert "(largest lesion 0.43 mm)" in page
    # The lesions that set the class are listed, each zooming to its place.
    assert 'class="lesion-item"' in page
    assert 'data-x="550" data-y="400"' in page
    assert "micro, 0.43 mm across, highest cell 0.98" in page


def test_api_slides(client: FlaskClient) -> None:
    slides = client.get("/api/slides").get_json()
    # highest slide probability first
    assert [s["stem"] for s in slides] == ["tiny", "partial"]
    tiny = slides[0]
    assert tiny["max_probability"] == 0.875
    assert tiny["tumor_area_mm2"] == pytest.approx(0.003541)
    assert tiny["slide_found"]
    assert tiny["has_heatmap"]
    assert tiny["has_regions"]
    assert not slides[1]["slide_found"]
    assert not slides[1]["has_heatmap"]


def test_summary(client: FlaskClient) -> None:
    summary = client.get("/api/slides/tiny/summary").get_json()
    assert summary["n_patches"] == 23


def test_dzi_describes_the_slide(client: FlaskClient) -> None:
    response = client.get("/slides/tiny.dzi")
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    image = ET.fromstring(response.data)
    assert image.get("Format") == "jpeg"
    assert (image.get("TileSize"), image.get("Overlap")) == ("254", "1")
    size = image.find("{*}Size")
    assert size is not None
    assert (size.get("Width"), size.get("Height")) == (str(WIDTH_PX), str(HEIGHT_PX))


@pytest.mark.parametrize(
    ("level", "col", "row", "size"),
    [
        (10, 0, 0, (255, 255)),
        (10, 4, 3, (9, 7)),
        (0, 0, 0, (1, 1)),
        (7, 0, 0, (128, 96)),
    ],
)
def test_tile_is_jpeg_of_the_right_size(
    client: FlaskClient, level: int, col: int, row: int, size: tuple[int, int]
) -> None:
    # Level 10 is full resolution (2**10 >= 1024); tiles are 254 px plus a 1 px
    # overlap on each inner side; the last column and row hold the remainder.
    response = client.get(f"/slides/tiny_files/{level}/{col}_{row}.jpeg")
    assert response.status_code == 200
    assert response.mimetype == "image/jpeg"
    assert response.data[:2] == b"\xff\xd8"
    assert Image.open(io.BytesIO(response.data)).size == size


def test_tile_shows_the_slide(client: FlaskClient) -> None:
    data = client.get("/slides/tiny_files/10/2_1.jpeg").data  # x 507..762, y 253..508
    rgb = np.asarray(Image.open(io.BytesIO(data)))
    assert rgb[100, 100].tolist() == pytest.approx([110, 40, 150], abs=12)  # (607, 353)
    assert rgb[250, 250].min() > 220  # (757, 503): background


@pytest.mark.parametrize(
    "url", ["/slides/tiny_files/11/0_0.jpeg", "/slides/tiny_files/10/9_0.jpeg"]
)
def test_tile_outside_the_pyramid_is_404(client: FlaskClient, url: str) -> None:
    assert client.get(url).status_code == 404


def test_regions_are_geojson(client: FlaskClient) -> None:
    response = client.get("/api/slides/tiny/regions")
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    data = response.get_json(force=True)
    assert data["type"] == "FeatureCollection"
    (feature,) = data["features"]
    assert feature["type"] == "Feature"
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    assert ring == REGION


def test_heatmap_geometry_matches_the_grid(client: FlaskClient) -> None:
    grid = make_grid()
    geometry = client.get("/api/slides/tiny/heatmap").get_json()
    assert geometry["shape"] == list(grid.shape)
    assert geometry["origin_l0_px"] == list(grid.cell_origin_l0)
    assert geometry["cell_size_l0_px"] == grid.cell_size_l0
    assert geometry["image_url"] == "/slides/tiny/heatmap.png"


def test_heatmap_png_has_one_square_per_cell(client: FlaskClient) -> None:
    rows, cols = make_grid().shape
    values = make_heatmap((rows, cols))
    response = client.get("/slides/tiny/heatmap.png?min_probability=0.5")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    image = Image.open(io.BytesIO(response.data))
    assert image.mode == "RGBA"
    k = image.width // cols
    assert image.size == (cols * k, rows * k)
    assert k > 1
    alpha = np.asarray(image)[k // 2 :: k, k // 2 :: k, 3]
    np.testing.assert_array_equal(alpha > 0, np.nan_to_num(values, nan=-1) >= 0.5)


def test_heatmap_png_has_the_overlay_tint(client: FlaskClient) -> None:
    rows, cols = make_grid().shape
    values = make_heatmap((rows, cols))
    image = Image.open(io.BytesIO(client.get("/slides/tiny/heatmap.png").data))
    k = image.width // cols
    rgba = np.asarray(image)[k // 2 :: k, k // 2 :: k].reshape(-1, 4).astype(int)
    flat = values.reshape(-1)
    # Transparent without a patch and below the floor, like overlay.png ...
    np.testing.assert_array_equal(
        rgba[:, 3] > 0, np.nan_to_num(flat, nan=-1) >= TINT_FLOOR
    )
    shown = np.flatnonzero(np.nan_to_num(flat, nan=-1) >= TINT_FLOOR)
    # ... in its colours, opacity rising to 255 at 1 (the page's slider scales it).
    rgb, opacity = tint(flat[shown])
    np.testing.assert_array_equal(rgba[shown, :3], rgb)
    np.testing.assert_allclose(
        rgba[shown, 3], 255 * opacity / TINT_OPACITY[1], atol=0.6
    )
    assert np.all(np.diff(rgba[shown, 3]) >= 0)  # values rise along the rows
    assert rgba[shown[-1], 3] == 255
    red = rgba[shown[-1], :3]
    assert red[0] > 150 > 60 > max(red[1], red[2])


def test_slide_page_starts_the_sliders_at_the_overlay_look(
    client: FlaskClient,
) -> None:
    html = client.get("/slides/tiny").get_data(as_text=True)
    opacity = round(100 * TINT_OPACITY[1])
    floor = round(100 * TINT_FLOOR)
    assert re.search(rf'id="heatmap-opacity"[^>]* value="{opacity}"', html)
    assert re.search(rf'id="heatmap-min" min="{floor}"[^>]* value="{floor}"', html)
    assert f"tumour probability (no tint below {TINT_FLOOR:g})" in html
    assert "transparent 20%" in html  # the colour bar: no tint below the floor
    ticks = re.findall(r'<span style="left: ([\d.]+)%">([\d.]+)</span>', html)
    assert ticks == [("0.0", "0"), ("20.0", "0.2"), ("50.0", "0.5"), ("100.0", "1")]


@pytest.mark.parametrize("query", ["min_probability=2", "min_probability=abc"])
def test_heatmap_png_rejects_bad_minimum(client: FlaskClient, query: str) -> None:
    assert client.get(f"/slides/tiny/heatmap.png?{query}").status_code == 400


def test_heatmap_value_under_a_point(client: FlaskClient) -> None:
    grid = make_grid()
    values = make_heatmap(grid.shape)
    x, y = grid.cell_to_level0([[1, 2]])[0] + grid.cell_size_l0 / 2
    found = client.get(f"/api/slides/tiny/heatmap/value?x={x}&y={y}").get_json()
    assert (found["row"], found["col"]) == (1, 2)
    assert found["probability"] == pytest.approx(values[1, 2])
    x0, y0 = grid.cell_origin_l0
    assert (
        client.get(f"/api/slides/tiny/heatmap/value?x={x0}&y={y0}").get_json()[
            "probability"
        ]
        is None
    )  # NaN cell
    outside = client.get("/api/slides/tiny/heatmap/value?x=1&y=1").get_json()
    assert outside["row"] is None
    bad = client.get("/api/slides/tiny/heatmap/value?x=nan&y=1")
    assert bad.status_code == 400
    assert "x" in bad.get_json()["error"]


@pytest.mark.parametrize(
    "url",
    [
        "/slides/nope",
        "/slides/nope.dzi",
        "/slides/nope_files/0/0_0.jpeg",
        "/api/slides/nope/summary",
        "/api/slides/nope/regions",
        "/api/slides/nope/heatmap",
        "/slides/nope/heatmap.png",
        "/api/slides/.hidden/summary",
    ],
)
def test_unknown_slide_is_404(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    if url.startswith("/api/"):
        assert url.split("/")[3] in response.get_json()["error"]


def test_missing_outputs_show_what_is_there(client: FlaskClient) -> None:
    assert (
        client.get("/api/slides/partial/summary").get_json()["max_probability"] == 0.1
    )
    assert client.get("/api/slides/partial/regions").status_code == 404
    assert client.get("/api/slides/partial/heatmap").status_code == 404
    assert client.get("/slides/partial.dzi").status_code == 404
    page = client.get("/slides/partial")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Cannot show the slide" in html
    assert "gone.tif" in html


def test_slide_page_is_self_contained(client: FlaskClient) -> None:
    response = client.get("/slides/tiny")
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    html = response.get_data(as_text=True)
    assert "/static/openseadragon/openseadragon.min.js" in html
    assert "/slides/tiny.dzi" in html
    assert "0.875" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    for path in (
        "openseadragon/openseadragon.min.js",
        "slide.js",
        "viewer.css",
        "openseadragon/images/zoomin_rest.png",
        "openseadragon/LICENSE.txt",
    ):
        static = client.get(f"/static/{path}")
        assert static.status_code == 200, path
        static.close()


def test_output_files_are_served_by_name_only(client: FlaskClient) -> None:
    response = client.get("/slides/tiny/files/overlay.png")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    response.close()
    assert (
        client.get("/slides/tiny/files/heatmap.png").status_code == 404
    )  # not written
    assert client.get("/slides/tiny/files/..%2F..%2Ftiny.tif").status_code == 404
    assert client.get("/slides/tiny/files/tiny.zarr").status_code == 404


def test_slide_paths_from_config(out_dir: Path, tmp_path: Path) -> None:
    moved = write_slide(tmp_path / "gone.tif")
    by_stem = create_app(ViewerConfig(out_dir, slides={"partial": moved})).test_client()
    assert by_stem.get("/slides/partial.dzi").status_code == 200
    by_folder = create_app(ViewerConfig(out_dir, slide_dirs=(tmp_path,))).test_client()
    assert by_folder.get("/slides/partial.dzi").status_code == 200


def test_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tile_quality"):
        ViewerConfig(tmp_path, tile_quality=0)
    with pytest.raises(ValueError, match="not a folder"):
        create_app(ViewerConfig(tmp_path / "missing"))
    empty = create_app(ViewerConfig(tmp_path)).test_client()
    assert "No slides" in empty.get("/").get_data(as_text=True)
    assert empty.get("/api/slides").get_json() == []


def test_slide_path_from_the_store_while_running(tmp_path: Path) -> None:
    # Tiled, not finished: no summary.json yet; the tiling attrs name the slide.
    slide = write_slide(tmp_path / "running.tif")
    outputs = SlideOutputs.for_slide(tmp_path / "out", slide)
    group = zarr.open_group(str(outputs.store), mode="w")
    group.attrs["tiling"] = {"slide": {"path": str(slide), "name": slide.name}}
    client = create_app(ViewerConfig(tmp_path / "out")).test_client()
    (entry,) = client.get("/api/slides").get_json()
    assert entry["stem"] == "running"
    assert entry["slide_found"]
    assert not entry["has_summary"]
    assert client.get("/slides/running.dzi").status_code == 200
    assert client.get("/api/slides/running/summary").status_code == 404
    assert "run not finished" in client.get("/").get_data(as_text=True)


def _ncrf_truth(folder: Path, name: str) -> Path:
    lesions = json.loads((ANNOTATIONS / "ncrf_lesions.json").read_text())["lesions"]
    positive = lesions[0]["positive"]
    path = folder / name
    path.write_text(json.dumps({"positive": positive, "negative": []}))
    return path


def test_truth_from_ncrf_json_in_a_folder(out_dir: Path, tmp_path: Path) -> None:
    _ncrf_truth(tmp_path, f"{STEM}.json")
    client = create_app(ViewerConfig(out_dir, annotations=tmp_path)).test_client()
    collection = client.get(f"/api/slides/{STEM}/truth").get_json(force=True)
    assert collection["source"] == f"{STEM}.json"
    assert len(collection["features"]) >= 1
    assert collection["features"][0]["properties"]["area_l0_px2"] > 0
    assert client.get("/api/slides/partial/truth").status_code == 404
    assert "Ground truth" in client.get(f"/slides/{STEM}").get_data(as_text=True)


def test_a_truth_file_named_after_no_slide(out_dir: Path, tmp_path: Path) -> None:
    other = _ncrf_truth(tmp_path, "someone_else.json")
    client = create_app(ViewerConfig(out_dir, annotations=other)).test_client()
    # Two slides in the folder: the file belongs to neither.
    assert client.get(f"/api/slides/{STEM}/truth").status_code == 404
    single = tmp_path / "single"
    single.mkdir()
    (single / STEM).symlink_to(out_dir / STEM, target_is_directory=True)
    client = create_app(ViewerConfig(single, annotations=other)).test_client()
    assert client.get(f"/api/slides/{STEM}/truth").status_code == 200


def test_missing_annotations_are_refused(out_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="annotations"):
        create_app(ViewerConfig(out_dir, annotations=tmp_path / "missing.xml"))


def test_slide_metadata_and_neighbours(client: FlaskClient) -> None:
    metadata = client.get(f"/api/slides/{STEM}/metadata").get_json()
    assert metadata["size_l0_px"] == [WIDTH_PX, HEIGHT_PX]
    assert metadata["levels"] == 2
    assert metadata["mpp"] == pytest.approx(0.243, abs=1e-3)
    assert metadata["associated_images"] == []
    assert client.get(f"/slides/{STEM}/associated/label.png").status_code == 404
    html = client.get(f"/slides/{STEM}").get_data(as_text=True)
    assert "1 of 2" in html
    assert 'id="next-slide" href="/slides/partial"' in html
    assert 'id="previous-slide"' not in html
    assert "1024 \u00d7 768 px" in html
    partial = client.get("/slides/partial").get_data(as_text=True)
    assert 'id="previous-slide" href="/slides/tiny"' in partial


def test_foreign_host_is_refused_by_the_app(client: FlaskClient) -> None:
    assert (
        client.get("/api/slides", headers={"Host": "evil.example"}).status_code == 403
    )
    assert client.get("/api/slides", headers={"Host": "localhost:1"}).status_code == 200


def test_slides_are_listed_by_slide_probability_not_the_highest_cell(
    tmp_path: Path,
) -> None:
    """A normal slide with one confident cell comes after a tumour slide (issue 30)."""
    import json

    from wsi.store.layout import SlideOutputs

    out = tmp_path / "out"
    for stem, slide_p, cell_p in (("normal", 0.05, 0.99), ("tumour", 0.97, 0.98)):
        outputs = SlideOutputs(out / stem)
        outputs.folder.mkdir(parents=True)
        outputs.summary_json.write_text(
            json.dumps({"slide_probability": slide_p, "max_probability": cell_p})
        )
    client = create_app(ViewerConfig(out)).test_client()
    slides = client.get("/api/slides").get_json()
    assert [s["stem"] for s in slides] == ["tumour", "normal"]
    assert slides[1]["slide_probability"] == 0.05
    assert slides[1]["max_probability"] == 0.99
    html = client.get("/").get_data(as_text=True)
    assert "Slide probability" in html
    assert html.index("0.970") < html.index("0.050")


def test_issue_30_a_damaged_heatmap_is_not_a_server_error(tmp_path: Path) -> None:
    """A heatmap chunk that fails to decompress: pages answer, without the heatmap."""
    out = build_out_dir(tmp_path)
    chunks = [
        p
        for p in (out / "tiny" / "tiny.zarr" / "heatmap").rglob("*")
        if p.is_file() and p.name != "zarr.json"
    ]
    assert chunks
    for chunk in chunks:
        chunk.write_bytes(b"\x00garbage")
    client = create_app(ViewerConfig(out)).test_client()
    assert client.get("/").status_code == 200
    assert client.get("/slides/tiny").status_code == 200
    assert client.get("/api/slides/tiny/heatmap").status_code < 500
    assert client.get("/slides/tiny/heatmap.png").status_code < 500
