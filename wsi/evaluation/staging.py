"""Camelyon17 evaluation of staging: node classes, patients' pN stages, lesion size.

- Nodes: the confusion matrix over negative / ITC / micro / macro and the accuracy,
  with a bootstrap 95% interval over patients (a patient's nodes stay together).
- Patients: Camelyon17's metric, the quadratic-weighted Cohen's kappa over the five
  pN stages (scikit-learn's ``cohen_kappa_score``), with a bootstrap 95% interval
  over patients.
- Size: with truth outlines, the absolute error of the largest lesion's longest
  diameter, mm, over the tumour nodes (and over those whose truth is a
  micro-metastasis).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsi.errors import WsiError
from wsi.regions.lesion_class import NodeClass, size_class
from wsi.regions.lesion_size import max_diameter_um
from wsi.staging.pn_stage import PnStage, patient_stage, read_stage_labels
from wsi.staging.stage_run import NodeResult, read_node_results

__all__ = ["StagingReport", "evaluate_staging", "quadratic_kappa", "staging_report"]

_CLASSES = list(NodeClass)
_STAGES = list(PnStage)


def quadratic_kappa(truth: list[PnStage], predicted: list[PnStage]) -> float:
    """Quadratic-weighted Cohen's kappa over the five pN stages.

    Examples
    --------
    >>> S = list(PnStage)
    >>> quadratic_kappa(S, S)
    1.0
    >>> round(quadratic_kappa([S[0], S[1], S[4]], [S[0], S[2], S[4]]), 4)
    0.9412
    """
    from sklearn.metrics import cohen_kappa_score

    if len(truth) != len(predicted) or not truth:
        raise ValueError("need the same, non-zero number of truth and predicted stages")
    return float(
        cohen_kappa_score(
            [s.rank for s in truth],
            [s.rank for s in predicted],
            labels=list(range(len(_STAGES))),
            weights="quadratic",
        )
    )


@dataclass(frozen=True, kw_only=True)
class StagingReport:
    """The staging metrics of a run against a ``stage_labels.csv``.

    ``confusion[i][j]`` counts nodes of true class i predicted as j (order: negative,
    itc, micro, macro); ``patients`` is ``(patient, truth, predicted)`` with
    predicted None when a node had no result; ``diameters`` is ``(stem, truth mm,
    predicted mm)`` for tumour nodes with a truth outline.
    """

    confusion: list[list[int]]
    node_accuracy: float | None
    node_accuracy_ci: tuple[float, float] | None
    n_nodes: int
    unscored_nodes: list[str]
    patients: list[tuple[str, str, str | None]]
    kappa: float | None
    kappa_ci: tuple[float, float] | None
    diameters: list[tuple[str, float, float]]
    diameter_mae_mm: float | None
    micro_diameter_mae_mm: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self) | {"classes": [c.value for c in _CLASSES]}


def staging_report(
    nodes: dict[str, NodeResult],
    labels_path: Path,
    *,
    truth_diameters_mm: dict[str, float] | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> StagingReport:
    """Compare a run's node results with a Camelyon17 ``stage_labels.csv``.

    A labelled node without a result is listed in ``unscored_nodes`` and left out
    of the accuracy; its patient is not staged (never guessed): listed with None and
    left out of the kappa.

    Raises
    ------
    WsiError
        The labels cannot be read, or none of their nodes is in the run.
    """
    labels = read_stage_labels(labels_path)
    confusion = np.zeros((len(_CLASSES), len(_CLASSES)), np.int64)
    unscored = []
    # Per patient: [right, scored] nodes (the accuracy and its interval).
    by_patient: dict[str, list[int]] = {}
    for stem, truth in sorted(labels.nodes.items()):
        result = nodes.get(stem)
        if result is None or result.node_class is None:
            unscored.append(stem)
            continue
        confusion[truth.rank, result.node_class.rank] += 1
        tally = by_patient.setdefault(labels.node_patient.get(stem, stem), [0, 0])
        tally[0] += int(truth == result.node_class)
        tally[1] += 1
    n_nodes = len(labels.nodes)
    if n_nodes and len(unscored) == n_nodes:
        raise WsiError(
            f"{labels_path}: none of its {n_nodes} nodes has a result in the run; "
            "pass the `out_dir` folder the slides were run into"
        )
    patients: list[tuple[str, str, str | None]] = []
    truth_stages, predicted_stages = [], []
    for patient, truth_stage in sorted(labels.patients.items()):
        stems = [s for s, p in labels.node_patient.items() if p == patient]
        classes = [nodes[s].node_class if s in nodes else None for s in stems]
        if not stems or any(c is None for c in classes):
            patients.append((patient, truth_stage.value, None))
            continue
        predicted = patient_stage(c for c in classes if c is not None)
        patients.append((patient, truth_stage.value, predicted.value))
        truth_stages.append(truth_stage)
        predicted_stages.append(predicted)
    kappa = quadratic_kappa(truth_stages, predicted_stages) if truth_stages else None
    kappa_ci = (
        _kappa_ci(truth_stages, predicted_stages, n_bootstrap, seed)
        if len(truth_stages) >= 2
        else None
    )
    diameters = []
    for stem, truth_mm in sorted((truth_diameters_mm or {}).items()):
        result = nodes.get(stem)
        if result is not None and result.node_class is not None:
            diameters.append((stem, truth_mm, result.largest_diameter_mm or 0.0))
    errors = [abs(t - p) for _, t, p in diameters]
    micro = [abs(t - p) for _, t, p in diameters if size_class(t) == NodeClass.MICRO]
    return StagingReport(
        confusion=confusion.tolist(),
        node_accuracy=(
            sum(t[0] for t in by_patient.values()) / (n_nodes - len(unscored))
            if n_nodes
            else None
        ),
        node_accuracy_ci=(
            _accuracy_ci(list(by_patient.values()), n_bootstrap, seed)
            if len(by_patient) >= 2
            else None
        ),
        n_nodes=n_nodes,
        unscored_nodes=unscored,
        patients=patients,
        kappa=kappa,
        kappa_ci=kappa_ci,
        diameters=diameters,
        diameter_mae_mm=float(np.mean(errors)) if errors else None,
        micro_diameter_mae_mm=float(np.mean(micro)) if micro else None,
    )


def _accuracy_ci(tallies: list[list[int]], n: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap of the node accuracy over patients."""
    counts = np.asarray(tallies, np.float64)
    idx = np.random.default_rng(seed).integers(len(counts), size=(n, len(counts)))
    sums = counts[idx].sum(axis=1)
    low, high = np.percentile(sums[:, 0] / sums[:, 1], [2.5, 97.5])
    return float(low), float(high)


