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
    "ModelCard",
    "card_path",
    "file_sha256",
    "read_card",
    "write_card",
]

CARD_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """What a model is, what it expects, and how it was made."""

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
    format_version: int = CARD_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.input_px, int) or self.input_px < 1:
            raise ValueError(f"input_px must be a positive int, got {self.input_px!r}")
        if not isinstance(self.mpp, (int, float)) or not self.mpp > 0:
            raise ValueError(f"mpp must be a positive number, got {self.mpp!r}")


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
