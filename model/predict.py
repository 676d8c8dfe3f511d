"""Load a trained patch classifier safely and score patches with it.

``load_classifier(path)`` checks the file before Keras reads it (a ``.keras`` zip
archive with its JSON sidecar, whose sha256 must match), loads it in Keras safe mode
(no code from the model file runs) and checks that it maps ``96x96x3`` patches to
one probability. The result is a ``KerasPatchClassifier``: a callable from
``uint8[N, 96, 96, 3]`` to ``float32[N]`` that satisfies ``wsi``'s
``PatchClassifier`` protocol, with optional test-time augmentation.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from model.card import ModelCard, card_path, read_card
from model.classifier import CardClassifier
from model.registry import BUNDLED_MODELS, MODEL_FIX, resolve_model_path
from model.tta import check_tta
from wsi.errors import ModelLoadError
from wsi.geometry import PATCH_PX, check_model_matches

__all__ = [
    "BUNDLED_MODEL_NAME",
    "KerasPatchClassifier",
    "bundled_model_path",
    "check_compatible",
    "check_model_file",
    "load_classifier",
]

logger = logging.getLogger(__name__)

BUNDLED_MODEL_NAME: Final = "pcam-nasnet-mobile.keras"
#: Members every Keras 3 ``.keras`` archive holds.
_KERAS_MEMBERS: Final = ("config.json", "model.weights.h5")
_FIX: Final = MODEL_FIX


def bundled_model_path() -> Path:
    """Where the default model shipped with the package lives (it may not be installed).

    Returns
    -------
    pathlib.Path
        ``model/weights/pcam-nasnet-mobile.keras`` inside the installed package; its
        sidecar is the ``.json`` beside it. Other bundled models: ``model.registry``.
    """
    return resolve_model_path(None)


@dataclass(frozen=True, eq=False, kw_only=True)
class KerasPatchClassifier(CardClassifier):
    """A loaded Keras patch classifier: ``uint8[N, 96, 96, 3]`` -> ``float32[N]``.

    Build it with ``load_classifier``. Calls are thread-safe; each call scores its
    patches in forward passes of at most ``batch_size`` images on a CPU, or of
    ``batch_size`` patches with all their TTA views together on a GPU.
    """

    model: Any = field(repr=False)
    on_gpu: bool = False
    _forward: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "_forward", _make_forward(self.model))

    def _images_per_pass(self) -> int:
        return self.batch_size if self.on_gpu else super()._images_per_pass()

    def _forward_pass(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        return self._predict(images)

    def _predict(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """One forward pass without TTA: ``float32[len(images)]``."""
        probs = np.asarray(
            self._forward(np.ascontiguousarray(images)), dtype=np.float32
        )
        return probs.reshape(-1)

    def describe(self) -> dict[str, Any]:
        """What was loaded, for run metadata (JSON-able)."""
        return {
            "model_path": str(self.path),
            "sha256": self.sha256,
            "architecture": self.card.architecture,
            "input_px": self.input_px,
            "mpp": self.mpp,
            "val_auc": self.card.val_auc,
            "tta": self.tta,
            "tta_mean": self.tta_mean,
            "batch_size": self.batch_size,
            "device": "gpu" if self.on_gpu else "cpu",
        }


def load_classifier(
    path: Path | None = None,
    *,
    tta: str = "none",
    tta_mean: str = "arithmetic",
    batch_size: int = 256,
) -> KerasPatchClassifier:
    """Load a patch classifier, checking the file and its sidecar first.

    Parameters
    ----------
    path
        A ``.keras`` file with its ``.json`` sidecar beside it, a bundled model's name
        (``model.registry.BUNDLED_MODELS``), or None for the default bundled model
        (``bundled_model_path()``).
    tta
        Test-time augmentation: ``none``, ``flips`` (4 views) or ``dihedral`` (8).
    tta_mean
        How views are combined: ``arithmetic`` or ``geometric`` mean.
    batch_size
        Images per forward pass on a CPU; patches per pass on a GPU (times the
        number of TTA views).

    Returns
    -------
    KerasPatchClassifier

    Raises
    ------
    ModelLoadError
        The file is missing or of the wrong kind, its sidecar is missing or does not
        match it, Keras refuses it (safe mode: no code from a model file), or it
        does not map ``96x96x3`` patches to one probability.
    ValueError
        ``tta``, ``tta_mean`` or ``batch_size`` is invalid.
    """
    check_tta(tta, tta_mean)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if path is None or str(path) in BUNDLED_MODELS:
        path = bundled_model_path() if path is None else resolve_model_path(path)
        if not path.is_file():
            raise ModelLoadError(
                f"{path}: the bundled model is not installed in this copy of "
                "wsi-heatmap; pass `model_path` a .keras file from 'wsi-heatmap "
                "train', or install a release that ships the model"
            )
    path = Path(path)
    check_model_file(path)
    card = read_card(path)
    if card.input_px != PATCH_PX:
        raise ModelLoadError(
            f"{card_path(path)}: the sidecar says the model takes {card.input_px} px "
            f"patches; wsi-heatmap scores {PATCH_PX} px PCam patches"
        )
    model = _load_keras(path)
    _check_shapes(model, path)
    on_gpu = _gpu_visible()
    logger.info(
        "loaded %s (%s, sha256 %s...) on %s, tta=%s",
        path,
        card.architecture,
        card.weights_sha256[:12],
        "GPU" if on_gpu else "CPU",
        tta,
    )
    return KerasPatchClassifier(
        card=card,
        path=path,
        model=model,
        tta=tta,
        tta_mean=tta_mean,
        batch_size=batch_size,
        on_gpu=on_gpu,
    )


def check_model_file(path: Path) -> None:
    """Refuse a path that is not a Keras 3 ``.keras`` archive, before Keras reads it.

    Raises
    ------
    ModelLoadError
        Naming the file, what is wrong with it and the fix.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model file; {_FIX}")
    if path.is_dir():
        raise ModelLoadError(
            f"{path}: is a folder (a TensorFlow SavedModel?), not a .keras file; {_FIX}"
        )
    if path.suffix in (".h5", ".hdf5"):
        raise ModelLoadError(
            f"{path}: is a legacy HDF5 model; wsi-heatmap loads Keras 3 .keras files "
            "(re-save it with model.save('NAME.keras') and write its sidecar)"
        )
    if path.suffix != ".keras":
        raise ModelLoadError(f"{path}: is not a .keras model file; {_FIX}")
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"{path}: is not a .keras zip archive (truncated, or another kind of "
            f"file renamed); {_FIX}"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile) as err:
        raise ModelLoadError(
            f"{path}: unreadable .keras archive ({err}); {_FIX}"
        ) from err
    missing = [m for m in _KERAS_MEMBERS if m not in names]
    if missing:
        raise ModelLoadError(
            f"{path}: zip archive without {', '.join(missing)}, so not a Keras model; "
            f"{_FIX}"
        )


