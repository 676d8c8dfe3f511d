"""The fast CPU scoring path: an OpenVINO model derived from the ``.keras`` file.

``load_fast_classifier(path)`` gives an :class:`OpenVinoPatchClassifier` (the same
``uint8[N, 96, 96, 3]`` -> ``float32[N]`` callable as the Keras one, with the same
TTA) when OpenVINO is installed, or None, in which case the caller uses Keras. The
OpenVINO model is exported once per ``.keras`` file by :mod:`model.export_fast`
(in a subprocess, so that the scoring process never imports TensorFlow) into
``cache_dir() / "fast-models" / <sha256 of the .keras file>``, and checked:

- at export, against Keras on held-out calibration patches (see
  :mod:`model.export_fast` for the tolerances);
- at every load, without TensorFlow: the sidecar must name the ``.keras`` file's
  sha256 (itself checked against the model's own sidecar), the IR files their
  recorded sha256, and the model must reproduce the probabilities it gave at export
  on the probe patches to ``PROBE_TOLERANCE``.

Anything wrong with a cached model exports it again; an export that fails leaves
scoring on Keras, with a warning. Which runtime runs is ``runtime_summary()``
(``wsi-heatmap doctor``). ``WSI_CACHE_DIR`` moves the cache; ``WSI_SCORING_RUNTIME``
= ``keras`` turns the fast path off on a machine, ``openvino`` makes its failure an
error.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from model.card import read_card
from model.classifier import CardClassifier
from model.registry import WEIGHTS_DIR, resolve_model_path
from wsi.errors import ModelLoadError

__all__ = [
    "PROBE_TOLERANCE",
    "RUNTIME_ENV",
    "OpenVinoPatchClassifier",
    "cache_dir",
    "fast_model_dir",
    "load_fast_classifier",
    "openvino_available",
    "requested_runtime",
    "runtime_summary",
]

logger = logging.getLogger(__name__)

RUNTIME_ENV: Final = "WSI_SCORING_RUNTIME"
CACHE_ENV: Final = "WSI_CACHE_DIR"
STREAMS_ENV: Final = "WSI_OPENVINO_STREAMS"
#: A cached model must give the probabilities it gave at export to this.
PROBE_TOLERANCE: Final = 0.02
_EXPORT_TIMEOUT_S: Final = 3600
_FORMAT: Final = 1


def requested_runtime() -> str:
    """``auto`` (default), ``keras`` or ``openvino``, from ``WSI_SCORING_RUNTIME``."""
    value = os.environ.get(RUNTIME_ENV, "auto").strip().lower() or "auto"
    if value not in ("auto", "keras", "openvino"):
        raise ModelLoadError(
            f"{RUNTIME_ENV}={value!r}: use auto, keras or openvino (or unset it)"
        )
    return value


def openvino_available() -> bool:
    """Whether OpenVINO can be imported (NNCF too: the int8 export needs it)."""
    return all(importlib.util.find_spec(m) is not None for m in ("openvino", "nncf"))


def cache_dir() -> Path:
    """``WSI_CACHE_DIR``, else ``$XDG_CACHE_HOME/wsi-heatmap`` or ``~/.cache/...``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wsi-heatmap"


def fast_model_dir(keras_sha256: str) -> Path:
    """Where the fast model of the ``.keras`` file with this sha256 is kept."""
    return cache_dir() / "fast-models" / f"{keras_sha256}-openvino"


def shipped_fast_model_dir(keras_sha256: str) -> Path:
    """Where a fast model shipped with the package would be (bundled models only).

    ``tools/ship_fast_models.py`` writes them, so a new install scores at full
    speed from the first slide instead of exporting for minutes; they are checked
    exactly as cached ones are.
    """
    return WEIGHTS_DIR / "fast-models" / f"{keras_sha256}-openvino"


