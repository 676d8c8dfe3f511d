"""The models that ship with the package, by name (no TensorFlow import).

``--model`` takes a path to a ``.keras`` file or one of these names; the default is
``DEFAULT_MODEL``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from model.card import ModelCard

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_MODEL",
    "MODEL_FIX",
    "WEIGHTS_DIR",
    "check_model",
    "resolve_model_path",
    "tuned_settings",
]

WEIGHTS_DIR: Final = Path(__file__).resolve().parent / "weights"
#: Name -> file in ``WEIGHTS_DIR`` (its ``.json`` sidecar beside it).
BUNDLED_MODELS: Final = {
    "nasnet-mobile": "pcam-nasnet-mobile.keras",
    "efficientnet-lite0": "pcam-efficientnet-lite0.keras",
}
#: The bundled model with the best patch AUC and lesion FROC on held-out PCam test
#: patches and slides built from them (docs/MODELS.md).
DEFAULT_MODEL: Final = "efficientnet-lite0"
#: The fix named by every error about a ``--model`` value.
MODEL_FIX: Final = (
    "pass a .keras file written by 'wsi-heatmap train' (best.keras) with its .json "
    f"sidecar, or a bundled model: {', '.join(BUNDLED_MODELS)} (default "
    f"{DEFAULT_MODEL})"
)


def resolve_model_path(model: Path | str | None) -> Path:
    """The file a ``--model`` value names.

    Parameters
    ----------
    model
        None (the default bundled model), a bundled model's name (see
        ``BUNDLED_MODELS``; a file of that name in the working folder wins), or a
        path.

    Returns
    -------
    pathlib.Path
        The ``.keras`` file; it may not exist (the loader reports that).

    Examples
    --------
    >>> resolve_model_path("efficientnet-lite0").name
    'pcam-efficientnet-lite0.keras'
    >>> str(resolve_model_path("runs/x/best.keras"))
    'runs/x/best.keras'
    """
    if model is None:
        model = DEFAULT_MODEL
    name = str(model)
    if name in BUNDLED_MODELS and not Path(name).exists():
        return WEIGHTS_DIR / BUNDLED_MODELS[name]
    return Path(model)


def check_model(model: Path | str | None) -> ModelCard:
    """The card of the model a ``--model`` value names, checked before any slide.

    Reads the sidecar only (no TensorFlow, no hashing of the weights): a missing
    file, a name that is neither bundled nor a file, or a malformed card fails here,
    in milliseconds, instead of after every slide was tiled.

    Raises
    ------
    ModelLoadError
        The file or its sidecar is missing or malformed; the message lists the
        bundled names.
    """
    from model.card import read_card
    from wsi.errors import ModelLoadError

    path = resolve_model_path(model)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file; {MODEL_FIX}")
    return read_card(path, verify=False)


def tuned_settings(model: Path | str | None) -> dict[str, dict[str, Any]]:
    """The post-processing settings tuned for a model (its card's ``settings``).

    Section (``polygons``, ``detection``, ``slide_score``) -> field -> value; empty
    for a model without tuned settings (it gets the generic defaults).

    Examples
    --------
    >>> sorted(tuned_settings("efficientnet-lite0"))
    ['detection', 'polygons', 'scoring', 'slide_score']
    """
    return {k: dict(v) for k, v in check_model(model).settings.items()}
