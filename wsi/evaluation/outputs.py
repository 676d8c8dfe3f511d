"""Predictions: what ``wsi-heatmap`` wrote for each slide, read for evaluation.

From ``OUT/<stem>/``: ``detections.csv`` (Camelyon16 lines ``probability,X,Y``),
``summary.json`` (``slide_probability``), ``tumor.geojson`` (the tumour polygons) and
the store's ``tiling`` attribute (the slide's level-0 size and um/px). Nothing here
opens the slide itself.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wsi.errors import EvaluationError, WsiError
from wsi.store.layout import Attr, SlideOutputs

__all__ = [
    "Detections",
    "SlideInfo",
    "find_slide_outputs",
    "read_detections_csv",
    "read_slide_info",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Detections:
    """Lesion candidates of one slide, in file order.

    ``probabilities`` is ``float64[N]``, ``l0_xy`` ``float64[N, 2]`` level-0
    ``(x, y)`` pixels.
    """

    probabilities: npt.NDArray[np.float64]
    l0_xy: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.probabilities)


@dataclass(frozen=True, slots=True, kw_only=True)
class SlideInfo:
    """What the evaluation needs to know of a slide from its outputs.

    ``width_px`` / ``height_px`` (level 0) and ``mpp`` are None when neither the
    store nor ``summary.json`` records them; ``slide_probability`` is None without a
    ``summary.json``.
    """

    stem: str
    width_px: int | None
    height_px: int | None
    mpp: float | None
    slide_probability: float | None


def find_slide_outputs(out_dir: Path) -> list[SlideOutputs]:
    """The slide output folders under ``out_dir`` (or ``out_dir`` itself if it is one).

    A folder is a slide's when it holds ``detections.csv`` or ``summary.json``.

    Raises
    ------
    EvaluationError
        ``out_dir`` is not a folder or holds no slide outputs.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise EvaluationError(
            f"{out_dir} is not a folder; pass the `out_dir` folder of a wsi-heatmap run"
        )

    def is_slide(folder: Path) -> bool:
        outputs = SlideOutputs(folder)
        return bool(outputs.detections_csv.is_file() or outputs.summary_json.is_file())

    if is_slide(out_dir):
        return [SlideOutputs(out_dir)]
    found = [
        SlideOutputs(p) for p in sorted(out_dir.iterdir()) if p.is_dir() and is_slide(p)
    ]
    if not found:
        raise EvaluationError(
            f"{out_dir} holds no slide outputs (OUT/<stem>/detections.csv or "
            f"summary.json); run `wsi-heatmap SLIDE... --out {out_dir}` first"
        )
    return found


def read_detections_csv(path: Path) -> Detections:
    r"""Read a Camelyon16 detections file: lines ``probability,X,Y``, level-0 px.

    As the official script parses it, with blank lines skipped and X, Y allowed to be
    decimal. An empty file gives no detections (logged as a warning).

    Raises
    ------
    EvaluationError
        The file is missing or a line is not three numbers.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "detections.csv"
    ...     _ = path.write_text("0.9,100,200\n\n0.25,7,8\n")
    ...     d = read_detections_csv(path)
    >>> d.probabilities.tolist(), d.l0_xy.tolist()
    ([0.9, 0.25], [[100.0, 200.0], [7.0, 8.0]])
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise EvaluationError(
            f"cannot read {path}: {err.strerror or err}; run `wsi-heatmap stitch "
            f"{path.parent}` to write the detections"
        ) from err
    rows: list[tuple[float, float, float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        try:
            if len(fields) != 3:
                raise ValueError(f"{len(fields)} fields")
            p, x, y = (float(f) for f in fields)
            if not all(math.isfinite(v) for v in (p, x, y)):
                raise ValueError("not finite")
        except ValueError as err:
            raise EvaluationError(
                f"{path} line {number}: {line.strip()!r} is not 'probability,X,Y' "
                f"({err}); fix the line or rewrite the file with `wsi-heatmap stitch`"
            ) from err
        rows.append((p, x, y))
    if not rows:
        logger.warning("%s: empty, no lesion candidates", path)
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
    return Detections(probabilities=table[:, 0].copy(), l0_xy=table[:, 1:].copy())


def read_slide_info(outputs: SlideOutputs) -> SlideInfo:
    """Slide probability, level-0 size and um/px from a slide's outputs.

    The size and um/px come from the store's ``tiling`` attribute (its ``geometry``)
    or, failing that, from ``summary.json`` keys ``slide_size_l0_px``
    ``[width, height]`` and ``slide_mpp`` (a number or ``[x, y]``).

    Raises
    ------
    EvaluationError
        ``summary.json`` exists but is not JSON, or its ``slide_probability`` is not
        a number.
    """
    summary = _read_summary(outputs)
    probability: float | None = None
    if summary is not None:
        value: Any = summary.get("slide_probability", summary.get("max_probability"))
        try:
            probability = float(value)
        except (TypeError, ValueError) as err:
            raise EvaluationError(
                f"{outputs.summary_json}: slide_probability is {value!r}, not a "
                f"number; rerun `wsi-heatmap stitch {outputs.folder}`"
            ) from err
    width, height, mpp = _geometry_from_store(outputs)
    if mpp is None and summary is not None:
        width, height, mpp = _geometry_from_summary(summary)
    return SlideInfo(
        stem=outputs.stem,
        width_px=width,
        height_px=height,
        mpp=mpp,
        slide_probability=probability,
    )


def _read_summary(outputs: SlideOutputs) -> dict[str, Any] | None:
    path = outputs.summary_json
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise EvaluationError(
            f"cannot read {path}: {err}; rerun `wsi-heatmap {outputs.stem}` to rewrite it"
        ) from err
    if not isinstance(data, dict):
        raise EvaluationError(f"{path} is not a JSON object; rerun wsi-heatmap on it")
    return data


def _geometry_from_store(
    outputs: SlideOutputs,
) -> tuple[int | None, int | None, float | None]:
    if not outputs.store.exists():
        return None, None, None
    from wsi.store.slide_store import attrs_section, open_store

    try:
        geometry = attrs_section(open_store(outputs.store), Attr.TILING)["geometry"]
        return (
            int(geometry["width_px"]),
            int(geometry["height_px"]),
            (float(geometry["mpp_x"]) + float(geometry["mpp_y"])) / 2,
        )
    except (WsiError, KeyError, TypeError, ValueError) as err:
        logger.warning("%s: no slide geometry in the store (%s)", outputs.store, err)
        return None, None, None


def _geometry_from_summary(
    summary: dict[str, Any],
) -> tuple[int | None, int | None, float | None]:
    try:
        mpp_value = summary["slide_mpp"]
        mpp = float(np.mean(mpp_value))
        size = summary.get("slide_size_l0_px")
        if size is None:
            return None, None, mpp
        return int(size[0]), int(size[1]), mpp
    except (KeyError, TypeError, ValueError, IndexError):
        return None, None, None
