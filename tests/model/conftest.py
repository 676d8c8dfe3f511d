"""Fixtures of the model tests: real PCam patches, a PCam-schema HDF5 pair, a tiny run.

Nothing here reads the shared data folder: the 24 patches live in tests/fixtures/pcam/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PCAM_DIR = FIXTURES / "pcam"


def read_fixture_patches() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The fixture patches as ``uint8[24, 96, 96, 3]`` and their labels."""
    from PIL import Image

    images, labels = [], []
    for label in (0, 1):
        for path in sorted((PCAM_DIR / str(label)).glob("*.jpg")):
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.uint8)


def write_pcam_h5(
    folder: Path,
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.uint8],
    *,
    split: str = "valid",
    n_labels: int | None = None,
) -> Path:
    """Write ``camelyonpatch_level_2_split_<split>_{x,y}.h5`` in the PCam schema.

    ``x`` is ``uint8[N, 96, 96, 3]`` and ``y`` is ``uint8[N, 1, 1, 1]`` (gzip-compressed,
    chunked by patch like the official release); ``n_labels`` writes a different
    number of labels, to test mismatched pairs.
    """
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"camelyonpatch_level_2_split_{split}"
    with h5py.File(f"{stem}_x.h5", "w") as f:
        f.create_dataset(
            "x", data=images, chunks=(1, *images.shape[1:]), compression="gzip"
        )
    y = labels if n_labels is None else np.resize(labels, n_labels)
    with h5py.File(f"{stem}_y.h5", "w") as f:
        f.create_dataset("y", data=y.reshape(-1, 1, 1, 1).astype(np.uint8))
    return Path(f"{stem}_x.h5")


@pytest.fixture(scope="session")
def pcam_dir() -> Path:
    """Class folders ``0/`` and ``1/`` of 12 real PCam validation patches each."""
    return PCAM_DIR


@pytest.fixture(scope="session")
def fixture_patches() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The 24 fixture patches and labels, in memory."""
    return read_fixture_patches()


@pytest.fixture
def pcam_h5_dir(
    tmp_path: Path, fixture_patches: tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]
) -> Path:
    """A folder holding the fixture patches as PCam HDF5 ``valid`` and ``train`` pairs."""
    images, labels = fixture_patches
    folder = tmp_path / "pcam-h5"
    for split in ("train", "valid"):
        write_pcam_h5(folder, images, labels, split=split)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch logistic-regression run on the fixtures (``best.keras``)."""
    from model.training.augment import AugmentParams
    from model.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-run")
    train(
        TrainConfig(
            train_data=PCAM_DIR,
            valid_data=PCAM_DIR,
            out_dir=out,
            arch="logreg",
            epochs=2,
            batch_size=8,
            steps_per_epoch=3,
            learning_rate=1e-3,
            seed=1,
            augment=AugmentParams(brightness=0, contrast=0, saturation=0, hue=0),
        )
    )
    assert (out / "best.keras").is_file()
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_run: Path) -> Path:
    """``best.keras`` of the tiny run (its sidecar ``best.json`` beside it)."""
    return tiny_run / "best.keras"


def save_with_card(model: Any, path: Path, **card: Any) -> Path:
    """Save a Keras model and write a matching sidecar."""
    from model.card import ModelCard, write_card

    model.save(path)
    write_card(path, ModelCard(architecture=card.pop("architecture", "test"), **card))
    return path


@pytest.fixture(scope="session")
def h5_writer() -> Callable[..., Path]:
    """``write_pcam_h5``, for tests that write their own (bad) HDF5 pairs."""
    return write_pcam_h5


@pytest.fixture(scope="session")
def card_saver() -> Callable[..., Path]:
    """``save_with_card``: save a Keras model with a matching sidecar."""
    return save_with_card
