"""The models that ship with the package, by name (no TensorFlow import).

``--model`` takes a path to a ``.keras`` file or one of these names; the default is
``DEFAULT_MODEL``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["BUNDLED_MODELS", "DEFAULT_MODEL", "WEIGHTS_DIR", "resolve_model_path"]

WEIGHTS_DIR: Final = Path(__file__).resolve().parent / "weights"
#: Name -> file in ``WEIGHTS_DIR`` (its ``.json`` sidecar beside it).
BUNDLED_MODELS: Final = {
    "nasnet-mobile": "pcam-nasnet-mobile.keras",
    "efficientnet-lite0": "pcam-efficientnet-lite0.keras",
}
DEFAULT_MODEL: Final = "nasnet-mobile"


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
