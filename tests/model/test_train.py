"""Training on the fixture patches: outputs, sidecar, resuming after kills, bad data."""

from __future__ import annotations

import csv
import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.card import file_sha256

pytestmark = pytest.mark.tf


class Killed(Exception):
    """Stands for the process being killed in the middle of an epoch."""


def _callback_class() -> Any:
    import keras

    class KillAt(keras.callbacks.Callback):  # type: ignore[misc]
        """Records weights at backups and at the start; raises ``Killed`` on cue."""

        def __init__(self, *, epoch: int | None, batch: int, record_at: int) -> None:
            super().__init__()
            self.kill_epoch, self.kill_batch, self.record_at = epoch, batch, record_at
            self.epoch = -1
            self.recorded: list[np.ndarray] = []
            self.at_start: list[np.ndarray] = []

        def on_train_begin(self, logs: Any = None) -> None:
            self.at_start = [np.array(w) for w in self.model.get_weights()]

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if self.epoch == self.kill_epoch and batch == self.record_at:
                self.recorded = [np.array(w) for w in self.model.get_weights()]
            if self.epoch == self.kill_epoch and batch == self.kill_batch:
                raise Killed

    return KillAt


def _epochs_logged(run: Path) -> list[int]:
    with (run / "log.csv").open(newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_run_writes_model_sidecar_log_and_curves(tiny_run: Path) -> None:
    from model.card import read_card

    for name in ("best.keras", "best.json", "log.csv", "curves.png", "config.json"):
        assert (tiny_run / name).is_file(), name
    card = read_card(tiny_run / "best.keras")  # verifies the sha256
    assert card.architecture == "logreg"
    assert (card.input_px, card.mpp) == (96, 0.972)
    assert card.n_train == 24
    assert len(card.training_data_hash) == 16
    assert card.val_auc is not None
    assert 0 <= card.val_auc <= 1
    assert card.versions["tensorflow"]
    assert card.versions["keras"]
    assert card.recipe["augment"]["dihedral"] is True
    assert _epochs_logged(tiny_run) == [0, 1]


def test_resume_continues_from_the_checkpoint_after_kills(
    tmp_path: Path, pcam_dir: Path
) -> None:
    from model.training.callbacks import resume_epoch
    from model.training.train import TrainConfig, train

    config = TrainConfig(
        train_data=pcam_dir,
        valid_data=None,
        valid_fraction=0.25,
        out_dir=tmp_path,
        arch="logreg",
        epochs=3,
        batch_size=6,
        steps_per_epoch=4,
        checkpoint_steps=2,
        learning_rate=1e-3,
    )
    kill_at = _callback_class()

    first = kill_at(epoch=1, batch=2, record_at=1)  # backup after batch 1, kill at 2
    with pytest.raises(Killed):
        train(config, callbacks=[first])
    assert resume_epoch(tmp_path / "backup") == 1
    assert _epochs_logged(tmp_path) == [0]

    second = kill_at(epoch=1, batch=2, record_at=1)  # killed again in the same epoch
    with pytest.raises(Killed):
        train(config, callbacks=[second])
    for restored, saved in zip(second.at_start, first.recorded, strict=True):
        np.testing.assert_array_equal(restored, saved)
    # Keras's own callback wrote "epoch 0" here and a third start began from scratch.
    assert resume_epoch(tmp_path / "backup") == 1

    third = kill_at(epoch=None, batch=-1, record_at=-1)
    result = train(config, callbacks=[third])
    for restored, saved in zip(third.at_start, second.recorded, strict=True):
        np.testing.assert_array_equal(restored, saved)
    assert result.epochs_run == 2  # epochs 2 and 3 only
    assert _epochs_logged(tmp_path) == [0, 1, 2]
    assert result.best_model.is_file()
    state = json.loads((tmp_path / "best_state.json").read_text())
    assert state["val_auc"] == pytest.approx(result.best_val_auc)


def test_bad_data_fails_before_training(tmp_path: Path, pcam_dir: Path) -> None:
    from model.training.data import DataError
    from model.training.train import TrainConfig, train

    bad = tmp_path / "bad"
    (bad / "1").mkdir(parents=True)
    (bad / "1" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match=r"broken\.jpg: cannot decode image"):
        train(
            TrainConfig(
                train_data=pcam_dir,
                valid_data=bad,
                out_dir=tmp_path / "run",
                arch="logreg",
            )
        )
    assert not (tmp_path / "run" / "backup").exists()


def test_config_is_validated(tmp_path: Path) -> None:
    from model.training.train import TrainConfig

    config = partial(
        TrainConfig, train_data=tmp_path, valid_data=None, out_dir=tmp_path
    )
    with pytest.raises(ValueError, match="arch must be one of"):
        config(arch="vgg")
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        config(learning_rate=0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        config(schedule="step")
    with pytest.raises(ValueError, match="ema must be between 0 and 1"):
        config(ema=1.0)
    with pytest.raises(ValueError, match="label_weight must be between 0 and 1"):
        config(label_weight=1.5)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        config(dropout=1.0)


@pytest.mark.tf
def test_init_from_copies_a_saved_models_weights(tmp_path: Path) -> None:
    from model.training.train import TrainConfig, train

    fixtures = Path(__file__).parent.parent / "fixtures" / "pcam"
    first = train(
        TrainConfig(
            train_data=fixtures,
            valid_data=fixtures,
            out_dir=tmp_path / "a",
            arch="logreg",
            epochs=1,
            steps_per_epoch=1,
            batch_size=8,
        )
    )
    second = train(
        TrainConfig(
            train_data=fixtures,
            valid_data=fixtures,
            out_dir=tmp_path / "b",
            arch="logreg",
            epochs=1,
            steps_per_epoch=1,
            batch_size=8,
            learning_rate=1e-12,
            init_from=first.best_model,
        )
    )
    from model.predict import load_classifier

    a, b = load_classifier(first.best_model), load_classifier(second.best_model)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, atol=1e-6)


@pytest.mark.tf
def test_dropout_sets_the_heads_rate_and_weights_move_across_rates(
    tmp_path: Path, pcam_dir: Path, card_saver: Any
) -> None:
    """A student without dropout starts from a model trained with it."""
    from model.predict import load_classifier
    from model.training.network import build_model
    from model.training.train import TrainConfig, train

    source = build_model("small-cnn", seed=4)
    assert source.get_layer("head_dropout").rate == pytest.approx(0.5)
    saved = card_saver(source, tmp_path / "src.keras", architecture="small-cnn")
    result = train(
        TrainConfig(
            train_data=pcam_dir,
            valid_data=pcam_dir,
            out_dir=tmp_path / "run",
            arch="small-cnn",
            epochs=1,
            steps_per_epoch=1,
            batch_size=8,
            learning_rate=1e-12,
            init_from=saved,
            dropout=0.0,
            bn_recalibration=0,
        )
    )
    student = load_classifier(result.best_model).model
    assert "head_dropout" not in [layer.name for layer in student.layers]
    # The learnt weights moved over (a step at rate 1e-12 leaves them; the
    # batch-norm statistics do move in it).
    pairs = zip(source.trainable_weights, student.trainable_weights, strict=True)
    for wa, wb in pairs:
        np.testing.assert_allclose(np.asarray(wa), np.asarray(wb), atol=1e-5)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dropout"] == 0


def _rate_recorder() -> Any:
    import keras

    class Rates(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.rates: list[float] = []

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.rates.append(float(self.model.optimizer.learning_rate))

    return Rates()


def test_cosine_schedule_decays_to_the_floor_over_the_run(
    tmp_path: Path, pcam_dir: Path
) -> None:
    from model.training.train import COSINE_FLOOR, TrainConfig, train

    rates = _rate_recorder()
    train(
        TrainConfig(
            train_data=pcam_dir,
            valid_data=pcam_dir,
            out_dir=tmp_path,
            arch="logreg",
            epochs=3,
            batch_size=8,
            steps_per_epoch=2,
            learning_rate=1e-3,
            schedule="cosine",
        ),
        callbacks=[rates],
    )
    assert rates.rates[0] < 1e-3
    assert rates.rates == sorted(rates.rates, reverse=True)
    assert rates.rates[-1] == pytest.approx(1e-3 * COSINE_FLOOR, rel=1e-3)


def test_cli_train_with_ema_saves_the_averaged_weights(
    tmp_path: Path, pcam_dir: Path, tiny_model: Path
) -> None:
    from click.testing import CliRunner

    from model.predict import load_classifier
    from wsi.cli import cli

    def run(name: str, epochs: int, *ema: str) -> np.ndarray:
        out = tmp_path / name
        args = ["train", str(pcam_dir), "--valid", str(pcam_dir), "--out", str(out)]
        # 24 fixture patches in batches of 24: one step per epoch.
        args += ["--arch", "logreg", "--epochs", str(epochs), "--batch-size", "24"]
        args += ["--lr", "0.05", "--schedule", "cosine", "--init-from"]
        result = CliRunner().invoke(cli, [*args, str(tiny_model), *ema])
        assert result.exit_code == 0, result.output
        assert "best validation AUC" in result.output
        weights: np.ndarray = load_classifier(out / "best.keras").model.get_weights()[0]
        return weights

    after_one_step = run("one", 1)
    raw = run("raw", 2)
    # Keras starts the average at the first step's weights; momentum near 1 keeps it.
    averaged = run("ema", 2, "--ema", "0.999999")
    assert np.abs(raw - after_one_step).max() > 1e-3
    np.testing.assert_allclose(averaged, after_one_step, atol=1e-5)
    config = json.loads((tmp_path / "ema" / "config.json").read_text())
    assert (config["schedule"], config["ema"]) == ("cosine", 0.999999)


def test_cli_train_passes_the_distillation_options(
    tmp_path: Path, pcam_dir: Path, tiny_model: Path
) -> None:
    from click.testing import CliRunner

    from wsi.cli import cli

    out = tmp_path / "student"
    args = ["train", str(pcam_dir), "--valid", str(pcam_dir), "--out", str(out)]
    args += ["--arch", "logreg", "--epochs", "1", "--batch-size", "24"]
    args += ["--teacher", str(tiny_model), "--label-weight", "0.3"]
    result = CliRunner().invoke(cli, [*args, "--dropout", "0"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["teacher"] == str(tiny_model)
    # the teacher's weights are named by hash: its path may later hold another model
    assert config["teacher_sha256"] == file_sha256(tiny_model)
    assert config["label_weight"] == 0.3
    assert config["dropout"] == 0.0
    missing = CliRunner().invoke(cli, [*args[:-4], "--teacher", str(tmp_path / "no")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
