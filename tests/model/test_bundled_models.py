"""Every model the package ships loads in safe mode, offline, and scores real patches."""

from __future__ import annotations

import socket

import numpy as np
import numpy.typing as npt
import pytest

from model.registry import BUNDLED_MODELS, resolve_model_path

pytestmark = pytest.mark.tf

Patches = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_bundled_model_loads_offline_and_separates_fixture_patches(
    name: str, fixture_patches: Patches, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.metrics import roc_auc_score

    from model.predict import load_classifier

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("loading a shipped model must not reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    path = resolve_model_path(name)
    assert path.is_file(), f"{path}: a model named in model.registry is not shipped"
    classifier = load_classifier(name)  # checks the sidecar's sha256; Keras safe mode
    assert classifier.path == path
    assert classifier.card.architecture == name
    images, labels = fixture_patches
    probs = classifier(images)
    assert probs.shape == (len(images),)
    assert np.all((probs >= 0) & (probs <= 1))
    # 24 real PCam validation patches: either shipped model ranks them well.
    assert roc_auc_score(labels, probs) > 0.85


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_bundled_model_ships_its_int8_cpu_model(name: str) -> None:
    """A new install scores at int8 speed from its first slide, no export needed."""
    import json

    from model.card import file_sha256
    from model.fast_runtime import shipped_fast_model_dir

    path = resolve_model_path(name)
    folder = shipped_fast_model_dir(file_sha256(path))
    assert (folder / "model.xml").is_file(), (
        f"{folder}: run python tools/ship_fast_models.py"
    )
    sidecar = json.loads((folder / "fast.json").read_text())
    assert sidecar["keras_sha256"] == file_sha256(path)
    assert sidecar["precision"] == "int8", sidecar["check"]


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_shipped_int8_copies_match_the_pinned_environment(name: str) -> None:
    """constraints.txt pins the OpenVINO and NNCF each shipped int8 copy was made with."""
    import json
    from importlib import metadata
    from pathlib import Path

    from model.card import file_sha256
    from model.fast_runtime import shipped_fast_model_dir

    pins = dict(
        line.split("==", 1)
        for line in (Path(__file__).parents[2] / "constraints.txt").read_text().split()
        if "==" in line
    )
    folder = shipped_fast_model_dir(file_sha256(resolve_model_path(name)))
    made_with = json.loads((folder / "fast.json").read_text())["versions"]
    for package in ("openvino", "nncf"):
        assert pins[package] == made_with[package], (package, folder)
        assert metadata.version(package) == made_with[package]  # `make install` did it


def test_doctor_warns_when_openvino_differs_from_the_shipped_copies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from model import fast_runtime

    monkeypatch.delenv(fast_runtime.RUNTIME_ENV, raising=False)
    monkeypatch.setattr(fast_runtime, "_gpu_present", lambda: False)
    assert "WARNING" not in fast_runtime.runtime_summary()
    monkeypatch.setattr(fast_runtime, "_installed_version", lambda _: "2099.1.0")
    summary = fast_runtime.runtime_summary()
    assert "WARNING: made with OpenVINO" in summary
    assert "2099.1.0 is installed" in summary
