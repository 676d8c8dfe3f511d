#!/usr/bin/env bash
# Patient distillation of the NASNetMobile student on a machine with a GPU, in one
# command (issue 9: the lever the 2-core CPU cannot pull):
#
#   tools/gpu_distil_student.sh PCAM_DIR OUT_DIR [EPOCHS] [INIT] [TRAIN OPTIONS...]
#
# The student learns the bundled EfficientNet-Lite0 teacher's probabilities on the very
# augmented view it sees (function matching, Beyer et al. 2022: long
# schedules are what make it work; three CPU runs of 3-6 epochs, kd1-kd3 in
# research/TRAINING.md, moved the student by 0.002). EPOCHS defaults to 200 (20,000 patches
# an epoch); INIT defaults to the bundled student, "none" starts from random weights.
# Batch 256, learning rate scaled by the linear rule from the CPU runs' 2e-4 at batch
# 32, cosine decay, weight average, HED jitter. Needs the package installed with
# TensorFlow's GPU build; rerun the same command to resume after a kill.
# Options after INIT go to `wsi-heatmap train` as they are, after the defaults here, so
# they add to or override them, e.g. `... 200 none --hed 0.1` (research/TRAINING.md has
# what each measured on the CPU; shifted views, mixup, feature matching, the teacher's
# TTA and cross-fitted teachers are in research/, trained from Python). Bring
# OUT_DIR/best.keras and best.json back, check them with
#   wsi-heatmap eval-patches PCAM_DIR/valid --model OUT_DIR/best.keras --tta dihedral
# and export with
#   wsi-heatmap export-model OUT_DIR --out model/weights/pcam-nasnet-mobile.keras \
#       --float16 --check-data PCAM_DIR/valid
set -euo pipefail
data=${1:?PCAM_DIR}; out=${2:?OUT_DIR}; epochs=${3:-200}
init=${4:-model/weights/pcam-nasnet-mobile.keras}
shift $(( $# < 4 ? $# : 4 ))
python - <<'PY'
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
print(f"GPUs seen by TensorFlow: {len(gpus)}")
if not gpus:
    raise SystemExit("no GPU visible to TensorFlow: install its CUDA build, or train on the CPU")
PY
init_args=()
if [ "$init" != none ]; then init_args=(--init-from "$init"); fi
teacher_args=(--teacher model/weights/pcam-efficientnet-lite0.keras)
exec wsi-heatmap train "$data/train" --valid "$data/valid" --out "$out" \
    --arch nasnet-mobile "${init_args[@]}" "${teacher_args[@]}" --label-weight 0.1 \
    --batch-size 256 --lr 1.6e-3 --schedule cosine --ema 0.999 --hed 0.05 \
    --epochs "$epochs" --checkpoint-steps 100 "$@"
