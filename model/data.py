"""Labelled PCam patch sets in the three common layouts, as one small interface.

* class folders: ``SPLIT/{0,1}/*.jpg|png|tif`` (the layout of the shared PCam copy);
* the Kaggle layout: ``train/*.tif`` plus ``train_labels.csv`` with ``id,label``;
* the official PCam HDF5 pair ``camelyonpatch_level_2_split_<split>_{x,y}.h5``,
  streamed from disk (the train split is 7 GB and is never loaded whole).

Image-file layouts are decoded once into memory, checking every file, so a bad file
is reported by name before training starts rather than halfway through an epoch.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from wsi.errors import WsiError
from wsi.geometry import PATCH_PX

__all__ = [
    "ArrayPatchSet",
    "DataError",
    "H5PatchSet",
    "PatchSet",
    "open_patch_set",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


class DataError(WsiError, ValueError):
    """A labelled patch set is malformed (wrong size or mode, corrupt, missing labels)."""


class PatchSet(Protocol):
    """Labelled 96x96 RGB patches that can be read by index."""

    name: str

    def __len__(self) -> int:
        """Number of patches."""
        ...

    @property
    def labels(self) -> npt.NDArray[np.uint8]:
        """``uint8[N]`` labels, 1 = tumour in the centre 32x32."""
        ...

    def read(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """``uint8[len(indices), 96, 96, 3]`` patches in the order given."""
        ...

    def fingerprint(self) -> str:
        """A short hash identifying the data (files and labels)."""
        ...


@dataclass(frozen=True)
class ArrayPatchSet:
    """Patches held in memory."""

    name: str
    images: npt.NDArray[np.uint8]
    label_array: npt.NDArray[np.uint8]
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.images) != len(self.label_array):
            raise DataError(
                f"{self.name}: {len(self.images)} images but {len(self.label_array)} labels"
            )

    def __len__(self) -> int:
        """Number of patches."""
        return len(self.label_array)

    @property
    def labels(self) -> npt.NDArray[np.uint8]:
        """``uint8[N]`` labels."""
        return self.label_array

    def read(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Patches at ``indices``."""
        return self.images[indices]

    def fingerprint(self) -> str:
        """Hash of the file names and labels (or of the pixels without names)."""
        digest = hashlib.sha256()
        if self.sources:
            digest.update("\n".join(self.sources).encode())
        else:
            digest.update(self.images.tobytes())
        digest.update(self.label_array.tobytes())
        return digest.hexdigest()[:16]


