"""Stitch patch probabilities into a heatmap, describe its geometry, save it.

The geometry contract (see ``docs/OUTPUTS.md``): with patch size ``P`` and stride ``s``
target pixels, heatmap cell ``(i, j)`` is the ``s x s`` square of the target-resolution
image whose top-left corner is ``(x, y) = (j*s + (P-s)/2, i*s + (P-s)/2)``: the centre
of patch ``(i, j)``, exactly PCam's labelled 32 x 32 centre when ``s = 32``. Level-0
pixels are target pixels times `TileGrid.downsample`; `TileGrid` does every mapping.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from wsi.heatmap.colormap import HEATMAP_CMAP, NO_DATA_RGB
from wsi.heatmap.tiff import write_heatmap_tiff
from wsi.store.atomic import atomic_output

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "save_heatmap_png",
    "stitch",
    "write_heatmap_tiff",
]

logger = logging.getLogger(__name__)

_PNG_MAX_PX = 2000
_PNG_MIN_PX = 400
_PNG_DPI = 100
_PNG_OUTLINE_MIN_PX = 2


def stitch(
    scores: npt.ArrayLike, grid_rc: npt.ArrayLike, *, shape: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """Place patch probabilities in their grid cells.

    Parameters
    ----------
    scores
        ``float32[N]`` probability of each patch (NaN if not scored yet).
    grid_rc
        ``int64[N, 2]`` ``(row, col)`` grid index of each patch, as `TileGrid` numbers
        them; each cell at most once.
    shape
        ``(rows, cols)`` of the grid, usually `TileGrid.shape`.

    Returns
    -------
    numpy.ndarray
        ``float32[rows, cols]``; NaN where no patch was scored (no tissue).

    Raises
    ------
    ValueError
        If the lengths differ, an index is outside ``shape`` or a cell repeats.

    Examples
    --------
    >>> stitch(np.array([0.25, 1.0]), np.array([[0, 1], [1, 0]]), shape=(2, 3))
    array([[ nan, 0.25,  nan],
           [1.  ,  nan,  nan]], dtype=float32)
    """
    values = np.asarray(scores, dtype=np.float32).reshape(-1)
    rc = np.asarray(grid_rc)
    rows, cols = (int(n) for n in shape)
    if rows < 0 or cols < 0:
        raise ValueError(f"shape must be (rows, cols) >= 0, got {shape}")
    if rc.ndim != 2 or rc.shape[1] != 2 or not np.issubdtype(rc.dtype, np.integer):
        raise ValueError(
            f"grid_rc must be an integer array of shape (N, 2), "
            f"got {rc.dtype} {rc.shape}"
        )
    if rc.shape[0] != values.size:
        raise ValueError(
            f"scores has {values.size} values but grid_rc has {rc.shape[0]} rows"
        )
    heatmap = np.full((rows, cols), np.nan, dtype=np.float32)
    if not values.size:
        return heatmap
    outside = (rc[:, 0] < 0) | (rc[:, 0] >= rows) | (rc[:, 1] < 0) | (rc[:, 1] >= cols)
    if outside.any():
        first = rc[np.argmax(outside)].tolist()
        raise ValueError(
            f"grid_rc has {int(outside.sum())} cells outside shape={shape}, e.g. "
            f"(row, col) = {tuple(first)}; stitch with the grid the patches came from"
        )
    flat = rc[:, 0].astype(np.int64) * cols + rc[:, 1]
    unique, counts = np.unique(flat, return_counts=True)
    if unique.size != flat.size:
        row, col = divmod(int(unique[np.argmax(counts > 1)]), cols)
        raise ValueError(
            f"grid_rc repeats {int((counts > 1).sum())} cells, e.g. (row, col) = "
            f"({row}, {col}); each cell takes the score of one patch"
        )
    heatmap.reshape(-1)[flat] = values
    return heatmap


def save_heatmap_png(
    heatmap: npt.NDArray[np.floating],
    path: Path,
    *,
    threshold: float | None = None,
    title: str = "",
    cell_size_um: float | None = None,
    origin_um: tuple[float, float] = (0.0, 0.0),
    outline: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Save the heatmap as a colour-mapped PNG with a colour bar.

    Probabilities use `HEATMAP_CMAP` on a fixed 0..1 scale (comparable between
    slides); cells without a tissue patch are light grey (`NO_DATA_RGB`). With a
    ``threshold``, its level is marked on the colour bar and, when cells are drawn at
    least 2 px wide (maps up to 1000 cells a side), the tumour cells are outlined in
    white along their edges: those of ``outline`` (the cells the exported polygons
    hold, ``wsi.regions.polygons.region_cells``), else the cells at or above it. With
    ``cell_size_um`` the axes are millimetres from the slide's top-left corner;
    without, heatmap cells.

    Parameters
    ----------
    heatmap
        ``float[rows, cols]`` probabilities, NaN where no patch.
    path
        The PNG to write (parent folders are created).
    threshold
        Tumour threshold to mark, or None.
    title
        Figure title, e.g. the slide name.
    cell_size_um
        Side of a heatmap cell in um (``heatmap_attrs``'s ``cell_size_um``).
    origin_um
        ``(x, y)`` of cell (0, 0)'s top-left corner from the slide's, in um.
    outline
        ``bool[rows, cols]``: the cells to outline (with ``threshold``).

    Raises
    ------
    OutputError
        If the file cannot be written.
    """
    import matplotlib
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    from wsi.heatmap._png import PNG_COMPRESS_LEVEL
    from wsi.regions.polygons import PolygonParams, tumour_mask

    values = np.asarray(heatmap, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (rows, cols), got shape {values.shape}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    if outline is not None and outline.shape != values.shape:
        raise ValueError(
            f"outline must have the heatmap's shape {values.shape}, got {outline.shape}"
        )
    rows, cols = values.shape
    scale = _png_cell_px(values.shape) / _PNG_DPI
    # Room for the axis labels and the colour bar however flat the map is.
    fig = Figure(
        figsize=(max(cols, 1) * scale + 2.0, max(max(rows, 1) * scale + 1.2, 3.0)),
        dpi=_PNG_DPI,
        layout="constrained",
    )
    ax = fig.add_subplot()
    cmap = ListedColormap(
        matplotlib.colormaps[HEATMAP_CMAP](np.linspace(0, 1, 256))
    ).with_extremes(bad=tuple(np.array(NO_DATA_RGB) / 255))
    extent = None
    if cell_size_um is not None:
        if not cell_size_um > 0:
            raise ValueError(f"cell_size_um must be positive, got {cell_size_um}")
        x0, y0 = origin_um[0] / 1000, origin_um[1] / 1000
        c = cell_size_um / 1000
        extent = (x0, x0 + cols * c, y0 + rows * c, y0)
    image = ax.imshow(
        np.ma.masked_invalid(values),
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        aspect="equal",
        extent=extent,
    )
    if cell_size_um is None:
        ax.set_xlabel("heatmap column (cell)")
        ax.set_ylabel("heatmap row (cell)")
    else:
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
    if title:
        ax.set_title(title)
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    bar.set_label("tumour probability")
    if threshold is not None:
        bar.ax.axhline(threshold, color="white", linewidth=2)
        if png_draws_outlines(values.shape):
            if outline is None:
                outline = tumour_mask(values, params=PolygonParams(threshold=threshold))
            _outline_cells(ax, outline, extent)
    with atomic_output(path) as tmp:
        fig.savefig(
            tmp,
            format="png",
            dpi=_PNG_DPI,
            pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL},
        )
    logger.info("wrote %s", path)


