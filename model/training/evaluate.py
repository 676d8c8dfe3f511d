"""Evaluate a patch classifier on a labelled patch set: ROC AUC, accuracy, loss, ROC curve.

``eval_patches`` is what ``wsi-heatmap eval-patches`` runs; the smaller functions
(``score_patch_set``, ``roc_auc``, ``plot_roc``, ``most_wrong``) are what the notebook
uses to look at the scores themselves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from model.training.data import DataError, PatchSet, open_patch_set
from wsi.progress import Progress, ensure_progress
from wsi.provenance import software_versions

__all__ = [
    "EvalReport",
    "auc_ci95",
    "eval_patches",
    "keras_model_auc",
    "log_loss",
    "most_wrong",
    "plot_roc",
    "roc_auc",
    "score_patch_set",
]

logger = logging.getLogger(__name__)

#: Probabilities are clipped to [EPS, 1 - EPS] in the loss, as Keras does.
EPS: Final = 1e-7
THRESHOLD: Final = 0.5
#: Bootstrap resamples behind every reported 95% confidence interval.
N_BOOTSTRAP: Final = 2000


@dataclass(frozen=True, kw_only=True)
class EvalReport:
    """Metrics of one model on one labelled patch set.

    ``auc`` is the exact ROC AUC (ties counted half) and ``auc_ci95`` its bootstrap
    95% confidence interval (patches resampled, see :func:`auc_ci95`), ``accuracy`` is
    at probability ``threshold``, ``loss`` is the mean binary cross-entropy in nats.
    """

    auc: float
    auc_ci95: tuple[float, float]
    accuracy: float
    loss: float
    n: int
    n_positive: int
    tta: str
    tta_mean: str
    model_sha256: str
    model_path: str
    architecture: str
    data: str
    data_hash: str
    threshold: float = THRESHOLD
    seconds: float = 0.0
    roc_png: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-able dict (``auc``, ``accuracy``, ``n`` and the rest)."""
        return asdict(self)


def eval_patches(
    data: Path,
    *,
    model: Path | None = None,
    tta: str = "none",
    tta_mean: str = "arithmetic",
    limit: int | None = None,
    roc_png: Path | None = None,
    split: str = "valid",
    batch_size: int = 256,
    progress: Progress | None = None,
) -> EvalReport:
    """Score a labelled patch set with a model and report ROC AUC, accuracy and loss.

    Parameters
    ----------
    data
        A labelled set in any layout ``open_patch_set`` reads (for class folders,
        the folder holding ``0/`` and ``1/``).
    model
        A ``.keras`` model with its sidecar; None for the bundled model.
    tta, tta_mean
        Test-time augmentation (``none``, ``flips``, ``dihedral``) and how views are
        combined (``arithmetic``, ``geometric``).
    limit
        Evaluate a fixed, class-balanced subset of at most this many patches.
    roc_png
        Write the ROC curve here.
    split
        The split to read when ``data`` is a folder of PCam HDF5 files.
    batch_size
        Forward-pass size (see ``load_classifier``).
    progress
        Receives one unit per scored patch.

    Returns
    -------
    EvalReport

    Raises
    ------
    ModelLoadError
        The model cannot be loaded.
    DataError
        The data are malformed, or hold only one class (AUC is undefined).
    """
    from model.predict import load_classifier

    classifier = load_classifier(
        model, tta=tta, tta_mean=tta_mean, batch_size=batch_size
    )
    patches = open_patch_set(Path(data), split=split, limit=limit)
    n_pos = int(patches.labels.sum())
    if n_pos in (0, len(patches)):
        raise DataError(
            f"{data}: all {len(patches)} patches have label {int(n_pos > 0)}; ROC AUC "
            "needs both classes (check the 0/ and 1/ folders or the label file)"
        )
    start = time.perf_counter()
    scores = score_patch_set(classifier, patches, progress=progress)
    seconds = time.perf_counter() - start
    labels = patches.labels
    report = EvalReport(
        auc=roc_auc(labels, scores),
        auc_ci95=auc_ci95(labels, scores),
        accuracy=float(np.mean((scores >= THRESHOLD) == (labels == 1))),
        loss=log_loss(labels, scores),
        n=len(patches),
        n_positive=n_pos,
        tta=tta,
        tta_mean=tta_mean,
        model_sha256=classifier.sha256,
        model_path=str(classifier.path),
        architecture=classifier.card.architecture,
        data=str(data),
        data_hash=patches.fingerprint(),
        seconds=round(seconds, 3),
        roc_png=str(roc_png) if roc_png is not None else None,
        versions=software_versions(),
    )
    if roc_png is not None:
        plot_roc(
            labels,
            scores,
            Path(roc_png),
            title=f"{report.architecture}, {Path(data).name} (n={report.n}, tta={tta})",
        )
    logger.info(
        "%s on %s: AUC %.4f (95%% CI %.4f-%.4f), accuracy %.4f, loss %.4f (n=%d, %.1f patches/s)",
        report.model_path,
        data,
        report.auc,
        *report.auc_ci95,
        report.accuracy,
        report.loss,
        report.n,
        report.n / max(seconds, 1e-9),
    )
    return report


