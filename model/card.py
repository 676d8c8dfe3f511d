"""The JSON sidecar that travels with every saved model (``NAME.keras`` -> ``NAME.json``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wsi.errors import ModelLoadError
from wsi.geometry import PATCH_PX, PCAM_MPP

__all__ = [
    "CARD_VERSION",
    "TUNED_SECTIONS",
    "ModelCard",
    "card_path",
    "check_training_split",
    "file_sha256",
    "in_held_out_split",
    "read_card",
    "write_card",
]

CARD_VERSION = 1
#: The sections of a run's settings that a card may tune for its model (the
#: ``RunConfig`` sections): test-time augmentation, polygons, lesion candidates, slide
#: score, the staging view of lesions. Of ``scoring`` only ``TUNED_SCORING_FIELDS``: where and how fast to score is
#: the machine's business, not the model's.
TUNED_SECTIONS = ("scoring", "polygons", "detection", "slide_score", "staging")
TUNED_SCORING_FIELDS = ("tta",)
#: Folder names of patch sets kept for choosing models and settings: a model that
#: learnt from them in any form (labels, early stopping, a teacher's input) could
#: not be judged on them, so it is never bundled.
HELD_OUT_SPLITS = ("test-dev",)
#: The recipe entries that feed training: data, early-stopping data, teacher inputs.
_TRAINING_INPUTS = ("train_data", "valid_data", "teacher", "teacher_data")


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """What a model is, what it expects, and how it was made.

    ``settings`` holds the post-processing tuned for this model on development
    slides (section -> field -> value, sections ``TUNED_SECTIONS``); a run uses them
    unless the user sets those fields. Empty for a model nobody tuned: it gets the
    generic defaults.
    """

    architecture: str
    input_px: int = PATCH_PX
    mpp: float = PCAM_MPP
    preprocessing: str = ""
    weights_sha256: str = ""
    training_data: str = ""
    training_data_hash: str = ""
    n_train: int = 0
    val_auc: float | None = None
    epoch: int | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    format_version: int = CARD_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.input_px, int) or self.input_px < 1:
            raise ValueError(f"input_px must be a positive int, got {self.input_px!r}")
        if not isinstance(self.mpp, (int, float)) or not self.mpp > 0:
            raise ValueError(f"mpp must be a positive number, got {self.mpp!r}")
        unknown = set(self.settings) - set(TUNED_SECTIONS)
        if unknown or not all(isinstance(v, dict) for v in self.settings.values()):
            raise ValueError(
                f"settings must map {', '.join(TUNED_SECTIONS)} to field values, "
                f"got {sorted(self.settings)}"
            )
        extra = set(self.settings.get("scoring", {})) - set(TUNED_SCORING_FIELDS)
        if extra:
            raise ValueError(
                f"settings may set only {', '.join(TUNED_SCORING_FIELDS)} of scoring, "
                f"got {sorted(extra)}"
            )


def in_held_out_split(path: object) -> bool:
    """Whether ``path`` lies in a held-out split (a folder named in HELD_OUT_SPLITS).

    Examples
    --------
    >>> in_held_out_split("pcam/test-dev"), in_held_out_split("pcam/train")
    (True, False)
    """
    return bool(set(Path(str(path)).parts) & set(HELD_OUT_SPLITS))


def check_training_split(card: ModelCard, *, source: Path) -> None:
    """Refuse a model that saw a held-out split (``HELD_OUT_SPLITS``) in training.

    Raises
    ------
    ModelLoadError
        The card's training data, or a recipe entry that feeds training
        (training, early-stopping or teacher data), lies in a held-out split.

    Examples
    --------
    >>> check_training_split(ModelCard(architecture="x", training_data="pcam/train"),
    ...                      source=Path("m.keras"))
    >>> check_training_split(
    ...     ModelCard(architecture="x", recipe={"valid_data": "pcam/test-dev"}),
    ...     source=Path("m.keras"))
    Traceback (most recent call last):
    ...
    wsi.errors.ModelLoadError: m.keras: its recipe's valid_data is pcam/test-dev, ...
    """
    entries = {"training_data": card.training_data} | {
        key: card.recipe.get(key) for key in _TRAINING_INPUTS
    }
    for key, value in entries.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item and in_held_out_split(item):
                raise ModelLoadError(
                    f"{source}: its recipe's {key} is {item}, a held-out split "
                    f"({', '.join(HELD_OUT_SPLITS)}) kept for choosing models and "
                    "settings; retrain without it (train/ for training, valid/ for "
                    "early stopping)"
                )


def card_path(model_path: Path) -> Path:
    """The sidecar path of a model file."""
    return Path(model_path).with_suffix(".json")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_card(model_path: Path, card: ModelCard) -> Path:
    """Write ``card`` beside ``model_path``, filling in the weights' sha256."""
    data = asdict(card) | {"weights_sha256": file_sha256(model_path)}
    path = card_path(model_path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_card(model_path: Path, *, verify: bool = True) -> ModelCard:
    """Read and check the sidecar of ``model_path``.

    Raises
    ------
    ModelLoadError
        The sidecar is missing or malformed, or (``verify``) the weights' sha256
        does not match the file.
    """
    path = card_path(model_path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ModelLoadError(
            f"{model_path}: no sidecar {path.name} beside the model; models saved by "
            "'wsi-heatmap train' have one"
        ) from err
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{path}: unreadable model sidecar ({err})") from err
    known = set(ModelCard.__dataclass_fields__)
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: malformed model sidecar (not a JSON object)")
    try:
        card = ModelCard(**{k: v for k, v in data.items() if k in known})
    except (TypeError, ValueError) as err:
        raise ModelLoadError(f"{path}: malformed model sidecar ({err})") from err
    if card.format_version > CARD_VERSION:
        raise ModelLoadError(
            f"{path}: sidecar format {card.format_version} is newer than this "
            f"wsi-heatmap reads ({CARD_VERSION}); upgrade wsi-heatmap"
        )
    if verify and card.weights_sha256 != file_sha256(model_path):
        raise ModelLoadError(
            f"{model_path}: sha256 differs from {path.name}; the model file was changed "
            "or belongs to another sidecar"
        )
    return card
