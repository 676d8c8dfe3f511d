"""The local web viewer: a Flask app over an output folder (``wsi-heatmap view OUT``).

Pages
    ``/`` the slides with their scores; ``/slides/<stem>`` one slide in OpenSeadragon
    with the heatmap (toggle, opacity, minimum probability) and the tumour polygons.
Deep Zoom
    ``/slides/<stem>.dzi`` and ``/slides/<stem>_files/<level>/<col>_<row>.jpeg``.
Images and files
    ``/slides/<stem>/heatmap.png`` (RGBA, one square per heatmap cell; transparent
    without tissue or below ``?min_probability=``) and ``/slides/<stem>/files/<name>``
    (the files `wsi.store.layout.SlideOutputs` names).
JSON
    ``/api/slides`` (by slide probability), ``/api/slides/<stem>/summary``,
    ``/api/slides/<stem>/regions`` (the GeoJSON), ``/api/slides/<stem>/heatmap``
    (geometry), ``/api/slides/<stem>/heatmap/value?x=&y=`` (level-0 pixels) and the
    review routes of `wsi.viewer._review` (truth outlines, slide metadata, label
    and macro images).

Everything the pages load comes from this app (OpenSeadragon is vendored under
``static/``) and the pages forbid other origins with a Content-Security-Policy.
Requests whose ``Host`` is not a loopback name (or a host in
``ViewerConfig.allowed_hosts``) are refused with 403: a guard against DNS
rebinding. Serve it with `wsi.viewer.serve.ViewerServer` (waitress).
"""

from __future__ import annotations

import io
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from types import MappingProxyType

import flask
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden, HTTPException, NotFound
from werkzeug.routing import BaseConverter

from wsi.errors import SlideReadError
from wsi.store.layout import SlideOutputs
from wsi.viewer._catalog import (
    HeatmapLayer,
    SlideEntry,
    by_probability,
    find_slide,
    find_slides,
    heatmap_legend,
    heatmap_mtime_ns,
    read_heatmap,
    read_regions,
    render_heatmap_rgba,
)
from wsi.viewer._hosts import host_allowed
from wsi.viewer._tiles import DeepZoomSlide, SlideCache

__all__ = ["ViewerConfig", "create_app"]

#: Why a slide has no heatmap layer, and the fix (one message for every route).
NO_HEATMAP = (
    "no readable heatmap (not stitched yet, or its store is damaged: run "
    "'wsi-heatmap stitch' on the slide's folder)"
)
logger = logging.getLogger(__name__)

_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
#: Downloadable output files: name -> `SlideOutputs` property.
_FILES = {
    "overlay.png": "overlay_png",
    "heatmap.png": "heatmap_png",
    "tissue.png": "tissue_png",
    "heatmap.tif": "heatmap_tif",
    "tumor.geojson": "geojson",
    "tumor.xml": "asap_xml",
    "detections.csv": "detections_csv",
    "summary.json": "summary_json",
}


