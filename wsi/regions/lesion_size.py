"""The size of a tumour region as a pathologist measures a metastasis.

The longest diameter is the largest distance between two points of the region: the
diameter of its convex hull, measured between hull vertices. Regions follow heatmap
cell edges, so the measure moves in steps of the cell: at stride 96 (93.3 um cells)
one cell measures 132 um (its diagonal), and the error is up to about one cell
diagonal either way; stride 32 cuts that by three.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist
from shapely.geometry import MultiPolygon, Polygon

__all__ = ["max_diameter_um"]


def max_diameter_um(polygon: Polygon | MultiPolygon, *, mpp: float) -> float:
    """Longest distance between two points of ``polygon``, in microns.

    Parameters
    ----------
    polygon
        A region in level-0 pixels (holes do not matter; parts that touch count as
        one region).
    mpp
        Level-0 microns per pixel.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> max_diameter_um(box(0, 0, 300, 400), mpp=0.5)
    250.0
    >>> l_shape = Polygon([(0, 0), (4, 0), (4, 1), (1, 1), (1, 3), (0, 3)])
    >>> round(max_diameter_um(l_shape, mpp=1.0), 4)  # corner (4, 0) to (0, 3)
    5.0
    """
    if not mpp > 0:
        raise ValueError(f"mpp must be positive, got {mpp}")
    hull = polygon.convex_hull
    if hull.is_empty:
        return 0.0
    coords = np.asarray(
        hull.exterior.coords if isinstance(hull, Polygon) else hull.coords,
        dtype=np.float64,
    )
    if len(coords) < 2:
        return 0.0
    return float(pdist(coords).max() * mpp)
