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
        "reader": ["Slide", "open_slide"],
        "tissue": ["TissueMask", "TissueParams", "compute_tissue_mask"],
        "tiling": ["TilingParams", "TilingResult", "tile_slide"],
        "store": ["open_tile_store"],
        "scoring": ["PatchClassifier", "ScoringParams", "score_store"],
        "heatmap": ["stitch"],
        "export": ["PolygonParams", "TumorRegion", "heatmap_regions"],
        "pipeline": ["RunConfig", "RunReport", "run"],
        "layout": ["SlideOutputs"],
    },
)
