"""How far a student's last feature map is from a teacher's: a ridge-regression probe.

Fits a linear map (ridge, several strengths) from the student's last feature map to the
teacher's, normalised as feature matching normalises it (``research/feature_distill.py``),
on the positions of 2,048 training patches, and prints the mean squared error on 1,024
others beside that of predicting each channel's mean. An error near the latter means
the student's features carry little of the teacher's.

    python research/scripts/feature_gap.py ../shared/data/pcam/train \\
        --student model/weights/pcam-nasnet-mobile.keras \\
        --teacher model/weights/pcam-efficientnet-lite0.keras
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # research/

_FIT, _HELD = 2048, 1024


def main() -> None:
    """Print the probe's errors for each ridge strength."""
    import keras
    from feature_distill import feature_map, teacher_targets

    from model.predict import load_classifier
    from model.training.batchnorm import recalibration_patches
    from model.training.data import open_patch_set
    from model.training.distill import load_teacher

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train_data", type=Path)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, required=True)
    args = parser.parse_args()

    patches = open_patch_set(args.train_data, split="train")
    x = recalibration_patches(patches, _FIT + _HELD, seed=11).astype(np.float32)
    teacher = teacher_targets(load_teacher(args.teacher))
    student = load_classifier(args.student).model
    own = keras.Model(student.input, feature_map(student))
    _, wanted = teacher.predict(x, batch_size=256, verbose=0)
    found = own.predict(x, batch_size=256, verbose=0)
    positions = found.shape[1] * found.shape[2]  # of a patch's feature map
    found = found.reshape(-1, found.shape[-1])
    wanted = wanted.reshape(len(found), -1)
    n = _FIT * positions
    x_mean, y_mean = found[:n].mean(0), wanted[:n].mean(0)
    xc, yc = found[:n] - x_mean, wanted[:n] - y_mean
    baseline = ((wanted[n:] - y_mean) ** 2).mean()
    for lam in (1e-2, 1, 10, 100):
        w = np.linalg.solve(xc.T @ xc + lam * n / 1e3 * np.eye(xc.shape[1]), xc.T @ yc)
        held = (((found[n:] - x_mean) @ w + y_mean - wanted[n:]) ** 2).mean()
        print(
            f"ridge {lam:g}: fitted mse {((xc @ w - yc) ** 2).mean():.3f}, "
            f"held-out mse {held:.3f}, channel means alone {baseline:.3f}"
        )


if __name__ == "__main__":
    main()