def check_compatible(
    card: ModelCard, *, tile_px: int, mpp: float, tolerance: float = 0.01
) -> None:
    """Refuse a model whose sidecar does not match the tiles it should score.

    Parameters
    ----------
    card
        The model's sidecar.
    tile_px
        Side of the tiles, in pixels.
    mpp
        Resolution of the tiles, in micrometres per pixel.
    tolerance
        Largest relative difference of resolutions that still matches.

    Raises
    ------
    ModelLoadError
        The patch size differs, or the resolutions differ by more than
        ``tolerance``; the message says how to tile again.

    Examples
    --------
    >>> card = ModelCard(architecture="logreg", input_px=96, mpp=0.972)
    >>> check_compatible(card, tile_px=96, mpp=0.97)
    >>> check_compatible(card, tile_px=96, mpp=0.5)
    Traceback (most recent call last):
    ...
    wsi.errors.ModelLoadError: logreg model was trained at 0.972 um/px but the tiles are at 0.5 um/px; tile again with `tiling.mpp` 0.972 or use a model trained at 0.5 um/px
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be non-negative, got {tolerance}")
    if not mpp > 0:
        raise ValueError(f"mpp must be positive, got {mpp}")
    check_model_matches(
        model_name=f"{card.architecture} model",
        model_px=card.input_px,
        model_mpp=card.mpp,
        tile_px=tile_px,
        tiles_mpp=mpp,
        tolerance=tolerance,
    )


def _load_keras(path: Path) -> Any:
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types; all mean "cannot load".
        hint = (
            "it holds Python code (a Lambda layer or custom object), which safe "
            "mode refuses to run; rebuild the model from built-in layers"
            if "safe_mode" in str(err) or "Lambda" in str(err)
            else _FIX
        )
        raise ModelLoadError(
            f"{path}: Keras cannot load this model ({type(err).__name__}: "
            f"{str(err)[:300]}); {hint}"
        ) from err


def _check_shapes(model: Any, path: Path) -> None:
    inputs, outputs = list(model.inputs), list(model.outputs)
    in_shapes = [tuple(t.shape) for t in inputs]
    out_shapes = [tuple(t.shape) for t in outputs]
    if in_shapes != [(None, PATCH_PX, PATCH_PX, 3)]:
        raise ModelLoadError(
            f"{path}: the model takes inputs shaped {in_shapes}, not one "
            f"(N, {PATCH_PX}, {PATCH_PX}, 3) RGB batch; it is not a PCam patch "
            "classifier"
        )
    if out_shapes != [(None, 1)]:
        raise ModelLoadError(
            f"{path}: the model outputs {out_shapes}, not one probability per patch "
            "(N, 1); it is not a PCam patch classifier"
        )


def _make_forward(model: Any) -> Any:
    import tensorflow as tf

    def forward(images: Any) -> Any:
        probs = model(tf.cast(images, tf.float32), training=False)
        return tf.reshape(tf.cast(probs, tf.float32), [-1])

    # One trace for every batch size: the batch dimension is left open.
    return tf.function(
        forward,
        input_signature=[tf.TensorSpec([None, PATCH_PX, PATCH_PX, 3], tf.uint8)],
        reduce_retracing=True,
    )


def _gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))