def _gpu_present() -> bool:
    """An NVIDIA device is visible: Keras on the GPU beats OpenVINO on the CPU."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*"))


@dataclass(frozen=True, eq=False, kw_only=True)
class OpenVinoPatchClassifier(CardClassifier):
    """An OpenVINO patch classifier: ``uint8[N, 96, 96, 3]`` -> ``float32[N]``.

    Build it with :func:`load_fast_classifier`. Thread-safe: each calling thread
    has its own inference request on one compiled model. Its identity
    (``sha256``) is that of the ``.keras`` file it was derived from.
    """

    fast_dir: Path
    precision: str
    _compiled: dict[int, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def runtime(self) -> str:
        """``openvino-int8`` or ``openvino-fp32``."""
        return f"openvino-{self.precision}"

    def _forward_pass(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        return self.predict(images)

    def predict(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Forward passes without TTA: ``float32[len(images)]``.

        Each batch of ``batch_size`` is split between the model's streams, in
        passes of ``batch_size / streams`` on a model compiled for that static
        shape (int8 on this CPU: 1.8x the rate of a dynamic batch; the last pass is
        padded), so that one call keeps every stream busy (a chunk scored alone at
        the end of a slide used one core of two). Passes run on asynchronous
        requests, one per stream and calling thread, created when first needed
        (each holds the activations of one pass).
        """
        out = np.empty(len(images), dtype=np.float32)
        size = self._pass_size()
        starts = range(0, len(images), size)
        requests = self._requests(min(len(starts), _streams(_cpus())))
        busy: list[tuple[Any, int, int]] = []
        for k, start in enumerate(starts):
            if len(busy) == len(requests):
                self._collect(*busy.pop(0), out)
            batch = images[start : start + size]
            n = len(batch)
            if n < size:
                batch = np.concatenate(
                    [batch, np.zeros((size - n, *batch.shape[1:]), np.uint8)]
                )
            request = requests[k % len(requests)]
            request.start_async([np.ascontiguousarray(batch)])
            busy.append((request, start, n))
        for request, start, n in busy:
            self._collect(request, start, n, out)
        return out

    @staticmethod
    def _collect(
        request: Any, start: int, n: int, out: npt.NDArray[np.float32]
    ) -> None:
        request.wait()
        probs = np.asarray(request.get_output_tensor(0).data, np.float32).reshape(-1)
        out[start : start + n] = probs[:n]

    def _pass_size(self) -> int:
        """Images per forward pass: the batch shared between the streams."""
        return max(1, self.batch_size // _streams(_cpus()))

    def _model(self) -> Any:
        size = self._pass_size()
        with self._lock:
            if size not in self._compiled:
                self._compiled[size] = _compile(self.fast_dir, batch=size)
            return self._compiled[size]

    def _requests(self, count: int) -> list[Any]:
        """At least ``count`` requests of the calling thread on the static model."""
        mine: list[Any] = self._local.__dict__.setdefault("requests", [])
        while len(mine) < count:
            mine.append(self._model().create_infer_request())
        return mine

    def describe(self) -> dict[str, Any]:
        """What was loaded, for run metadata (JSON-able)."""
        return {
            "model_path": str(self.path),
            "sha256": self.sha256,
            "architecture": self.card.architecture,
            "runtime": self.runtime,
            "fast_model": str(self.fast_dir),
            "tta": self.tta,
            "tta_mean": self.tta_mean,
            "batch_size": self.batch_size,
            "device": "cpu",
        }


def load_fast_classifier(
    path: Path | str | None = None,
    *,
    tta: str = "none",
    tta_mean: str = "arithmetic",
    batch_size: int = 256,
    export: bool = True,
    runtime: str | None = None,
) -> OpenVinoPatchClassifier | None:
    """The OpenVINO classifier of a ``.keras`` model, or None to use Keras.

    Parameters
    ----------
    path
        As for :func:`model.predict.load_classifier` (None: the default bundled
        model).
    tta, tta_mean, batch_size
        As for :func:`model.predict.load_classifier`.
    export
        Export the model when the cache has no valid copy (else return None).
    runtime
        ``auto``, ``keras`` or ``openvino``; None reads ``WSI_SCORING_RUNTIME``.
        ``openvino`` is a demand: no OpenVINO model is an error, not Keras.

    Returns
    -------
    OpenVinoPatchClassifier or None
        None when OpenVINO is not installed, a GPU is present, ``WSI_SCORING_RUNTIME``
        is ``keras``, or no checked model could be had (logged).

    Raises
    ------
    ModelLoadError
        The ``.keras`` file or its sidecar is wrong (as Keras loading would say), or
        ``WSI_SCORING_RUNTIME=openvino`` and the fast model cannot be had.
    """
    wanted = runtime or requested_runtime()
    if wanted == "keras" or (wanted == "auto" and _gpu_present()):
        return None
    if not openvino_available():
        if wanted == "openvino":
            raise ModelLoadError(
                "OpenVINO/NNCF are not installed here but the slide is scored with "
                "OpenVINO (decided once per slide, or asked for by "
                f"{RUNTIME_ENV}=openvino): pip install openvino nncf "
                "(constraints.txt) on every worker"
            )
        logger.info("OpenVINO is not installed: scoring with Keras")
        return None
    from model.predict import check_model_file

    keras_path = resolve_model_path(path)
    check_model_file(keras_path)
    card = read_card(keras_path)
    target, sidecar = _find_fast_model(card.weights_sha256)
    if sidecar is None and export:
        _export(keras_path, target, card.weights_sha256)
        sidecar = _checked_sidecar(target, card.weights_sha256)
    compiled = _try_compile(target) if sidecar is not None else None
    if compiled is not None and sidecar is not None and _probe_ok(compiled, sidecar):
        logger.info(
            "scoring %s with OpenVINO %s (%s)",
            keras_path.name,
            sidecar["precision"],
            target,
        )
        return OpenVinoPatchClassifier(
            card=card,
            path=keras_path,
            fast_dir=target,
            precision=str(sidecar["precision"]),
            tta=tta,
            tta_mean=tta_mean,
            batch_size=batch_size,
        )
    message = f"no checked OpenVINO model for {keras_path} in {target}"
    if wanted == "openvino":
        raise ModelLoadError(f"{message}; unset {RUNTIME_ENV} to score with Keras")
    logger.warning("%s: scoring with Keras", message)
    return None


def runtime_summary(path: Path | str | None = None) -> str:
    """Which runtime scoring uses for ``path`` (for ``wsi-heatmap doctor``)."""
    wanted = requested_runtime()
    if wanted == "keras":
        return f"keras ({RUNTIME_ENV}=keras)"
    if wanted == "auto" and _gpu_present():
        return "keras (a GPU is present)"
    if not openvino_available():
        return "keras (OpenVINO/NNCF not installed: pip install openvino nncf)"
    keras_path = resolve_model_path(path)
    card = read_card(keras_path)
    target, sidecar = _find_fast_model(card.weights_sha256)
    if sidecar is None:
        return f"openvino (exported from {keras_path.name} at first use into {target})"
    check = sidecar["check"].get(sidecar["precision"], {})
    summary = (
        f"openvino-{sidecar['precision']} ({target}; against Keras on "
        f"{sidecar['check']['n_patches']} patches: max |diff| "
        f"{check.get('max_abs_diff')}, mean {check.get('mean_abs_diff')})"
    )
    made_with = dict(sidecar.get("versions") or {}).get("openvino")
    installed = _installed_version("openvino")
    if made_with and installed and made_with != installed:
        summary += (
            f"; WARNING: made with OpenVINO {made_with}, {installed} is installed: "
            f"install openvino=={made_with} (constraints.txt) if it fails to load"
        )
    return summary


def _installed_version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _find_fast_model(keras_sha256: str) -> tuple[Path, dict[str, Any] | None]:
    """The shipped copy if it checks out, else the cache folder (and its sidecar)."""
    shipped = shipped_fast_model_dir(keras_sha256)
    if shipped.is_dir():
        sidecar = _checked_sidecar(shipped, keras_sha256)
        if sidecar is not None:
            return shipped, sidecar
    cached = fast_model_dir(keras_sha256)
    return cached, _checked_sidecar(cached, keras_sha256)


def _checked_sidecar(target: Path, keras_sha256: str) -> dict[str, Any] | None:
    """The sidecar of a complete cached model derived from this ``.keras``, or None."""
    try:
        sidecar = json.loads((target / "fast.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(sidecar, dict) or sidecar.get("format_version") != _FORMAT:
        return None
    if sidecar.get("keras_sha256") != keras_sha256:
        logger.warning("%s: derived from another model; exporting again", target)
        return None
    for name, digest in dict(sidecar.get("files_sha256") or {}).items():
        if _sha256(target / name) != digest:
            logger.warning("%s: %s was changed; exporting again", target, name)
            return None
    if not sidecar.get("files_sha256") or not sidecar.get("probe"):
        return None
    return sidecar


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _compile(target: Path, *, batch: int) -> Any:
    """The model compiled for the CPU, for batches of ``batch`` (-1: any)."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(target / "model.xml"))
    model.reshape([batch, 96, 96, 3])
    # uint8 in: the cast to float32 runs inside the compiled model.
    ppp = ov.preprocess.PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8)
    model = ppp.build()
    threads = _cpus()
    config = {
        # A few streams of a thread or more each: no barrier between threads inside
        # a forward pass (what a busy machine punishes), several calls at once.
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": _streams(threads),
        "INFERENCE_NUM_THREADS": threads,
        # As at export: OpenVINO would pick bfloat16 on a CPU with AVX512_BF16.
        "INFERENCE_PRECISION_HINT": "f32",
    }
    return core.compile_model(model, "CPU", config)


def _cpus() -> int:
    """CPUs this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def _streams(threads: int) -> int:
    """``WSI_OPENVINO_STREAMS``, else 2 (scoring's default dask threads) or fewer."""
    value = os.environ.get(STREAMS_ENV, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise ModelLoadError(
                f"{STREAMS_ENV}={value!r}: give a number of streams (or unset it)"
            ) from None
    return min(2, threads)


def _try_compile(target: Path) -> Any:
    try:
        return _compile(target, batch=-1)
    except RuntimeError as err:
        logger.warning("%s: OpenVINO cannot load it (%s)", target, err)
        return None


def _probe_ok(compiled: Any, sidecar: dict[str, Any]) -> bool:
    """The model still gives its export-time outputs on the probe patches."""
    from model.export_fast import read_calibration

    probe = sidecar["probe"]
    patches = read_calibration()[: len(probe["fast"])]
    result = compiled.create_infer_request().infer([patches])
    now = np.asarray(next(iter(result.values())), np.float64).reshape(-1)
    diff = float(np.abs(now - np.asarray(probe["fast"], np.float64)).max())
    if diff > PROBE_TOLERANCE:
        logger.warning(
            "the cached OpenVINO model differs from its export by %.4f on the probe "
            "patches (tolerance %s)",
            diff,
            PROBE_TOLERANCE,
        )
        return False
    return True


def _export(keras_path: Path, target: Path, keras_sha256: str) -> None:
    """Run :mod:`model.export_fast` in a subprocess, one process at a time."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if _checked_sidecar(target, keras_sha256) is not None:
            return  # another process exported it meanwhile
        logger.warning(
            "exporting %s for OpenVINO into %s (once per model; a few minutes)",
            keras_path.name,
            target,
        )
        # Absolute: the subprocess runs in the repository, not the caller's folder.
        argv = [sys.executable, "-m", "model.export_fast", str(keras_path.resolve())]
        argv += ["--out", str(target)]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=_EXPORT_TIMEOUT_S,
                cwd=Path(__file__).resolve().parents[1],
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            logger.warning("the OpenVINO export failed: %s", err)
            return
        if done.returncode != 0:
            tail = (done.stderr or "").strip().splitlines()[-3:]
            logger.warning("the OpenVINO export failed: %s", " | ".join(tail))
