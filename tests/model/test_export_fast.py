"""The int8 export's fallbacks: full bias correction, then float32."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from model import export_fast, fast_runtime

needs_openvino = pytest.mark.skipif(
    not fast_runtime.openvino_available(), reason="OpenVINO/NNCF not installed"
)


def _spoil(monkeypatch: pytest.MonkeyPatch, spoilt: set[bool]) -> list[bool]:
    """Make int8 models quantised with the given ``fast_bias_correction`` values
    score 0.5 off; return the values each quantisation was asked for."""
    calls: list[bool] = []
    bad: list[Any] = []
    quantize, infer = export_fast._quantize, export_fast._infer

    def fake_quantize(model: Any, calib: Any, *, fast_bias_correction: bool) -> Any:
        calls.append(fast_bias_correction)
        out = quantize(model, calib, fast_bias_correction=fast_bias_correction)
        if fast_bias_correction in spoilt:
            bad.append(out)
        return out

    def fake_infer(model: Any, patches: Any) -> npt.NDArray[np.float32]:
        probs = infer(model, patches)
        return np.abs(probs - 0.5) if any(model is b for b in bad) else probs

    monkeypatch.setattr(export_fast, "_quantize", fake_quantize)
    monkeypatch.setattr(export_fast, "_infer", fake_infer)
    return calls


@pytest.mark.tf
@needs_openvino
@pytest.mark.parametrize(
    ("spoilt", "calls", "precision", "correction"),
    [
        (set(), [True], "int8", "fast"),
        ({True}, [True, False], "int8", "full"),
        ({True, False}, [True, False], "fp32", None),
    ],
)
def test_int8_export_falls_back_to_full_bias_correction_then_float32(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model: Path,
    spoilt: set[bool],
    calls: list[bool],
    precision: str,
    correction: str | None,
) -> None:
    asked = _spoil(monkeypatch, spoilt)
    patches = export_fast.read_calibration()[:48]
    out = tmp_path / "fast"
    sidecar = export_fast.export_fast_model(
        tiny_model, out, calibration=patches, n_check=16
    )
    assert asked == calls
    assert sidecar["precision"] == precision
    assert sidecar["bias_correction"] == correction
    assert json.loads((out / "fast.json").read_text()) == sidecar
    within = sidecar["check"]["int8"]["max_abs_diff"] <= export_fast.INT8_MAX_ABS_DIFF
    assert within == (precision == "int8")


@pytest.mark.tf
@needs_openvino
def test_int8_export_keeps_the_head_after_the_last_convolution_in_float(
    tmp_path: Path, card_saver: Callable[..., Path]
) -> None:
    import openvino as ov

    from model.training.network import build_model

    cnn = card_saver(
        build_model("small-cnn", seed=0),
        tmp_path / "cnn.keras",
        architecture="small-cnn",
    )
    patches = export_fast.read_calibration()[:48]
    sidecar = export_fast.export_fast_model(
        cnn, tmp_path / "fast", calibration=patches, n_check=16
    )
    assert sidecar["precision"] == "int8"
    ops = ov.Core().read_model(str(tmp_path / "fast" / "model.xml")).get_ordered_ops()
    types = [op.get_type_name() for op in ops]
    last_conv = max(i for i, t in enumerate(types) if t == "Convolution")
    quantised = [i for i, t in enumerate(types) if t == "FakeQuantize"]
    # The convolutions compute in int8; nothing after the last one is quantised.
    assert quantised
    assert max(quantised) < last_conv
    assert "MatMul" in sidecar["float_tail_ops"]
    assert "MatMul" in types[last_conv:]
