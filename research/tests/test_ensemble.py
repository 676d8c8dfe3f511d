"""An ensemble of saved models is one model: the mean probability, its own card."""

from __future__ import annotations

import sys
from pathlib import Path as _Path

sys.path.insert(
    0,
    str(
        _Path(__file__)
        .resolve()
        .parents[1 if "scripts" in __file__ or "tests" in __file__ else 0]
    ),
)

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from wsi.errors import ModelLoadError

pytestmark = pytest.mark.tf

Patches = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]


def test_ensemble_is_the_mean_of_its_members_and_loads_in_safe_mode(
    tiny_model: Path, tmp_path: Path, fixture_patches: Patches
) -> None:
    import shutil

    from ensemble import build_ensemble  # research/ensemble.py

    from model.predict import load_classifier

    twin = tmp_path / "twin.keras"  # a second member: the same weights, another file
    shutil.copy(tiny_model, twin)
    shutil.copy(tiny_model.with_suffix(".json"), twin.with_suffix(".json"))
    out = tmp_path / "ens" / "best.keras"
    card = build_ensemble([tiny_model, twin], out=out)
    assert card.architecture == "ensemble:logreg+logreg"
    images, _ = fixture_patches
    member = load_classifier(tiny_model)(images)
    mean = load_classifier(out)(images)  # checked sidecar, Keras safe mode
    np.testing.assert_allclose(mean, member, atol=1e-6)
    recipe = json.loads(out.with_suffix(".json").read_text())["recipe"]
    assert len(recipe["members"]) == 2
    assert recipe["train_data"]  # the held-out-split check sees the members' data


def test_ensemble_refuses_one_member_and_mismatched_inputs(
    tiny_model: Path, tmp_path: Path, card_saver: Callable[..., Path]
) -> None:
    from ensemble import build_ensemble  # research/ensemble.py

    with pytest.raises(ValueError, match="at least two members"):
        build_ensemble([tiny_model], out=tmp_path / "e.keras")
    import keras

    inputs = keras.Input((96, 96, 3))
    other = keras.Model(
        inputs,
        keras.layers.Dense(1, activation="sigmoid")(
            keras.layers.GlobalAveragePooling2D()(inputs)
        ),
    )
    half = card_saver(other, tmp_path / "half.keras", mpp=0.5)
    with pytest.raises(ModelLoadError, match="different patch sizes or scales"):
        build_ensemble([tiny_model, half], out=tmp_path / "e.keras")
