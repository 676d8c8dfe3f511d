"""PCam test-dev chooses models and settings and is never trained on, in any form."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model.card import HELD_OUT_SPLITS
from wsi.errors import ModelLoadError


@pytest.mark.tf
@pytest.mark.parametrize("entry", ["train_data", "valid_data", "teacher"])
def test_bundling_refuses_a_model_whose_recipe_used_test_dev(
    tiny_run: Path, tmp_path: Path, entry: str
) -> None:
    from model.card import card_path, file_sha256
    from model.training.export_bundle import export_bundle

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    sidecar = card_path(run / "best.keras")
    card = json.loads(sidecar.read_text())
    card["recipe"][entry] = "data/pcam/test-dev"
    card["weights_sha256"] = file_sha256(run / "best.keras")
    sidecar.write_text(json.dumps(card))
    out = tmp_path / "bundle.keras"
    with pytest.raises(ModelLoadError, match=rf"{entry} is .*test-dev, a held-out"):
        export_bundle(run, out=out)
    assert not out.exists()


def test_training_on_test_dev_is_refused_before_reading_anything(
    tmp_path: Path,
) -> None:
    from model.training.train import TrainConfig

    held_out = tmp_path / "pcam" / HELD_OUT_SPLITS[0]
    with pytest.raises(ValueError, match=r"train_data .* is a held-out split"):
        TrainConfig(train_data=held_out, valid_data=None, out_dir=tmp_path / "r")
    with pytest.raises(ValueError, match=r"valid_data .* is a held-out split"):
        TrainConfig(train_data=tmp_path, valid_data=held_out, out_dir=tmp_path / "r")


def test_no_shipped_model_saw_test_dev() -> None:
    """The bundled models' cards name train/ and valid/, never test-dev."""
    from model.card import check_training_split, read_card
    from model.registry import BUNDLED_MODELS, resolve_model_path

    for name in BUNDLED_MODELS:
        path = resolve_model_path(name)
        card = read_card(path, verify=False)
        check_training_split(card, source=path)
        assert "train" in Path(card.training_data).parts
