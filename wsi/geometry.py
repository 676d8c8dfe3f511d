"""Slide geometry and the PCam patch grid: pure maths, no I/O.

This module is the one place for resolution and grid facts: the PCam scale, the patch
and centre-cell sizes, how a target resolution maps to a pyramid level, and where each
patch and heatmap cell lies in level-0 pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from wsi.errors import ModelLoadError

__all__ = [
    "CENTER_PX",
    "LEVEL_MATCH_TOLERANCE",
    "MASK_CELL_PX",
    "MAX_UPSAMPLE",
    "MODEL_MPP_TOLERANCE",
    "PATCH_PX",
    "PCAM_MPP",
    "ReadPlan",
    "SlideGeometry",
    "TileGrid",
    "check_heatmap",
    "check_model_matches",
]

#: PatchCamelyon's resolution: Camelyon16 level 2, 4 x 0.243 um/px.
PCAM_MPP = 0.972
#: Side of a PCam patch in target pixels.
PATCH_PX = 96
#: Side of the centre square whose content a PCam label describes.
CENTER_PX = 32
#: A pyramid level within this relative distance of the target is read as is.
LEVEL_MATCH_TOLERANCE = 0.01
#: A model scores tiles whose um/px is within this fraction of the one it was trained at.
MODEL_MPP_TOLERANCE = 0.01
#: Target pixels per tissue-mask pixel (0.972 um/px x 8 = 7.8 um/px).
MASK_CELL_PX = 8
#: Largest factor by which level 0 may be enlarged to reach a finer target resolution.
MAX_UPSAMPLE = 1.25
_MAX_ANISOTROPY = 0.015


@dataclass(frozen=True, slots=True, kw_only=True)
class SlideGeometry:
    """Level-0 size, resolution and pyramid of a slide.

    Parameters
    ----------
    width_px, height_px
        Level-0 size in pixels.
    mpp_x, mpp_y
        Level-0 microns per pixel along x and y.
    level_dimensions
        ``(width, height)`` of every pyramid level, finest first.

    Examples
    --------
    >>> g = SlideGeometry(width_px=4000, height_px=2000, mpp_x=0.243, mpp_y=0.243,
    ...                   level_dimensions=((4000, 2000), (1000, 500)))
    >>> g.level_downsamples
    (1.0, 4.0)
    >>> g.best_level(0.972)
    1
    """

    width_px: int
    height_px: int
    mpp_x: float
    mpp_y: float
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.width_px <= 0 or self.height_px <= 0:
            raise ValueError(
                f"slide size must be positive, got {self.width_px}x{self.height_px} px"
            )
        for name, value in (("mpp_x", self.mpp_x), ("mpp_y", self.mpp_y)):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        ratio = max(self.mpp_x, self.mpp_y) / min(self.mpp_x, self.mpp_y)
        if ratio - 1 > _MAX_ANISOTROPY:
            raise ValueError(
                f"anisotropic pixels are not supported: mpp_x={self.mpp_x}, "
                f"mpp_y={self.mpp_y} differ by more than 1.5%"
            )
        if not self.level_dimensions:
            raise ValueError("level_dimensions must list at least level 0")
        if tuple(self.level_dimensions[0]) != (self.width_px, self.height_px):
            raise ValueError(
                f"level 0 is {self.level_dimensions[0]}, expected "
                f"{(self.width_px, self.height_px)}"
            )
        # Downsamples from level sizes, never assumed to be powers of two.
        downsamples = tuple(
            (self.width_px / w + self.height_px / h) / 2
            for w, h in self.level_dimensions
        )
        object.__setattr__(self, "level_downsamples", downsamples)

    @property
    def mpp(self) -> float:
        """Mean level-0 microns per pixel."""
        return (self.mpp_x + self.mpp_y) / 2

    def level_mpp(self, level: int) -> float:
        """Microns per pixel of a pyramid level."""
        return self.mpp * self.level_downsamples[level]

    def downsample_for(self, mpp: float) -> float:
        """Level-0 pixels per pixel at resolution ``mpp``."""
        if mpp <= 0:
            raise ValueError(f"mpp must be positive, got {mpp}")
        return mpp / self.mpp

    def best_level(self, mpp: float) -> int:
        """Coarsest level at least as fine as ``mpp`` (within the 1% tolerance).

        Level 0 when even level 0 is coarser than ``mpp`` (the plan then enlarges).
        """
        return self._best_level_for_downsample(self.downsample_for(mpp))

    def _best_level_for_downsample(self, downsample: float) -> int:
        limit = downsample * (1 + LEVEL_MATCH_TOLERANCE)
        fine_enough = [i for i, d in enumerate(self.level_downsamples) if d <= limit]
        if not fine_enough:
            return 0
        return max(fine_enough, key=lambda i: self.level_downsamples[i])

    def read_plan(self, mpp: float) -> ReadPlan:
        """How to produce pixels at ``mpp``: which level, and whether to resample."""
        level = self.best_level(mpp)
        level_ds = self.level_downsamples[level]
        target = self.downsample_for(mpp)
        exact = abs(level_ds / target - 1) <= LEVEL_MATCH_TOLERANCE
        return ReadPlan(
            level=level,
            level_downsample=level_ds,
            downsample=level_ds if exact else target,
            requested_mpp=mpp,
            effective_mpp=self.mpp * (level_ds if exact else target),
        )

    def plan_for_downsample(self, downsample: float) -> ReadPlan:
        """How to produce pixels at exactly ``downsample`` level-0 pixels per pixel.

        Unlike :meth:`read_plan`, the downsample is never snapped to a nearby level:
        use it where the output must align with another grid (the tissue mask).

        Examples
        --------
        >>> g = SlideGeometry(width_px=4000, height_px=2000, mpp_x=0.25, mpp_y=0.25,
        ...                   level_dimensions=((4000, 2000), (1000, 500)))
        >>> plan = g.plan_for_downsample(4.02)
        >>> plan.level, round(plan.resample_factor, 3)
        (1, 1.005)
        """
        if not math.isfinite(downsample) or downsample <= 0:
            raise ValueError(f"downsample must be positive, got {downsample!r}")
        level = self._best_level_for_downsample(downsample)
        return ReadPlan(
            level=level,
            level_downsample=self.level_downsamples[level],
            downsample=downsample,
            requested_mpp=self.mpp * downsample,
            effective_mpp=self.mpp * downsample,
        )

    def size_at(self, mpp: float) -> tuple[int, int]:
        """``(width, height)`` in whole pixels of the slide at resolution ``mpp``."""
        ds = self.read_plan(mpp).downsample
        return int(self.width_px / ds), int(self.height_px / ds)

    def to_level0(self, xy: npt.ArrayLike, mpp: float) -> npt.NDArray[np.float64]:
        """Map ``(x, y)`` points at resolution ``mpp`` to level-0 pixels."""
        return np.asarray(xy, dtype=np.float64) * self.read_plan(mpp).downsample


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadPlan:
    """Which pyramid level gives pixels at a target resolution.

    ``downsample`` is level-0 pixels per output pixel: the level's own downsample
    when a level is within 1% of the target (read as is), else the exact target
    downsample (read ``level`` and resample by ``downsample / level_downsample``).
    """

    level: int
    level_downsample: float
    downsample: float
    requested_mpp: float
    effective_mpp: float

    @property
    def resample_factor(self) -> float:
        """Level pixels per output pixel (1.0 when no resampling is needed)."""
        return self.downsample / self.level_downsample

    @property
    def is_direct(self) -> bool:
        """Whether output pixels are the level's own pixels (no resampling)."""
        return abs(self.resample_factor - 1) <= 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class TileGrid:
    """The regular grid of ``tile_px`` patches, ``stride_px`` apart, at ``mpp``.

    The origin is the slide's top-left corner, so patch positions are reproducible.
    Grid cell ``(row, col)`` holds the patch whose top-left corner is at target pixel
    ``(col * stride_px, row * stride_px)``; its heatmap cell is the ``stride_px``
    square centred in the patch, i.e. exactly the PCam centre cell when
    ``stride_px == 32``.

    Examples
    --------
    >>> g = SlideGeometry(width_px=1000, height_px=500, mpp_x=0.243, mpp_y=0.243,
    ...                   level_dimensions=((1000, 500), (250, 125)))
    >>> grid = TileGrid(geometry=g, mpp=0.972, stride_px=32)
    >>> grid.shape
    (1, 5)
    >>> grid.cell_offset_px
    32
    >>> grid.coords()[:2].tolist()
    [[0, 0], [128, 0]]
    """

    geometry: SlideGeometry
    mpp: float = PCAM_MPP
    tile_px: int = PATCH_PX
    stride_px: int = PATCH_PX

    def __post_init__(self) -> None:
        if self.tile_px <= 0:
            raise ValueError(f"tile_px must be positive, got {self.tile_px}")
        if not 1 <= self.stride_px <= self.tile_px:
            raise ValueError(
                f"stride_px must be between 1 and tile_px={self.tile_px}, "
                f"got {self.stride_px}"
            )
        if (self.tile_px - self.stride_px) % 2:
            raise ValueError(
                f"tile_px - stride_px must be even so heatmap cells sit in the patch "
                f"centre, got tile_px={self.tile_px}, stride_px={self.stride_px}"
            )

    @property
    def plan(self) -> ReadPlan:
        """The level and resampling that produce pixels at ``mpp``."""
        return self.geometry.read_plan(self.mpp)

    @property
    def downsample(self) -> float:
        """Level-0 pixels per target pixel (effective, after level matching)."""
        return self.plan.downsample

    @property
    def target_size_px(self) -> tuple[int, int]:
        """``(width, height)`` of the whole slide at the target resolution."""
        ds = self.downsample
        return int(self.geometry.width_px / ds), int(self.geometry.height_px / ds)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the grid; zero when the slide is smaller than a patch."""
        width, height = self.target_size_px

        def count(n: int) -> int:
            return 0 if n < self.tile_px else (n - self.tile_px) // self.stride_px + 1

        return count(height), count(width)

    @property
    def mask_downsample(self) -> float:
        """Level-0 pixels per tissue-mask pixel (``MASK_CELL_PX`` target pixels)."""
        return self.downsample * MASK_CELL_PX

    @property
    def mask_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of a tissue mask covering the whole slide."""
        ds = self.mask_downsample
        return (
            math.ceil(self.geometry.height_px / ds - 1e-9),
            math.ceil(self.geometry.width_px / ds - 1e-9),
        )

    @property
    def mask_plan(self) -> ReadPlan:
        """How to read the tissue-mask thumbnail so that it aligns with the grid."""
        return self.geometry.plan_for_downsample(self.mask_downsample)

    @property
    def cell_offset_px(self) -> int:
        """Offset of a heatmap cell from its patch's top-left, in target pixels."""
        return (self.tile_px - self.stride_px) // 2

    @property
    def cell_size_l0(self) -> float:
        """Side of one heatmap cell in level-0 pixels."""
        return self.stride_px * self.downsample

    def target_xy(self, rowcol: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Top-left target-pixel ``(x, y)`` of the patches at ``[row, col]`` indices."""
        rc = np.asarray(rowcol, dtype=np.int64).reshape(-1, 2)
        return rc[:, ::-1] * self.stride_px

    def coords(self, rowcol: npt.ArrayLike | None = None) -> npt.NDArray[np.int64]:
        """Level-0 top-left ``(x, y)`` of patches (all of them, row-major, by default)."""
        if rowcol is None:
            rows, cols = self.shape
            rr, cc = np.mgrid[0:rows, 0:cols]
            rowcol = np.stack([rr.ravel(), cc.ravel()], axis=1)
        xy = self.target_xy(rowcol).astype(np.float64) * self.downsample
        return np.rint(xy).astype(np.int64)

    def cell_to_level0(self, rowcol: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Level-0 top-left ``(x, y)`` of the heatmap cells at ``[row, col]``."""
        xy = self.target_xy(rowcol) + self.cell_offset_px
        return xy.astype(np.float64) * self.downsample

    def heatmap_to_level0(self, xy_cells: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map continuous heatmap coordinates (cell units, x then y) to level-0 px.

        A point ``(j, i)`` in cell units is the top-left corner of cell ``(i, j)``;
        contours traced on the heatmap map to the slide through this function.
        """
        xy = np.asarray(xy_cells, dtype=np.float64)
        return (xy * self.stride_px + self.cell_offset_px) * self.downsample

    @property
    def cell_origin_l0(self) -> tuple[float, float]:
        """Level-0 ``(x, y)`` of the top-left corner of heatmap cell ``(0, 0)``.

        Examples
        --------
        >>> g = SlideGeometry(width_px=1000, height_px=500, mpp_x=0.243, mpp_y=0.243,
        ...                   level_dimensions=((1000, 500), (250, 125)))
        >>> TileGrid(geometry=g, stride_px=32).cell_origin_l0
        (128.0, 128.0)
        """
        origin = self.cell_offset_px * self.downsample
        return origin, origin

    def level0_to_heatmap(self, xy_l0: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map level-0 ``(x, y)`` points to continuous heatmap coordinates (cell units).

        The inverse of `heatmap_to_level0`: the floor of the result is the
        ``(col, row)`` of the cell that contains the point (negative or beyond the grid
        when no cell does).

        Examples
        --------
        >>> g = SlideGeometry(width_px=1000, height_px=500, mpp_x=0.243, mpp_y=0.243,
        ...                   level_dimensions=((1000, 500), (250, 125)))
        >>> grid = TileGrid(geometry=g, stride_px=32)
        >>> grid.level0_to_heatmap([[128.0, 256.0]]).tolist()
        [[0.0, 1.0]]
        """
        xy = np.asarray(xy_l0, dtype=np.float64)
        return (xy / self.downsample - self.cell_offset_px) / self.stride_px


def check_model_matches(
    *,
    model_name: str,
    model_px: int,
    model_mpp: float,
    tile_px: int,
    tiles_mpp: float,
    tolerance: float = MODEL_MPP_TOLERANCE,
) -> None:
    """Refuse a model whose patch size or um/px differs from the tiles'.

    The one place for this rule: ``wsi.scoring.score_store`` and
    ``model.predict.check_compatible`` both call it.

    Raises
    ------
    ModelLoadError
        The patch sizes differ, or the resolutions differ by more than ``tolerance``
        (relative); the message says how to tile again.

    Examples
    --------
    >>> check_model_matches(model_name="m", model_px=96, model_mpp=0.972,
    ...                     tile_px=96, tiles_mpp=0.97)
    """
    if model_px != tile_px:
        raise ModelLoadError(
            f"{model_name} takes {model_px} px patches but the tiles are {tile_px} px; "
            f"tile again with {model_px} px tiles"
        )
    if abs(model_mpp / tiles_mpp - 1) > tolerance:
        raise ModelLoadError(
            f"{model_name} was trained at {model_mpp:g} um/px but the tiles are at "
            f"{tiles_mpp:g} um/px; tile again with `tiling.mpp` {model_mpp:g} or use a "
            f"model trained at {tiles_mpp:g} um/px"
        )


def check_heatmap(heatmap: npt.ArrayLike, grid: TileGrid) -> npt.NDArray[np.float32]:
    """Return ``heatmap`` as float32, or raise if it is not of ``grid.shape``."""
    values = np.asarray(heatmap, dtype=np.float32)
    if values.shape != grid.shape:
        raise ValueError(
            f"heatmap shape {values.shape} does not match the grid's {grid.shape}; "
            f"pass the grid the heatmap was stitched on"
        )
    return values
