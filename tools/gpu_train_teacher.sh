#!/usr/bin/env bash
# Fine-tune the default EfficientNet-Lite0 (160 px inside) on a machine with a GPU, in one command:
#
#   tools/gpu_train_teacher.sh PCAM_DIR OUT_DIR [EPOCHS] [TRAIN OPTIONS...]
#
# PCAM_DIR holds train/ and valid/ (class folders, as ../shared/data/pcam) or the
# official HDF5 pairs; OUT_DIR gets the run (best.keras + best.json, log.csv,
# curves.png, backup/ to resume: run the same command again after a kill). Needs
# the package installed with TensorFlow's GPU build (pip install -e . on a CUDA
# machine); `wsi-heatmap train` then uses mixed precision, and MirroredStrategy over
# several GPUs. Batch 256 with the learning rate scaled by the linear rule
# (3e-4 * 256 / 32) and a cosine decay, the recipe of the CPU run (lite0-up160) otherwise.
# Options after EPOCHS go to `wsi-heatmap train` after the defaults here, so they add
# to or override them, e.g. `--seed 1`. (Cross-fitted teachers, run kd18, are trained
# from Python through research/cross_fit.py.)
# Bring OUT_DIR/best.keras and best.json back and export them with
#   wsi-heatmap export-model OUT_DIR --out model/weights/pcam-efficientnet-lite0.keras \
#       --float16 --check-data PCAM_DIR/valid
set -euo pipefail
data=${1:?PCAM_DIR}; out=${2:?OUT_DIR}; epochs=${3:-12}
shift $(( $# < 3 ? $# : 3 ))
python - <<'PY'
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
print(f"GPUs seen by TensorFlow: {len(gpus)}")
if not gpus:
    raise SystemExit("no GPU visible to TensorFlow: install its CUDA build, or train on the CPU")
PY
exec wsi-heatmap train "$data/train" --valid "$data/valid" --out "$out" \
    --arch efficientnet-lite0 --internal-px 160 --batch-size 256 --lr 2.4e-3 --schedule cosine \
    --epochs "$epochs" --hed 0.05 --checkpoint-steps 100 "$@"
