"""Research (did not pay, see research/HELD-OUT.md): an ensemble of saved patch classifiers as one Keras model: the mean probability.

``build_ensemble([a.keras, b.keras], out=...)`` loads each member (checked, safe mode),
wires them to one input and averages their probabilities (a built-in ``Average``
layer, so the result loads in safe mode and exports to OpenVINO like any model), and
writes the ``.keras`` file with a card: architecture ``ensemble:A+B``, the members'
recipes and sha256, and the training inputs they share (so the held-out-split check
of ``export-model`` sees them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.card import ModelCard, read_card, write_card
from wsi.errors import ModelLoadError
from wsi.provenance import software_versions

__all__ = ["build_ensemble"]

logger = logging.getLogger(__name__)


def build_ensemble(members: Sequence[Path], *, out: Path) -> ModelCard:
    """Write the mean of ``members`` as one model at ``out``; return its card.

    Raises
    ------
    ModelLoadError
        A member cannot be loaded, or the members disagree on patch size or scale.
    ValueError
        Fewer than two members, or ``out`` is not a ``.keras`` path.
    """
    import keras

    from model.predict import _check_shapes, _load_keras, check_model_file

    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
    if Path(out).suffix != ".keras":
        raise ValueError(f"out must end in .keras, got {out}")
    cards = []
    models = []
    for i, path in enumerate(members):
        check_model_file(Path(path))
        card = read_card(Path(path))
        model = _load_keras(Path(path))
        _check_shapes(model, Path(path))
        model.name = f"member{i}_{model.name}"
        cards.append(card)
        models.append(model)
    if len({(c.input_px, c.mpp) for c in cards}) != 1:
        raise ModelLoadError(
            f"{', '.join(map(str, members))}: members take different patch sizes or "
            "scales; an ensemble needs one input"
        )
    inputs = keras.Input(models[0].inputs[0].shape[1:], name="rgb")
    probs = keras.layers.Average(name="prob")([m(inputs) for m in models])
    ensemble = keras.Model(inputs, probs, name="ensemble")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    ensemble.save(out)
    first = cards[0]
    recipe: dict[str, Any] = {
        "members": [
            {
                "architecture": c.architecture,
                "weights_sha256": c.weights_sha256,
                "recipe": c.recipe,
            }
            for c in cards
        ],
        "combine": "arithmetic mean of the members' probabilities",
        "train_data": sorted(
            {str(c.recipe.get("train_data", c.training_data)) for c in cards}
        ),
        "valid_data": sorted({str(c.recipe.get("valid_data")) for c in cards}),
    }
    card = ModelCard(
        architecture="ensemble:" + "+".join(c.architecture for c in cards),
        input_px=first.input_px,
        mpp=first.mpp,
        preprocessing="; ".join(sorted({c.preprocessing for c in cards})),
        training_data=first.training_data,
        training_data_hash=first.training_data_hash,
        n_train=first.n_train,
        recipe=recipe,
        versions=software_versions(),
    )
    write_card(Path(out), card)
    logger.info("wrote the mean of %d models to %s", len(models), out)
    return read_card(Path(out))
