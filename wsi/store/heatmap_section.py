"""The heatmap section of a slide's store: the float heatmap and its geometry."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt
import zarr

from wsi.geometry import TileGrid, check_heatmap
from wsi.store.layout import Arrays, Attr

__all__ = [
    "HEATMAP_ATTRS_VERSION",
    "heatmap_attrs",
    "read_heatmap_zarr",
    "write_heatmap_zarr",
]

logger = logging.getLogger(__name__)

#: Version of the `heatmap_attrs` layout, bumped when a key changes meaning.
HEATMAP_ATTRS_VERSION = 1
_ZARR_CHUNK = 512


def heatmap_attrs(grid: TileGrid) -> dict[str, Any]:
    """Everything needed to map a heatmap cell to slide coordinates, JSON-able.

    Cell ``(i, j)`` covers level-0 ``x`` in ``[ox + j*c, ox + (j+1)*c)`` and ``y`` in
    ``[oy + i*c, oy + (i+1)*c)`` where ``(ox, oy) = origin_l0_px`` and
    ``c = cell_size_l0_px``.

    Parameters
    ----------
    grid
        The patch grid the heatmap was stitched on.

    Returns
    -------
    dict
        ``version``, ``shape`` ``[rows, cols]``, ``cell_size_l0_px``, ``origin_l0_px``
        ``[x, y]``, ``cell_size_um`` ``[x, y]``, ``tile_px``, ``stride_px``,
        ``cell_offset_px`` (target px), ``mpp`` (requested target),
        ``effective_mpp``, ``downsample`` (level-0 px per target px), ``level``
        (pyramid level read), ``slide_mpp`` ``[x, y]``, ``slide_size_l0_px`` and
        ``values`` / ``nan`` (what the numbers mean).

    Examples
    --------
    >>> from wsi.geometry import SlideGeometry
    >>> g = SlideGeometry(width_px=1000, height_px=500, mpp_x=0.25, mpp_y=0.25,
    ...                   level_dimensions=((1000, 500), (250, 125)))
    >>> attrs = heatmap_attrs(TileGrid(geometry=g, mpp=1.0, stride_px=32))
    >>> attrs["cell_size_l0_px"], attrs["origin_l0_px"], attrs["cell_size_um"]
    (128.0, [128.0, 128.0], [32.0, 32.0])
    """
    geometry = grid.geometry
    cell_l0 = float(grid.cell_size_l0)
    plan = grid.plan
    return {
        "version": HEATMAP_ATTRS_VERSION,
        "shape": list(grid.shape),
        "cell_size_l0_px": cell_l0,
        "origin_l0_px": [float(v) for v in grid.cell_origin_l0],
        "cell_size_um": [cell_l0 * geometry.mpp_x, cell_l0 * geometry.mpp_y],
        "tile_px": grid.tile_px,
        "stride_px": grid.stride_px,
        "cell_offset_px": grid.cell_offset_px,
        "mpp": grid.mpp,
        "effective_mpp": plan.effective_mpp,
        "downsample": plan.downsample,
        "level": plan.level,
        "slide_mpp": [geometry.mpp_x, geometry.mpp_y],
        "slide_size_l0_px": [geometry.width_px, geometry.height_px],
        "values": "tumour probability of the patch centred on the cell, 0..1",
        "nan": "no tissue patch",
    }


def write_heatmap_zarr(
    group: zarr.Group, heatmap: npt.NDArray[np.floating], *, grid: TileGrid
) -> None:
    """Write the exact float heatmap into a slide's zarr store, with its geometry.

    The array is `Arrays.HEATMAP`; `heatmap_attrs` go on the array and under
    `Attr.HEATMAP` in the group's attributes. An existing heatmap is replaced.

    Parameters
    ----------
    group
        An open, writable ``zarr.Group`` (the slide's store).
    heatmap
        ``float32[rows, cols]`` (`wsi.heatmap.stitching.stitch`) of ``grid.shape``.
    grid
        The patch grid.

    Examples
    --------
    >>> import zarr
    >>> from wsi.geometry import SlideGeometry
    >>> g = SlideGeometry(width_px=400, height_px=400, mpp_x=0.25, mpp_y=0.25,
    ...                   level_dimensions=((400, 400),))
    >>> grid = TileGrid(geometry=g, mpp=1.0)
    >>> root = zarr.group(zarr.storage.MemoryStore())
    >>> write_heatmap_zarr(root, np.array([[0.5]], np.float32), grid=grid)
    >>> read_heatmap_zarr(root).tolist(), root.attrs["heatmap"]["cell_size_l0_px"]
    ([[0.5]], 384.0)
    """
    values = check_heatmap(heatmap, grid)
    attrs = heatmap_attrs(grid)
    rows, cols = values.shape
    array = group.create_array(
        Arrays.HEATMAP,
        shape=values.shape,
        dtype="float32",
        chunks=(max(1, min(rows, _ZARR_CHUNK)), max(1, min(cols, _ZARR_CHUNK))),
        fill_value=float("nan"),
        overwrite=True,
    )
    array[...] = values
    array.attrs.update(attrs)
    group.attrs[Attr.HEATMAP] = attrs
    logger.debug("wrote %s %s to the store", Arrays.HEATMAP, values.shape)


def read_heatmap_zarr(group: zarr.Group) -> npt.NDArray[np.float32]:
    """Read the heatmap written by `write_heatmap_zarr` from an open zarr group."""
    heatmap: npt.NDArray[np.float32] = np.asarray(
        group[Arrays.HEATMAP][...],  # type: ignore[index]  # an Array, not a Group
        np.float32,
    )
    return heatmap