def png_draws_outlines(shape: tuple[int, ...]) -> bool:
    """Whether `save_heatmap_png` outlines tumour cells on a map of this shape.

    Only when a cell is drawn at least ``_PNG_OUTLINE_MIN_PX`` wide: outlines of 1-px
    cells are clutter.
    """
    return _png_cell_px(shape) >= _PNG_OUTLINE_MIN_PX


def _png_cell_px(shape: tuple[int, ...]) -> float:
    """Side of a cell in the PNG, px: the map near its native size.

    At least ``_PNG_MIN_PX`` and at most ``_PNG_MAX_PX`` a side.
    """
    long_side = max(*shape[:2], 1)
    return min(max(_PNG_MIN_PX / long_side, 1.0), _PNG_MAX_PX / long_side)


def _outline_cells(
    ax: Axes,
    mask: npt.NDArray[np.bool_],
    extent: tuple[float, float, float, float] | None = None,
) -> None:
    """Outline the cells of ``mask`` along their edges, as the polygons do."""
    from matplotlib.collections import LineCollection
    from scipy import ndimage

    from wsi.regions.cell_outlines import cell_outlines

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    rings = []
    for outline in cell_outlines(labels, n):
        for part in getattr(outline, "geoms", [outline]):
            # imshow centres cell (i, j) on (j, i): corners are at half integers.
            rings += [
                _to_axes(np.asarray(r.coords), mask.shape, extent)
                for r in [part.exterior, *part.interiors]
            ]
    if rings:
        ax.add_collection(LineCollection(rings, colors="white", linewidths=0.8))


def _to_axes(
    xy: npt.NDArray[np.float64],
    shape: tuple[int, ...],
    extent: tuple[float, float, float, float] | None,
) -> npt.NDArray[np.float64]:
    """Cell-corner coordinates ``(col, row)`` to the axes' units."""
    if extent is None:
        return xy - 0.5  # imshow centres cell (i, j) on (j, i)
    rows, cols = shape[:2]
    left, right, bottom, top = extent
    out = np.empty_like(xy, dtype=np.float64)
    out[:, 0] = left + xy[:, 0] * (right - left) / cols
    out[:, 1] = top + xy[:, 1] * (bottom - top) / rows
    return out
