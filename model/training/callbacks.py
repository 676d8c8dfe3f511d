"""Keras callbacks of a training run: best-model selection that survives restarts, curves."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import keras

from model.card import ModelCard, write_card
from model.training.network import preprocessing_for
from wsi.provenance import software_versions

__all__ = [
    "BestCheckpoint",
    "CurvesPlot",
    "ResumableBackup",
    "plot_curves",
    "resume_epoch",
]

logger = logging.getLogger(__name__)


class ResumableBackup(keras.callbacks.BackupAndRestore):  # type: ignore[misc]
    """``BackupAndRestore`` that records the right epoch in backups after a resume.

    Keras's callback counts epochs from 0 in every new process, so a backup written
    in the middle of a resumed epoch said "epoch 0" and a second kill restarted the
    whole run. Here the counter follows the epoch that is running.
    """

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Record the running epoch, so mid-epoch backups resume there."""
        self._current_epoch = epoch


def resume_epoch(backup_dir: Path) -> int:
    """The epoch (0-based) a run restarted from ``backup_dir`` begins with; 0 if none."""
    for name in ("training_metadata.json", "training_metadata.json.bkp"):
        path = Path(backup_dir) / name
        try:
            return max(0, int(json.loads(path.read_text())["epoch"]))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.warning("%s: unreadable backup metadata (%s)", path, err)
    return 0


class BestCheckpoint(keras.callbacks.Callback):  # type: ignore[misc]
    """Keep the model with the best ``val_auc`` in ``best.keras``, with its sidecar.

    The best value so far lives in ``best_state.json``, so a resumed run does not
    overwrite a better model from before the restart.
    """

    def __init__(self, out: Path, *, recipe: dict[str, Any]) -> None:
        super().__init__()
        self.out = Path(out)
        self.recipe = recipe
        self.state_path = self.out / "best_state.json"
        state = (
            json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        )
        self.best = float(state.get("val_auc", float("-inf")))

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Save the model when validation AUC improved."""
        auc = float((logs or {}).get("val_auc", float("nan")))
        if not auc > self.best:
            return
        self.best = auc
        path = self.out / "best.keras"
        tmp = self.out / "best.tmp.keras"
        # A training wrapper (feature matching) saves the classifier it trains.
        saved: Any = getattr(self.model, "student", self.model)
        saved.save(tmp)
        tmp.replace(path)
        write_card(
            path,
            ModelCard(
                architecture=self.recipe["arch"],
                preprocessing=preprocessing_for(self.recipe["arch"]),
                training_data=self.recipe["train_data"],
                training_data_hash=self.recipe["train_data_hash"],
                n_train=self.recipe["n_train"],
                val_auc=auc,
                epoch=epoch + 1,
                recipe=self.recipe,
                versions=software_versions(),
            ),
        )
        self.state_path.write_text(json.dumps({"val_auc": auc, "epoch": epoch + 1}))
        logger.info("epoch %d: best val_auc %.4f saved to %s", epoch + 1, auc, path)


class CurvesPlot(keras.callbacks.Callback):  # type: ignore[misc]
    """Redraw ``curves.png`` from ``log.csv`` after every epoch."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = Path(out)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Redraw the curves."""
        plot_curves(self.out / "log.csv", self.out / "curves.png")


def plot_curves(log_csv: Path, png: Path) -> None:
    """Plot loss and AUC per epoch, train and validation, from a Keras CSV log.

    Draws on a bare ``Figure``, so it works in any process (no pyplot backend).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not log_csv.exists():
        return
    with log_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    # Epoch numbers come from the log: after a resume, rows can repeat or skip one.
    by_epoch = {
        int(r["epoch"]) + 1 if r.get("epoch") else i + 1: r for i, r in enumerate(rows)
    }
    epochs = sorted(by_epoch)
    fig = Figure(figsize=(9, 3.5))
    axes = fig.subplots(1, 2)
    for ax, key in zip(axes, ("loss", "auc"), strict=True):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = [float(by_epoch[e].get(prefix + key) or "nan") for e in epochs]
            ax.plot(epochs, values, marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