class H5PatchSet:
    """The official PCam HDF5 pair, read lazily from disk."""

    def __init__(self, x_path: Path, y_path: Path) -> None:
        import h5py

        self.name = x_path.name
        self._x_path, self._y_path = x_path, y_path
        try:
            self._x = h5py.File(x_path, "r")["x"]
            y = h5py.File(y_path, "r")["y"]
        except (OSError, KeyError) as err:
            raise DataError(
                f"{x_path}: cannot read PCam HDF5 datasets 'x' and 'y' ({err}); "
                "expected camelyonpatch_level_2_split_<split>_{x,y}.h5"
            ) from err
        if self._x.shape[1:] != (PATCH_PX, PATCH_PX, 3):
            raise DataError(
                f"{x_path}: 'x' has shape {self._x.shape}, expected (N, 96, 96, 3)"
            )
        if len(y) != len(self._x):
            raise DataError(
                f"{x_path}: 'x' has {len(self._x)} patches but {y_path.name} has "
                f"{len(y)} labels; use the matching _x/_y pair"
            )
        self._labels = np.asarray(y).reshape(-1).astype(np.uint8)

    def __len__(self) -> int:
        """Number of patches."""
        return len(self._labels)

    @property
    def labels(self) -> npt.NDArray[np.uint8]:
        """``uint8[N]`` labels."""
        return self._labels

    def read(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Patches at ``indices`` (h5py needs increasing indices: sort, then undo)."""
        order = np.argsort(indices)
        sorted_idx = np.asarray(indices)[order]
        unique, inverse = np.unique(sorted_idx, return_inverse=True)
        block = np.asarray(self._x[unique.tolist()], dtype=np.uint8)[inverse]
        out = np.empty_like(block)
        out[order] = block
        return out

    def fingerprint(self) -> str:
        """Hash of the file names, sizes and labels."""
        digest = hashlib.sha256()
        for path in (self._x_path, self._y_path):
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
        digest.update(self._labels.tobytes())
        return digest.hexdigest()[:16]


def open_patch_set(
    path: Path, *, split: str = "train", workers: int = 8, limit: int | None = None
) -> PatchSet:
    """Open a labelled patch set in any of the three layouts.

    Parameters
    ----------
    path
        A folder holding ``0/`` and ``1/``; a Kaggle folder holding
        ``train_labels.csv``; a folder holding the PCam ``.h5`` files (``split``
        picks them); or one ``..._x.h5`` file.
    split
        ``train``, ``valid`` or ``test``, for the HDF5 layout.
    workers
        Threads decoding image files.
    limit
        Read at most this many patches (image layouts; for quick runs and tests).

    Raises
    ------
    DataError
        The layout is not recognised, or a file or label is bad.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".h5":
        return H5PatchSet(path, Path(str(path).replace("_x.h5", "_y.h5")))
    if not path.is_dir():
        raise DataError(f"{path}: no such folder; give a patch folder or PCam .h5 file")
    h5 = path / f"camelyonpatch_level_2_split_{split}_x.h5"
    if h5.exists():
        return H5PatchSet(h5, h5.with_name(h5.name.replace("_x.h5", "_y.h5")))
    if (path / "0").is_dir() or (path / "1").is_dir():
        files, labels = _class_folder_items(path)
    elif (path / "train_labels.csv").exists():
        files, labels = _kaggle_items(path)
    else:
        raise DataError(
            f"{path}: not a patch set; expected 0/ and 1/ class folders, "
            "train_labels.csv with train/*.tif, or camelyonpatch_level_2_*.h5"
        )
    if limit is not None:
        keep = _balanced_subset(labels, limit)
        files = [files[i] for i in keep]
        labels = labels[keep]
    if not files:
        raise DataError(f"{path}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    images = _decode_all(files, workers=workers)
    return ArrayPatchSet(
        name=path.name,
        images=images,
        label_array=labels,
        sources=tuple(str(f.relative_to(path)) for f in files),
    )


def _class_folder_items(root: Path) -> tuple[list[Path], npt.NDArray[np.uint8]]:
    files: list[Path] = []
    labels: list[int] = []
    for label in (0, 1):
        folder = root / str(label)
        if not folder.is_dir():
            continue
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [label] * len(found)
    return files, np.asarray(labels, dtype=np.uint8)


def _kaggle_items(root: Path) -> tuple[list[Path], npt.NDArray[np.uint8]]:
    csv_path = root / "train_labels.csv"
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"id", "label"} <= set(rows[0]):
        raise DataError(f"{csv_path}: expected a header 'id,label'")
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
        labels = np.asarray([int(by_id[f.stem]) for f in files], dtype=np.uint8)
    except ValueError as err:
        raise DataError(f"{csv_path}: labels must be 0 or 1 ({err})") from err
    if labels.size and labels.max() > 1:
        raise DataError(f"{csv_path}: labels must be 0 or 1, found {labels.max()}")
    return files, labels


def _balanced_subset(labels: npt.NDArray[np.uint8], limit: int) -> npt.NDArray[np.int64]:
    """Up to ``limit`` indices, half of each class where both have enough."""
    rng = np.random.default_rng(0)
    neg, pos = (rng.permutation(np.flatnonzero(labels == c)) for c in (0, 1))
    n_pos = min(len(pos), max(limit // 2, limit - len(neg)))
    return np.sort(np.concatenate([pos[:n_pos], neg[: limit - n_pos]]))


def _decode_one(path: Path) -> npt.NDArray[np.uint8]:
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
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path}: cannot decode image ({err}); remove or replace it") from err


def _decode_all(files: Sequence[Path], *, workers: int) -> npt.NDArray[np.uint8]:
    logger.info("decoding %d patches", len(files))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(_decode_one, files))
    return np.stack(arrays)
