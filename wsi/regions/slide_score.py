"""The slide-level tumour probability of ``summary.json``.

The single highest cell does not separate tumour from normal slides: every slide has
thousands of patches, and one hard normal patch scores as high as a lesion (with a
stronger classifier, the maximum saturates at 1.0 on both). A lesion is a cluster of
high cells, so the scores here look at neighbourhoods:

``max_cell``
    the highest cell (kept in ``summary.json`` as ``max_probability``);
``max_smoothed``
    the highest cell of the heatmap smoothed by a Gaussian of ``smooth_sigma_um``
    (normalised over tissue, `wsi.regions.detection.smooth_heatmap`): the most likely lesion
    candidate;
``top_mean``
    the mean of the highest cells covering ``top_area_um2``;
``largest_region``
    ``1 - exp(-S / region_scale_um2)`` with ``S`` the largest probability-weighted
    area (sum of cell area x probability) of an 8-connected region of the smoothed
    heatmap at or above ``region_threshold``.

All are computed and recorded; ``method`` says which one is the slide probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from wsi.geometry import TileGrid, check_heatmap
from wsi.regions.detection import cell_size_um, smooth_heatmap

__all__ = ["SlideScore", "SlideScoreMethod", "SlideScoreParams", "slide_score"]

SlideScoreMethod = Literal["max_cell", "max_smoothed", "top_mean", "largest_region"]
_METHODS: tuple[str, ...] = get_args(SlideScoreMethod)


@dataclass(frozen=True, slots=True, kw_only=True)
class SlideScoreParams:
    """How the slide probability is computed from the heatmap.

    Parameters
    ----------
    method
        Which score is the slide probability (see the module notes).
    smooth_sigma_um
        Gaussian standard deviation in microns for ``max_smoothed`` and
        ``largest_region``.
    top_area_um2
        Area of the highest cells averaged by ``top_mean``, square microns.
    region_threshold
        Smoothed probability at which ``largest_region`` cuts regions.
    region_scale_um2
        Probability-weighted area at which ``largest_region`` reaches
        ``1 - 1/e``, square microns.

    Examples
    --------
    >>> SlideScoreParams(method="top_mean").top_area_um2
    100000.0
    >>> SlideScoreParams(method="mean")
    Traceback (most recent call last):
    ...
    ValueError: method must be one of max_cell, max_smoothed, top_mean, largest_region; got 'mean'
    """

    method: SlideScoreMethod = "max_smoothed"
    smooth_sigma_um: float = 50.0
    top_area_um2: float = 100_000.0
    region_threshold: float = 0.5
    region_scale_um2: float = 50_000.0

    def __post_init__(self) -> None:
        """Reject unknown methods, negative sizes, thresholds outside [0, 1]."""
        if self.method not in _METHODS:
            raise ValueError(
                f"method must be one of {', '.join(_METHODS)}; got {self.method!r}"
            )
        if not (math.isfinite(self.smooth_sigma_um) and self.smooth_sigma_um >= 0):
            raise ValueError(
                f"smooth_sigma_um must be a finite number >= 0, "
                f"got {self.smooth_sigma_um}"
            )
        for name in ("top_area_um2", "region_scale_um2"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if not 0.0 <= self.region_threshold <= 1.0:
            raise ValueError(
                f"region_threshold must be in [0, 1], got {self.region_threshold}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class SlideScore:
    """The slide probability and every score it was chosen from.

    Attributes
    ----------
    probability
        The score named by ``method`` (0..1).
    method
        Which score it is.
    scores
        Every method's value, by name.
    """

    probability: float
    method: str
    scores: dict[str, float]

    @property
    def max_probability(self) -> float:
        """The highest cell."""
        return self.scores["max_cell"]


def slide_score(
    heatmap: npt.NDArray[np.floating], *, grid: TileGrid, params: SlideScoreParams
) -> SlideScore:
    """Score a slide from its heatmap (see the module notes).

    Parameters
    ----------
    heatmap
        ``float32[rows, cols]`` probabilities (NaN: no patch).
    grid
        The grid the heatmap was stitched on.
    params
        Method and its sizes.

    Returns
    -------
    SlideScore
        All scores are 0 on a heatmap without any scored cell.

    Examples
    --------
    >>> from wsi.geometry import SlideGeometry
    >>> g = SlideGeometry(width_px=4096, height_px=4096, mpp_x=0.25, mpp_y=0.25,
    ...                   level_dimensions=((4096, 4096),))
    >>> grid = TileGrid(geometry=g, mpp=1.0, stride_px=96)   # 96-um cells
    >>> lone = np.zeros(grid.shape, np.float32); lone[5, 5] = 1.0
    >>> blob = np.zeros(grid.shape, np.float32); blob[4:7, 4:7] = 0.8
    >>> p = SlideScoreParams()
    >>> s1, s2 = (slide_score(h, grid=grid, params=p) for h in (lone, blob))
    >>> s1.max_probability > s2.max_probability, s1.probability < s2.probability
    (True, True)
    """
    values = check_heatmap(heatmap, grid)
    finite = np.isfinite(values)
    if not finite.any():
        scores = dict.fromkeys(_METHODS, 0.0)
        return SlideScore(probability=0.0, method=params.method, scores=scores)
    cell_um = cell_size_um(grid)
    cell_um2 = cell_um * cell_um
    flat = np.sort(values[finite])[::-1]
    k = max(1, min(flat.size, math.ceil(params.top_area_um2 / cell_um2)))
    smoothed = smooth_heatmap(values, sigma_cells=params.smooth_sigma_um / cell_um)
    scores = {
        "max_cell": float(flat[0]),
        "max_smoothed": float(np.nanmax(smoothed)),
        "top_mean": float(flat[:k].mean()),
        "largest_region": _largest_region(smoothed, cell_um2=cell_um2, params=params),
    }
    return SlideScore(
        probability=scores[params.method], method=params.method, scores=scores
    )


def _largest_region(
    smoothed: npt.NDArray[np.float32], *, cell_um2: float, params: SlideScoreParams
) -> float:
    """``1 - exp(-S / scale)``, S the largest probability-weighted region area."""
    finite = np.isfinite(smoothed)
    safe = np.where(finite, smoothed, 0.0)
    mask = finite & (safe >= params.region_threshold)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return 0.0
    weighted = ndimage.sum(safe, labels, np.arange(1, n + 1)) * cell_um2
    return float(1.0 - math.exp(-float(np.max(weighted)) / params.region_scale_um2))
