"""A slide's level-0 microns per pixel: from ``--mpp``, metadata or objective (private).

Used by :func:`wsi.slide.reader.open_slide`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import openslide

from wsi.errors import MissingResolutionError

__all__ = ["level0_mpp"]

logger = logging.getLogger(__name__)


def level0_mpp(
    path: Path,
    properties: Mapping[str, str],
    *,
    mpp: float | None,
    mpp_from_objective: bool,
) -> tuple[float, float, str]:
    """Level-0 ``(mpp_x, mpp_y, source)`` from the user, the metadata or the objective.

    Raises
    ------
    MissingResolutionError
        No usable microns per pixel; the message names ``--mpp`` (and
        ``--mpp-from-objective`` when the slide has an objective power).
    """
    if mpp is not None:
        meta = _positive(properties.get(openslide.PROPERTY_NAME_MPP_X))
        if meta is not None and abs(meta / mpp - 1) > 0.01:
            logger.info(
                "%s: using `mpp` %.4f instead of its metadata %.4f um/px",
                path.name,
                mpp,
                meta,
            )
        return mpp, mpp, "user"
    mpp_x = _positive(properties.get(openslide.PROPERTY_NAME_MPP_X))
    mpp_y = _positive(properties.get(openslide.PROPERTY_NAME_MPP_Y))
    if mpp_x is not None and mpp_y is not None:
        return mpp_x, mpp_y, "metadata"
    objective = _positive(properties.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER))
    if objective is not None and mpp_from_objective:
        assumed = 10.0 / objective
        logger.warning(
            "%s has no microns per pixel; assuming %.4f um/px from its %gx objective "
            "power (`mpp_from_objective`). Scanners differ: pass `mpp` if you know "
            "the real value",
            path.name,
            assumed,
            objective,
        )
        return assumed, assumed, "objective"
    hint = (
        "pass `mpp` with the level-0 microns per pixel (about 0.25 at 40x, 0.5 at 20x)"
    )
    if objective is not None:
        hint += (
            f", or `mpp_from_objective` to assume {10.0 / objective:.4g} um/px from its "
            f"{objective:g}x objective power"
        )
    raise MissingResolutionError(f"{path} has no microns-per-pixel metadata; {hint}")


def _positive(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None
