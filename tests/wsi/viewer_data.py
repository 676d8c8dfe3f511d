"""A tiny output folder for the viewer tests: a 2-level slide, a heatmap, a region."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile
import zarr
from PIL import Image

from wsi.geometry import SlideGeometry, TileGrid
from wsi.store.heatmap_section import write_heatmap_zarr
from wsi.store.layout import SlideOutputs

MPP = 0.243
WIDTH_PX, HEIGHT_PX = 1024, 768
STEM = "tiny"
REGION = [[400, 300], [700, 300], [700, 500], [400, 500], [400, 300]]


def write_slide(path: Path) -> Path:
    """Write a 2-level tiled JPEG TIFF at 0.243 um/px: white with a purple square."""
    rgb = np.full((HEIGHT_PX, WIDTH_PX, 3), 240, np.uint8)
    rgb[300:500, 400:700] = (110, 40, 150)
    with tifffile.TiffWriter(path) as tif:
        for ds in (1, 4):
            level = rgb[::ds, ::ds]
            tif.write(
                level,
                tile=(128, 128),
                photometric="rgb",
                compression="jpeg",
                resolution=(1e4 / (MPP * ds),) * 2,
                resolutionunit="CENTIMETER",
                subfiletype=0 if ds == 1 else 1,
                metadata=None,
            )
    return path


def make_grid() -> TileGrid:
    geometry = SlideGeometry(
        width_px=WIDTH_PX,
        height_px=HEIGHT_PX,
        mpp_x=MPP,
        mpp_y=MPP,
        level_dimensions=((1024, 768), (256, 192)),
    )
    return TileGrid(geometry=geometry, stride_px=32)


def make_heatmap(shape: tuple[int, int]) -> np.ndarray:
    values = np.linspace(0, 1, shape[0] * shape[1], dtype=np.float32).reshape(shape)
    values[0, 0] = np.nan
    return values


def build_out_dir(root: Path, heatmap: np.ndarray | None = None) -> Path:
    """OUT/tiny with every file the viewer reads, OUT/partial with a summary only."""
    slide = write_slide(root / f"{STEM}.tif")
    out = root / "out"
    outputs = SlideOutputs.for_slide(out, slide)
    outputs.folder.mkdir(parents=True)
    grid = make_grid()
    values = make_heatmap(grid.shape) if heatmap is None else heatmap
    write_heatmap_zarr(zarr.open_group(str(outputs.store), mode="w"), values, grid=grid)
    outputs.summary_json.write_text(
        json.dumps(
            {
                "slide": {"path": str(slide.resolve()), "stem": STEM},
                "n_patches": 23,
                "max_probability": 0.875,
                "tumor_area_um2": 3541.0,
                "n_regions": 1,
                "node_class": "micro",
                "largest_diameter_mm": 0.4321,
                "lesions": [
                    {
                        "diameter_mm": 0.4321,
                        "class": "micro",
                        "area_um2": 34829.1,
                        "n_cells": 4,
                        "max_probability": 0.98,
                        "x_l0": 550,
                        "y_l0": 400,
                    }
                ],
                "threshold": 0.5,
                "effective_mpp": 0.972,
            }
        )
    )
    outputs.geojson.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": [REGION]},
                        "properties": {
                            "objectType": "annotation",
                            "classification": {"name": "Tumor"},
                        },
                    }
                ],
            }
        )
    )
    Image.new("RGB", (8, 8), "red").save(outputs.overlay_png)
    partial = SlideOutputs(out / "partial")
    partial.folder.mkdir()
    partial.summary_json.write_text(
        json.dumps(
            {
                "slide": {"path": str(root / "gone.tif")},
                "max_probability": 0.1,
                "tumor_area_um2": 0.0,
            }
        )
    )
    (out / "not-a-slide").mkdir()
    return out
