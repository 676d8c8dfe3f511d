"""wsi-heatmap: find metastases in whole-slide images at PatchCamelyon scale.

The public API is re-exported here and imported lazily (``lazy_loader``), so
``import wsi`` and ``wsi-heatmap --help`` stay instant.

>>> import wsi
>>> wsi.PCAM_MPP
0.972
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "errors": [
            "AnnotationError",
            "BusyError",
            "MissingResolutionError",
            "ModelLoadError",
            "NoTissueError",
            "OutputError",
            "SettingsMismatchError",
            "SlideReadError",
            "WsiError",
        ],
        "geometry": ["CENTER_PX", "PATCH_PX", "PCAM_MPP", "SlideGeometry", "TileGrid"],
        "slide.reader": ["Slide", "open_slide"],
        "tiles.tissue": ["TissueMask", "TissueParams", "compute_tissue_mask"],
        "tiles.tiler": ["TilingParams", "TilingResult", "tile_slide"],
        "store.slide_store": ["open_tile_store"],
        "scoring": ["PatchClassifier", "ScoringParams", "score_store"],
        "heatmap.stitching": ["stitch"],
        "formats.export": ["PolygonParams", "TumorRegion", "heatmap_regions"],
        "pipeline": ["RunConfig", "RunReport", "run"],
        "store.layout": ["SlideOutputs"],
    },
)
