"""Lesion candidates at every confidence: peaks of a smoothed heatmap, NMS in microns.

The Camelyon16 FROC protocol sweeps a threshold over the candidates' probabilities, so
``detections.csv`` should hold candidates at every confidence, ranked so that true
lesions come before false ones; several candidates in one lesion count once, every
candidate outside a lesion is a false positive. Here:

1. The heatmap is smoothed with a Gaussian of ``smooth_sigma_um`` (normalised over
   tissue cells, so cells without a patch neither pull values down nor count), which
   turns a lone high cell (a hard normal patch) into a low peak and a cluster of
   tumour cells (a lesion) into a high one.
2. Candidates are the local maxima of the smoothed map (a maximum filter over a disk
   of ``nms_radius_um``), then a greedy non-maximum suppression by level-0 distance:
   most likely first, a candidate within ``nms_radius_um`` of a kept one is dropped.
3. A candidate's probability is the smoothed value at its cell; candidates below
   ``min_probability`` are dropped, at most ``max_candidates`` are kept.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import cKDTree

from wsi.geometry import TileGrid, check_heatmap

__all__ = [
    "Candidate",
    "DetectionParams",
    "cell_size_um",
    "lesion_candidates",
    "smooth_heatmap",
    "suppress_near",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectionParams:
    """How lesion candidates (``detections.csv``) are found.

    Parameters
    ----------
    smooth_sigma_um
        Standard deviation of the Gaussian that smooths the heatmap before peaks are
        taken, in microns (0: the raw heatmap).
    nms_radius_um
        Two candidates are at least this far apart (level-0 distance, microns); the
        less likely is dropped. Also the radius of the local-maximum filter.
    min_probability
        Candidates whose (smoothed) probability is below this are not written.
    max_candidates
        At most this many candidates per slide, most likely first.

    Examples
    --------
    >>> DetectionParams(smooth_sigma_um=0).nms_radius_um
    250.0
    >>> DetectionParams(nms_radius_um=-1)
    Traceback (most recent call last):
    ...
    ValueError: nms_radius_um must be a finite number > 0, got -1
    """

    smooth_sigma_um: float = 50.0
    nms_radius_um: float = 250.0
    min_probability: float = 0.01
    max_candidates: int = 1000

    def __post_init__(self) -> None:
        """Reject negative or non-finite sizes and probabilities outside [0, 1]."""
        if not (math.isfinite(self.smooth_sigma_um) and self.smooth_sigma_um >= 0):
            raise ValueError(
                f"smooth_sigma_um must be a finite number >= 0, "
                f"got {self.smooth_sigma_um}"
            )
        if not (math.isfinite(self.nms_radius_um) and self.nms_radius_um > 0):
            raise ValueError(
                f"nms_radius_um must be a finite number > 0, got {self.nms_radius_um}"
            )
        if not 0.0 <= self.min_probability <= 1.0:
            raise ValueError(
                f"min_probability must be in [0, 1], got {self.min_probability}"
            )
        if isinstance(self.max_candidates, bool) or not (
            isinstance(self.max_candidates, int) and self.max_candidates >= 1
        ):
            raise ValueError(
                f"max_candidates must be an integer >= 1, got {self.max_candidates!r}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One lesion candidate.

    Attributes
    ----------
    probability
        Smoothed heatmap value at the candidate's cell (0..1).
    l0_xy
        Level-0 ``(x, y)`` of the cell's centre, whole pixels.
    rc
        The cell's ``(row, col)`` in the heatmap.
    raw_probability
        The unsmoothed probability of that cell.
    """

    probability: float
    l0_xy: tuple[int, int]
    rc: tuple[int, int]
    raw_probability: float

    def as_row(self) -> tuple[float, int, int]:
        """``(probability, X, Y)``, a line of ``detections.csv``."""
        return (self.probability, self.l0_xy[0], self.l0_xy[1])


def cell_size_um(grid: TileGrid) -> float:
    """Side of a heatmap cell in microns (the mean of x and y)."""
    return float(grid.cell_size_l0 * grid.geometry.mpp)


