"""Reading labelled image files: class folders and the Kaggle layout (private)."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

from model.training.data import DataError
from wsi.geometry import PATCH_PX

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def class_folder_items(root: Path) -> tuple[list[Path], npt.NDArray[np.uint8]]:
    """Image files under ``root/0`` and ``root/1`` (sorted) and their labels."""
    files: list[Path] = []
    labels: list[int] = []
    for label in (0, 1):
        folder = root / str(label)
        if not folder.is_dir():
            continue
        found = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        files += found
        labels += [label] * len(found)
    return files, np.asarray(labels, dtype=np.uint8)


def kaggle_items(root: Path) -> tuple[list[Path], npt.NDArray[np.uint8]]:
    """``train/*.tif`` (sorted) and their labels from ``train_labels.csv``."""
    csv_path = root / "train_labels.csv"
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{csv_path}: cannot read the label table ({err})") from err
    if not rows or not {"id", "label"} <= set(rows[0]):
        raise DataError(
            f"{csv_path}: expected a header 'id,label' and one row per image"
        )
    by_id = {row["id"]: row["label"] for row in rows}
    image_dir = root / "train" if (root / "train").is_dir() else root
    files = sorted(image_dir.glob("*.tif"))
    missing = [f.name for f in files if f.stem not in by_id]
    if missing:
        raise DataError(
            f"{csv_path}: no label row for {len(missing)} images, e.g. {missing[0]}; "
            "add the rows or remove the images"
        )
    try:
        values = np.asarray([int(by_id[f.stem]) for f in files], dtype=np.int64)
    except (ValueError, TypeError) as err:
        raise DataError(f"{csv_path}: labels must be 0 or 1 ({err})") from err
    bad = np.flatnonzero((values < 0) | (values > 1))
    if bad.size:
        raise DataError(
            f"{csv_path}: labels must be 0 or 1, found {values[bad[0]]} for "
            f"{files[bad[0]].stem}; fix that row"
        )
    return files, values.astype(np.uint8)


def decode_one(path: Path) -> npt.NDArray[np.uint8]:
    """Decode one 96x96 RGB patch, or raise a ``DataError`` naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.size != (PATCH_PX, PATCH_PX):
                raise DataError(
                    f"{path}: image is {image.size[0]}x{image.size[1]}, PCam patches "
                    "are 96x96; resample the data to 0.972 um/px first"
                )
            if image.mode != "RGB":
                raise DataError(
                    f"{path}: image mode is {image.mode}, expected RGB; convert it "
                    "(grey-scale and RGBA patches are not PCam patches)"
                )
            return np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise DataError(
            f"{path}: cannot decode image ({err}); remove or replace it"
        ) from err


def decode_all(files: Sequence[Path], *, workers: int) -> npt.NDArray[np.uint8]:
    """Decode every file (checking each) into one ``uint8[N, 96, 96, 3]`` array."""
    logger.info("decoding %d patches", len(files))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(decode_one, files))
    return np.stack(arrays)
