"""``wsi-heatmap doctor``: check that everything is installed and working."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Check", "check_outputs", "run_checks"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome."""

    name: str
    ok: bool
    detail: str


def _versions() -> str:
    names = (
        "numpy",
        "zarr",
        "dask",
        "distributed",
        "scikit-image",
        "shapely",
        "tifffile",
    )
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} MISSING")
    return ", ".join(parts)


def _check_openslide() -> str:
    import openslide

    return f"library {openslide.__library_version__}, python binding {openslide.__version__}"


def _check_tensorflow() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    where = (
        f"{len(gpus)} GPU(s): {', '.join(g.name for g in gpus)}"
        if gpus
        else "no GPU, CPU only"
    )
    return f"tensorflow {tf.__version__}, keras {metadata.version('keras')}; {where}"


def _check_model() -> str:
    from model.predict import load_classifier

    classifier = load_classifier()
    card = classifier.card
    auc = f"{card.val_auc:.4f}" if card.val_auc is not None else "n/a"
    return (
        f"{classifier.path.name}: {card.architecture}, {card.mpp} um/px, "
        f"validation AUC {auc}, sha256 {classifier.sha256[:12]}"
    )


def _check_runtime() -> str:
    from model.fast_runtime import runtime_summary

    return runtime_summary()


def _check_slide_end_to_end() -> str:
    from wsi.pipeline import RunConfig, run
    from wsi.synthetic import write_pyramid_tiff

    with tempfile.TemporaryDirectory() as tmp:
        rgb = np.full((1536, 1536, 3), 244, np.uint8)
        yy, xx = np.mgrid[:1536, :1536]
        rgb[(yy - 768) ** 2 + (xx - 768) ** 2 < 600**2] = (190, 90, 170)
        path = write_pyramid_tiff(Path(tmp) / "doctor.tif", rgb, mpp=0.243)
        report = run(RunConfig(slides=(path,), out_dir=Path(tmp) / "out"))
        if report.failures:
            raise RuntimeError(report.failures[0].message)
        result = report.results[0]
        if result.n_patches == 0:
            raise RuntimeError("a slide with a tissue disc gave no patches")
        return (
            f"generated a slide, tiled, scored, stitched and exported it: "
            f"{result.n_patches} patches in {result.seconds:.1f} s"
        )


def run_checks() -> list[Check]:
    """Run every check; a failing one records its error and the rest go on."""
    checks: list[tuple[str, Callable[[], str]]] = [
        ("python packages", _versions),
        ("openslide", _check_openslide),
        ("tensorflow", _check_tensorflow),
        ("bundled model", _check_model),
        ("scoring runtime", _check_runtime),
        ("slide end to end", _check_slide_end_to_end),
    ]
    results = []
    for name, check in checks:
        try:
            detail = check()
            ok = "MISSING" not in detail
        except Exception as err:
            logger.debug("check %s failed", name, exc_info=True)
            detail, ok = f"{type(err).__name__}: {err}", False
        results.append(Check(name, ok, detail))
    return results


def check_outputs(out_dir: Path) -> list[Check]:
    """Check every slide store under a run folder: complete, readable, undamaged.

    One check per slide folder (``OUT/<stem>/<stem>.zarr``): tiling and scoring
    complete, every scores chunk reads back as probabilities, the heatmap reads
    back. A damaged store is named with the fix (rerun: damaged score chunks are
    rescored).
    """
    from wsi.errors import OutputError
    from wsi.store.checks import scores_intact
    from wsi.store.layout import Arrays, Attr, SlideOutputs
    from wsi.store.slide_store import array, is_store, open_store

    results = []
    for folder in sorted(p for p in Path(out_dir).iterdir() if p.is_dir()):
        outputs = SlideOutputs(folder)
        if not is_store(outputs.store):
            continue
        problems = []
        try:
            root: Any = open_store(outputs.store)
            attrs = root.attrs.asdict()
            if not attrs.get(Attr.TILING_COMPLETE):
                problems.append("tiling not finished")
            elif not attrs.get(Attr.SCORING_COMPLETE):
                problems.append("not scored yet")
            elif not scores_intact(outputs.store):
                problems.append("scores missing or damaged")
            if Arrays.HEATMAP in root:
                try:
                    np.asarray(array(root, Arrays.HEATMAP)[...])
                except Exception as err:  # noqa: BLE001 - any decode error
                    problems.append(f"heatmap damaged ({type(err).__name__})")
        except (OutputError, OSError, ValueError, KeyError) as err:
            problems.append(f"unreadable ({err})")
        detail = (
            f"{outputs.store}: ok"
            if not problems
            else f"{outputs.store}: {'; '.join(problems)}; run the same command again "
            "to finish or repair it"
        )
        results.append(Check(outputs.stem, not problems, detail))
    return results