def smooth_heatmap(
    heatmap: npt.NDArray[np.floating], *, sigma_cells: float
) -> npt.NDArray[np.float32]:
    """Gaussian smoothing normalised over the finite (tissue) cells.

    ``out = G * (v m) / G * m`` with ``m`` the finite cells, so cells without a patch
    neither count as 0 nor spread; they stay NaN.

    Parameters
    ----------
    heatmap
        ``float[rows, cols]`` probabilities, NaN where no patch.
    sigma_cells
        Gaussian standard deviation in cells; 0 returns a float32 copy.

    Returns
    -------
    numpy.ndarray
        ``float32[rows, cols]``, NaN where the input is.

    Examples
    --------
    >>> h = np.array([[1.0, 0.0, np.nan]], np.float32)
    >>> smooth_heatmap(h, sigma_cells=0).tolist()
    [[1.0, 0.0, nan]]
    >>> [round(float(v), 2) for v in smooth_heatmap(h, sigma_cells=1.0)[0, :2]]
    [0.62, 0.38]
    """
    values = np.asarray(heatmap, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"heatmap must be 2-D, got shape {values.shape}")
    if not (math.isfinite(sigma_cells) and sigma_cells >= 0):
        raise ValueError(f"sigma_cells must be >= 0, got {sigma_cells}")
    if sigma_cells == 0 or values.size == 0:
        return values.copy()
    finite = np.isfinite(values)
    weight = finite.astype(np.float32)
    num = ndimage.gaussian_filter(
        np.where(finite, values, 0.0), sigma_cells, mode="constant", truncate=3.0
    )
    den = ndimage.gaussian_filter(weight, sigma_cells, mode="constant", truncate=3.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(finite & (den > 0), num / np.maximum(den, 1e-12), np.nan)
    smoothed: npt.NDArray[np.float32] = np.clip(out, 0.0, 1.0).astype(np.float32)
    return smoothed


def suppress_near(
    xy_um: npt.ArrayLike, scores: npt.ArrayLike, *, radius_um: float
) -> npt.NDArray[np.int64]:
    """Greedy non-maximum suppression by distance.

    Parameters
    ----------
    xy_um
        ``float[N, 2]`` positions in microns.
    scores
        ``float[N]``; higher wins (ties: the earlier index).
    radius_um
        Points closer than this (strictly) to a kept, higher one are dropped.

    Returns
    -------
    numpy.ndarray
        Indices of the kept points, highest score first.

    Examples
    --------
    >>> suppress_near([[0, 0], [10, 0], [30, 0]], [0.5, 0.9, 0.7], radius_um=20)
    array([1, 2])
    """
    points = np.asarray(xy_um, dtype=np.float64).reshape(-1, 2)
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if points.shape[0] != values.size:
        raise ValueError(f"{points.shape[0]} points but {values.size} scores")
    if not values.size:
        return np.zeros(0, np.int64)
    order = np.argsort(-values, kind="stable")
    tree = cKDTree(points)
    suppressed = np.zeros(values.size, bool)
    kept = []
    for i in order:
        if suppressed[i]:
            continue
        kept.append(i)
        for j in tree.query_ball_point(points[i], r=radius_um * (1 - 1e-9)):
            suppressed[j] = True
    return np.asarray(kept, np.int64)


def lesion_candidates(
    heatmap: npt.NDArray[np.floating], *, grid: TileGrid, params: DetectionParams
) -> list[Candidate]:
    """Lesion candidates of a heatmap, most likely first (see the module notes).

    Parameters
    ----------
    heatmap
        ``float32[rows, cols]`` probabilities from `stitch` (NaN: no patch).
    grid
        The grid the heatmap was stitched on.
    params
        Smoothing, suppression radius, floor and cap.

    Returns
    -------
    list of Candidate
        At least ``nms_radius_um`` apart, highest probability first.

    Examples
    --------
    >>> from wsi.geometry import SlideGeometry
    >>> g = SlideGeometry(width_px=4096, height_px=4096, mpp_x=0.25, mpp_y=0.25,
    ...                   level_dimensions=((4096, 4096),))
    >>> grid = TileGrid(geometry=g, mpp=1.0, stride_px=96)   # 96-um cells
    >>> h = np.zeros(grid.shape, np.float32); h[2, 2] = 0.875; h[2, 3] = 0.75
    >>> h[8, 8] = 0.625
    >>> p = DetectionParams(smooth_sigma_um=0, nms_radius_um=200)
    >>> [(c.probability, c.rc) for c in lesion_candidates(h, grid=grid, params=p)]
    [(0.875, (2, 2)), (0.625, (8, 8))]
    """
    values = check_heatmap(heatmap, grid)
    cell_um = cell_size_um(grid)
    smoothed = smooth_heatmap(values, sigma_cells=params.smooth_sigma_um / cell_um)
    finite = np.isfinite(smoothed)
    if not finite.any():
        return []
    filled = np.where(finite, smoothed, -1.0)
    r = params.nms_radius_um / cell_um
    k = math.floor(r)
    yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
    footprint = (yy**2 + xx**2) <= r * r
    peaks = (
        finite
        & (
            filled
            >= ndimage.maximum_filter(filled, footprint=footprint, mode="nearest")
        )
        & (filled >= params.min_probability)
    )
    rows, cols = np.nonzero(peaks)
    scores = smoothed[rows, cols]
    if not rows.size:
        return []
    centres = grid.heatmap_to_level0(np.column_stack([cols + 0.5, rows + 0.5]))
    kept = suppress_near(
        centres * grid.geometry.mpp, scores, radius_um=params.nms_radius_um
    )[: params.max_candidates]
    candidates = [
        Candidate(
            probability=float(scores[i]),
            l0_xy=(int(np.rint(centres[i, 0])), int(np.rint(centres[i, 1]))),
            rc=(int(rows[i]), int(cols[i])),
            raw_probability=float(values[rows[i], cols[i]]),
        )
        for i in kept
    ]
    logger.debug("%d lesion candidates from %d peaks", len(candidates), rows.size)
    return candidates
