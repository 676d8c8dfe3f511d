"""File layout of the outputs: one place for every file, array and attribute name.

For a slide ``S.tif`` and an output folder ``OUT``::

    OUT/S/S.zarr          zarr v3 store (arrays below, attributes in ``Attr``)
    OUT/S/heatmap.tif     pyramidal TIFF of the heatmap, slide's physical pixel size
    OUT/S/heatmap.png     colour-mapped heatmap with a colour bar
    OUT/S/overlay.png     heatmap over the slide thumbnail, tissue outline, polygons
    OUT/S/tissue.png      the tissue mask
    OUT/S/tumor.geojson   QuPath FeatureCollection, level-0 pixels
    OUT/S/tumor.xml       ASAP / Camelyon16 XML, group "Tumor"
    OUT/S/detections.csv  Camelyon16 lesion-level lines ``probability,X,Y``
    OUT/S/summary.json    slide-level results, settings, timings, versions
    OUT/S/S.lock          held while a process writes the slide's outputs
    OUT/run.json          the run: config, versions, git commit, failures
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["Arrays", "Attr", "SlideOutputs", "lock_path"]


class Arrays:
    """Names of the arrays in a slide's zarr store."""

    PATCHES: Final = "patches"  # uint8 (N, 96, 96, 3), chunked by batches
    # Cell layout (stride s < 96 dividing 96; wsi.store._cells): each pixel stored once.
    CELLS: Final = "cells"  # uint8 (M, s, s, 3), the cells kept patches cover
    CELL_GRID: Final = "cell_grid"  # int64 (M, 2) (row, col) of each cell, row-major
    PATCH_CELLS: Final = "patch_cells"  # int32 (N, k*k) each patch's cells
    # Source-JPEG layout (wsi.store._source_jpeg): the read level's own JPEG tiles.
    SOURCE_TILES: Final = "source_tiles"  # bytes (T,), tiles as in the slide
    SOURCE_TILE_GRID: Final = "source_tile_grid"  # int64 (T, 2) tile (row, col)
    COORDS: Final = "coords"  # int64 (N, 2) level-0 (x, y) of each patch's top-left
    GRID: Final = "grid"  # int64 (N, 2) (row, col) of each patch in the grid
    TISSUE_MASK: Final = (
        "tissue_mask"  # bool (H, W), one pixel = MASK_CELL_PX target px
    )
    THUMBNAIL: Final = "thumbnail"  # uint8 (H, W, 3) RGB at the mask resolution
    SCORES: Final = "scores"  # float32 (N,), NaN until scored
    SCORED: Final = "scored_chunks"  # bool (n_chunks,), a chunk of scores is final
    TILED: Final = "tiled_chunks"  # bool (n_chunks,), a chunk is final
    HEATMAP: Final = "heatmap"  # float32 (rows, cols), NaN where no tissue patch


class Attr:
    """Attribute keys of a slide's zarr store."""

    TILING: Final = "tiling"  # everything needed to reproduce and map back
    TILING_COMPLETE: Final = "tiling_complete"
    SCORING: Final = "scoring"  # model sha256, tta, batch size
    SCORING_COMPLETE: Final = "scoring_complete"
    HEATMAP: Final = "heatmap"  # cell geometry: origin and size in level-0 px
    SETTINGS_HASH: Final = "settings_hash"


@dataclass(frozen=True, slots=True)
class SlideOutputs:
    """Paths of everything written for one slide under ``OUT/<stem>/``."""

    folder: Path

    @classmethod
    def for_slide(cls, out_dir: Path, slide_path: Path) -> SlideOutputs:
        """Outputs of ``slide_path`` under ``out_dir``."""
        return cls(Path(out_dir) / Path(slide_path).stem)

    @property
    def stem(self) -> str:
        """The slide's file stem."""
        return self.folder.name

    @property
    def store(self) -> Path:
        """The zarr store."""
        return self.folder / f"{self.stem}.zarr"

    heatmap_tif = property(lambda self: self.folder / "heatmap.tif")
    heatmap_png = property(lambda self: self.folder / "heatmap.png")
    overlay_png = property(lambda self: self.folder / "overlay.png")
    tissue_png = property(lambda self: self.folder / "tissue.png")
    geojson = property(lambda self: self.folder / "tumor.geojson")
    asap_xml = property(lambda self: self.folder / "tumor.xml")
    detections_csv = property(lambda self: self.folder / "detections.csv")
    summary_json = property(lambda self: self.folder / "summary.json")
    lock = property(lambda self: lock_path(self.store))


def lock_path(store: Path) -> Path:
    """The lock file of a store and the outputs beside it (``S.zarr`` -> ``S.lock``).

    >>> lock_path(Path("out/S/S.zarr")).as_posix()
    'out/S/S.lock'
    """
    return Path(store).with_suffix(".lock")
