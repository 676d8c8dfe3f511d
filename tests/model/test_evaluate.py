"""eval_patches on the fixtures in every layout, with the bundled-model default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from model.training.data import DataError, open_patch_set

pytestmark = pytest.mark.tf


class CountingProgress:
    """Records what the library reports."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.closed = False

    def start(self, total: int, desc: str) -> None:
        self.total = total

    def advance(self, n: int = 1) -> None:
        self.done += n

    def close(self) -> None:
        self.closed = True


def test_eval_on_class_folders(
    tiny_model: Path, pcam_dir: Path, tmp_path: Path
) -> None:
    from model.predict import load_classifier
    from model.training.evaluate import eval_patches

    progress = CountingProgress()
    roc = tmp_path / "out" / "roc.png"
    report = eval_patches(
        pcam_dir, model=tiny_model, tta="flips", roc_png=roc, progress=progress
    )
    probs = load_classifier(tiny_model, tta="flips")(
        open_patch_set(pcam_dir).read(np.arange(24))
    )
    labels = [0] * 12 + [1] * 12
    assert report.auc == pytest.approx(roc_auc_score(labels, probs))
    assert report.accuracy == pytest.approx(np.mean((probs >= 0.5) == np.array(labels)))
    assert (report.n, report.n_positive, report.tta) == (24, 12, "flips")
    assert report.loss > 0
    assert roc.read_bytes()[:4] == b"\x89PNG"
    assert (progress.total, progress.done, progress.closed) == (24, 24, True)
    blob = json.loads(json.dumps(report.to_json()))
    assert {"auc", "accuracy", "n", "loss", "model_sha256"} <= set(blob)


def test_eval_on_h5_and_limit(
    tiny_model: Path, pcam_dir: Path, pcam_h5_dir: Path
) -> None:
    from model.training.evaluate import eval_patches

    folders = eval_patches(pcam_dir, model=tiny_model)
    h5 = eval_patches(pcam_h5_dir, model=tiny_model, split="valid")
    assert h5.auc == pytest.approx(folders.auc)
    assert h5.n == 24
    limited = eval_patches(pcam_h5_dir, model=tiny_model, limit=10)
    assert (limited.n, limited.n_positive) == (10, 5)


def test_eval_needs_both_classes(
    tiny_model: Path, pcam_dir: Path, tmp_path: Path
) -> None:
    from model.training.evaluate import eval_patches

    shutil.copytree(pcam_dir / "1", tmp_path / "1")
    with pytest.raises(DataError, match="ROC AUC needs both classes"):
        eval_patches(tmp_path, model=tiny_model)


def test_eval_defaults_to_the_bundled_model(
    tiny_model: Path, pcam_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import model.predict
    from model.training.evaluate import eval_patches

    bundled = tmp_path / "weights" / "pcam-nasnet-mobile.keras"
    bundled.parent.mkdir()
    shutil.copy(tiny_model, bundled)
    shutil.copy(tiny_model.with_suffix(".json"), bundled.with_suffix(".json"))
    monkeypatch.setattr(model.predict, "bundled_model_path", lambda: bundled)
    report = eval_patches(pcam_dir, limit=8)
    assert report.model_path == str(bundled)
    assert report.n == 8


def test_cli_output_has_no_tensorflow_start_up_chatter(
    tiny_model: Path, pcam_dir: Path
) -> None:
    import subprocess
    import sys

    command = ["eval-patches", str(pcam_dir), "--model", str(tiny_model)]
    done = subprocess.run(
        [sys.executable, "-c", "from wsi.cli import main; main()", *command],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "AUC" in done.stdout
    # Only our own log lines: no absl/oneDNN/CUDA lines from TensorFlow's C++ start-up.
    assert "absl" not in done.stderr
    assert "I0000" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert all(line.startswith(("INFO ", "WARNING ")) for line in lines), lines


def test_auc_interval_holds_the_auc_narrows_with_data_and_repeats() -> None:
    from model.training.evaluate import auc_ci95, roc_auc

    rng = np.random.default_rng(3)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat([0, 1], n // 2)
        return labels, labels * 1.2 + rng.normal(size=n)

    small, large = sample(200), sample(4000)
    low_s, high_s = auc_ci95(*small)
    low_l, high_l = auc_ci95(*large)
    assert low_s < roc_auc(*small) < high_s
    assert low_l < roc_auc(*large) < high_l
    assert high_l - low_l < (high_s - low_s) / 3  # ~1/sqrt(20) as wide
    assert auc_ci95(*small) == (low_s, high_s)  # seeded: same data, same interval
    # A perfectly separated set: every resample has AUC 1, the interval is (1, 1).
    assert auc_ci95([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], n_resamples=50) == (1.0, 1.0)
