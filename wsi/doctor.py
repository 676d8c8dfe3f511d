"""``wsi-heatmap doctor``: is everything installed and working?"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["Check", "run_checks"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome."""

    name: str
    ok: bool
    detail: str


def _versions() -> str:
    names = ("numpy", "zarr", "dask", "distributed", "scikit-image", "shapely", "tifffile")
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} MISSING")
    return ", ".join(parts)


def _check_openslide() -> str:
    import openslide

    return f"library {openslide.__library_version__}, python binding {openslide.__version__}"


def _check_tensorflow() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    where = f"{len(gpus)} GPU(s): {', '.join(g.name for g in gpus)}" if gpus else "no GPU, CPU only"
    return f"tensorflow {tf.__version__}, keras {metadata.version('keras')}; {where}"


def _check_model() -> str:
    from model.card import read_card
    from model.predict import bundled_model_path

    path = bundled_model_path()
    card = read_card(path)
    auc = f"{card.val_auc:.4f}" if card.val_auc is not None else "n/a"
    return f"{path.name}: {card.architecture}, {card.mpp} um/px, validation AUC {auc}"


def _check_slide_end_to_end() -> str:
    from wsi.reader import open_slide
    from wsi.synthetic import write_pyramid_tiff
    from wsi.tiling import TilingParams, tile_slide
    from wsi.tissue import TissueParams

    with tempfile.TemporaryDirectory() as tmp:
        rgb = np.full((1536, 1536, 3), 244, np.uint8)
        yy, xx = np.mgrid[:1536, :1536]
        rgb[(yy - 768) ** 2 + (xx - 768) ** 2 < 500**2] = (190, 90, 170)
        path = write_pyramid_tiff(Path(tmp) / "doctor.tif", rgb, mpp=0.243)
        with open_slide(path) as slide:
            levels = slide.geometry.level_dimensions
        result = tile_slide(path, Path(tmp) / "doctor.zarr", tiling=TilingParams(),
                            tissue=TissueParams())
        if result.n_patches == 0:
            raise RuntimeError("a slide with a tissue disc gave no patches")
        return f"wrote, opened ({len(levels)} levels) and tiled a slide: {result.n_patches} patches"


def run_checks() -> list[Check]:
    """Run every check; a failing one records its error and the rest go on."""
    checks: list[tuple[str, Callable[[], str]]] = [
        ("python packages", _versions),
        ("openslide", _check_openslide),
        ("tensorflow", _check_tensorflow),
        ("bundled model", _check_model),
        ("slide end to end", _check_slide_end_to_end),
    ]
    results = []
    for name, check in checks:
        try:
            detail = check()
            ok = "MISSING" not in detail
        except Exception as err:  # noqa: BLE001 - a check reports any failure as text
            logger.debug("check %s failed", name, exc_info=True)
            detail, ok = f"{type(err).__name__}: {err}", False
        results.append(Check(name, ok, detail))
    return results