def score_patch_set(
    classifier: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]],
    patches: PatchSet,
    *,
    chunk_size: int = 1024,
    progress: Progress | None = None,
) -> npt.NDArray[np.float32]:
    """Probabilities of every patch of a set, read chunk by chunk (streamed).

    Parameters
    ----------
    classifier
        ``uint8[N, 96, 96, 3]`` -> ``float32[N]``, e.g. a ``KerasPatchClassifier``.
    patches
        The set (its labels are not used).
    chunk_size
        Patches read from the set at a time.
    progress
        Receives one unit per scored patch.

    Returns
    -------
    numpy.ndarray
        ``float32[len(patches)]``, in the set's order.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    bar = ensure_progress(progress)
    n = len(patches)
    scores = np.empty(n, dtype=np.float32)
    bar.start(n, f"scoring {patches.name}")
    try:
        for start in range(0, n, chunk_size):
            idx = np.arange(start, min(n, start + chunk_size), dtype=np.int64)
            scores[idx] = classifier(patches.read(idx))
            bar.advance(len(idx))
    finally:
        bar.close()
    return scores


def keras_model_auc(model: Any, patches: PatchSet, *, batch_size: int = 64) -> float:
    """ROC AUC of a bare Keras model (``uint8`` patches in, probabilities out) on a set.

    No sidecar, no TTA: for comparing weights in memory, e.g. before and after
    recomputing BatchNorm statistics or averaging weights.
    """

    def classify(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        probs = model.predict(
            images.astype(np.float32), batch_size=batch_size, verbose=0
        )
        return np.asarray(probs, dtype=np.float32).reshape(-1)

    return roc_auc(patches.labels, score_patch_set(classify, patches))


def _check_scored(
    labels: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(
            f"labels and scores must be 1-D of the same length, got {y.shape} and {s.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite (found NaN or inf)")
    return y == 1, s


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve, exactly (ties count one half), as scikit-learn.

    The Mann-Whitney statistic: the probability that a random positive scores above
    a random negative.

    Parameters
    ----------
    labels
        ``[N]`` 0/1 (or bool) labels.
    scores
        ``[N]`` finite scores, higher meaning more likely positive.

    Raises
    ------
    ValueError
        Shapes differ, labels are not 0/1, scores are not finite, or one class is
        missing (AUC is undefined).

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([0, 1], [0.5, 0.5])
    0.5
    """
    from scipy.stats import rankdata

    positive, s = _check_scored(labels, scores)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both classes among the labels")
    ranks = rankdata(s)  # average ranks for ties
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def auc_ci95(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    n_resamples: int = N_BOOTSTRAP,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap 95% confidence interval of the ROC AUC.

    Positives and negatives are resampled separately (stratified, ``n_resamples``
    times, a fixed seed so the same scores always give the same interval;
    ``wsi.evaluation.slide_level.bootstrap_auc_ci``, which the slide AUC uses too).
    Two models whose AUCs differ by less than this interval's half-width are not
    told apart by the data.

    Examples
    --------
    >>> labels, scores = [0, 0, 1, 1, 0, 1] * 20, [0.1, 0.4, 0.35, 0.8, 0.2, 0.9] * 20
    >>> low, high = auc_ci95(labels, scores)
    >>> low < roc_auc(labels, scores) < high
    True
    """
    from wsi.evaluation.slide_level import bootstrap_auc_ci

    positive, s = _check_scored(labels, scores)
    return bootstrap_auc_ci(positive, s, n_resamples=n_resamples, seed=seed)


def log_loss(labels: npt.ArrayLike, probs: npt.ArrayLike) -> float:
    """Mean binary cross-entropy in nats, probabilities clipped to [1e-7, 1 - 1e-7].

    Examples
    --------
    >>> round(log_loss([1, 0], [0.5, 0.5]), 4)
    0.6931
    """
    positive, p = _check_scored(labels, probs)
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(np.where(positive, np.log(p), np.log1p(-p))))


def most_wrong(
    labels: npt.ArrayLike, probs: npt.ArrayLike, k: int = 16
) -> npt.NDArray[np.int64]:
    """Indices of the ``k`` patches whose probability is furthest from their label.

    Examples
    --------
    >>> most_wrong([0, 1, 1, 0], [0.8, 0.8, 0.1, 0.2], k=2).tolist()
    [2, 0]
    """
    positive, p = _check_scored(labels, probs)
    error = np.abs(positive.astype(np.float64) - p)
    return np.argsort(-error, kind="stable")[:k].astype(np.int64)


def plot_roc(
    labels: npt.ArrayLike, scores: npt.ArrayLike, png: Path, *, title: str = "ROC"
) -> Path:
    """Draw the ROC curve with its AUC into ``png`` (no pyplot state is touched)."""
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    positive, s = _check_scored(labels, scores)
    fpr, tpr, _ = roc_curve(positive, s)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    ax.plot(fpr, tpr, lw=1.5, label=f"AUC = {roc_auc(positive, s):.4f}")
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey", label="chance")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1.01),
        aspect="equal",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    return png
