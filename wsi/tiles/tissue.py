"""Tissue detection: a low-resolution thumbnail in, a boolean tissue mask out.

The mask lives on the patch grid's own lattice: one mask pixel is ``MASK_CELL_PX``
target pixels (7.8 um at PCam's 0.972 um/px), so a patch's 32 x 32 centre is 4 x 4
mask pixels. :func:`tissue_mask_from_rgb` is pure; :func:`compute_tissue_mask` reads
the thumbnail from a slide in bands, never a whole full-resolution level.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu

from wsi.errors import OutputError
from wsi.geometry import PCAM_MPP, TileGrid
from wsi.heatmap._png import save_png
from wsi.progress import Progress, ensure_progress
from wsi.slide.reader import Slide
from wsi.store.slide_store import TissueMask  # the tissue section as stored
from wsi.tiles._tissue_colour import STRIP_PIXELS, colour_maps

__all__ = [
    "TissueMask",
    "TissueParams",
    "compute_tissue_mask",
    "tissue_mask_from_rgb",
    "tissue_png",
]

logger = logging.getLogger(__name__)

# Level pixels read per band of the thumbnail (bounds memory; about 64 MB RGBA).
_THUMBNAIL_BAND_PIXELS: Final = 16_000_000
_OTSU_BINS: Final = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class TissueParams:
    """Settings of the tissue detector.

    Parameters
    ----------
    blur_sigma_px
        Gaussian blur before thresholding, in mask pixels (7.8 um at PCam scale).
    min_saturation
        HSV saturation below this is background whatever Otsu says (PCam's 0.07).
    max_saturation_threshold
        Upper bound of the Otsu threshold, so that a slide covered in tissue is not
        split between pale and dark tissue.
    min_value
        HSV value (brightness) below this is not tissue: black pen, scanner borders.
    min_object_um2
        Tissue pieces smaller than this area are dropped (dust, debris).
    min_hole_um2
        Holes in tissue smaller than this area are filled (fat cells, tears).
    exclude_pen
        Drop green, blue and red marker ink.
    """

    blur_sigma_px: float = 1.0
    min_saturation: float = 0.07
    max_saturation_threshold: float = 0.10
    min_value: float = 0.2
    min_object_um2: float = 10_000.0
    min_hole_um2: float = 10_000.0
    exclude_pen: bool = True

    def __post_init__(self) -> None:
        if not self.blur_sigma_px >= 0:
            raise ValueError(f"blur_sigma_px must be >= 0, got {self.blur_sigma_px}")
        for name in ("min_saturation", "max_saturation_threshold", "min_value"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.max_saturation_threshold < self.min_saturation:
            raise ValueError(
                f"max_saturation_threshold={self.max_saturation_threshold} must not be "
                f"below min_saturation={self.min_saturation}"
            )
        for name in ("min_object_um2", "min_hole_um2"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def tissue_mask_from_rgb(
    rgb: npt.NDArray[np.uint8], *, mpp: float, params: TissueParams, workers: int = 1
) -> npt.NDArray[np.bool_]:
    """Find tissue in an RGB thumbnail.

    Parameters
    ----------
    rgb
        ``uint8[H, W, 3]`` thumbnail (``[H, W, 4]`` RGBA: alpha is ignored).
    mpp
        Microns per thumbnail pixel (for the areas in ``params``).
    params
        Detector settings.
    workers
        Threads for the colour conversion (the mask does not depend on it).

    Returns
    -------
    numpy.ndarray
        ``bool[H, W]``, True on tissue.

    Notes
    -----
    1. Blur RGB with ``blur_sigma_px``; convert to HSV.
    2. Pen ink (green/blue hues 70-250 deg; red 345-20 deg with saturation above
       0.25; any red-purple above 0.75), grown by twice the blur, and dark pixels
       (value < ``min_value``) are excluded.
    3. Tissue is saturation >= ``t`` with ``t`` Otsu's threshold over the remaining
       pixels, clipped to ``[min_saturation, max_saturation_threshold]``.
    4. Holes smaller than ``min_hole_um2`` are filled, pieces smaller than
       ``min_object_um2`` removed (areas converted with ``mpp``).

    Examples
    --------
    >>> rgb = np.full((40, 40, 3), 245, np.uint8)
    >>> rgb[10:30, 10:30] = (200, 120, 180)          # an H&E-pink square
    >>> mask = tissue_mask_from_rgb(rgb, mpp=8.0, params=TissueParams())
    >>> bool(mask[12:28, 12:28].all()), bool(mask[:5].any())
    (True, False)
    """
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
        raise ValueError(
            f"rgb must be uint8 [H, W, 3], got {rgb.dtype} {tuple(rgb.shape)}"
        )
    if not mpp > 0:
        raise ValueError(f"mpp must be positive, got {mpp}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        return np.zeros(rgb.shape[:2], dtype=bool)
    sat, dark, pen = colour_maps(
        rgb[..., :3],
        sigma_px=params.blur_sigma_px,
        min_value=params.min_value,
        workers=workers,
    )
    excluded = dark
    if params.exclude_pen and pen.any():
        # Grow ink by the blur's reach, so that its faded rim does not pass as tissue.
        reach = max(1, math.ceil(2 * params.blur_sigma_px))
        excluded |= ndimage.binary_dilation(pen, iterations=reach)
    threshold = _saturation_threshold(sat, excluded, params)
    mask = (sat >= threshold) & ~excluded
    px_area_um2 = mpp * mpp
    mask = _fill_small_holes(mask, max_px=params.min_hole_um2 / px_area_um2)
    mask &= ~excluded
    mask = _remove_small_objects(mask, max_px=params.min_object_um2 / px_area_um2)
    logger.debug(
        "tissue threshold %.3f, %.1f%% tissue, %.1f%% excluded as pen/dark",
        threshold,
        100 * mask.mean(),
        100 * excluded.mean(),
    )
    return mask


def _saturation_threshold(
    sat: npt.NDArray[np.float32], excluded: npt.NDArray[np.bool_], params: TissueParams
) -> float:
    """Otsu's threshold of the saturation of the pixels not excluded, clipped."""
    counts = np.zeros(_OTSU_BINS, np.int64)
    rows = max(1, STRIP_PIXELS // max(sat.shape[1], 1))
    for top in range(0, sat.shape[0], rows):
        values = sat[top : top + rows][~excluded[top : top + rows]]
        bins = np.minimum((values * _OTSU_BINS).astype(np.int64), _OTSU_BINS - 1)
        counts += np.bincount(bins, minlength=_OTSU_BINS)
    if np.count_nonzero(counts) < 2:
        return params.min_saturation
    centres = (np.arange(_OTSU_BINS) + 0.5) / _OTSU_BINS
    otsu = float(threshold_otsu(hist=(counts, centres)))  # type: ignore[no-untyped-call]
    return min(max(otsu, params.min_saturation), params.max_saturation_threshold)


def _remove_small_objects(
    mask: npt.NDArray[np.bool_], *, max_px: float
) -> npt.NDArray[np.bool_]:
    """Drop 8-connected pieces of ``max_px`` pixels or fewer."""
    if max_px < 1 or not mask.any():
        return mask
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel())
    keep = sizes > max_px
    keep[0] = False
    kept: npt.NDArray[np.bool_] = keep[labels]
    return kept


def _fill_small_holes(
    mask: npt.NDArray[np.bool_], *, max_px: float
) -> npt.NDArray[np.bool_]:
    """Fill holes: background pieces of ``max_px`` pixels or fewer (4-connected).

    Background touching the border is never a hole.
    """
    if max_px < 1 or mask.all():
        return mask
    labels, _ = ndimage.label(~mask)
    sizes = np.bincount(labels.ravel())
    fill = sizes <= max_px
    fill[0] = False
    border = np.unique(
        np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    )
    fill[border] = False
    filled: npt.NDArray[np.bool_] = mask | fill[labels]
    return filled


def compute_tissue_mask(
    slide: Slide,
    *,
    grid_mpp: float = PCAM_MPP,
    params: TissueParams,
    progress: Progress | None = None,
    workers: int = 1,
) -> TissueMask:
    """Read a thumbnail aligned with the patch grid and find tissue in it.

    Parameters
    ----------
    slide
        An open slide.
    grid_mpp
        Resolution of the patch grid (um/px); the mask has ``MASK_CELL_PX`` grid
        pixels per mask pixel.
    params
        Detector settings.
    progress
        Receives one unit per band read.
    workers
        Threads for the colour conversion (the mask does not depend on it).

    Returns
    -------
    TissueMask
        Mask and thumbnail of shape ``TileGrid(...).mask_shape``.

    Raises
    ------
    SlideReadError
        The slide's pixels cannot be decoded.
    """
    grid = TileGrid(geometry=slide.geometry, mpp=grid_mpp)
    plan = grid.mask_plan
    rows, cols = grid.mask_shape
    level_px_per_row = max(1.0, cols * plan.resample_factor**2)
    band_rows = max(1, int(_THUMBNAIL_BAND_PIXELS // level_px_per_row))
    n_bands = math.ceil(rows / band_rows)
    thumbnail = np.empty((rows, cols, 3), dtype=np.uint8)
    bar = ensure_progress(progress)
    bar.start(n_bands, f"tissue mask {slide.path.name}")
    try:
        for y in range(0, rows, band_rows):
            height = min(band_rows, rows - y)
            thumbnail[y : y + height] = slide.read_target(
                plan, x_px=0, y_px=y, width_px=cols, height_px=height
            )
            bar.advance(1)
    finally:
        bar.close()
    mpp = plan.effective_mpp
    mask = tissue_mask_from_rgb(thumbnail, mpp=mpp, params=params, workers=workers)
    logger.info(
        "%s: tissue mask %dx%d at %.2f um/px from level %d, %.1f%% tissue",
        slide.path.name,
        cols,
        rows,
        mpp,
        plan.level,
        100 * mask.mean(),
    )
    return TissueMask(
        mask=mask,
        thumbnail=thumbnail,
        mpp=mpp,
        downsample=plan.downsample,
        level=plan.level,
    )


def tissue_png(mask: TissueMask, path: Path) -> None:
    """Write a viewable PNG: the thumbnail, background washed out, tissue outlined.

    Parameters
    ----------
    mask
        The mask to show.
    path
        The PNG file to write.

    Raises
    ------
    OutputError
        ``path`` cannot be written.
    """
    tissue = mask.mask
    # Background washed out to 35% of itself over white, through a 256-entry table.
    washed = (np.float32(0.35) * np.arange(256, dtype=np.float32) + 165.75).astype(
        np.uint8
    )
    out = np.where(tissue[..., None], mask.thumbnail, washed[mask.thumbnail])
    edge = tissue & ~ndimage.binary_erosion(tissue, border_value=0)
    edge = ndimage.binary_dilation(edge, iterations=max(1, min(tissue.shape) // 400))
    out[edge] = (0, 160, 60)
    image = Image.fromarray(out)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(image, path)
    except OSError as err:
        raise OutputError(
            f"cannot write {path}: {err.strerror or err}; choose a writable folder"
        ) from err