def _kappa_ci(
    truth: list[PnStage], predicted: list[PnStage], n: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap over patients (samples with one stage only are skipped)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(len(truth), size=len(truth))
        t = [truth[i] for i in idx]
        if len(set(t)) < 2:
            continue
        value = quadratic_kappa(t, [predicted[i] for i in idx])
        if math.isfinite(value):
            values.append(value)
    if not values:
        return (math.nan, math.nan)
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def truth_diameters(
    annotations: Path, mpp_by_stem: dict[str, float]
) -> dict[str, float]:
    """Longest diameter of each slide's largest truth outline, mm (slides with one).

    ``annotations`` is a folder of ASAP XML, QuPath GeoJSON or NCRF JSON files named
    by slide stem; ``mpp_by_stem`` gives each slide's level-0 um/px.
    """
    from wsi.evaluation.truth import read_vector_truth

    out = {}
    for stem, mpp in mpp_by_stem.items():
        for suffix in (".xml", ".geojson", ".json"):
            path = annotations / f"{stem}{suffix}"
            if path.is_file():
                polygons = read_vector_truth(path)
                if polygons:
                    diameters = [max_diameter_um(p, mpp=mpp) for p in polygons]
                    out[stem] = max(diameters) / 1000
                break
    return out


def evaluate_staging(
    out_dir: Path,
    labels_path: Path,
    *,
    annotations: Path | None = None,
    eval_out: Path | None = None,
) -> StagingReport:
    """Evaluate a run folder's staging; write ``staging.json`` into ``eval_out``.

    ``annotations`` (a folder of truth outlines, by stem) adds the diameter error.
    """
    nodes = read_node_results(out_dir)
    truth = None
    if annotations is not None:
        mpps = {s: n.mpp for s, n in nodes.items() if n.mpp is not None}
        truth = truth_diameters(annotations, mpps)
    report = staging_report(nodes, labels_path, truth_diameters_mm=truth)
    if eval_out is not None:
        from wsi.store.atomic import write_json_atomic

        eval_out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(eval_out / "staging.json", report.as_dict())
    return report
