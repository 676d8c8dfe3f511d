"""Turn a training run's ``best.keras`` into the model the package ships.

``export_bundle(run_dir, out=...)``:

1. checks and loads the run's best model with its sidecar (safe mode, as scoring
   does);
2. rebuilds it with float32 compute if it was trained in mixed precision, so it
   runs at full speed and precision on a CPU;
3. optionally rounds every weight to the nearest float16 value (kept as float32,
   so the model runs as before): the ``.keras`` archive is then written with
   deflate compression and shrinks to about half;
4. writes ``out`` and its sidecar (the training card plus an ``export`` record),
   loads the written file back through ``load_classifier`` and, given
   ``check_data``, scores it and the source model on the same patches and refuses
   the export if the ROC AUC moved by more than ``max_auc_change``.
"""

from __future__ import annotations

import logging
import shutil
import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from model.card import (
    ModelCard,
    card_path,
    check_training_split,
    read_card,
    write_card,
)
from model.predict import (
    KerasPatchClassifier,
    _check_shapes,
    _load_keras,
    check_model_file,
    load_classifier,
)
from model.training.data import PatchSet, open_patch_set
from model.training.evaluate import roc_auc, score_patch_set
from wsi.errors import ModelLoadError
from wsi.provenance import software_versions

__all__ = ["ExportResult", "export_bundle"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ExportResult:
    """What ``export_bundle`` wrote and what it measured."""

    path: Path
    sidecar: Path
    sha256: str
    size_bytes: int
    source_size_bytes: int
    float16: bool
    auc_source: float | None
    auc_exported: float | None
    max_abs_prob_diff: float | None
    n_checked: int


def export_bundle(
    source: Path,
    *,
    out: Path,
    float16: bool = False,
    check_data: Path | None = None,
    check_limit: int | None = None,
    check_split: str = "valid",
    max_auc_change: float = 1e-3,
) -> ExportResult:
    """Export a run's best model (or any checked ``.keras`` file) for shipping.

    Parameters
    ----------
    source
        A run folder holding ``best.keras`` + ``best.json``, or a ``.keras`` file
        with its sidecar.
    out
        The ``.keras`` file to write (its sidecar goes beside it), e.g.
        ``model.predict.bundled_model_path()``.
    float16
        Round the weights to float16 precision; needs ``check_data``.
    check_data
        A labelled patch set (any layout) on which the exported model must keep the
        source model's ROC AUC.
    check_limit
        Use a fixed class-balanced subset of at most this many patches.
    check_split
        The split to read when ``check_data`` is a folder of PCam HDF5 files.
    max_auc_change
        Largest accepted ``|AUC(exported) - AUC(source)|``.

    Returns
    -------
    ExportResult

    Raises
    ------
    ModelLoadError
        The source cannot be loaded, the exported file does not load back, or the
        AUC moved by more than ``max_auc_change`` (the output is then removed), or
        the model was trained on a held-out split (``card.HELD_OUT_SPLITS``).
    ValueError
        ``float16`` without ``check_data``, or ``out`` is not a ``.keras`` path.
    """
    source = Path(source)
    src = source / "best.keras" if source.is_dir() else source
    out = Path(out)
    if out.suffix != ".keras":
        raise ValueError(f"out must end in .keras, got {out}")
    if float16 and check_data is None:
        raise ValueError(
            "float16=True needs check_data: rounding is only accepted once "
            "it is shown not to change the ROC AUC"
        )
    if out.resolve() == src.resolve():
        raise ValueError(f"out must differ from the source model {src}")
    check_model_file(src)
    card = read_card(src)
    check_training_split(card, source=src)
    model = _load_keras(src)
    _check_shapes(model, src)
    model = _as_float32(model)
    if float16:
        _round_to_float16(model, src)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.keras")
    model.save(tmp)
    _deflate(tmp, out)
    tmp.unlink()
    export: dict[str, Any] = {
        "source": str(src),
        "source_sha256": card.weights_sha256,
        "float16_rounded": float16,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": software_versions(),
    }
    sidecar = write_card(out, replace(card, export=export))
    try:
        exported = load_classifier(out)
        auc_src = auc_out = diff = None
        n_checked = 0
        if check_data is not None:
            patches = open_patch_set(check_data, split=check_split, limit=check_limit)
            auc_src, auc_out, diff = _compare(src, card, exported, patches)
            n_checked = len(patches)
            if abs(auc_out - auc_src) > max_auc_change:
                raise ModelLoadError(
                    f"{out}: the exported model's ROC AUC on {check_data} is "
                    f"{auc_out:.5f}, the source's {auc_src:.5f}; the change exceeds "
                    f"{max_auc_change} (export without float16, or raise "
                    "max_auc_change)"
                )
            export |= {
                "check_data": str(check_data),
                "check_n": n_checked,
                "check_data_hash": patches.fingerprint(),
                "auc_source": auc_src,
                "auc_exported": auc_out,
                "max_abs_prob_diff": diff,
            }
            sidecar = write_card(out, replace(card, export=export))
        elif not float16:
            logger.info("%s: exported without an AUC check (no check_data)", out)
    except BaseException:
        out.unlink(missing_ok=True)
        card_path(out).unlink(missing_ok=True)
        raise
    result = ExportResult(
        path=out,
        sidecar=sidecar,
        sha256=read_card(out).weights_sha256,
        size_bytes=out.stat().st_size,
        source_size_bytes=src.stat().st_size,
        float16=float16,
        auc_source=auc_src,
        auc_exported=auc_out,
        max_abs_prob_diff=diff,
        n_checked=n_checked,
    )
    logger.info(
        "exported %s -> %s (%.1f MB -> %.1f MB, float16=%s, AUC %s -> %s)",
        src,
        out,
        result.source_size_bytes / 1e6,
        result.size_bytes / 1e6,
        float16,
        auc_src,
        auc_out,
    )
    return result


def _as_float32(model: Any) -> Any:
    """The model itself, or a float32 rebuild of it if any layer computes in float16."""
    import keras

    policies = {layer.dtype_policy.name for layer in model._flatten_layers()}
    if policies <= {"float32"}:
        return model
    logger.info(
        "rebuilding %s with float32 compute (was %s)", model.name, sorted(policies)
    )
    config = _float32_config(model.get_config())
    rebuilt = keras.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def _float32_config(node: Any) -> Any:
    """A copy of a Keras config with every dtype policy replaced by float32."""
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy":
            return {**node, "config": {**node.get("config", {}), "name": "float32"}}
        return {key: _float32_config(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_float32_config(value) for value in node]
    return node


def _round_to_float16(model: Any, src: Path) -> None:
    """Round every float32 weight to the nearest float16 value, in place."""
    for variable in model.weights:
        value = np.asarray(variable.numpy())
        if value.dtype != np.float32:
            continue
        with np.errstate(over="ignore"):
            rounded = value.astype(np.float16).astype(np.float32)
        if not np.isfinite(rounded).all() and np.isfinite(value).all():
            raise ModelLoadError(
                f"{src}: weight {variable.path} exceeds the float16 range "
                f"(max |w| = {np.abs(value).max():.3g}); export without float16"
            )
        variable.assign(rounded)


def _deflate(src: Path, dst: Path) -> None:
    """Copy a zip archive member by member with deflate compression."""
    part = dst.with_name(dst.name + ".part")
    with (
        zipfile.ZipFile(src) as zin,
        zipfile.ZipFile(
            part, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9
        ) as zout,
    ):
        for info in zin.infolist():
            with zin.open(info) as reader, zout.open(info.filename, "w") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
    part.replace(dst)


def _compare(
    src: Path, card: ModelCard, exported: KerasPatchClassifier, patches: PatchSet
) -> tuple[float, float, float]:
    """AUC of the source and exported models on ``patches``, and their largest gap."""
    original = KerasPatchClassifier(card=card, path=src, model=_load_keras(src))
    before = score_patch_set(original, patches)
    after = score_patch_set(exported, patches)
    labels = patches.labels
    return (
        roc_auc(labels, before),
        roc_auc(labels, after),
        float(np.abs(before - after).max()),
    )