@dataclass(frozen=True, slots=True)
class ViewerConfig:
    """What the viewer serves and how.

    Parameters
    ----------
    out_dir
        An output folder of ``wsi-heatmap``: one ``<stem>/`` folder per slide.
    slides
        Stem to slide file, for slides whose outputs do not record a usable path;
        overrides the path in ``summary.json``.
    slide_dirs
        Folders searched by file name for a slide whose recorded path is gone.
    tile_px, overlap_px
        Deep Zoom tile side and overlap in pixels (tiles are ``tile_px + 2 *
        overlap_px`` a side inside the image).
    tile_quality
        JPEG quality of the tiles, 1 to 100.
    max_open_slides
        Slides kept open at once.
    annotations
        Ground truth to draw beside the prediction: a folder of ``<stem>.xml`` /
        ``.geojson`` / ``.json`` files or one file (see `wsi.viewer._truth`).
    allowed_hosts
        ``Host`` names answered besides loopback ones (the ``--host`` served on).

    Examples
    --------
    >>> ViewerConfig(Path("out")).tile_px
    254
    """

    out_dir: Path
    _: KW_ONLY
    slides: Mapping[str, Path] | None = None
    slide_dirs: tuple[Path, ...] = ()
    tile_px: int = 254
    overlap_px: int = 1
    tile_quality: int = 75
    max_open_slides: int = 8
    annotations: Path | None = None
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Normalise the paths and validate the settings."""
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.annotations is not None:
            object.__setattr__(self, "annotations", Path(self.annotations))
        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        if self.slides is not None:
            slides = {str(k): Path(v) for k, v in self.slides.items()}
            object.__setattr__(self, "slides", MappingProxyType(slides))
        object.__setattr__(self, "slide_dirs", tuple(Path(p) for p in self.slide_dirs))
        if self.tile_px < 1 or self.overlap_px < 0:
            raise ValueError(
                f"tile_px must be >= 1 and overlap_px >= 0, got {self.tile_px} and "
                f"{self.overlap_px}"
            )
        if not 1 <= self.tile_quality <= 100:
            raise ValueError(
                f"tile_quality must be within 1..100, got {self.tile_quality}"
            )
        if self.max_open_slides < 1:
            raise ValueError(
                f"max_open_slides must be >= 1, got {self.max_open_slides}"
            )


class _State:
    """What the routes share: the config, open slides and cached heatmaps."""

    def __init__(self, config: ViewerConfig) -> None:
        self.config = config
        self.slides = SlideCache(
            max_open=config.max_open_slides,
            tile_px=config.tile_px,
            overlap_px=config.overlap_px,
            tile_quality=config.tile_quality,
        )
        self._heatmaps: dict[str, tuple[int, HeatmapLayer | None]] = {}
        self._lock = threading.Lock()

    def entries(self) -> dict[str, SlideEntry]:
        """Scan the output folder for slides (on every call: runs add some)."""
        return find_slides(
            self.config.out_dir,
            slides=self.config.slides,
            slide_dirs=self.config.slide_dirs,
        )

    def entry(self, stem: str) -> SlideEntry:
        """Return one slide, or raise a 404."""
        config = self.config
        found = find_slide(
            config.out_dir, stem, slides=config.slides, slide_dirs=config.slide_dirs
        )
        if found is None:
            raise NotFound(f"no slide {stem!r} in {self.config.out_dir}")
        return found

    def open_slide(self, stem: str) -> DeepZoomSlide:
        """The open slide of ``stem``, or a 404 (no recorded path, unreadable)."""
        entry = self.entry(stem)
        if entry.slide_path is None:
            raise NotFound(f"{stem}: the outputs record no slide path")
        try:
            return self.slides.get(entry.slide_path)
        except SlideReadError as err:
            raise NotFound(str(err)) from err

    def truth_file(self, stem: str) -> Path | None:
        """The ground-truth file of a slide (None without ``annotations``)."""
        from wsi.viewer._truth import find_truth_file

        if self.config.annotations is None:
            return None
        return find_truth_file(
            self.config.annotations, stem, all_stems=list(self.entries())
        )

    def heatmap(self, outputs: SlideOutputs) -> HeatmapLayer | None:
        """Return the slide's heatmap, read again only when the store's copy changes."""
        mtime = heatmap_mtime_ns(outputs)
        with self._lock:
            cached = self._heatmaps.get(outputs.stem)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        layer = read_heatmap(outputs)
        with self._lock:
            self._heatmaps[outputs.stem] = (mtime, layer)
        return layer


def create_app(config: ViewerConfig) -> flask.Flask:
    """Build the viewer's Flask app for an output folder.

    Parameters
    ----------
    config
        The output folder and tile settings.

    Returns
    -------
    flask.Flask
        Serve it locally with ``app.run(host="127.0.0.1")``; test it with
        ``app.test_client()``.

    Raises
    ------
    ValueError
        If ``config.out_dir`` is not a folder, or ``config.annotations`` does not
        exist.
    """
    from wsi.viewer._review import add_review_routes

    if not config.out_dir.is_dir():
        raise ValueError(
            f"out_dir {config.out_dir} is not a folder; pass the `out_dir` folder of a "
            "wsi-heatmap run"
        )
    if config.annotations is not None and not config.annotations.exists():
        raise ValueError(
            f"annotations {config.annotations} does not exist; pass a truth file "
            "(.xml, .geojson, .json) or a folder of them named after the slides"
        )
    app = flask.Flask(__name__, static_folder="static", template_folder="templates")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.converters["digits"] = _DigitsConverter
    state = _State(config)
    app.extensions["wsi_viewer"] = state

    @app.before_request
    def _check_host() -> None:
        headers = flask.request.headers.getlist("Host")
        header = headers[0] if len(headers) == 1 else None  # two Hosts: refused
        if not host_allowed(header, config.allowed_hosts):
            logger.warning("refused a request for Host %r", header)
            raise Forbidden(
                f"this viewer answers only for localhost, not Host {header!r}"
            )

    _add_pages(app, state)
    _add_tiles(app, state)
    _add_api(app, state)
    add_review_routes(app, state)

    @app.after_request
    def _headers(response: flask.Response) -> flask.Response:
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> ResponseReturnValue:
        if flask.request.path.startswith("/api/"):
            return flask.jsonify(error=error.description), error.code or 500
        return error

    return app


def _add_pages(app: flask.Flask, state: _State) -> None:
    @app.get("/")
    def index() -> str:
        rows = [entry.overview() for entry in by_probability(state.entries())]
        return flask.render_template(
            "index.html", slides=rows, out_dir=state.config.out_dir
        )

    @app.get("/slides/<stem>")
    def slide_page(stem: str) -> str:
        entry = state.entry(stem)
        mpp, error, metadata = None, None, None
        if entry.slide_path is None:
            error = "the outputs record no slide path"
        else:
            try:
                opened = state.slides.get(entry.slide_path)
                mpp, metadata = opened.mpp, opened.metadata()
            except SlideReadError as err:
                error = str(err)
        order = [e.stem for e in by_probability(state.entries())]
        here = order.index(stem) if stem in order else -1
        neighbours = {
            "previous": order[here - 1] if here > 0 else None,
            "next": order[here + 1] if 0 <= here < len(order) - 1 else None,
        }
        truth = state.truth_file(stem)
        page = {
            "stem": stem,
            "slide_ok": error is None,
            "mpp": mpp,
            "dzi_url": flask.url_for("dzi", stem=stem),
            "heatmap_url": flask.url_for("api_heatmap", stem=stem),
            "regions_url": flask.url_for("api_regions", stem=stem),
            "value_url": flask.url_for("api_heatmap_value", stem=stem),
            "truth_url": None
            if truth is None
            else flask.url_for("api_truth", stem=stem),
            "objective_power": (metadata or {}).get("objective_power"),
            "osd_images": flask.url_for("static", filename="openseadragon/images/"),
        }
        files = [name for name in _FILES if _output_file(entry.outputs, name)]
        return flask.render_template(
            "slide.html",
            page=page,
            overview=entry.overview(),
            summary=entry.summary or {},
            slide_error=error,
            metadata=metadata,
            neighbours=neighbours,
            position=(here + 1, len(order)),
            truth_file=None if truth is None else truth.name,
            files=files,
            legend=heatmap_legend(),
        )

    @app.get("/slides/<stem>/files/<name>")
    def output_file(stem: str, name: str) -> flask.Response:
        entry = state.entry(stem)
        path = _output_file(entry.outputs, name)
        if path is None:
            raise NotFound(f"{stem} has no {name}")
        return flask.send_file(path, max_age=0)


def _add_tiles(app: flask.Flask, state: _State) -> None:
    @app.get("/slides/<stem>.dzi")
    def dzi(stem: str) -> flask.Response:
        return flask.Response(state.open_slide(stem).dzi(), mimetype="application/xml")

    @app.get("/slides/<stem>_files/<digits:level>/<digits:col>_<digits:row>.jpeg")
    def tile(stem: str, level: int, col: int, row: int) -> flask.Response:
        slide = state.open_slide(stem)
        try:
            data = slide.tile_jpeg(level, col, row)
        except ValueError as err:
            raise NotFound(f"{stem}: no tile {level}/{col}_{row} ({err})") from err
        response = flask.Response(data, mimetype="image/jpeg")
        response.cache_control.max_age = 3600
        return response

    @app.get("/slides/<stem>/heatmap.png")
    def heatmap_png(stem: str) -> flask.Response:
        layer = state.heatmap(state.entry(stem).outputs)
        if layer is None:
            raise NotFound(f"{stem}: {NO_HEATMAP}")
        minimum = _float_arg("min_probability", default=0.0)
        if not 0.0 <= minimum <= 1.0:
            flask.abort(400, f"min_probability must be within [0, 1], got {minimum}")
        from PIL import Image

        from wsi.heatmap._png import save_png

        buffer = io.BytesIO()
        rgba = render_heatmap_rgba(layer.values, min_probability=minimum)
        save_png(Image.fromarray(rgba, mode="RGBA"), buffer)
        response = flask.Response(buffer.getvalue(), mimetype="image/png")
        response.cache_control.no_cache = True
        return response


def _add_api(app: flask.Flask, state: _State) -> None:
    @app.get("/api/slides")
    def api_slides() -> flask.Response:
        return flask.jsonify(
            [entry.overview() for entry in by_probability(state.entries())]
        )

    @app.get("/api/slides/<stem>/summary")
    def api_summary(stem: str) -> flask.Response:
        entry = state.entry(stem)
        if entry.summary is None:
            raise NotFound(f"{stem}: no summary.json yet (the run has not finished)")
        return flask.jsonify(dict(entry.summary))

    @app.get("/api/slides/<stem>/regions")
    def api_regions(stem: str) -> flask.Response:
        regions = read_regions(state.entry(stem).outputs)
        if regions is None:
            raise NotFound(
                f"{stem}: no tumor.geojson yet (the export stage has not run)"
            )
        response = flask.jsonify(regions)
        response.mimetype = "application/geo+json"
        return response

    @app.get("/api/slides/<stem>/heatmap")
    def api_heatmap(stem: str) -> flask.Response:
        layer = state.heatmap(state.entry(stem).outputs)
        if layer is None:
            raise NotFound(f"{stem}: {NO_HEATMAP}")
        return flask.jsonify(
            layer.geometry() | {"image_url": flask.url_for("heatmap_png", stem=stem)}
        )

    @app.get("/api/slides/<stem>/heatmap/value")
    def api_heatmap_value(stem: str) -> flask.Response:
        layer = state.heatmap(state.entry(stem).outputs)
        if layer is None:
            raise NotFound(f"{stem}: {NO_HEATMAP}")
        found = layer.value_at(x := _float_arg("x"), y := _float_arg("y"))
        if found is None:
            return flask.jsonify(x=x, y=y, row=None, col=None, probability=None)
        row, col, probability = found
        return flask.jsonify(x=x, y=y, row=row, col=col, probability=probability)


class _DigitsConverter(BaseConverter):
    """A non-negative integer in ASCII digits only (``int`` also takes ``"١٢"``)."""

    regex = r"[0-9]{1,9}"

    def to_python(self, value: str) -> int:
        """The number."""
        return int(value)

    def to_url(self, value: object) -> str:
        """The digits."""
        return str(int(str(value)))


def _output_file(outputs: SlideOutputs, name: str) -> Path | None:
    """Return the path of a downloadable output file if it exists, else None."""
    field = _FILES.get(name)
    path = Path(getattr(outputs, field)) if field else None
    return path if path is not None and path.is_file() else None


def _float_arg(name: str, *, default: float | None = None) -> float:
    """Parse a finite number from the query string; abort with a 400 naming it."""
    text = flask.request.args.get(name)
    if text is None and default is not None:
        return default
    try:
        value = float(text if text is not None else "")
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        flask.abort(
            400, f"query parameter {name} must be a finite number, got {text!r}"
        )
    return value
