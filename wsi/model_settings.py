"""The settings a model's card tunes, as ``RunConfig`` sections.

A bundled model's card carries the scoring TTA and the post-processing (polygons,
lesion candidates, slide score) chosen for it on development slides; a model without
them gets the generic defaults (the dataclasses'). The CLI applies, in order: the
generic defaults, these, a ``--config`` file, the flags the user set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from wsi.formats.export import PolygonParams
from wsi.regions.detection import DetectionParams
from wsi.regions.lesion_class import StagingParams
from wsi.regions.slide_score import SlideScoreParams
from wsi.scoring import ScoringParams

__all__ = ["POST_SECTIONS", "TunedSections", "generic_sections", "tuned_sections"]

#: The sections that turn a heatmap into results (what ``stitch`` redoes).
POST_SECTIONS = ("polygons", "detection", "slide_score", "staging")


class TunedSections(TypedDict):
    """The settings a model's card tunes, as ``RunConfig`` keyword arguments."""

    scoring: ScoringParams
    polygons: PolygonParams
    detection: DetectionParams
    slide_score: SlideScoreParams
    staging: StagingParams


def tuned_sections(
    model: Path | str | None, **overrides: dict[str, Any]
) -> TunedSections:
    """The model's run settings: scoring (model, TTA) and the `POST_SECTIONS`.

    Each bundled model's card carries the settings chosen for it on development
    slides; a model without them gets the generic defaults. ``overrides`` (section
    -> field -> value) are applied on top, as a user's own settings are.

    Examples
    --------
    >>> sections = tuned_sections(None, detection={"nms_radius_um": 300.0})
    >>> sorted(sections), sections["detection"].nms_radius_um
    (['detection', 'polygons', 'scoring', 'slide_score', 'staging'], 300.0)
    >>> from wsi.pipeline import RunConfig
    >>> config = RunConfig(slides=(), out_dir=Path("out"), **tuned_sections(None))
    """
    from model.registry import tuned_settings

    values = _merged(tuned_settings(model), overrides)
    values.setdefault("scoring", {}).setdefault(
        "model_path", None if model is None else Path(model)
    )
    return generic_sections(**values)


def generic_sections(
    **overrides: dict[str, Any],
) -> TunedSections:
    """The generic scoring and post-processing settings, with ``overrides``.

    What a model without tuned settings gets (see :func:`tuned_sections`).
    """
    values = overrides
    return {
        "scoring": ScoringParams(**values.get("scoring", {})),
        "polygons": PolygonParams(**values.get("polygons", {})),
        "detection": DetectionParams(**values.get("detection", {})),
        "slide_score": SlideScoreParams(**values.get("slide_score", {})),
        "staging": StagingParams(**values.get("staging", {})),
    }


def _merged(
    base: dict[str, dict[str, Any]], overrides: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    out = {k: dict(v) for k, v in base.items()}
    for section, fields in overrides.items():
        out.setdefault(section, {}).update(fields)
    return out
