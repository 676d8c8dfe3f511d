"""Derive the fast CPU model (OpenVINO, int8) from a ``.keras`` classifier.

The export runs once per ``.keras`` file (keyed by its sha256, see
:mod:`model.fast_runtime`) and always starts from the Keras model itself:

1. the model, loaded and checked by :func:`model.predict.load_classifier`, is traced
   as one TensorFlow function on float32 ``[N, 96, 96, 3]`` batches with its
   variables frozen, and converted to a TFLite flatbuffer in float32 (no
   quantisation), which OpenVINO reads;
2. that float32 OpenVINO model must give Keras's outputs on the check patches to
   ``FP32_MAX_ABS_DIFF`` (a wrong conversion fails here, not in production);
3. NNCF post-training quantisation (int8 weights and activations, symmetric preset)
   calibrates on the calibration patches, with fast bias correction (seconds); the
   ops after the last convolution (the head: the last cell's sums, the pooling and
   the sigmoid unit) stay in float32 (see :func:`float_tail`);
4. the int8 model must agree with Keras on the check patches (held out from the
   calibration) to ``INT8_MEAN_ABS_DIFF`` / ``INT8_MAX_ABS_DIFF``; if it does not,
   the quantisation is redone with full bias correction (minutes; it brought one
   NASNet from 0.25 to 0.11 at most), and if that misses too,
   the float32 model is kept instead.

The model is written as OpenVINO IR (``model.xml`` + ``model.bin``) with a sidecar
``fast.json`` holding the ``.keras`` file's sha256, the precision kept, the check's
figures and the versions. Run it by hand (or let the scorer run it in a subprocess)::

    python -m model.export_fast model/weights/pcam-nasnet-mobile.keras --out DIR

Imports TensorFlow, OpenVINO and NNCF.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import logging
import shutil
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from model.card import file_sha256

__all__ = [
    "CALIBRATION_FILE",
    "FP32_MAX_ABS_DIFF",
    "INT8_MAX_ABS_DIFF",
    "INT8_MEAN_ABS_DIFF",
    "compare",
    "export_fast_model",
    "float_tail",
    "read_calibration",
]

logger = logging.getLogger(__name__)

#: PCam training patches (JPEG bytes) shipped for calibration and the export check;
#: written by ``tools/make_calibration_set.py``.
CALIBRATION_FILE: Final = (
    Path(__file__).resolve().parent / "calibration" / "pcam-train.npz"
)
#: Patches of the calibration file kept out of calibration, to check the export.
N_CHECK: Final = 64
#: Shipped patches whose fast-model outputs the sidecar keeps (checked at each load).
N_PROBE: Final = 8
#: A float32 conversion must reproduce Keras to this (probabilities).
FP32_MAX_ABS_DIFF: Final = 2e-3
#: An int8 model must stay this close to Keras on the held-out check patches.
INT8_MEAN_ABS_DIFF: Final = 0.03
INT8_MAX_ABS_DIFF: Final = 0.2
#: NNCF bias corrections tried in turn until the int8 model passes the check.
BIAS_CORRECTIONS: Final = ("fast", "full")
_BATCH: Final = 16


def read_calibration(path: Path = CALIBRATION_FILE) -> npt.NDArray[np.uint8]:
    """The calibration patches as ``uint8[N, 96, 96, 3]`` (decoded with Pillow)."""
    from PIL import Image

    with np.load(path) as data:
        jpeg, offsets = data["jpeg"].tobytes(), data["offsets"]
    images = []
    for start, end in itertools.pairwise(offsets):
        with Image.open(io.BytesIO(jpeg[start:end])) as image:
            images.append(np.asarray(image.convert("RGB")))
    return np.stack(images)


def compare(
    reference: npt.NDArray[np.float32], candidate: npt.NDArray[np.float32]
) -> dict[str, float]:
    """Max and mean absolute differences of two probability vectors.

    Examples
    --------
    >>> compare(np.array([0.1, 0.5], np.float32), np.array([0.2, 0.5], np.float32))
    {'max_abs_diff': 0.1, 'mean_abs_diff': 0.05}
    """
    diff = np.abs(np.asarray(reference, np.float64) - np.asarray(candidate, np.float64))
    return {
        "max_abs_diff": round(float(diff.max()), 6),
        "mean_abs_diff": round(float(diff.mean()), 6),
    }


def export_fast_model(
    keras_path: Path,
    out_dir: Path,
    *,
    precision: str = "int8",
    calibration: npt.NDArray[np.uint8] | None = None,
    n_check: int = N_CHECK,
) -> dict[str, Any]:
    """Export ``keras_path`` as an OpenVINO model into ``out_dir``, checked.

    Parameters
    ----------
    keras_path
        The ``.keras`` classifier (with its sidecar).
    out_dir
        Folder to create (replaced atomically: written beside it, then renamed).
    precision
        ``int8`` (quantised with each of :data:`BIAS_CORRECTIONS` in turn until one
        passes the check; float32 kept if none does) or ``fp32``.
    calibration
        ``uint8[N, 96, 96, 3]`` patches; the last ``n_check`` check the export, the
        others calibrate. Default: :data:`CALIBRATION_FILE`.
    n_check
        Patches held out of calibration for the check.

    Returns
    -------
    dict
        The sidecar written to ``out_dir / "fast.json"``.

    Raises
    ------
    RuntimeError
        The float32 conversion does not reproduce Keras (nothing is written).
    """
    if precision not in ("int8", "fp32"):
        raise ValueError(f"precision must be 'int8' or 'fp32', got {precision!r}")
    import openvino as ov

    from model.predict import load_classifier

    started = time.perf_counter()
    keras_path = Path(keras_path)
    patches = read_calibration() if calibration is None else calibration
    if not 0 < n_check < len(patches):
        raise ValueError(f"n_check must be in (0, {len(patches)}), got {n_check}")
    calib, check = patches[:-n_check], patches[-n_check:]
    classifier = load_classifier(keras_path, batch_size=64)
    reference = classifier(check)
    with tempfile.TemporaryDirectory() as tmp:
        tflite = Path(tmp) / "model.tflite"
        tflite.write_bytes(_tflite_fp32(classifier.model))
        fp32 = ov.Core().read_model(str(tflite))
    fp32.reshape([-1, 96, 96, 3])
    fp32_check = compare(reference, _infer(fp32, check))
    if fp32_check["max_abs_diff"] > FP32_MAX_ABS_DIFF:
        raise RuntimeError(
            f"{keras_path}: the OpenVINO conversion differs from Keras by up to "
            f"{fp32_check['max_abs_diff']:.4f} (tolerance {FP32_MAX_ABS_DIFF}); "
            "scoring stays on Keras"
        )
    kept, model, checks = "fp32", fp32, {"fp32": fp32_check}
    bias_correction: str | None = None  # of the int8 model kept
    if precision == "int8":
        for correction in BIAS_CORRECTIONS:
            int8 = _quantize(fp32, calib, fast_bias_correction=correction == "fast")
            checks["int8"] = compare(reference, _infer(int8, check))
            if (
                checks["int8"]["mean_abs_diff"] <= INT8_MEAN_ABS_DIFF
                and checks["int8"]["max_abs_diff"] <= INT8_MAX_ABS_DIFF
            ):
                kept, model, bias_correction = "int8", int8, correction
                break
            logger.warning(
                "%s: the int8 model (%s bias correction) differs from Keras by %s",
                keras_path,
                correction,
                checks["int8"],
            )
        else:
            logger.warning("%s: keeping the float32 model", keras_path)
    sidecar: dict[str, Any] = {
        "format_version": 1,
        # As given: shipped copies name it inside the repository, the scorer absolute.
        "keras_path": keras_path.as_posix(),
        "keras_sha256": file_sha256(keras_path),
        "runtime": "openvino",
        "precision": kept,
        "check": {
            "n_patches": len(check),
            "tolerance": {
                "fp32_max_abs_diff": FP32_MAX_ABS_DIFF,
                "int8_mean_abs_diff": INT8_MEAN_ABS_DIFF,
                "int8_max_abs_diff": INT8_MAX_ABS_DIFF,
            },
            **checks,
        },
        "calibration_patches": len(calib) if precision == "int8" else 0,
        "bias_correction": bias_correction,
        "float_tail_ops": [
            op.get_type_name()
            for op in _tail(fp32)
            if kept == "int8" and op.get_type_name() not in ("Constant", "Result")
        ],
        "versions": {
            name: _version(name) for name in ("openvino", "nncf", "tensorflow", "keras")
        },
        "export_seconds": round(time.perf_counter() - started, 1),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    probe = read_calibration()[:N_PROBE]
    sidecar["probe"] = {
        "what": f"the first {N_PROBE} patches of {CALIBRATION_FILE.name}",
        "fast": [round(float(p), 6) for p in _infer(model, probe)],
        "keras": [round(float(p), 6) for p in classifier(probe)],
    }
    _write(out_dir, model, sidecar)
    logger.info("exported %s as %s OpenVINO into %s", keras_path, kept, out_dir)
    return sidecar


def _tflite_fp32(model: Any) -> bytes:
    """The Keras model as a float32 TFLite flatbuffer (variables frozen)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    def forward(images: Any) -> Any:
        return model(images, training=False)

    traced = tf.function(
        forward, input_signature=[tf.TensorSpec([None, 96, 96, 3], tf.float32)]
    )
    frozen = convert_variables_to_constants_v2(traced.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    return bytes(converter.convert())


def float_tail(model: Any) -> list[str]:
    """Names of the ops after ``model``'s last convolution, kept in float32.

    They are the head: the last cell's sums and concatenation, the global pooling,
    the sigmoid unit; next to nothing to compute, but nothing after them damps the
    rounding (and a global maximum of rounded values is biased upwards). The bundled
    NASNet's int8 copy differed from Keras by 0.26 at most and 0.070 on average on
    the check patches with them quantised, 0.073 and 0.014 with them in float
    (research/TRAINING.md).
    """
    return [op.get_friendly_name() for op in _tail(model)]


def _tail(model: Any) -> list[Any]:
    """The ops of ``model`` after its last convolution, in topological order."""
    ops = model.get_ordered_ops()
    convolutions = ("Convolution", "GroupConvolution")
    last = max(
        (i for i, op in enumerate(ops) if op.get_type_name() in convolutions),
        default=len(ops) - 1,
    )
    return list(ops[last + 1 :])


def _quantize(
    model: Any, calib: npt.NDArray[np.uint8], *, fast_bias_correction: bool
) -> Any:
    import nncf

    batches = [
        calib[i : i + _BATCH].astype(np.float32) for i in range(0, len(calib), _BATCH)
    ]
    return nncf.quantize(
        model,
        nncf.Dataset(batches),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(batches),  # counts dataset items: batches, not patches
        fast_bias_correction=fast_bias_correction,
        # Most of the tail's ops (constants, reshapes) are never quantised anyway.
        ignored_scope=nncf.IgnoredScope(names=float_tail(model), validate=False),
    )


def _infer(model: Any, patches: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    import openvino as ov

    # float32 for the ops left unquantised: OpenVINO's default on a CPU with
    # AVX512_BF16 is bfloat16 (0.02 from Keras on these patches).
    compiled = ov.Core().compile_model(
        model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    request = compiled.create_infer_request()
    out = []
    for start in range(0, len(patches), 64):
        result = request.infer([patches[start : start + 64].astype(np.float32)])
        out.append(np.asarray(next(iter(result.values())), np.float32).reshape(-1))
    return np.concatenate(out)


def _write(out_dir: Path, model: Any, sidecar: dict[str, Any]) -> None:
    import openvino as ov

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        ov.save_model(model, str(partial / "model.xml"), compress_to_fp16=False)
        sidecar["files_sha256"] = {
            name: file_sha256(partial / name) for name in ("model.xml", "model.bin")
        }
        (partial / "fast.json").write_text(json.dumps(sidecar, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        partial.rename(out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> None:
    """Command line: export one ``.keras`` file into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keras", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sidecar = export_fast_model(args.keras, args.out, precision=args.precision)
    print(json.dumps(sidecar["check"]))


if __name__ == "__main__":
    main()
