"""Camelyon16 evaluation of ``wsi-heatmap`` outputs: FROC, slide AUC, Dice.

``evaluate(EvalConfig(out_dir=..., annotations=...))`` reads each slide's
``detections.csv``, ``summary.json`` and ``tumor.geojson``, matches the truth files by
stem and returns an `EvalReport` (and writes ``metrics.json``, ``slides.csv``,
``froc.png`` and ``roc.png``). The building blocks follow the data flow:
``truth`` (annotation readers) -> ``masks`` (evaluation mask at level 5) -> ``froc``
(lesion level), ``slide_level`` (ROC AUC), ``overlap`` (Dice/IoU) -> ``report``.
See docs/EVALUATION.md.
"""

from wsi.evaluation.evaluator import (
    CAMELYON16_EXCLUDED,
    EvalConfig,
    EvalFailure,
    EvalReport,
    evaluate,
)
from wsi.evaluation.froc import (
    FP_RATES,
    FrocCurve,
    SlideHits,
    froc_curve,
    match_detections,
)
from wsi.evaluation.masks import (
    EvalGrid,
    EvalMask,
    evaluation_mask,
    rasterize_polygons,
    read_mask_tiff,
)
from wsi.evaluation.outputs import Detections, read_detections_csv
from wsi.evaluation.overlap import Overlap, mask_overlap, polygon_overlap
from wsi.evaluation.slide import SlideEvaluation
from wsi.evaluation.slide_level import RocCurve, bootstrap_auc_ci, roc_auc, roc_curve
from wsi.evaluation.truth import read_ncrf_json, read_reference_csv, read_vector_truth

__all__ = [
    "CAMELYON16_EXCLUDED",
    "FP_RATES",
    "Detections",
    "EvalConfig",
    "EvalFailure",
    "EvalGrid",
    "EvalMask",
    "EvalReport",
    "FrocCurve",
    "Overlap",
    "RocCurve",
    "SlideEvaluation",
    "SlideHits",
    "bootstrap_auc_ci",
    "evaluate",
    "evaluation_mask",
    "froc_curve",
    "mask_overlap",
    "match_detections",
    "polygon_overlap",
    "rasterize_polygons",
    "read_detections_csv",
    "read_mask_tiff",
    "read_ncrf_json",
    "read_reference_csv",
    "read_vector_truth",
    "roc_auc",
    "roc_curve",
]
