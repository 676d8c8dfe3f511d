"""Loading a classifier safely, refusing the wrong files, and scoring with TTA."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from model.card import ModelCard
from model.predict import bundled_model_path, check_compatible
from wsi.errors import ModelLoadError

Patches = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]


def test_check_compatible() -> None:
    card = ModelCard(architecture="nasnet-mobile", input_px=96, mpp=0.972)
    check_compatible(card, tile_px=96, mpp=0.972)
    check_compatible(card, tile_px=96, mpp=0.98)  # within 1 %
    with pytest.raises(
        ModelLoadError, match=r"takes 96 px patches but the tiles are 128 px"
    ):
        check_compatible(card, tile_px=128, mpp=0.972)
    with pytest.raises(
        ModelLoadError,
        match=r"trained at 0.972 um/px but the tiles are at "
        r"0.486 um/px; tile again with `tiling.mpp` 0.972",
    ):
        check_compatible(card, tile_px=96, mpp=0.486)
    check_compatible(card, tile_px=96, mpp=0.486 * 2.04, tolerance=0.03)


def test_bundled_model_path_is_in_the_package() -> None:
    path = bundled_model_path()
    assert path.name == "pcam-efficientnet-lite0.keras"  # the default model
    assert path.parent.name == "weights"
    assert path.parent.parent.name == "model"


@pytest.mark.tf
def test_missing_bundled_model_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import model.predict

    monkeypatch.setattr(
        model.predict,
        "bundled_model_path",
        lambda: tmp_path / "pcam-nasnet-mobile.keras",
    )
    with pytest.raises(
        ModelLoadError, match=r"bundled model is not installed.*`model_path`"
    ):
        model.predict.load_classifier()


@pytest.mark.tf
def test_loaded_classifier_scores_patches(
    tiny_model: Path, fixture_patches: Patches
) -> None:
    from model.predict import load_classifier

    images, _ = fixture_patches
    classifier = load_classifier(tiny_model)
    assert (classifier.input_px, classifier.mpp) == (96, 0.972)
    assert (
        classifier.sha256
        == json.loads(tiny_model.with_suffix(".json").read_text())["weights_sha256"]
    )
    probs = classifier(images)
    assert probs.dtype == np.float32
    assert probs.shape == (24,)
    assert np.all((probs >= 0) & (probs <= 1))
    small_batches = load_classifier(tiny_model, batch_size=5)(images)
    np.testing.assert_allclose(small_batches, probs, atol=1e-6)
    assert classifier(images[:0]).shape == (0,)
    with pytest.raises(TypeError, match="uint8"):
        classifier(images.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[N, 96, 96, 3\]"):
        classifier(images[:, :64])


@pytest.mark.tf
@pytest.mark.parametrize("tta", ["flips", "dihedral"])
def test_tta_is_invariant_to_flipping_the_input(
    tiny_model: Path, fixture_patches: Patches, tta: str
) -> None:
    from model.predict import load_classifier

    images, _ = fixture_patches
    plain = load_classifier(tiny_model)
    classifier = load_classifier(tiny_model, tta=tta, batch_size=16)
    probs = classifier(images)
    assert not np.allclose(plain(images[:, :, ::-1]), plain(images), atol=1e-4)
    for flipped in (images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1]):
        np.testing.assert_allclose(
            classifier(np.ascontiguousarray(flipped)), probs, atol=1e-6
        )
    geometric = load_classifier(tiny_model, tta=tta, tta_mean="geometric")(images)
    assert np.all(geometric <= probs + 1e-6)  # AM-GM


@pytest.mark.tf
def test_wrong_kinds_of_file_are_refused(tmp_path: Path, tiny_model: Path) -> None:
    from model.predict import load_classifier

    cases: list[tuple[Path, str]] = [
        (tmp_path / "absent.keras", "no such model file"),
        (tmp_path, "is a folder"),
        (tmp_path / "model.h5", "legacy HDF5 model"),
        (tmp_path / "model.pt", "is not a .keras model file"),
        (tmp_path / "garbage.keras", "is not a .keras zip archive"),
        (tmp_path / "other.keras", "zip archive without config.json"),
    ]
    for name in ("model.h5", "model.pt", "garbage.keras"):
        (tmp_path / name).write_bytes(b"\x89HDF\r\n not really")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("readme.txt", "hello")
    for path, message in cases:
        with pytest.raises(ModelLoadError, match=message) as info:
            load_classifier(path)
        assert str(path) in str(info.value)


@pytest.mark.tf
def test_sidecar_is_required_and_must_match(tmp_path: Path, tiny_model: Path) -> None:
    from model.predict import load_classifier

    copy = tmp_path / "copy.keras"
    copy.write_bytes(tiny_model.read_bytes())
    with pytest.raises(ModelLoadError, match=r"no sidecar copy\.json beside the model"):
        load_classifier(copy)
    sidecar = json.loads(tiny_model.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps(sidecar))
    load_classifier(copy)
    copy.write_bytes(tiny_model.read_bytes() + b"\0")
    with pytest.raises(ModelLoadError, match=r"sha256 differs from copy\.json"):
        load_classifier(copy)
    copy.write_bytes(tiny_model.read_bytes())
    copy.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable model sidecar"):
        load_classifier(copy)
    copy.with_suffix(".json").write_text(json.dumps(sidecar | {"mpp": -1}))
    with pytest.raises(ModelLoadError, match="malformed model sidecar"):
        load_classifier(copy)


@pytest.mark.tf
def test_models_of_the_wrong_shape_are_refused(
    tmp_path: Path, card_saver: Callable[..., Path]
) -> None:
    import keras

    from model.predict import load_classifier

    small = keras.Sequential(
        [
            keras.Input((64, 64, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    with pytest.raises(
        ModelLoadError, match=r"takes inputs shaped \[\(None, 64, 64, 3\)\]"
    ):
        load_classifier(card_saver(small, tmp_path / "small.keras"))
    two = keras.Sequential(
        [
            keras.Input((96, 96, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    with pytest.raises(
        ModelLoadError, match=r"outputs \[\(None, 2\)\], not one probability"
    ):
        load_classifier(card_saver(two, tmp_path / "two.keras"))
    ok = keras.Sequential(
        [
            keras.Input((96, 96, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    with pytest.raises(ModelLoadError, match="sidecar says the model takes 64 px"):
        load_classifier(card_saver(ok, tmp_path / "ok.keras", input_px=64))


@pytest.mark.tf
def test_safe_mode_refuses_code_in_the_model_file(
    tmp_path: Path, card_saver: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    from model.predict import load_classifier

    marker = tmp_path / "pwned"
    monkeypatch.setenv("WSI_TEST_MARKER", str(marker))
    evil = keras.Sequential(
        [
            keras.Input((96, 96, 3)),
            # Code that would run on load if the file were trusted: it touches a file.
            keras.layers.Lambda(
                lambda x: (
                    x * 0
                    + float(
                        __import__("pathlib")
                        .Path(__import__("os").environ["WSI_TEST_MARKER"])
                        .touch()
                        or 0
                    )
                )
            ),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    marker.unlink()
    path = card_saver(evil, tmp_path / "evil.keras")
    with pytest.raises(ModelLoadError, match="safe mode refuses to run"):
        load_classifier(path)
    assert not marker.exists()
