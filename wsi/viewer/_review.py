"""Review routes of the viewer: ground-truth outlines, slide metadata, label images.

``/api/slides/<stem>/truth``
    The truth polygons (``--annotations``) as a GeoJSON FeatureCollection.
``/api/slides/<stem>/metadata``
    Format, size, levels, um/px, objective power, associated image names.
``/slides/<stem>/associated/<name>.png``
    The slide's label, macro or thumbnail image (at most 640 px a side).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flask
from werkzeug.exceptions import NotFound

from wsi.errors import AnnotationError

if TYPE_CHECKING:
    from wsi.viewer.app import _State

__all__ = ["add_review_routes"]

logger = logging.getLogger(__name__)

_truth_cache: dict[tuple[Path, int], dict[str, Any]] = {}
_truth_lock = threading.Lock()


def _truth_collection(path: Path) -> dict[str, Any]:
    """Read a truth file once per version of it (keyed by path and mtime)."""
    from wsi.viewer._truth import read_truth_polygons, truth_feature_collection

    key = (path.resolve(), os.stat(path).st_mtime_ns)
    with _truth_lock:
        cached = _truth_cache.get(key)
    if cached is not None:
        return cached
    collection = truth_feature_collection(read_truth_polygons(path), source=path)
    with _truth_lock:
        _truth_cache[key] = collection
    return collection


def add_review_routes(app: flask.Flask, state: _State) -> None:
    """Add the truth, metadata and associated-image routes to the viewer app."""

    @app.get("/api/slides/<stem>/truth")
    def api_truth(stem: str) -> flask.Response:
        state.entry(stem)  # 404 for an unknown slide
        path = state.truth_file(stem)
        if path is None:
            raise NotFound(
                f"{stem}: no ground truth (pass `annotations` with a file or a folder "
                f"holding {stem}.xml, {stem}.geojson or {stem}.json)"
            )
        try:
            collection = _truth_collection(path)
        except (AnnotationError, OSError) as err:
            logger.warning("%s", err)
            flask.abort(422, str(err))
        response = flask.jsonify(collection)
        response.mimetype = "application/geo+json"
        return response

    @app.get("/api/slides/<stem>/metadata")
    def api_metadata(stem: str) -> flask.Response:
        return flask.jsonify(state.open_slide(stem).metadata())

    @app.get("/slides/<stem>/associated/<name>.png")
    def associated_image(stem: str, name: str) -> flask.Response:
        slide = state.open_slide(stem)
        try:
            data = slide.associated_png(name)
        except KeyError:
            raise NotFound(f"{stem} has no {name!r} image") from None
        return flask.Response(data, mimetype="image/png")
